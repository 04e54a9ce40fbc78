//! End to end: `metadata = "api"` against a fake API server. One list and one watch per
//! node, no per-pod GETs in steady state, short-lived pods keep their metadata, and an
//! outage delays metadata but never records.

mod kube_server;
mod util;

use std::time::{Duration, Instant};

use kube_server::{KubeServer, Request, pod};
use serde_json::Value;
use util::{Node, Running, append, wait_until};

const NODE: &str = "node-a";
const WAIT: Duration = Duration::from_secs(60);

fn cri(message: &str) -> String {
    format!("2026-11-25T09:00:00.000000001Z stdout F {message}\n")
}

/// A node whose shiplog reads pods from `server`, waiting at most `lookup_timeout` for a
/// GET (and, at start, for the first list).
fn node_for(server: &KubeServer, lookup_timeout: &str) -> (Node, std::path::PathBuf) {
    let node = Node::new();
    server.kubeconfig(&node.path("kubeconfig"));
    let kubernetes = format!(
        "metadata = \"api\"\nnode_name = \"{NODE}\"\nkubeconfig = \"kubeconfig\"\nlookup_timeout = \"{lookup_timeout}\""
    );
    let config = node.config(&[("kubernetes", &kubernetes)]);
    (node, config)
}

fn records_of<'a>(records: &'a [Value], pod: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["kubernetes"]["pod_name"] == pod)
        .collect()
}

/// Whether the record carries what only the API knows (labels, host, image).
fn is_full(record: &Value) -> bool {
    let kube = &record["kubernetes"];
    kube["labels"]["app"] == kube["pod_name"]
        && kube["host"] == NODE
        && kube["container_image"] == "docker.io/library/busybox:1.36"
}

#[test]
fn two_hundred_pods_and_new_arrivals_cost_one_list_one_watch_and_no_gets() {
    let server = KubeServer::start();
    for i in 0..200 {
        server.apply(pod("shop", &format!("web-{i}"), NODE));
    }
    server.apply(pod("shop", "elsewhere", "node-b"));
    // A generous bound: the files present at start wait for the first list, even on a
    // loaded machine, instead of costing a GET each.
    let (node, config) = node_for(&server, "10s");
    for i in 0..200 {
        let name = format!("web-{i}");
        node.container_log("shop", &name, "app", cri(&name).as_bytes());
    }
    let running = Running::start(&config, &node.path("stderr.log"));
    wait_until(WAIT, "200 records", || node.records().len() >= 200);

    // New pods arrive: their watch events reach shiplog, then their containers log.
    let sent = server.events_sent();
    for i in 200..220 {
        server.apply(pod("shop", &format!("web-{i}"), NODE));
    }
    wait_until(WAIT, "the new pods' watch events", || {
        server.events_sent() >= sent + 20
    });
    for i in 200..220 {
        let name = format!("web-{i}");
        node.container_log("shop", &name, "app", cri(&name).as_bytes());
    }
    wait_until(WAIT, "220 records", || node.records().len() >= 220);
    running.stop();

    let records = node.records();
    assert_eq!(records.len(), 220);
    let thin: Vec<_> = records.iter().filter(|r| !is_full(r)).collect();
    assert!(thin.is_empty(), "records without API metadata: {thin:?}");
    assert_eq!(server.requests(Request::List), 1, "lists");
    assert_eq!(server.requests(Request::Watch), 1, "watches");
    assert_eq!(server.requests(Request::Get), 0, "per-pod GETs");
}

