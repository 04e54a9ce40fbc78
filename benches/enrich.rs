//! Enrichment costs: working out a file's context from its pod's annotations (once per
//! file), and rendering one record (per line) with the JSON merge, with a parser, and plain.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use shiplog::decode::{Message, Stream};
use shiplog::enrich::{EnrichSettings, Enricher};
use shiplog::kube::{ContainerMeta, FragmentOptions, LogFileInfo, PodMeta, render_fragment};
use shiplog::parse::ParserSet;
use shiplog::record::{Flags, Record, Shape};
use shiplog::route::Template;
use shiplog::route::allow::TopicOverrides;

const JSON_LINE: &str = r#"{"level":"info","msg":"order placed","order_id":"A-102934","amount_cents":4599,"currency":"EUR","user":{"id":42}}"#;
const NGINX_LINE: &str = r#"10.244.1.7 - - [25/Nov/2026:09:00:01 +0000] "GET /api/v1/products?page=2 HTTP/1.1" 200 5316 "-" "Mozilla/5.0 (X11; Linux x86_64)""#;
const PLAIN_LINE: &str =
    "Connected to ledger at ledger.payments.svc:5432 (pool 16), warming caches";

fn enricher() -> Enricher {
    Enricher::new(EnrichSettings {
        merge_log: true,
        merge_log_key: "data".into(),
        keep_log: true,
        fragment: FragmentOptions {
            labels: true,
            annotations: true,
        },
        topic: Template::compile("{namespace}").expect("valid template"),
        default_topic: "unknown".into(),
        topic_overrides: TopicOverrides::default(),
        parsers: ParserSet::builtin(),
        annotation_prefixes: vec!["shiplog.io".into(), "fluentbit.io".into()],
        own_pod: None,
    })
}

fn pod(annotations: &[(&str, &str)]) -> PodMeta {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    PodMeta {
        namespace: "shop".into(),
        name: "web-6b8d9c7f4-abcde".into(),
        uid: "c1258eae-a1bf-443a-8ed7-c848b0cc7927".into(),
        host: "node-a".into(),
        labels: map(&[
            ("app", "web"),
            ("pod-template-hash", "6b8d9c7f4"),
            ("team", "shop"),
        ]),
        annotations: map(annotations),
        containers: vec![ContainerMeta {
            name: "nginx".into(),
            image: "docker.io/library/nginx:1.27.3".into(),
            image_id: "docker.io/library/nginx@sha256:2ca6d580f0dab37e2cbb09bb7f1b4c174a2696e3"
                .into(),
            container_id: "083d9bf990343f866f3e0e4d119654496eb303904be884bdf612554304d22317".into(),
        }],
        owner: None,
        namespace_labels: None,
    }
}

fn info() -> LogFileInfo {
    LogFileInfo {
        namespace: "shop".into(),
        pod_name: "web-6b8d9c7f4-abcde".into(),
        container_name: "nginx".into(),
        container_id: Some(
            "083d9bf990343f866f3e0e4d119654496eb303904be884bdf612554304d22317".into(),
        ),
        pod_uid: None,
    }
}

fn message(line: &str) -> Message<'_> {
    Message {
        time: Cow::Borrowed("2026-11-25T09:00:01.123456789Z"),
        stream: Stream::Stdout,
        bytes: Cow::Borrowed(line.as_bytes()),
        truncated: false,
        partial: false,
    }
}

fn context(c: &mut Criterion) {
    let enricher = enricher();
    let annotated = pod(&[
        ("shiplog.io/parser", "nginx"),
        ("fluentbit.io/parser_stderr-nginx", "logfmt"),
        ("shiplog.io/exclude-istio-proxy", "true"),
        ("kubectl.kubernetes.io/restartedAt", "2026-11-20T10:00:00Z"),
    ]);
    c.bench_function("enrich/context_with_annotations", |b| {
        b.iter(|| enricher.context(Some(black_box(&info())), Some(black_box(&annotated))))
    });
}

fn render(c: &mut Criterion) {
    let enricher = enricher();
    let plain_pod = pod(&[]);
    let nginx_pod = pod(&[("shiplog.io/parser", "nginx")]);
    let plain = enricher.context(Some(&info()), Some(&plain_pod));
    let nginx = enricher.context(Some(&info()), Some(&nginx_pod));
    let mut group = c.benchmark_group("enrich/render");
    let cases = [
        ("json_merge", &plain, JSON_LINE),
        ("nginx_parser", &nginx, NGINX_LINE),
        ("plain", &plain, PLAIN_LINE),
    ];
    for (name, context, line) in cases {
        group.throughput(Throughput::Bytes(line.len() as u64));
        let mut out = Vec::with_capacity(4096);
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                enricher.render(context, black_box(&message(line)), &mut out)
            })
        });
    }
    group.finish();
}

/// The pieces a record is made of: the pod's `kubernetes` fragment (rendered once per file)
/// and the record's own JSON (rendered per line).
fn pieces(c: &mut Criterion) {
    let pod = pod(&[("shiplog.io/parser", "nginx")]);
    let options = FragmentOptions {
        labels: true,
        annotations: true,
    };
    c.bench_function("enrich/kubernetes_fragment", |b| {
        b.iter(|| render_fragment(black_box(&info()), Some(black_box(&pod)), options))
    });
    let fragment = render_fragment(&info(), Some(&pod), options);
    let shape = Shape::new("data", true);
    let record = Record {
        time: "2026-11-25T09:00:01.123456789Z",
        stream: Some("stdout"),
        log: JSON_LINE,
        data: Some(JSON_LINE),
        kubernetes: Some(&fragment),
        topic: "shop",
        flags: Flags::default(),
        error: None,
    };
    let mut out = Vec::with_capacity(4096);
    let mut group = c.benchmark_group("record");
    group.throughput(Throughput::Bytes(JSON_LINE.len() as u64));
    group.bench_function("render", |b| {
        b.iter(|| {
            out.clear();
            black_box(&record).render(&shape, &mut out);
        })
    });
    group.finish();
}

criterion_group!(benches, context, render, pieces);
criterion_main!(benches);
