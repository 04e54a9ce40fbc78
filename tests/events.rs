//! End to end: Kubernetes events shipped by the one shiplog holding the Lease, against the
//! fake API server: one leader at a time, a takeover that resumes where the dead leader's
//! delivered events end, and a relist after 410 Gone that repeats only one instant.

mod kube_server;
mod util;

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube_server::KubeServer;
use util::{Node, Running, wait_until};

const WAIT: Duration = Duration::from_secs(30);
const LEASE_NAMESPACE: &str = "shiplog";
const LEASE: &str = "shiplog-events";

/// A node whose shiplog stands for election as `identity`, with short lease timings.
fn candidate(server: &KubeServer, identity: &str) -> (Node, PathBuf) {
    candidate_with(server, identity, &[])
}

/// [`candidate`] with more config tables.
fn candidate_with(server: &KubeServer, identity: &str, extra: &[(&str, &str)]) -> (Node, PathBuf) {
    let node = Node::new();
    server.kubeconfig(&node.path("kubeconfig"));
    let events = format!(
        "enabled = true\nidentity = \"{identity}\"\nlease_namespace = \"{LEASE_NAMESPACE}\"\n\
         lease_duration = \"3s\"\nrenew_deadline = \"2s\"\nretry_period = \"500ms\"\n\
         tags = {{ cluster = \"test\" }}"
    );
    let mut tables = vec![
        (
            "kubernetes",
            "metadata = \"off\"\nkubeconfig = \"kubeconfig\"",
        ),
        ("events", events.as_str()),
        ("pipeline", "batch_timeout = \"50ms\""),
    ];
    tables.extend_from_slice(extra);
    let config = node.config(&tables);
    (node, config)
}

/// An event in namespace `shop` last seen at second `second` after 10:00.
fn event_at(name: &str, second: u32) -> Event {
    let mut event = kube_server::event("shop", name, "Started", &format!("note of {name}"));
    let time = format!("2026-12-02T10:00:{second:02}Z");
    event.event_time = Some(MicroTime(time.parse().expect("a timestamp")));
    event
}