#[test]
fn a_pod_created_and_deleted_within_a_second_keeps_full_metadata_on_all_its_lines() {
    let server = KubeServer::start();
    let (node, config) = node_for(&server, "1s");
    let running = Running::start(&config, &node.path("stderr.log"));
    wait_until(WAIT, "the watch", || server.requests(Request::Watch) >= 1);

    let sent = server.events_sent();
    server.apply(pod("batch", "blink", NODE));
    server.delete("batch", "blink");
    wait_until(WAIT, "the add and delete events", || {
        server.events_sent() >= sent + 2
    });
    let lines: String = (0..50).map(|i| cri(&format!("line {i}"))).collect();
    node.container_log("batch", "blink", "app", lines.as_bytes());
    wait_until(WAIT, "50 records", || node.records().len() >= 50);
    running.stop();

    let records = node.records();
    let blink = records_of(&records, "blink");
    assert_eq!(blink.len(), 50);
    assert!(blink.iter().all(|r| is_full(r)), "{blink:?}");
    assert_eq!(server.requests(Request::Get), 0, "served from the cache");
}

#[test]
fn records_keep_flowing_while_the_api_is_down_and_are_full_again_after() {
    // The scenario is 60 s down; 10 s exercises the same path in the usual run.
    let outage = if std::env::var_os("SHIPLOG_LONG_TESTS").is_some_and(|v| v == "1") {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(10)
    };
    let server = KubeServer::start();
    server.apply(pod("shop", "known", NODE));
    let (node, config) = node_for(&server, "1s");
    let known = node.container_log("shop", "known", "app", cri("known 0").as_bytes());
    let running = Running::start(&config, &node.path("stderr.log"));
    wait_until(WAIT, "the first record", || !node.records().is_empty());

    server.set_down(true);
    // While down, a pod starts; its watch event cannot be delivered and, the history being
    // compacted, the resumed watch will get 410 Gone and relist.
    server.apply(pod("shop", "newcomer", NODE));
    server.compact();
    let newcomer = node.container_log("shop", "newcomer", "app", cri("new 0").as_bytes());
    let down_since = Instant::now();
    let mut seq = 0;
    while down_since.elapsed() < outage {
        seq += 1;
        append(&known, &cri(&format!("known {seq}")));
        append(&newcomer, &cri(&format!("new {seq}")));
        wait_until(WAIT, "records during the outage", || {
            records_of(&node.records(), "newcomer").len() > seq
        });
    }
    let during = node.records();
    assert!(records_of(&during, "known").iter().all(|r| is_full(r)));
    let thin = records_of(&during, "newcomer");
    assert!(
        thin.iter()
            .all(|r| !is_full(r) && r["kubernetes"]["namespace_name"] == "shop")
    );

    server.set_down(false);
    wait_until(WAIT, "a relist after the outage", || {
        server.requests(Request::List) >= 2
    });
    wait_until(WAIT, "a full record of the newcomer", || {
        seq += 1;
        append(&newcomer, &cri(&format!("new {seq}")));
        records_of(&node.records(), "newcomer")
            .last()
            .is_some_and(|r| is_full(r))
    });
    running.stop();

    // The outage in shiplog's log: one WARN when the watch fails, one INFO with its
    // length when it recovers; nothing per retry, no ERROR.
    let log = std::fs::read_to_string(node.path("stderr.log")).expect("shiplog's log");
    let lines =
        |needle: &str| -> Vec<&str> { log.lines().filter(|line| line.contains(needle)).collect() };
    assert_eq!(lines("pod watch failed").len(), 1, "{log}");
    assert!(lines("pod watch failed")[0].contains("\"level\":\"WARN\""));
    let recovered = lines("pod watch recovered");
    assert_eq!(recovered.len(), 1, "{log}");
    let recovered: Value = serde_json::from_str(recovered[0]).expect("JSON");
    assert_eq!(recovered["level"], "INFO");
    let outage_logged = recovered["fields"]["outage"].as_str().expect("its length");
    let logged = humantime::parse_duration(outage_logged).expect("a duration");
    // To the second, from when the watch noticed.
    assert!(
        logged + Duration::from_secs(2) >= outage,
        "{outage_logged} vs {outage:?}"
    );
    assert!(lines("\"level\":\"ERROR\"").is_empty(), "{log}");
}

