//! End to end: `[sinks.NAME.match]` and `[[transforms]]` with the real binary, read back
//! from file sinks (and Kafka's mock cluster for a sink that goes down).

mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::kafka::{cluster, consume};
use util::{Node, Running, append, committed_offsets, run_once, run_once_with_env};

/// A CRI line of `stream` saying `message`.
fn cri(stream: &str, message: &str) -> String {
    format!("2026-11-25T09:00:00.000000001Z {stream} F {message}\n")
}

/// Writes `shiplog.toml`: the node's container logs, metadata off, then `body` (sinks and
/// transforms).
fn config(node: &Node, body: &str) -> PathBuf {
    config_serving(node, body, "")
}

/// [`config`] with the server on `listen`.
fn config_serving(node: &Node, body: &str, listen: &str) -> PathBuf {
    let text = format!(
        "[tail]\ninclude = [\"var/log/containers/*.log\"]\nrescan_interval = \"200ms\"\n\
         [state]\npath = \"state.db\"\ncommit_interval = \"100ms\"\n\
         [pipeline]\nbatch_timeout = \"50ms\"\n\
         [kubernetes]\nmetadata = \"off\"\n\
         [server]\nlisten = \"{listen}\"\n{body}"
    );
    node.write("shiplog.toml", text.as_bytes())
}

fn logs(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["log"].as_str().expect("log").to_owned())
        .collect()
}

fn sorted(mut logs: Vec<String>) -> Vec<String> {
    logs.sort();
    logs
}

fn file_sizes(paths: &[&PathBuf]) -> Vec<u64> {
    let mut sizes: Vec<u64> = paths
        .iter()
        .map(|p| std::fs::metadata(p).expect("log file").len())
        .collect();
    sizes.sort_unstable();
    sizes
}

fn sorted_offsets(node: &Node) -> Vec<u64> {
    let mut offsets = committed_offsets(&node.path("state.db"));
    offsets.sort_unstable();
    offsets
}

#[test]
fn three_sinks_with_different_matches_get_exactly_their_records_and_unrouted_lines_are_committed() {
    let node = Node::new();
    let audit = node.container_log(
        "audit",
        "rec-1",
        "app",
        [
            cri("stdout", "a1"),
            cri("stderr", "a2"),
            cri("stdout", "a3"),
        ]
        .concat()
        .as_bytes(),
    );
    let shop = node.container_log(
        "shop",
        "web-1",
        "app",
        [
            cri("stdout", "s1"),
            cri("stderr", "s2"),
            cri("stderr", "s3"),
        ]
        .concat()
        .as_bytes(),
    );
    let payments = node.container_log(
        "payments",
        "api-1",
        "app",
        [cri("stdout", "p1"), cri("stdout", "p2")]
            .concat()
            .as_bytes(),
    );
    let body = r#"
[sinks.audit]
type = "file"
path = "audit.jsonl"
[sinks.audit.match]
namespaces = ["audit"]

[sinks.errors]
type = "file"
path = "errors.jsonl"
[sinks.errors.match]
streams = ["stderr"]
exclude_namespaces = ["audit"]

[sinks.shop]
type = "file"
path = "shop.jsonl"
[sinks.shop.match]
topics = ["shop"]
"#;
    let config = config(&node, body);
    run_once(&config);

    let audit_logs = sorted(logs(&node.records_in("audit.jsonl")));
    assert_eq!(
        audit_logs,
        ["a1", "a2", "a3"],
        "every audit line, and only those"
    );
    assert_eq!(
        logs(&node.records_in("errors.jsonl")),
        ["s2", "s3"],
        "stderr lines outside audit: payments wrote none"
    );
    assert_eq!(logs(&node.records_in("shop.jsonl")), ["s1", "s2", "s3"]);
    assert_eq!(
        sorted_offsets(&node),
        file_sizes(&[&audit, &shop, &payments]),
        "every file committed to its end, the payments lines no sink takes included"
    );

    run_once(&config);
    let total: usize = ["audit.jsonl", "errors.jsonl", "shop.jsonl"]
        .iter()
        .map(|sink| node.records_in(sink).len())
        .sum();
    assert_eq!(total, 8, "a second run delivers nothing again");
}

