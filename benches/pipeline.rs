//! The end-to-end throughput harness: the whole `shiplog --once` process on a node-like
//! workload, measured the way users compare agents: lines/s, MB/s of input, CPU seconds
//! per GB of input, and peak RSS.
//!
//! `cargo bench --bench pipeline` runs the default workload of the performance issue:
//! 20 pods x 100,000 lines, about 50 % JSON app lines, 40 % nginx access lines (those pods
//! annotated with the nginx parser), 10 % plain text, pod metadata from a PodList file;
//! docker and CRI formats, into the `null` and the `file` sink; median of 5 runs each.
//! Options after `--`: `--pods N`, `--lines N`, `--runs N`, `--format docker|cri`,
//! `--sink null|file|kafka|routed`, `--memory-limit SIZE`, `--keep DIR` (write the workload and
//! configs under DIR/<format> and leave them there, for profiling one `shiplog --once` by
//! hand). `--sink kafka` ships into librdkafka's mock cluster, started in this harness for
//! each run (so its CPU is not shiplog's), and checks that every line arrived once;
//! `--kafka-rtt MS` makes its brokers answer that much later, `--kafka-partitions N` sets
//! the topic's partitions (default 3) and `--kafka-key TEMPLATE` the key (default `{pod}`,
//! `""` for none). `--traces PERCENT` puts that share of every pod's lines in 10-line Java
//! stack traces and annotates every pod `shiplog.io/multiline: java` (the file sink then
//! checks one record per trace and per other line). `--sink routed` is `null` with routing
//! and transforms at work (issue 22): two `null` sinks each with a `match` (both take every
//! record), an `add_fields` and a `redact` of `log` and `data` (the JSON pods' order ids
//! match). `SHIPLOG_BIN` runs another build of shiplog (for before/after
//! comparisons; the default is this build's). Under `cargo test` (no `--bench` argument) it
//! runs a small smoke workload once, so the harness itself stays working.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::resource::{UsageWho, getrusage};
use rdkafka::consumer::Consumer as _;

struct Options {
    pods: usize,
    lines: usize,
    runs: usize,
    formats: Vec<&'static str>,
    sinks: Vec<&'static str>,
    /// `pipeline.memory_limit`, when not the default.
    memory_limit: Option<String>,
    /// Where to write the workloads and leave them, instead of a temporary folder.
    keep: Option<PathBuf>,
    /// The mock brokers' added round-trip time, in milliseconds.
    kafka_rtt: u64,
    /// The Kafka topic's partitions.
    kafka_partitions: i32,
    /// The Kafka sink's `key` template.
    kafka_key: String,
    /// The share of lines, in percent, inside Java stack traces (pods then annotated
    /// `shiplog.io/multiline: java`); 0 for none.
    traces: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let benching = args.iter().any(|a| a == "--bench");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let number =
        |name: &str, default: usize| value(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let pick = |name: &str, all: &[&'static str], default: &[&'static str]| match value(name) {
        Some(v) => all.iter().copied().filter(|x| x == v).collect(),
        None => default.to_vec(),
    };
    Options {
        pods: number("--pods", if benching { 20 } else { 2 }),
        lines: number("--lines", if benching { 100_000 } else { 500 }),
        runs: number("--runs", if benching { 5 } else { 1 }),
        formats: pick("--format", &["docker", "cri"], &["docker", "cri"]),
        sinks: pick(
            "--sink",
            &["null", "file", "kafka", "routed"],
            &["null", "file"],
        ),
        memory_limit: value("--memory-limit").cloned(),
        keep: value("--keep").map(PathBuf::from),
        kafka_rtt: number("--kafka-rtt", 0) as u64,
        kafka_partitions: number("--kafka-partitions", 3) as i32,
        kafka_key: value("--kafka-key")
            .cloned()
            .unwrap_or_else(|| "{pod}".to_owned()),
        traces: number("--traces", 0).min(100),
    }
}

/// Lines per trace in the `--traces` workload.
const TRACE_LINES: usize = 10;

/// Line `n` (0-based) of a 10-line Java stack trace.
fn trace_line(seq: usize, n: usize) -> String {
    match n {
        0 => format!("com.acme.orders.OrderException: order A-{seq} could not be placed"),
        9 => "\t... 42 more".to_owned(),
        n => format!(
            "\tat com.acme.orders.Service.step{n}(Service.java:{})",
            40 + n
        ),
    }
}

/// Whether line `seq` is in a trace, and which line of it: the first `traces` lines of
/// every hundred, in traces of [`TRACE_LINES`].
fn in_trace(options: &Options, seq: usize) -> Option<usize> {
    let within = seq % 100;
    (within < options.traces / TRACE_LINES * TRACE_LINES).then_some(within % TRACE_LINES)
}

/// The records a pod's lines make: one per trace, one per other line.
fn records_per_pod(options: &Options) -> usize {
    (0..options.lines)
        .filter(|&seq| in_trace(options, seq).is_none_or(|n| n == 0))
        .count()
}

/// What kind of lines a pod writes.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Json,
    Nginx,
    Plain,
}

