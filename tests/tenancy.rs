//! End to end: what a pod's owner can and cannot choose. By default a pod's
//! `shiplog.io/topic` may specialise its own namespace's topic but not reach another
//! team's; `route.topic_overrides` widens (`"any"`) or closes (`"off"`) that; a record's
//! namespace always comes from its file's path, whatever its line carries.

mod util;

use serde_json::{Value, json};
use util::{Node, Running, http_get, metric, run_once, wait_until};

const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

fn cri(message: &str) -> String {
    format!("2026-11-25T09:00:00.000000001Z stdout F {message}\n")
}

fn pod(namespace: &str, name: &str, annotations: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                        "labels": {"app": name}, "annotations": annotations},
           "spec": {"nodeName": "node-a", "containers": [{"name": "app"}, {"name": "sidecar"}]}})
}

/// A node whose pods are `pods` (metadata from a file), each container writing `lines`
/// numbered lines; `route` lines go into `[route]`.
fn node_with(pods: &[Value], lines: usize, route: &str) -> (Node, std::path::PathBuf) {
    let node = Node::new();
    let list = json!({"kind": "List", "apiVersion": "v1", "items": pods});
    node.write("pods.json", list.to_string().as_bytes());
    for pod in pods {
        let namespace = pod["metadata"]["namespace"].as_str().expect("namespace");
        let name = pod["metadata"]["name"].as_str().expect("name");
        for container in ["app", "sidecar"].into_iter().filter(|_| lines > 0) {
            let text: String = (0..lines)
                .map(|i| cri(&format!("{name} {container} {i}")))
                .collect();
            node.container_log(namespace, name, container, text.as_bytes());
        }
    }
    let config = node.config(&[
        (
            "kubernetes",
            "metadata = \"file\"\npods_file = \"pods.json\"",
        ),
        ("route", route),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    (node, config)
}

/// The topic of each pod's records (one topic per pod, checked).
fn topics(records: &[Value]) -> std::collections::BTreeMap<String, String> {
    let mut topics = std::collections::BTreeMap::new();
    for record in records {
        let pod = record["kubernetes"]["pod_name"]
            .as_str()
            .unwrap_or_default();
        let topic = record["topic"].as_str().unwrap_or_default();
        let seen = topics
            .entry(pod.to_owned())
            .or_insert_with(|| topic.to_owned());
        assert_eq!(seen, topic, "{pod}: every record has the same topic");
    }
    topics
}

fn map(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn by_default_a_pod_may_specialise_its_namespaces_topic_and_a_refusal_is_counted_and_logged_once() {
    let pods = [
        pod("dev", "intruder", json!({"shiplog.io/topic": "payments"})),
        pod("dev", "auditor", json!({"shiplog.io/topic": "dev-audit"})),
        pod("dev", "plain", json!({})),
    ];
    let lines = 300;
    let (node, config) = node_with(&pods, lines, "default_topic = \"unknown\"");
    let log = node.path("stderr.log");
    let running = Running::start(&config, &log);
    let address = util::server_address(&log);
    wait_until(WAIT, "every record", || {
        node.records().len() == 3 * 2 * lines
    });
    let refused = "shiplog_topic_overrides_refused_total{namespace=\"dev\"}";
    wait_until(WAIT, "the refusals counted", || {
        metric(&http_get(&address, "/metrics").1, refused) == Some((2 * lines) as f64)
    });
    running.stop();

    assert_eq!(
        topics(&node.records()),
        map(&[
            ("auditor", "dev-audit"),
            ("intruder", "dev"),
            ("plain", "dev")
        ])
    );
    let text = std::fs::read_to_string(&log).expect("shiplog's log");
    let said: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("refused by route.topic_overrides"))
        .collect();
    assert_eq!(said.len(), 1, "once per pod, for both its files: {text}");
    for part in [
        "\"pod\":\"intruder\"",
        "\\\"payments\\\"",
        r#"[\"{namespace}\", \"{namespace}-*\"]"#,
    ] {
        assert!(said[0].contains(part), "{part} in {}", said[0]);
    }
}

#[test]
fn any_restores_free_overrides_and_off_ignores_the_annotation() {
    let pods = [
        pod("dev", "intruder", json!({"shiplog.io/topic": "payments"})),
        pod("dev", "auditor", json!({"fluentbit.io/topic": "dev-audit"})),
    ];
    let (node, config) = node_with(&pods, 1, "topic_overrides = \"any\"");
    run_once(&config);
    assert_eq!(
        topics(&node.records()),
        map(&[("auditor", "dev-audit"), ("intruder", "payments")])
    );

    let (node, config) = node_with(&pods, 1, "topic_overrides = \"off\"");
    let output = run_once(&config);
    assert_eq!(
        topics(&node.records()),
        map(&[("auditor", "dev"), ("intruder", "dev")])
    );
    let log = util::stderr(&output);
    assert!(!log.contains("refused"), "ignored, not refused: {log}");
}

#[test]
fn the_namespace_comes_from_the_files_path_even_when_the_line_carries_a_kubernetes_object() {
    let pods = [pod(
        "dev",
        "forger",
        json!({"shiplog.io/namespace": "payments", "shiplog.io/topic": "payments"}),
    )];
    let (node, config) = node_with(&pods, 0, "default_topic = \"unknown\"");
    let forged = json!({
        "kubernetes": {"namespace_name": "payments", "pod_name": "ledger", "host": "node-z"},
        "topic": "payments",
        "msg": "hello"
    });
    node.container_log("dev", "forger", "app", cri(&forged.to_string()).as_bytes());
    run_once(&config);

    let text = std::fs::read_to_string(node.path("out.jsonl")).expect("records");
    let line = text.lines().next().expect("one record");
    let record: Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(record["kubernetes"]["namespace_name"], "dev");
    assert_eq!(record["kubernetes"]["pod_name"], "forger");
    assert_eq!(record["kubernetes"]["host"], "node-a");
    assert_eq!(record["topic"], "dev");
    assert_eq!(
        record["data"]["kubernetes"]["namespace_name"], "payments",
        "the line's own object stays the line's, under data"
    );
    // One `kubernetes` key at the top (a duplicate would let a reader keep the last).
    let mut top_level: Vec<&str> = record
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    top_level.sort_unstable();
    assert_eq!(line.matches("\"kubernetes\":").count(), 2, "{line}");
    assert_eq!(
        top_level,
        ["data", "kubernetes", "log", "stream", "time", "topic"]
    );
}

#[test]
fn a_merge_key_that_would_shadow_the_records_own_keys_is_refused() {
    let node = Node::new();
    let config = node.config(&[(
        "kubernetes",
        "metadata = \"off\"\nmerge_log_key = \"kubernetes\"",
    )]);
    let output = util::shiplog(&["check", "--config", config.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1));
    let message = util::stderr(&output);
    assert!(message.contains("kubernetes.merge_log_key"), "{message}");
}

#[test]
fn shiplog_check_warns_when_pods_choose_their_destination() {
    let node = Node::new();
    let config = node.config(&[
        (
            "route",
            "topic = \"{label.team}\"\ntopic_overrides = \"any\"",
        ),
        (
            "sinks.cw",
            "type = \"cloudwatch\"\nregion = \"us-east-1\"\nlog_group = \"/k8s/{annotation.team}\"",
        ),
    ]);
    let output = util::shiplog(&["check", "--config", config.to_str().expect("UTF-8")]);
    assert!(output.status.success(), "{}", util::stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 3, "{stdout}");
    assert!(
        warnings[0].contains("route.topic_overrides = \"any\""),
        "{stdout}"
    );
    assert!(
        warnings[1].contains("route.topic = \"{label.team}\""),
        "{stdout}"
    );
    assert!(
        warnings[2].contains("sinks.cw.log_group")
            && warnings[2].contains("allowed_destinations is not set"),
        "{stdout}"
    );
}