#[test]
fn transforms_apply_in_order_with_a_transform_level_match_and_redact_inside_log_and_data() {
    let node = Node::new();
    let shop_line =
        r#"{"msg":"hi","user":{"pw":"password=hunter2","tags":["password=x1"]},"token":"t"}"#;
    node.container_log("shop", "web-1", "app", cri("stdout", shop_line).as_bytes());
    node.container_log(
        "payments",
        "api-1",
        "app",
        [
            cri("stdout", r#"{"msg":"paid"}"#),
            cri("stderr", "login password=secret ok"),
        ]
        .concat()
        .as_bytes(),
    );
    let body = r#"
[sinks.out]
type = "file"
path = "out.jsonl"

[[transforms]]
type = "add_fields"
fields = { cluster = "${CLUSTER_NAME}", env = "prod" }

[[transforms]]
type = "rename_fields"
fields = { "cluster" = "meta.cluster", "data.msg" = "message" }
[transforms.match]
namespaces = ["shop"]

[[transforms]]
type = "redact"
pattern = 'password=[^\s"]+'
fields = ["log", "data"]

[[transforms]]
type = "remove_fields"
fields = ["data.token", "kubernetes"]
"#;
    let config = config(&node, body);
    run_once_with_env(&config, &[("CLUSTER_NAME", "eu-1")]);

    let records = node.records();
    let find = |namespace: &str, stream: &str| -> Value {
        records
            .iter()
            .find(|r| r["topic"] == namespace && r["stream"] == stream)
            .cloned()
            .unwrap_or_else(|| panic!("no {namespace} {stream} record in {records:?}"))
    };
    let shop = find("shop", "stdout");
    assert_eq!(
        shop["meta"],
        json!({"cluster": "eu-1"}),
        "renamed after it was added"
    );
    assert_eq!(shop.get("cluster"), None);
    assert_eq!(shop["env"], "prod");
    assert_eq!(shop["message"], "hi");
    assert_eq!(
        shop["data"],
        json!({"user": {"pw": "[REDACTED]", "tags": ["[REDACTED]"]}}),
        "msg moved out, token removed, secrets redacted at any depth"
    );
    assert_eq!(
        shop["log"],
        r#"{"msg":"hi","user":{"pw":"[REDACTED]","tags":["[REDACTED]"]},"token":"t"}"#
    );
    assert_eq!(shop.get("kubernetes"), None);

    let paid = find("payments", "stdout");
    assert_eq!(paid["cluster"], "eu-1", "the rename's match is shop only");
    assert_eq!(paid.get("message"), None);
    assert_eq!(paid["data"], json!({"msg": "paid"}));
    let login = find("payments", "stderr");
    assert_eq!(login["log"], "login [REDACTED] ok");
    assert_eq!(records.len(), 3);
}

#[test]
fn throttle_holds_a_20000_line_burst_to_rate_times_elapsed_plus_burst_without_touching_other_pods()
{
    let node = Node::new();
    let burst: String = (0..20_000)
        .map(|i| cri("stdout", &format!("noisy {i}")))
        .collect();
    let noisy = node.container_log("shop", "noisy-1", "app", burst.as_bytes());
    let calm: String = (0..500)
        .map(|i| cri("stdout", &format!("calm {i}")))
        .collect();
    let quiet = node.container_log("shop", "quiet-1", "app", calm.as_bytes());
    let body = r#"
[sinks.out]
type = "file"
path = "out.jsonl"

[[transforms]]
type = "throttle"
per = "pod"
rate = 1000
burst = 1000
"#;
    let config = config(&node, body);
    let start = Instant::now();
    run_once(&config);
    let elapsed = start.elapsed().as_secs_f64();

    let records = node.records();
    let noisy_count = records
        .iter()
        .filter(|r| r["log"].as_str().is_some_and(|l| l.starts_with("noisy")))
        .count();
    let quiet_logs: Vec<String> = logs(&records)
        .into_iter()
        .filter(|l| l.starts_with("calm"))
        .collect();
    let bound = 1000.0 * elapsed + 1000.0;
    assert!(
        noisy_count >= 1000 && noisy_count as f64 <= bound,
        "the noisy pod got {noisy_count} lines through in {elapsed:.2} s (at most {bound:.0})"
    );
    let expected: Vec<String> = (0..500).map(|i| format!("calm {i}")).collect();
    assert_eq!(quiet_logs, expected, "the other pod keeps its own budget");
    assert_eq!(
        sorted_offsets(&node),
        file_sizes(&[&noisy, &quiet]),
        "dropped lines' offsets advance"
    );
}

#[test]
fn a_sink_down_holds_back_only_its_files_and_loses_nothing_when_it_returns() {
    let cluster = cluster(&["shop"]);
    let brokers = cluster.bootstrap_servers();
    let node = Node::new();
    let shop = node.container_log("shop", "web-1", "app", cri("stdout", "s0").as_bytes());
    let audit = node.container_log("audit", "rec-1", "app", cri("stdout", "a0").as_bytes());
    let body = format!(
        r#"
[sinks.bus]
type = "kafka"
brokers = "{brokers}"
[sinks.bus.match]
namespaces = ["shop"]

[sinks.audit]
type = "file"
path = "audit.jsonl"
[sinks.audit.match]
namespaces = ["audit"]
"#
    );
    let config = config(&node, &body);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let state = node.path("state.db");
    let sizes = || file_sizes(&[&shop, &audit]);
    let first = sizes();
    util::wait_until(Duration::from_secs(60), "both files committed", || {
        sorted_offsets(&node) == first
    });

    cluster.broker_down(-1).expect("brokers down");
    let shop_held = std::fs::metadata(&shop).expect("shop log").len();
    let more: String = (1..300).map(|i| cri("stdout", &format!("s{i}"))).collect();
    append(&shop, &more);
    let audit_more: String = (1..300).map(|i| cri("stdout", &format!("a{i}"))).collect();
    append(&audit, &audit_more);
    let audit_end = std::fs::metadata(&audit).expect("audit log").len();
    util::wait_for_commit(
        &state,
        audit_end,
        "the audit file committed while Kafka is down",
    );
    assert_eq!(node.records_in("audit.jsonl").len(), 300);
    let mut held = vec![shop_held, audit_end];
    held.sort_unstable();
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            sorted_offsets(&node),
            held,
            "the shop file waits where Kafka stopped"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    cluster.broker_up(-1).expect("brokers up");
    let shop_end = std::fs::metadata(&shop).expect("shop log").len();
    util::wait_for_commit(
        &state,
        shop_end,
        "the shop file committed once Kafka is back",
    );
    assert!(shiplog.stop().success());
    let received = consume(&brokers, &["shop"], 300);
    let mut seen: Vec<String> = received["shop"]
        .iter()
        .map(|m| m.record["log"].as_str().expect("log").to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 300, "every shop line arrived");
    assert_eq!(
        node.records_in("audit.jsonl").len(),
        300,
        "audit lines once"
    );
}

#[test]
fn unrouted_redacted_and_throttled_records_are_counted_in_metrics() {
    let node = Node::new();
    let noisy: String = (0..3000)
        .map(|i| cri("stdout", &format!("noisy {i}")))
        .collect();
    node.container_log("shop", "noisy-1", "app", noisy.as_bytes());
    let secrets: String = (0..10)
        .map(|i| cri("stdout", &format!("login {i} password=p{i}")))
        .collect();
    node.container_log("shop", "web-1", "app", secrets.as_bytes());
    let elsewhere: String = (0..5)
        .map(|i| cri("stdout", &format!("paid {i}")))
        .collect();
    node.container_log("payments", "api-1", "app", elsewhere.as_bytes());
    let body = r#"
[sinks.out]
type = "file"
path = "out.jsonl"
[sinks.out.match]
namespaces = ["shop"]

[[transforms]]
type = "throttle"
rate = 100
[transforms.match]
namespaces = ["shop"]

[[transforms]]
type = "redact"
pattern = 'password=\S+'
fields = ["log"]
"#;
    let config = config_serving(&node, body, "127.0.0.1:0");
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let throttled = "shiplog_throttled_records_total{namespace=\"shop\"}";
    let mut metrics = String::new();
    util::wait_until(Duration::from_secs(30), "every line counted", || {
        metrics = util::http_get(&address, "/metrics").1;
        let delivered = node.records().len() as f64;
        let dropped = util::metric(&metrics, throttled).unwrap_or(0.0);
        util::metric(&metrics, "shiplog_unrouted_records_total") == Some(5.0)
            && delivered + dropped == 3010.0
    });
    assert!(shiplog.stop().success());
    assert_eq!(
        util::metric(&metrics, "shiplog_redactions_total"),
        Some(10.0)
    );
    let dropped = util::metric(&metrics, throttled).unwrap_or(0.0);
    assert!(
        dropped >= 2000.0,
        "the noisy pod was held to its rate: {dropped} dropped"
    );
    let logins: Vec<String> = logs(&node.records())
        .into_iter()
        .filter(|l| l.starts_with("login"))
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("login {i} [REDACTED]")).collect();
    assert_eq!(logins, expected);
}