/// The names of the event records `node` shipped, in order, with their counts.
fn shipped(node: &Node) -> Vec<(String, i64)> {
    node.records()
        .iter()
        .filter(|record| record.get("event").is_some())
        .map(|record| {
            let name = record["event"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (name, record["event"]["count"].as_i64().unwrap_or_default())
        })
        .collect()
}

fn names(shipped: &[(String, i64)]) -> Vec<&str> {
    shipped.iter().map(|(name, _)| name.as_str()).collect()
}

fn holder(server: &KubeServer) -> Option<String> {
    server
        .lease(LEASE_NAMESPACE, LEASE)
        .and_then(|lease| lease.spec)
        .and_then(|spec| spec.holder_identity)
}

fn resume_annotation(server: &KubeServer) -> Option<String> {
    let lease = server.lease(LEASE_NAMESPACE, LEASE)?;
    lease
        .metadata
        .annotations?
        .get("shiplog.io/events-resume")
        .cloned()
}

#[test]
fn one_pod_ships_the_events_and_another_takes_over_where_it_stopped_when_it_dies() {
    let server = KubeServer::start();
    let (node_a, config_a) = candidate(&server, "node-a");
    let (node_b, config_b) = candidate(&server, "node-b");
    let a = Running::start(&config_a, &node_a.path("shiplog.log"));
    wait_until(WAIT, "node-a leading", || {
        holder(&server).as_deref() == Some("node-a")
    });
    let b = Running::start(&config_b, &node_b.path("shiplog.log"));

    for (i, name) in ["e1", "e2", "e3", "e4", "e5"].iter().enumerate() {
        server.apply_event(event_at(name, u32::try_from(i).expect("small")));
    }
    wait_until(WAIT, "node-a's five events", || shipped(&node_a).len() >= 5);
    // Renewals carry the resume point of what was delivered.
    let written = server.version();
    wait_until(WAIT, "the resume point written", || {
        resume_annotation(&server).is_some() && server.version() > written + 2
    });
    let record = node_a
        .records()
        .into_iter()
        .find(|record| record.get("event").is_some())
        .expect("an event record");
    assert_eq!(record["topic"], "k8s-events");
    assert_eq!(record["cluster"], "test");
    assert_eq!(record["log"], "note of e1");
    assert!(shipped(&node_b).is_empty(), "one leader ships");

    a.kill();
    for (i, name) in ["e6", "e7", "e8"].iter().enumerate() {
        server.apply_event(event_at(name, 10 + u32::try_from(i).expect("small")));
    }
    wait_until(WAIT, "node-b's takeover", || shipped(&node_b).len() >= 3);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(holder(&server).as_deref(), Some("node-b"));
    assert_eq!(names(&shipped(&node_a)), ["e1", "e2", "e3", "e4", "e5"]);
    assert_eq!(
        names(&shipped(&node_b)),
        ["e6", "e7", "e8"],
        "the new leader resumes after the last event the dead one delivered"
    );

    assert!(b.stop().success());
    assert_eq!(
        holder(&server),
        None,
        "a leader stopped by SIGTERM gives the Lease up"
    );
}

#[test]
fn after_a_410_the_leader_relists_and_repeats_only_the_newest_instant_it_shipped() {
    let server = KubeServer::start();
    let (node, config) = candidate(&server, "node-a");
    server.apply_event(event_at("e0", 0));
    server.apply_event(event_at("e1", 1));
    server.apply_event(event_at("e2", 2));
    let first = Running::start(&config, &node.path("shiplog.log"));
    wait_until(WAIT, "the first leader's events", || {
        shipped(&node).len() >= 3
    });
    assert_eq!(
        names(&shipped(&node)),
        ["e0", "e1", "e2"],
        "the first leader ever ships what the API server holds"
    );
    assert!(first.stop().success());
    let before = shipped(&node).len();

    // While no one leads: a new event, e1 happening again, and the API server compacting
    // its history past the resume point.
    server.apply_event(event_at("e3", 3));
    let again = kube_server::with_series(event_at("e1", 1), 2, "2026-12-02T10:00:04.000000Z");
    server.apply_event(again);
    server.compact();

    let second = Running::start(&config, &node.path("shiplog.log"));
    wait_until(WAIT, "the relisted events", || {
        shipped(&node).len() >= before + 3
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(second.stop().success());
    let after: Vec<(String, i64)> = shipped(&node)[before..].to_vec();
    assert_eq!(
        after,
        [
            ("e2".to_owned(), 1),
            ("e3".to_owned(), 1),
            ("e1".to_owned(), 2)
        ],
        "events seen at or after the newest shipped (10:00:02), oldest first: e2 again, \
         the new e3, e1's second occurrence"
    );
    let log = std::fs::read_to_string(node.path("shiplog.log")).expect("log");
    assert!(log.contains("410 Gone"), "{log}");
}

#[test]
fn a_config_with_events_is_checked_and_says_what_it_will_do() {
    let server = KubeServer::start();
    let (_node, config) = candidate(&server, "node-a");
    let output = util::shiplog(&["check", "--config", config.to_str().expect("UTF-8")]);
    assert!(output.status.success(), "{}", util::stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("events:   all namespaces as topic k8s-events, while node-a holds Lease shiplog/shiplog-events"),
        "{text}"
    );
}

#[test]
fn a_leader_cut_off_from_the_api_stops_and_the_lease_resumes_without_repeats() {
    let server = KubeServer::start();
    let listen = ("server", "listen = \"127.0.0.1:0\"");
    let (node, config) = candidate_with(&server, "node-a", &[listen]);
    let log = node.path("shiplog.log");
    let running = Running::start(&config, &log);
    let address = util::server_address(&log);
    let leader = || {
        util::metric(
            &util::http_get(&address, "/metrics").1,
            "shiplog_events_leader",
        )
    };
    server.apply_event(event_at("e1", 1));
    wait_until(WAIT, "e1 shipped", || shipped(&node).len() == 1);
    assert_eq!(leader(), Some(1.0));

    // Down for longer than the renew deadline (2s): the leader must stop leading, since
    // another pod could take the Lease once it expires.
    server.set_down(true);
    wait_until(WAIT, "the leader stepping down", || leader() == Some(0.0));
    server.set_down(false);
    server.apply_event(event_at("e2", 2));
    wait_until(WAIT, "e2 shipped after the outage", || {
        shipped(&node).len() >= 2
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(running.stop().success());
    assert_eq!(
        names(&shipped(&node)),
        ["e1", "e2"],
        "nothing repeated, nothing lost"
    );
}

#[test]
fn with_namespaces_listed_only_their_events_are_shipped_each_resuming_on_its_own() {
    let server = KubeServer::start();
    let (node, config) = candidate(&server, "node-a");
    // The candidate's [events] table, with the namespaces added.
    let text = std::fs::read_to_string(&config).expect("config");
    let namespaces = "namespaces = [\"shop\", \"infra\"]";
    let text = text.replacen("[events]\n", &format!("[events]\n{namespaces}\n"), 1);
    std::fs::write(&config, text).expect("config");
    let in_namespace = |namespace: &str, name: &str, second: u32| {
        let mut event = event_at(name, second);
        event.metadata.namespace = Some(namespace.to_owned());
        event
    };
    server.apply_event(in_namespace("shop", "s1", 1));
    server.apply_event(in_namespace("other", "o1", 2));
    let first = Running::start(&config, &node.path("shiplog.log"));
    wait_until(WAIT, "shop's event", || !shipped(&node).is_empty());
    server.apply_event(in_namespace("infra", "i1", 3));
    server.apply_event(in_namespace("other", "o2", 4));
    wait_until(WAIT, "infra's event", || shipped(&node).len() >= 2);
    std::thread::sleep(Duration::from_secs(1));
    assert!(first.stop().success());

    // Each namespace resumes from its own point.
    server.apply_event(in_namespace("infra", "i2", 5));
    server.apply_event(in_namespace("shop", "s2", 6));
    let second = Running::start(&config, &node.path("shiplog.log"));
    wait_until(WAIT, "the events after the restart", || {
        shipped(&node).len() >= 4
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(second.stop().success());
    let mut names: Vec<String> = shipped(&node).into_iter().map(|(name, _)| name).collect();
    names[2..].sort();
    assert_eq!(names, ["s1", "i1", "i2", "s2"]);
    let resume = resume_annotation(&server).expect("resume points");
    assert!(
        resume.contains("\"shop\"") && resume.contains("\"infra\""),
        "{resume}"
    );
}