fn kind_of(pod: usize, pods: usize) -> Kind {
    // 50 % of the pods write JSON, 40 % nginx, 10 % plain text (at least one of each).
    let share = pod * 10 / pods.max(1);
    match share {
        0..=4 => Kind::Json,
        5..=8 => Kind::Nginx,
        _ => Kind::Plain,
    }
}

fn message(kind: Kind, seq: usize) -> String {
    match kind {
        Kind::Json => format!(
            r#"{{"level":"info","ts":"2026-11-25T09:00:00.{seq:06}Z","msg":"order placed","order_id":"A-{seq}","amount_cents":{},"currency":"EUR","user":{{"id":{}}}}}"#,
            seq % 10_000,
            seq % 977
        ),
        Kind::Nginx => format!(
            r#"10.0.{}.{} - - [25/Nov/2026:09:00:{:02} +0000] "GET /api/v1/products?page={} HTTP/1.1" 200 {} "-" "Mozilla/5.0 (X11; Linux x86_64)""#,
            seq % 200,
            seq % 250,
            seq % 60,
            seq % 40,
            500 + seq % 4000
        ),
        Kind::Plain => format!(
            "worker {} finished job {seq} in {} ms, queue depth {}",
            seq % 8,
            seq % 900,
            seq % 31
        ),
    }
}

