//! End to end: `shiplog check` refuses what a run would refuse (issue 18: they share one
//! validation), says exactly what it would read, and checks a Kafka sink without
//! connecting to it.

mod util;

use std::fs;
use std::process::{Command, Output};

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

/// Runs `shiplog check --config CONFIG` as user `nobody` (util-linux's `setpriv`), with the
/// node's folders opened to it, so that a file mode 000 really is unreadable (root reads
/// anything). `None` when not root or without `setpriv`.
fn check_as_nobody(node: &Node, config: &std::path::Path) -> Option<Output> {
    use std::os::unix::fs::PermissionsExt;
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout == b"0\n");
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !has_setpriv {
        return None;
    }
    let as_nobody = |program: &std::path::Path| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .env("RUST_LOG", "warn");
        command
    };
    // The binary may sit where nobody cannot reach it (a private home): then a copy does.
    let mut binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_shiplog"));
    let runs = as_nobody(&binary)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status();
    if !runs.is_ok_and(|s| s.success()) {
        let copy = node.path("shiplog");
        fs::copy(&binary, &copy).expect("copy the binary");
        binary = copy;
    }
    let mut dirs = vec![node.path("")];
    while let Some(dir) = dirs.pop() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        for entry in fs::read_dir(&dir).expect("list") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    let output = as_nobody(&binary)
        .args(["check", "--config", config.to_str().expect("UTF-8")])
        .output()
        .expect("shiplog runs");
    Some(output)
}
