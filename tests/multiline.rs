//! End to end: `shiplog.io/multiline` joins a stack trace's lines into one record, in docker
//! and CRI files, read at once or followed as it is written, across a `kill -9`; and
//! `shiplog parse --multiline` shows the grouping.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::{Node, Running, append, run_once, wait_for_commit, wait_until};

const JAVA: &str = include_str!("../fixtures/multiline/java.txt");
const PYTHON: &str = include_str!("../fixtures/multiline/python.txt");
const GO: &str = include_str!("../fixtures/multiline/go.txt");

const TIME: &str = "2026-12-03T19:00:00.000000001Z";

/// Writes one line of a container's message in a runtime's format.
type Format = fn(&str, &str) -> String;

fn cri(stream: &str, message: &str) -> String {
    format!("{TIME} {stream} F {message}\n")
}

fn docker(stream: &str, message: &str) -> String {
    let log = format!("{message}\n");
    format!("{}\n", json!({"log": log, "stream": stream, "time": TIME}))
}

/// A trace's text as its record's `log` must hold it.
fn joined(trace: &str) -> String {
    trace.trim_end_matches('\n').to_owned()
}

fn pod(name: &str, annotations: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                        "labels": {}, "annotations": annotations},
           "spec": {"nodeName": "node-a", "containers": [{"name": "app"}]}})
}

/// A config reading `pods`' annotations from a PodList file, with `tail` added to `[tail]`.
/// Batches wait at most 100 ms, so that timings measure the multiline flush, not batching.
fn with_pods(node: &Node, pods: &[Value], tail: &str) -> std::path::PathBuf {
    let list = json!({"kind": "List", "apiVersion": "v1", "items": pods});
    node.write("pods.json", list.to_string().as_bytes());
    node.config(&[
        (
            "kubernetes",
            "metadata = \"file\"\npods_file = \"pods.json\"",
        ),
        ("tail", tail),
        ("pipeline", "batch_timeout = \"100ms\""),
    ])
}