/// Writes the workload: pods' log files, kubelet links, the PodList and two configs.
fn generate(root: &Path, options: &Options, format: &str) -> u64 {
    let mut bytes = 0u64;
    let mut pods_json = String::from(r#"{"apiVersion":"v1","kind":"List","items":["#);
    for pod in 0..options.pods {
        let kind = kind_of(pod, options.pods);
        let name = format!("app-{pod}");
        let dir = root.join(format!("var/log/pods/bench_{name}_uid-{pod}/app"));
        fs::create_dir_all(&dir).expect("mkdir");
        let mut text = String::with_capacity(options.lines * 220);
        for seq in 0..options.lines {
            let message = match in_trace(options, seq) {
                Some(n) => trace_line(seq, n),
                None => message(kind, seq),
            };
            let time = format!(
                "2026-11-25T09:{:02}:{:02}.{:09}Z",
                seq / 60_000 % 60,
                seq / 1000 % 60,
                seq
            );
            match format {
                "docker" => {
                    let line = serde_json::json!({"log": format!("{message}\n"), "stream": "stdout", "time": time});
                    writeln!(text, "{line}").expect("string");
                }
                _ => writeln!(text, "{time} stdout F {message}").expect("string"),
            }
        }
        bytes += text.len() as u64;
        fs::write(dir.join("0.log"), text).expect("write log");
        let links = root.join("var/log/containers");
        fs::create_dir_all(&links).expect("mkdir");
        let id = format!("{pod:064x}");
        let link = links.join(format!("{name}_bench_app-{id}.log"));
        std::os::unix::fs::symlink(dir.join("0.log"), link).expect("link");
        let annotations = match (kind == Kind::Nginx, options.traces > 0) {
            (true, false) => r#"{"shiplog.io/parser":"nginx"}"#,
            (false, false) => "{}",
            (true, true) => r#"{"shiplog.io/parser":"nginx","shiplog.io/multiline":"java"}"#,
            (false, true) => r#"{"shiplog.io/multiline":"java"}"#,
        };
        if pod > 0 {
            pods_json.push(',');
        }
        write!(
            pods_json,
            r#"{{"metadata":{{"name":"{name}","namespace":"bench","uid":"uid-{pod}","labels":{{"app":"bench","pod-template-hash":"6b8d9c7f4"}},"annotations":{annotations}}},"spec":{{"nodeName":"bench-node","containers":[{{"name":"app","image":"registry.example.com/app:1.0"}}]}},"status":{{"containerStatuses":[{{"name":"app","image":"registry.example.com/app:1.0","imageID":"registry.example.com/app@sha256:{id}","containerID":"containerd://{id}","ready":true,"restartCount":0}}]}}}}"#
        )
        .expect("string");
    }
    pods_json.push_str("]}");
    fs::write(root.join("pods.json"), pods_json).expect("write pods");
    for sink in ["null", "file", "routed"] {
        let sink_table = match sink {
            "file" => "type = \"file\"\npath = \"out.jsonl\"",
            "routed" => ROUTED,
            _ => "type = \"null\"",
        };
        write_config(root, options, sink, sink_table);
    }
    bytes
}

/// The `routed` sink: two matched `null` sinks, an `add_fields` and a `redact`.
const ROUTED: &str = r#"type = "null"
[sinks.out.match]
namespaces = ["bench"]
[sinks.second]
type = "null"
[sinks.second.match]
exclude_namespaces = ["kube-system"]
[[transforms]]
type = "add_fields"
fields = { cluster = "bench-cluster" }
[[transforms]]
type = "redact"
pattern = 'A-[0-9]+'
fields = ["log", "data"]"#;

/// Writes `SINK.toml`: the workload's files and PodList, records to `sink_table`.
fn write_config(root: &Path, options: &Options, sink: &str, sink_table: &str) {
    let config = format!(
        "[tail]\ninclude = [\"var/log/containers/*.log\"]\n[state]\npath = \"state.db\"\n\
         [kubernetes]\nmetadata = \"file\"\npods_file = \"pods.json\"\n[server]\nlisten = \"\"\n\
         [sinks.out]\n{sink_table}\n"
    );
    let config = match &options.memory_limit {
        Some(limit) => format!("{config}[pipeline]\nmemory_limit = \"{limit}\"\n"),
        None => config,
    };
    fs::write(root.join(format!("{sink}.toml")), config).expect("write config");
}

/// One run into a fresh mock Kafka cluster (three brokers, the workload's one topic),
/// dropped after the run so its messages do not pile up in memory. The topic's high
/// watermarks must add up to the workload's lines: every line arrived, once.
fn run_kafka(root: &Path, options: &Options) -> Run {
    let cluster = rdkafka::mocking::MockCluster::new(3).expect("mock cluster");
    cluster
        .create_topic("bench", options.kafka_partitions, 1)
        .expect("topic");
    if options.kafka_rtt > 0 {
        let rtt = Duration::from_millis(options.kafka_rtt);
        cluster.broker_round_trip_time(-1, rtt).expect("rtt");
    }
    let brokers = cluster.bootstrap_servers();
    let sink_table = format!(
        "type = \"kafka\"\nbrokers = \"{brokers}\"\nkey = \"{}\"",
        options.kafka_key
    );
    write_config(root, options, "kafka", &sink_table);
    let run = run(root, "kafka");
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("consumer");
    let messages: i64 = (0..options.kafka_partitions)
        .map(|partition| {
            // The high watermark: the mock brokers drop old messages beyond 100,000 per
            // partition, but offsets count every message appended since the start.
            let (_, high) = consumer
                .fetch_watermarks("bench", partition, Duration::from_secs(10))
                .expect("watermarks");
            high
        })
        .sum();
    assert_eq!(
        messages,
        (options.pods * options.lines) as i64,
        "every line arrived in Kafka once"
    );
    run
}

struct Run {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: i64,
}

/// One `shiplog --once` run from a fresh state. The run goes through a child of this
/// harness (`--run-one`) that has shiplog as its only child, so the children's rusage it
/// reports (CPU time, and peak RSS, which is a maximum over all children) is this run's.
fn run(root: &Path, sink: &str) -> Run {
    for stale in ["state.db", "state.db-wal", "state.db-shm", "out.jsonl"] {
        fs::remove_file(root.join(stale)).ok();
    }
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().expect("the harness"))
        .args([
            "--run-one",
            &root.join(format!("{sink}.toml")).to_string_lossy(),
        ])
        .output()
        .expect("the runner runs");
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut numbers = text
        .split_whitespace()
        .map(|n| n.parse::<i64>().unwrap_or(0));
    let (cpu_us, peak_rss_kib) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    Run {
        wall,
        cpu: Duration::from_micros(cpu_us as u64),
        peak_rss_kib,
    }
}

