//! End to end: `shiplog check` refuses what a run would refuse (issue 18: they share one
//! validation), says exactly what it would read, and checks a Kafka sink without
//! connecting to it.

mod util;

use std::fs;
use std::process::Output;

use util::{Node, numbered_line, shiplog, stderr};

fn check(config: &std::path::Path) -> Output {
    shiplog(&["check", "--config", config.to_str().expect("UTF-8")])
}

#[test]
fn check_refuses_what_a_run_would_refuse_naming_the_key() {
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (
            "sinks.out",
            &[("sinks.out", "path = \"missing/out.jsonl\"")],
        ),
        ("state.path", &[("state", "path = \"missing/state.db\"")]),
        (
            "kubernetes.kubeconfig",
            &[(
                "kubernetes",
                "metadata = \"api\"\nnode_name = \"node-a\"\nkubeconfig = \"missing-kubeconfig\"",
            )],
        ),
    ];
    for (key, tables) in cases {
        let node = Node::new();
        node.container_log("shop", "web-1", "app", numbered_line(0, 0).as_bytes());
        let config = node.config(tables);
        let path = config.to_str().expect("UTF-8");
        for args in [
            vec!["check", "--config", path],
            vec!["--config", path, "--once"],
        ] {
            let output = shiplog(&args);
            assert_eq!(output.status.code(), Some(1), "{key}: {args:?}");
            let message = stderr(&output);
            assert!(message.contains(key), "{args:?} names {key}: {message}");
        }
        assert!(node.records().is_empty());
    }
}

#[test]
fn check_leaves_no_trace_of_the_sink_file_it_tried() {
    let node = Node::new();
    let output = check(&node.config(&[]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        !node.path("out.jsonl").exists(),
        "created to try, then removed"
    );
}

#[test]
fn check_validates_kafka_properties_without_connecting() {
    // Nothing listens on port 9: a producer that connected would log its failures.
    let node = Node::new();
    let config = node.config(&[(
        "sinks.bus",
        "type = \"kafka\"\nbrokers = \"127.0.0.1:9\"\n[sinks.bus.librdkafka]\n\"linger.ms\" = 5",
    )]);
    let output = util::shiplog_with_env(
        &["check", "--config", config.to_str().expect("UTF-8")],
        &[("RUST_LOG", "debug")],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        !log.contains("127.0.0.1:9") && !log.contains("librdkafka"),
        "no connection tried: {log}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("bus (kafka 127.0.0.1:9"));
}

#[test]
fn check_does_not_count_a_file_it_may_not_read_as_matched() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new();
    node.container_log("shop", "web-1", "app", numbered_line(0, 0).as_bytes());
    let secret = node.container_log("shop", "web-2", "app", numbered_line(1, 0).as_bytes());
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    let config = node.config(&[]);
    let Some(output) = check_as_nobody(&node, &config) else {
        eprintln!("skipped: dropping to user nobody needs root and setpriv");
        return;
    };
    assert!(output.status.success(), "{}", stderr(&output));
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(screen.contains("files:    1 matched now"), "{screen}");
    assert!(screen.contains("1 matched but unreadable"), "{screen}");
    let listed = screen
        .lines()
        .find(|line| line.contains("Permission denied"))
        .unwrap_or_else(|| panic!("the file and the reason: {screen}"));
    assert!(listed.contains("web-2"), "{listed}");
}

/// `shiplog check --config CONFIG` as user `nobody` (see [`util::shiplog_as_nobody`]).
fn check_as_nobody(node: &Node, config: &std::path::Path) -> Option<Output> {
    util::shiplog_as_nobody(
        node,
        &["check", "--config", config.to_str().expect("UTF-8")],
    )
}