#[test]
fn a_reload_applies_new_routes() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", cri("stdout", "out 0").as_bytes());
    let route = |stream: &str| {
        format!(
            "[sinks.out]\ntype = \"file\"\npath = \"out.jsonl\"\n[sinks.out.match]\nstreams = [\"{stream}\"]\n"
        )
    };
    let config = config(&node, &route("stdout"));
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    util::wait_until(Duration::from_secs(20), "the first line", || {
        node.records().len() == 1
    });

    config_serving(&node, &route("stderr"), "");
    util::signal(shiplog.pid(), "HUP");
    // Lines read before the new config took over go by the old one: mark until one of
    // stderr arrives.
    let mut marks = 0;
    util::wait_until(Duration::from_secs(30), "the new route", || {
        append(&path, &cri("stderr", &format!("mark {marks}")));
        marks += 1;
        std::thread::sleep(Duration::from_millis(100));
        node.records().iter().any(|r| r["stream"] == "stderr")
    });
    append(
        &path,
        &[cri("stdout", "out late"), cri("stderr", "err late")].concat(),
    );
    util::wait_until(Duration::from_secs(20), "the late stderr line", || {
        logs(&node.records()).contains(&"err late".to_owned())
    });
    assert!(shiplog.stop().success());
    let records = node.records();
    assert!(
        records.iter().all(|r| r["log"] != "out late"),
        "stdout goes nowhere under the new route: {records:?}"
    );
    assert_eq!(records[0]["log"], "out 0");
}
