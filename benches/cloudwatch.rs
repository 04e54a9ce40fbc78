//! CloudWatch batching cost: turning 10,000 rendered records into PutLogEvents requests
//! (reading each record's time, grouping by stream, sorting, cutting by the limits).
//! Per event: the figure divided by 10,000 (criterion's throughput shows elements/s).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shiplog::sink::cloudwatch::requests::{Destination, LIMITS, plan};

const RECORDS: usize = 10_000;

/// Records shaped like shiplog's: `time` first, then the line and its pod's metadata.
fn records(streams: usize) -> Vec<(Destination, Vec<u8>)> {
    (0..RECORDS)
        .map(|i| {
            let pod = i % streams;
            let destination = Destination {
                group: format!("/k8s/ns-{}", pod % 4),
                stream: format!("pod-{pod}.app"),
            };
            let json = format!(
                "{{\"time\":\"2026-11-25T09:{:02}:{:02}.{:09}Z\",\"stream\":\"stdout\",\"log\":\"GET /api/v1/products?page={i} 200 5316\",\"kubernetes\":{{\"pod_name\":\"pod-{pod}\",\"namespace_name\":\"ns-{}\",\"container_name\":\"app\"}},\"topic\":\"ns-{}\"}}",
                (i / 60) % 60,
                i % 60,
                i,
                pod % 4,
                pod % 4
            );
            (destination, json.into_bytes())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("cloudwatch_plan");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for streams in [1, 50] {
        let records = records(streams);
        group.bench_function(format!("10k_records_{streams}_streams"), |b| {
            b.iter(|| {
                let plan = plan(
                    records.iter().map(|(d, j)| (d, j.as_slice())),
                    black_box(0),
                    &LIMITS,
                );
                black_box(plan.requests.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
