//! The per-record cost of the whole pipeline without I/O: the processor turning one
//! 256 KiB chunk of a container's log into rendered records (decode, reassemble, enrich,
//! JSON merge or nginx parser, render), for docker and CRI lines. The end-to-end harness
//! (`benches/pipeline.rs`) adds the reading, the sinks and the process around it.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shiplog::enrich::{EnrichSettings, Enricher};
use shiplog::kube::{FragmentOptions, Metadata, PodIndex};
use shiplog::parse::ParserSet;
use shiplog::pipeline::Processor;
use shiplog::route::Template;
use shiplog::route::allow::TopicOverrides;
use shiplog::tail::{FileId, Fingerprint, FoundFile, LineEnd, Lines, TailEvent};

const CHUNK: usize = 256 * 1024;

fn pods(annotation: &str) -> Metadata {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                     "labels": {"app": "web", "pod-template-hash": "6b8d9c7f4"},
                     "annotations": serde_json::from_str::<serde_json::Value>(annotation).expect("JSON")},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]}
    }))
    .expect("a Pod");
    Metadata::File(PodIndex::from_pods(&[pod]))
}

fn processor(metadata: Metadata) -> Processor {
    let enricher = Enricher::new(EnrichSettings {
        merge_log: true,
        merge_log_key: "data".into(),
        keep_log: true,
        fragment: FragmentOptions {
            labels: true,
            annotations: true,
        },
        topic: Template::compile("{namespace}").expect("template"),
        default_topic: "unknown".into(),
        topic_overrides: TopicOverrides::default(),
        parsers: ParserSet::builtin(),
        annotation_prefixes: vec!["shiplog.io".into(), "fluentbit.io".into()],
        own_pod: None,
    });
    Processor::new(enricher, metadata, 256 * 1024)
}

/// A chunk of whole lines of about 256 KiB.
fn chunk(line: impl Fn(usize) -> String) -> Vec<u8> {
    let mut data = Vec::with_capacity(CHUNK + 1024);
    let mut seq = 0;
    while data.len() < CHUNK {
        data.extend_from_slice(line(seq).as_bytes());
        seq += 1;
    }
    data
}

fn json_message(seq: usize) -> String {
    format!(
        r#"{{"level":"info","msg":"order placed","order_id":"A-{seq}","amount_cents":4599,"user":{{"id":42}}}}"#
    )
}

fn nginx_message(seq: usize) -> String {
    format!(
        r#"10.0.0.{} - - [25/Nov/2026:09:00:01 +0000] "GET /api/cart?item={seq} HTTP/1.1" 200 512 "-" "curl/8.5.0""#,
        seq % 250
    )
}

fn bench(c: &mut Criterion) {
    let time = "2026-11-25T09:00:00.123456789Z";
    let cases: [(&str, &str, Vec<u8>); 4] = [
        (
            "docker_json",
            "{}",
            chunk(|s| {
                format!(
                    "{}\n",
                    serde_json::json!({"log": format!("{}\n", json_message(s)), "stream": "stdout", "time": time})
                )
            }),
        ),
        (
            "cri_json",
            "{}",
            chunk(|s| format!("{time} stdout F {}\n", json_message(s))),
        ),
        (
            "cri_nginx_parser",
            r#"{"shiplog.io/parser":"nginx"}"#,
            chunk(|s| format!("{time} stdout F {}\n", nginx_message(s))),
        ),
        (
            "cri_plain",
            "{}",
            chunk(|s| {
                format!(
                    "{time} stdout F worker {} finished job {s} in 12 ms\n",
                    s % 8
                )
            }),
        ),
    ];
    let mut group = c.benchmark_group("process/chunk");
    for (name, annotation, data) in cases {
        let mut processor = processor(pods(annotation));
        let found = FoundFile {
            path: PathBuf::from(format!("/var/log/containers/web-1_shop_app-{:064x}.log", 1)),
            target: PathBuf::from("/var/log/pods/shop_web-1_u-1/app/0.log"),
        };
        let id = FileId { dev: 1, ino: 1 };
        let fingerprint = Fingerprint::of(&data);
        processor.handle(TailEvent::Opened {
            file: 0,
            found,
            id,
            fingerprint,
            offset: 0,
        });
        let lines = data.iter().filter(|&&b| b == b'\n').count();
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("{name} ({lines} lines)"), |b| {
            b.iter(|| {
                let lines = Lines {
                    data: data.clone(),
                    start: 0,
                    end: data.len() as u64,
                    end_kind: LineEnd::Newline,
                    continued: false,
                };
                black_box(processor.handle(TailEvent::Lines { file: 0, lines }))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
