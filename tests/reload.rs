//! End to end: SIGHUP reloads the config file. A good one takes over with nothing lost or
//! repeated; a bad one is refused, reported, and the running config stays.

mod util;

use std::time::Duration;

use util::{Node, Running, append, numbered, numbered_line, wait_until};

fn seqs(records: &[serde_json::Value]) -> Vec<usize> {
    numbered(records).into_iter().map(|(_, seq)| seq).collect()
}

#[test]
fn sighup_switches_to_a_new_config_without_losing_or_repeating_a_line() {
    let node = Node::new();
    let lines =
        |range: std::ops::Range<usize>| range.map(|seq| numbered_line(0, seq)).collect::<String>();
    let path = node.container_log("shop", "web-1", "app", lines(0..100).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 100
    });

    // The new config sends records to another file.
    node.config(&[fast, ("sinks.out", "path = \"after-reload.jsonl\"")]);
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the reload", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reloading")
    });
    append(&path, &lines(100..200));
    wait_until(
        Duration::from_secs(20),
        "lines under the new config",
        || node.records_in("after-reload.jsonl").len() >= 100,
    );

    // A broken config is refused; the running one goes on.
    std::fs::write(&config, b"[tail]\nnot_a_key = 1\n").expect("write");
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the refusal", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reload refused")
    });
    append(&path, &lines(200..250));
    wait_until(Duration::from_secs(20), "lines after the refusal", || {
        node.records_in("after-reload.jsonl").len() >= 150
    });
    assert!(shiplog.stop().success());

    assert_eq!(seqs(&node.records()), (0..100).collect::<Vec<_>>());
    assert_eq!(
        seqs(&node.records_in("after-reload.jsonl")),
        (100..250).collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(&log).expect("log");
    let refusal = text
        .lines()
        .find(|l| l.contains("reload refused"))
        .expect("logged");
    assert!(
        refusal.contains("not_a_key"),
        "the refusal says why: {refusal}"
    );
}

#[test]
fn editing_the_config_file_reloads_it_without_a_signal() {
    let node = Node::new();
    let lines =
        |range: std::ops::Range<usize>| range.map(|seq| numbered_line(0, seq)).collect::<String>();
    let path = node.container_log("shop", "web-1", "app", lines(0..50).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 50
    });

    node.config(&[fast, ("sinks.out", "path = \"edited.jsonl\"")]);
    wait_until(Duration::from_secs(20), "the reload", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reloading")
    });
    append(&path, &lines(50..80));
    wait_until(
        Duration::from_secs(20),
        "lines under the edited config",
        || node.records_in("edited.jsonl").len() >= 30,
    );
    assert!(shiplog.stop().success());
    assert_eq!(seqs(&node.records()), (0..50).collect::<Vec<_>>());
    assert_eq!(
        seqs(&node.records_in("edited.jsonl")),
        (50..80).collect::<Vec<_>>()
    );
}

#[test]
fn the_config_sets_shiplogs_own_log_level_and_a_reload_changes_it() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", numbered_line(0, 0).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast, ("log", "level = \"warn\"\nformat = \"json\"")]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start_with_env(&config, &log, &[("RUST_LOG", "")]);
    wait_until(Duration::from_secs(20), "the first line", || {
        node.records().len() == 1
    });

    node.config(&[fast, ("log", "level = \"info\"\nformat = \"json\"")]);
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the new level", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("log level changed")
    });
    append(&path, &numbered_line(0, 1));
    wait_until(Duration::from_secs(20), "the second line", || {
        node.records().len() == 2
    });
    assert!(shiplog.stop().success());

    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let changed = lines
        .iter()
        .position(|line| line["fields"]["message"] == "log level changed")
        .expect("the change is logged");
    let info = |line: &serde_json::Value| line["level"] == "INFO";
    assert!(
        !lines[..changed].iter().any(info),
        "nothing under warn before the reload: {text}"
    );
    assert!(
        lines[changed + 1..].iter().any(|line| info(line)
            && line["fields"]["message"] == "stopping: draining in-flight records"),
        "info lines after it: {text}"
    );
}