#[test]
fn a_pod_the_watch_has_not_delivered_yet_is_fetched_once() {
    let server = KubeServer::start();
    let (node, config) = node_for(&server, "10s");
    let running = Running::start(&config, &node.path("stderr.log"));
    wait_until(WAIT, "the watch", || server.requests(Request::Watch) >= 1);

    server.hold_watch(true);
    server.apply(pod("shop", "early", NODE));
    node.container_log("shop", "early", "app", cri("first").as_bytes());
    wait_until(WAIT, "the first record", || !node.records().is_empty());
    server.hold_watch(false);
    running.stop();

    let records = node.records();
    assert!(is_full(&records[0]), "{:?}", records[0]);
    assert_eq!(server.requests(Request::Get), 1);
}

#[test]
fn a_file_that_started_without_its_pod_gets_full_metadata_once_the_pod_arrives() {
    let server = KubeServer::start();
    let (node, config) = node_for(&server, "1s");
    let running = Running::start(&config, &node.path("stderr.log"));
    wait_until(WAIT, "the watch", || server.requests(Request::Watch) >= 1);

    // The file comes before the pod exists in the API: its GET finds nothing.
    let log = node.container_log("shop", "late", "app", cri("line 0").as_bytes());
    wait_until(WAIT, "the first record", || !node.records().is_empty());
    assert!(!is_full(&node.records()[0]));
    assert_eq!(server.requests(Request::Get), 1);

    let sent = server.events_sent();
    server.apply(pod("shop", "late", NODE));
    wait_until(WAIT, "the pod's watch event", || {
        server.events_sent() > sent
    });
    let mut seq = 0;
    wait_until(WAIT, "a full record", || {
        seq += 1;
        append(&log, &cri(&format!("line {seq}")));
        node.records().last().is_some_and(is_full)
    });
    running.stop();
    assert_eq!(server.requests(Request::Get), 1, "no GET after the first");
    let log = std::fs::read_to_string(node.path("stderr.log")).expect("shiplog's log");
    assert!(
        log.contains("\"pods_unknown\":1") && log.contains("\"pods_found_late\":1"),
        "{log}"
    );
}