/// `--run-one CONFIG`: runs `shiplog --config CONFIG --once` and prints its CPU time in
/// microseconds and its peak RSS in KiB.
fn run_one(config: &str) {
    let shiplog = std::env::var_os("SHIPLOG_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_shiplog")),
        PathBuf::from,
    );
    let status = Command::new(shiplog)
        .args(["--config", config, "--once"])
        .env("RUST_LOG", "warn")
        .status()
        .expect("shiplog runs");
    assert!(status.success(), "shiplog failed: {status}");
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("rusage");
    let micros = |tv: nix::sys::time::TimeVal| tv.tv_sec() * 1_000_000 + tv.tv_usec();
    println!(
        "{} {}",
        micros(usage.user_time()) + micros(usage.system_time()),
        usage.max_rss()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(config) = args
        .iter()
        .position(|a| a == "--run-one")
        .and_then(|i| args.get(i + 1))
    {
        return run_one(config);
    }
    let options = options();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "workload: {} pods x {} lines ({} % in Java traces); {} run(s) each; {cores} cores",
        options.pods, options.lines, options.traces, options.runs
    );
    println!("| format | sink | lines/s | MB/s | CPU-s/GB | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for format in &options.formats {
        let root: PathBuf = match &options.keep {
            Some(dir) => dir.join(format),
            None => {
                std::env::temp_dir().join(format!("shiplog-bench-{format}-{}", std::process::id()))
            }
        };
        fs::remove_dir_all(&root).ok();
        let bytes = generate(&root, &options, format);
        let lines = (options.pods * options.lines) as f64;
        for sink in &options.sinks {
            let mut runs: Vec<Run> = (0..options.runs)
                .map(|_| match *sink {
                    "kafka" => run_kafka(&root, &options),
                    _ => run(&root, sink),
                })
                .collect();
            if *sink == "file" {
                // Every line (every trace) is one whole record: none lost, none split by a
                // flush timer.
                let out = fs::read(root.join("out.jsonl")).expect("the file sink's output");
                let records = out.split(|&b| b == b'\n').filter(|r| !r.is_empty());
                let whole = records
                    .filter(|r| serde_json::from_slice::<serde_json::Value>(r).is_ok())
                    .count();
                assert_eq!(
                    whole,
                    options.pods * records_per_pod(&options),
                    "one whole record per line (per trace)"
                );
            }
            for (i, r) in runs.iter().enumerate() {
                eprintln!(
                    "{format} {sink} run {}: {:.1} s, {:.1} CPU-s, peak RSS {:.1} MiB",
                    i + 1,
                    r.wall.as_secs_f64(),
                    r.cpu.as_secs_f64(),
                    r.peak_rss_kib as f64 / 1024.0
                );
            }
            runs.sort_by_key(|r| r.cpu);
            let median = &runs[runs.len() / 2];
            let wall = median.wall.as_secs_f64();
            println!(
                "| {format} | {sink} | {:.0} | {:.0} | {:.2} | {:.1} |",
                lines / wall,
                bytes as f64 / wall / 1e6,
                median.cpu.as_secs_f64() / (bytes as f64 / 1e9),
                median.peak_rss_kib as f64 / 1024.0,
            );
        }
        if options.keep.is_none() {
            fs::remove_dir_all(&root).ok();
        }
    }
}
