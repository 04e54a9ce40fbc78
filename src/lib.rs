//! shiplog: a Kubernetes node log collector.
//!
//! One copy runs on every node. It follows the container log files the kubelet writes,
//! turns each line into a JSON record carrying its pod's metadata, and ships the records
//! to sinks, advancing a file's offset only past lines every sink has acknowledged.
//!
//! # Layout
//!
//! Read in this order; dependencies point down the list, never up.
//!
//! - [`cli`]: the command line.
//! - [`config`]: the config file, parsed and validated once at start-up.
//! - [`decode`]: docker json-file and CRI lines, and reassembly of split lines (pure).
//! - [`serde_words`]: serde's error messages in a TOML editor's terms (pure).
//! - [`record`]: the record and its JSON rendering (pure).
//! - [`route`]: the topic template and `match` tables (pure).
//! - [`transform`]: `[[transforms]]`, edits of rendered records before routing (pure).
//! - [`multiline`]: the lines of one event (a stack trace) joined into one message (pure).
//! - [`parse`]: payloads turned into fields for `data` (the JSON merge) (pure).
//! - [`kube`]: pod identity from file names, pod metadata (an API watch feeding a cache, or a
//!   PodList file), and its pre-rendered fragment.
//! - [`enrich`]: a decoded line plus its file's context becomes a rendered record (pure).
//! - [`tail`]: finding files and reading their lines with exact offsets.
//! - [`checkpoint`]: durable offsets per file identity, to resume after a restart (SQLite).
//! - [`sink`]: destinations, batching and acknowledgements.
//! - [`logging`]: shiplog's own log lines.
//! - [`liveness`]: whether a stage of the pipeline is wedged (for `/healthz`).
//! - [`metrics`]: every metric of CONTRACT.md, and the health state.
//! - [`server`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`events`]: Kubernetes events, shipped by the one shiplog holding a Lease.
//! - [`pipeline`]: wires the above into the running collector.
//! - [`allocator`]: glibc malloc's arenas bounded before anything starts.

pub mod allocator;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod decode;
pub mod enrich;
pub mod events;
pub mod kube;
pub mod liveness;
pub mod logging;
pub mod metrics;
pub mod multiline;
pub mod parse;
pub mod pipeline;
pub mod record;
pub mod route;
pub mod serde_words;
pub mod server;
pub mod sink;
pub mod tail;
pub mod transform;