#[test]
fn an_unusable_kubeconfig_stops_the_start_naming_the_key() {
    let node = Node::new();
    node.write("kubeconfig", b"clusters: [this is not a kubeconfig");
    let config = node.config(&[(
        "kubernetes",
        "metadata = \"api\"\nnode_name = \"node-a\"\nkubeconfig = \"kubeconfig\"",
    )]);
    let output = util::shiplog(&["--config", config.to_str().expect("UTF-8"), "--once"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        util::stderr(&output).contains("kubernetes.kubeconfig"),
        "{}",
        util::stderr(&output)
    );
}

#[test]
fn readyz_says_ready_only_once_the_watch_has_listed_the_nodes_pods() {
    let server = KubeServer::start();
    server.set_down(true);
    let node = Node::new();
    server.kubeconfig(&node.path("kubeconfig"));
    let kubernetes = format!(
        "metadata = \"api\"\nnode_name = \"{NODE}\"\nkubeconfig = \"kubeconfig\"\nlookup_timeout = \"100ms\""
    );
    let config = node.config(&[
        ("kubernetes", &kubernetes),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("stderr.log");
    let running = Running::start(&config, &log);
    let address = util::server_address(&log);
    let status = |path: &str| util::http_get(&address, path).0;
    assert_eq!(status("/readyz"), 503, "the API is down: not synced");
    assert_eq!(
        status("/healthz"),
        200,
        "alive all the same: records still flow"
    );
    // A few failed lists: kube-runtime's watcher starts each with an Init event.
    wait_until(WAIT, "three failed lists", || {
        server.requests(Request::List) >= 3
    });
    server.set_down(false);
    wait_until(WAIT, "readiness once the watch lists", || {
        status("/readyz") == 200
    });
    running.stop();

    // One outage, logged once when it starts and once when it ends, however many retries.
    let text = std::fs::read_to_string(&log).expect("shiplog's log");
    let count = |needle: &str| text.lines().filter(|line| line.contains(needle)).count();
    assert_eq!(count("pod watch failed"), 1, "{text}");
    assert_eq!(count("pod watch recovered"), 1, "{text}");
    assert_eq!(count("\"level\":\"ERROR\""), 0, "{text}");
}

#[test]
fn namespace_labels_come_from_one_namespace_watch_when_asked_for() {
    let server = KubeServer::start();
    server.apply_namespace(kube_server::namespace("shop", &[("team", "payments")]));
    server.apply(pod("shop", "web-1", NODE));
    server.apply(pod("shop", "web-2", NODE));
    let (node, _) = node_for(&server, "10s");
    let kubernetes = format!(
        "metadata = \"api\"\nnode_name = \"{NODE}\"\nkubeconfig = \"kubeconfig\"\n\
         lookup_timeout = \"10s\"\nnamespace_labels = true"
    );
    let config = node.config(&[("kubernetes", &kubernetes)]);
    let running = Running::start(&config, &node.path("stderr.log"));
    // Files are opened once the namespaces are listed: a file opened before would carry
    // no namespace labels (the pipeline never waits for them).
    wait_until(WAIT, "the namespace watch", || {
        server.requests(Request::NamespaceWatch) >= 1
    });
    let web_1 = node.container_log("shop", "web-1", "app", cri("first").as_bytes());
    wait_until(WAIT, "web-1's record", || !node.records().is_empty());

    // The namespace is relabelled: a file opened after the watch delivers it says so, and
    // so do the later records of a file already open.
    let sent = server.events_sent();
    server.apply_namespace(kube_server::namespace("shop", &[("team", "checkout")]));
    wait_until(WAIT, "the namespace's watch event", || {
        server.events_sent() > sent
    });
    node.container_log("shop", "web-2", "app", cri("second").as_bytes());
    wait_until(WAIT, "web-2's record", || node.records().len() >= 2);
    append(&web_1, &cri("third"));
    wait_until(WAIT, "web-1's second record", || node.records().len() >= 3);
    running.stop();

    let records = node.records();
    let team = |pod: &str, index: usize| {
        records_of(&records, pod)[index]["kubernetes"]["namespace_labels"]["team"].clone()
    };
    assert_eq!(team("web-1", 0), "payments");
    assert_eq!(team("web-2", 0), "checkout");
    assert_eq!(
        team("web-1", 1),
        "checkout",
        "the open file follows the namespace"
    );
    assert!(is_full(records_of(&records, "web-2")[0]));
    assert_eq!(server.requests(Request::NamespaceList), 1);
    assert!(server.requests(Request::NamespaceWatch) >= 1);
}

#[test]
fn without_namespace_labels_or_exclusion_namespaces_are_not_watched_and_records_have_none() {
    let server = KubeServer::start();
    server.apply_namespace(kube_server::namespace("shop", &[("team", "payments")]));
    server.apply(pod("shop", "web-1", NODE));
    let (node, _) = node_for(&server, "10s");
    let kubernetes = format!(
        "metadata = \"api\"\nnode_name = \"{NODE}\"\nkubeconfig = \"kubeconfig\"\n\
         lookup_timeout = \"10s\"\nnamespace_exclude = false"
    );
    let config = node.config(&[("kubernetes", &kubernetes)]);
    node.container_log("shop", "web-1", "app", cri("first").as_bytes());
    let running = Running::start(&config, &node.path("stderr.log"));
    wait_until(WAIT, "web-1's record", || !node.records().is_empty());
    running.stop();
    let records = node.records();
    assert!(is_full(&records[0]));
    assert!(records[0]["kubernetes"].get("namespace_labels").is_none());
    assert_eq!(server.requests(Request::NamespaceList), 0);
    assert_eq!(server.requests(Request::NamespaceWatch), 0);
}
