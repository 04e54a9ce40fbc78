# shiplog's image: built with the official Rust image on Debian bookworm, run on
# bookworm-slim. `docker build -t ghcr.io/shiplog/shiplog:0.1.0 .`; deploy/ runs it.

# The toolchain: Cargo.toml's rust-version (bump them together).
FROM rust:1.89-bookworm AS build
# What the -sys crates compile and link against (librdkafka by its own configure script
# with OpenSSL and zlib; no cmake, SASL or curl), as in .ci/run.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin shiplog

FROM debian:bookworm-slim
# CA certificates for TLS to the Kubernetes API and the sinks; nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/shiplog /usr/local/bin/shiplog
# Fails the build, rather than the pods, if the binary needs a library this image lacks.
RUN ["/usr/local/bin/shiplog", "--version"]
# Two glibc malloc arenas (src/allocator.rs): set here, shiplog need not re-execute itself.
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["/usr/local/bin/shiplog"]
# deploy/base/daemonset.yaml passes the same arguments; `docker run IMAGE check --config
# FILE` and the like replace them.
CMD ["--config", "/etc/shiplog/shiplog.toml"]
