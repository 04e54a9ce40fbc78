//! Throughput of the runtime-format decoders and of the reassembly of split lines.
//!
//! Run with `cargo bench --bench decode`; `-- --quick` for a short run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shiplog::decode::{Format, Reassembler};

/// A typical structured application line, about 200 bytes as the container wrote it.
const APP_LINE: &str = r#"{"level":"info","ts":"2024-05-01T12:00:00.123Z","caller":"server/handler.go:118","msg":"request served","method":"GET","path":"/api/v1/users/42","status":200,"duration_ms":3.25,"bytes":5120}"#;

const TIME: &str = "2024-05-01T12:00:00.123456789Z";

/// `message` as a docker json-file entry of a whole (`\n`-terminated) or partial line.
fn docker_line(message: &str, whole: bool) -> Vec<u8> {
    let log = if whole {
        format!("{message}\n")
    } else {
        message.to_owned()
    };
    serde_json::json!({"log": log, "stream": "stdout", "time": TIME})
        .to_string()
        .into_bytes()
}

fn decode(c: &mut Criterion) {
    let docker = docker_line(APP_LINE, true);
    // Plain text: the only escape is the final `\n`, so `log` is borrowed, not copied.
    let plain = docker_line(
        "2024-05-01 12:00:00 INFO  [http-nio-8080-exec-7] c.e.users.UserController - served GET /api/v1/users/42 with status 200 in 3.25 ms (5120 bytes) for user alice from 10.0.3.17",
        true,
    );
    let cri = format!("{TIME} stdout F {APP_LINE}").into_bytes();
    // The same application line as plain text with tabs and quotes, so `log` needs unescaping.
    let escaped = docker_line(
        "2024-05-01 12:00:00\tINFO\t\"GET /api/v1/users/42 HTTP/1.1\" 200 5120\t\"curl/8.5.0\"\tserved in 3.25ms for \"alice\" via\t\"edge-1\"",
        true,
    );

    let mut group = c.benchmark_group("decode");
    for (name, format, line) in [
        ("docker", Format::Docker, &docker),
        ("docker_plain_text", Format::Docker, &plain),
        ("cri", Format::Cri, &cri),
        ("docker_with_escapes", Format::Docker, &escaped),
    ] {
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(name, |b| b.iter(|| format.decode(black_box(line))));
    }
    group.finish();
}

fn reassemble(c: &mut Criterion) {
    // A 64 KiB line, as dockerd writes it: four 16 KiB entries, the last one ending it.
    let piece = "x".repeat(16 * 1024);
    let entries: Vec<Vec<u8>> = (0..4).map(|i| docker_line(&piece, i == 3)).collect();
    let bytes: usize = entries.iter().map(Vec::len).sum();

    let mut group = c.benchmark_group("reassemble");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("docker_64_KiB_line_in_16_KiB_entries", |b| {
        let mut reassembler = Reassembler::new(256 * 1024);
        b.iter(|| {
            let mut emitted = 0;
            for entry in &entries {
                if let Ok(line) = Format::Docker.decode(black_box(entry)) {
                    reassembler.push(line, &mut |message| emitted += message.bytes.len());
                }
            }
            emitted
        })
    });
    group.finish();
}

criterion_group!(benches, decode, reassemble);
criterion_main!(benches);