fn logs_of(records: &[Value], pod: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["kubernetes"]["pod_name"] == pod)
        .map(|r| r["log"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Ordinary lines, each trace, ordinary lines again: the file's lines in `format`, and
/// what the records' `log`s must be.
fn interleaved(format: Format, traces: &[&str]) -> (String, Vec<String>) {
    let mut file = String::new();
    let mut expected = Vec::new();
    for (n, trace) in traces.iter().enumerate() {
        let ordinary = format!("2026-12-03 19:00:0{n} INFO handled request {n}");
        file.push_str(&format(
            "stdout",
            &format!("{{\"level\":\"info\",\"n\":{n}}}"),
        ));
        file.push_str(&format("stderr", &ordinary));
        for line in trace.lines() {
            file.push_str(&format("stderr", line));
        }
        expected.push(ordinary);
        expected.push(joined(trace));
    }
    file.push_str(&format("stderr", "2026-12-03 19:00:09 INFO done"));
    expected.push("2026-12-03 19:00:09 INFO done".to_owned());
    (file, expected)
}

#[test]
fn each_trace_is_one_record_in_docker_and_cri_files_and_other_pods_are_untouched() {
    let node = Node::new();
    let config = with_pods(
        &node,
        &[
            pod("java-cri", json!({"shiplog.io/multiline_stderr": "java"})),
            pod("java-docker", json!({"shiplog.io/multiline": "java"})),
            pod("python-cri", json!({"shiplog.io/multiline-app": "python"})),
            pod(
                "go-docker",
                json!({"shiplog.io/multiline_stderr-app": "go"}),
            ),
            pod("plain", json!({})),
        ],
        "",
    );
    let cases: [(&str, Format, &str); 4] = [
        ("java-cri", cri, JAVA),
        ("java-docker", docker, JAVA),
        ("python-cri", cri, PYTHON),
        ("go-docker", docker, GO),
    ];
    let mut expectations = Vec::new();
    for (name, format, trace) in cases {
        let (file, expected) = interleaved(format, &[trace, trace]);
        node.container_log("shop", name, "app", file.as_bytes());
        expectations.push((name, expected));
    }
    let (plain, _) = interleaved(cri, &[JAVA]);
    node.container_log("shop", "plain", "app", plain.as_bytes());

    let output = run_once(&config);
    assert!(output.status.success(), "{}", util::stderr(&output));
    let records = node.records();
    for (name, expected) in expectations {
        let mut logs = logs_of(&records, name);
        // stdout JSON lines are not joined and not part of the expectation's order.
        logs.retain(|log| !log.starts_with('{'));
        assert_eq!(logs, expected, "{name}");
    }
    let trace = records
        .iter()
        .find(|r| r["kubernetes"]["pod_name"] == "java-docker" && r["log"] == joined(JAVA))
        .expect("the trace's record");
    assert_eq!(trace["time"], TIME, "the first line's time");
    assert_eq!(trace["stream"], "stderr");
    assert!(trace.get("truncated").is_none());
    let plain = logs_of(&records, "plain");
    assert_eq!(plain.len(), plain_lines(JAVA) + 3, "one record per line");
}

fn plain_lines(trace: &str) -> usize {
    trace.lines().count()
}

#[test]
fn a_split_first_line_is_reassembled_before_the_trace_is_joined() {
    let node = Node::new();
    let config = with_pods(
        &node,
        &[pod("split", json!({"shiplog.io/multiline": "java"}))],
        "",
    );
    let (first, rest) = JAVA.split_at(20);
    let mut lines = rest.lines();
    let mut file = format!("{TIME} stderr P {first}\n");
    file.push_str(&format!(
        "{TIME} stderr F {}\n",
        lines.next().unwrap_or_default()
    ));
    for line in lines {
        file.push_str(&cri("stderr", line));
    }
    file.push_str(&cri("stderr", "after the trace"));
    node.container_log("shop", "split", "app", file.as_bytes());
    let output = run_once(&config);
    assert!(output.status.success(), "{}", util::stderr(&output));
    assert_eq!(
        logs_of(&node.records(), "split"),
        [joined(JAVA), "after the trace".to_owned()]
    );
}

#[test]
fn a_700_line_trace_is_cut_at_500_lines_flagged_truncated() {
    let node = Node::new();
    let config = with_pods(
        &node,
        &[pod("deep", json!({"shiplog.io/multiline": "java"}))],
        "",
    );
    let mut lines = vec!["java.lang.StackOverflowError: too deep".to_owned()];
    lines.extend((1..700).map(|n| format!("\tat com.acme.Deep.recurse(Deep.java:{n})")));
    let mut file: String = lines.iter().map(|line| cri("stderr", line)).collect();
    file.push_str(&cri("stdout", "recovered"));
    node.container_log("shop", "deep", "app", file.as_bytes());
    let output = run_once(&config);
    assert!(output.status.success(), "{}", util::stderr(&output));
    let records = node.records();
    let pieces: Vec<&Value> = records.iter().filter(|r| r["stream"] == "stderr").collect();
    assert_eq!(pieces.len(), 2);
    assert_eq!(pieces[0]["log"], lines[..500].join("\n"));
    assert_eq!(pieces[1]["log"], lines[500..].join("\n"));
    assert!(pieces.iter().all(|r| r["truncated"] == true));
}

/// A followed file: `Running` shiplog with `tail.multiline_flush = flush`.
fn follow(node: &Node, flush: &str) -> (Running, std::path::PathBuf) {
    let config = with_pods(
        node,
        &[pod("live", json!({"shiplog.io/multiline": "python"}))],
        &format!("multiline_flush = \"{flush}\"\nrescan_interval = \"200ms\""),
    );
    let file = node.container_log("shop", "live", "app", cri("stdout", "starting").as_bytes());
    let running = Running::start(&config, &node.path("shiplog.log"));
    (running, file)
}

#[test]
fn a_trace_written_300_ms_a_line_is_one_record_shipped_within_flush_after_silence() {
    let node = Node::in_memory();
    let (running, file) = follow(&node, "1s");
    wait_until(Duration::from_secs(30), "the first line", || {
        !node.records().is_empty()
    });
    let mut last_write = Instant::now();
    for line in PYTHON.lines() {
        append(&file, &cri("stderr", line));
        last_write = Instant::now();
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut shipped = None;
    wait_until(Duration::from_secs(10), "the trace's record", || {
        let done = node.records().len() >= 2;
        if done && shipped.is_none() {
            shipped = Some(last_write.elapsed());
        }
        done
    });
    let shipped = shipped.unwrap_or_default();
    eprintln!("trace shipped {shipped:?} after its last line");
    assert!(
        shipped <= Duration::from_millis(1500),
        "shipped {shipped:?} after the last line (flush 1 s + 0.5 s)"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        logs_of(&node.records(), "live"),
        ["starting".to_owned(), joined(PYTHON)],
        "one record for the whole trace, nothing split"
    );
    running.stop();
}

#[test]
fn after_kill_9_mid_trace_the_trace_arrives_whole() {
    let node = Node::in_memory();
    let (running, file) = follow(&node, "30s");
    let trace_start = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    wait_for_commit(
        &node.path("state.db"),
        trace_start,
        "the line before the trace",
    );
    let lines: Vec<&str> = PYTHON.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    for line in first {
        append(&file, &cri("stderr", line));
    }
    // Let shiplog read the first half and hold it.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        util::committed_offsets(&node.path("state.db"))
            .iter()
            .all(|&offset| offset <= trace_start),
        "the offset never passes the first line of a held event"
    );
    running.kill();
    for line in second {
        append(&file, &cri("stderr", line));
    }
    append(&file, &cri("stderr", "INFO back to normal"));
    let again = Running::start(&node.path("shiplog.toml"), &node.path("shiplog.log"));
    wait_until(
        Duration::from_secs(30),
        "the trace after the restart",
        || logs_of(&node.records(), "live").contains(&"INFO back to normal".to_owned()),
    );
    let logs = logs_of(&node.records(), "live");
    let traces: Vec<&String> = logs
        .iter()
        .filter(|log| log.contains("Traceback"))
        .collect();
    assert_eq!(
        traces,
        [&joined(PYTHON)],
        "whole, once, no fragment: {logs:?}"
    );
    assert!(
        !logs.iter().any(|log| log.starts_with("  File")),
        "no fragment on its own: {logs:?}"
    );
    again.stop();
}

#[test]
fn shiplog_parse_multiline_shows_the_grouping() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["parse", "--multiline", "java"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shiplog runs");
    let input = format!("INFO before\n{JAVA}INFO after\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success());
    let events: Vec<Value> = output
        .stdout
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).expect("JSON"))
        .collect();
    let logs: Vec<&str> = events.iter().filter_map(|e| e["log"].as_str()).collect();
    assert_eq!(logs, ["INFO before", &joined(JAVA), "INFO after"]);
    assert_eq!(events[1]["lines"], JAVA.lines().count());
}

#[test]
fn shiplog_check_names_the_file_and_key_of_a_bad_multiline_regex() {
    let node = Node::new();
    node.write(
        "parsers/mine.toml",
        b"[spring]\nformat = \"multiline\"\nstart = '^(\\d{4}'\n",
    );
    let config = node.config(&[("parsers", "dirs = [\"parsers\"]")]);
    let output = util::shiplog(&["check", "--config", config.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1));
    let message = util::stderr(&output);
    assert!(
        message.contains("mine.toml") && message.contains("\"spring\": start: regex parse error"),
        "{message}"
    );
}
