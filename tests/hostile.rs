//! End to end: hostile input is shipped, flagged and counted, never dropped, never a panic.

mod util;

use std::fs;

use serde_json::{Value, json};
use util::{Node, run_once};

fn logs(records: &[Value]) -> String {
    records
        .iter()
        .map(|r| r["log"].as_str().unwrap_or_default())
        .collect()
}

#[test]
fn a_100_mib_line_arrives_whole_in_flagged_pieces() {
    let node = Node::new();
    let message: String = (0..100 * 1024 * 1024 / 64)
        .map(|i| format!("{i:063}|"))
        .collect();
    let line = format!("2026-11-25T09:00:00.1Z stdout F {message}");
    node.container_log(
        "shop",
        "web-1",
        "app",
        format!("{line}\n2026-11-25T09:00:00.2Z stdout F after\n").as_bytes(),
    );
    run_once(&node.config(&[]));
    let records = node.records();
    let (pieces, rest) = records.split_at(records.len() - 1);
    assert!(
        pieces.len() > 300,
        "cut into pieces near max_line_bytes: {}",
        pieces.len()
    );
    assert!(pieces.iter().all(|r| r["truncated"] == true));
    assert!(pieces.iter().all(|r| r["stream"] == "stdout"));
    // Issue 23: the CRI prefix is the runtime's framing, not part of the line.
    assert_eq!(logs(pieces), message, "nothing lost, nothing added");
    assert_eq!(rest[0]["log"], "after", "the next line is intact");
}

#[test]
fn a_file_of_nul_bytes_is_shipped_raw_and_flagged() {
    let node = Node::new();
    node.container_log("shop", "web-1", "app", &vec![0u8; 1024 * 1024]);
    run_once(&node.config(&[]));
    let records = node.records();
    assert!(!records.is_empty());
    assert_eq!(
        logs(&records).len(),
        1024 * 1024,
        "every byte is in some record's log"
    );
    assert!(records.iter().all(|r| r.get("shiplog_error").is_some()));
}

#[test]
fn loops_folders_and_odd_names_are_skipped_or_shipped_without_stopping_the_rest() {
    let node = Node::new();
    node.container_log(
        "shop",
        "web-1",
        "app",
        b"2026-11-25T09:00:00.1Z stdout F fine\n",
    );
    let links = node.path("var/log/containers");
    std::os::unix::fs::symlink("loop-b.log", links.join("loop-a.log")).expect("link");
    std::os::unix::fs::symlink("loop-a.log", links.join("loop-b.log")).expect("link");
    fs::create_dir(links.join(format!("dir_shop_app-{:064}.log", 7))).expect("mkdir");
    fs::write(
        links.join("not-kubelet.log"),
        b"2026-11-25T09:00:00.1Z stdout F odd name\n",
    )
    .expect("write");
    run_once(&node.config(&[]));
    let records = node.records();
    let fine = records
        .iter()
        .find(|r| r["log"] == "fine")
        .expect("the normal file");
    assert_eq!(fine["kubernetes"]["pod_name"], "web-1");
    let odd = records
        .iter()
        .find(|r| r["log"] == "odd name")
        .expect("the odd name");
    assert!(odd.get("kubernetes").is_none(), "no pod identity to give");
    assert_eq!(odd["topic"], "unknown", "routed to default_topic");
}

#[test]
fn a_pod_list_with_missing_fields_still_gives_what_it_has() {
    let node = Node::new();
    node.container_log(
        "shop",
        "web-1",
        "app",
        b"2026-11-25T09:00:00.1Z stdout F hi\n",
    );
    let pods =
        json!({"items": [{"metadata": {"name": "web-1", "namespace": "shop"}}, {"metadata": {}}]});
    node.write("pods.json", pods.to_string().as_bytes());
    run_once(&node.config(&[(
        "kubernetes",
        "metadata = \"file\"\npods_file = \"pods.json\"",
    )]));
    let records = node.records();
    assert_eq!(records[0]["kubernetes"]["pod_name"], "web-1");
    assert!(records[0]["kubernetes"].get("host").is_none());
}

#[test]
fn a_json_payload_with_100000_keys_is_merged_whole() {
    let node = Node::new();
    let object: serde_json::Map<String, Value> =
        (0..100_000).map(|i| (format!("k{i}"), json!(i))).collect();
    let payload = Value::Object(object).to_string();
    node.container_log(
        "shop",
        "web-1",
        "app",
        format!("2026-11-25T09:00:00.1Z stdout F {payload}\n").as_bytes(),
    );
    run_once(&node.config(&[("tail", "max_line_bytes = \"4MiB\"")]));
    let records = node.records();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["data"].as_object().map(|o| o.len()),
        Some(100_000)
    );
}

#[test]
fn a_line_of_deeply_nested_json_is_shipped_as_text_without_overflowing_the_stack() {
    let node = Node::new();
    let depth = 200_000;
    let payload = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    node.container_log(
        "shop",
        "web-1",
        "app",
        format!(
            "2026-11-25T09:00:00.1Z stdout F {payload}\n2026-11-25T09:00:00.2Z stdout F next\n"
        )
        .as_bytes(),
    );
    run_once(&node.config(&[("tail", "max_line_bytes = \"4MiB\"")]));
    let records = node.records();
    assert_eq!(records.len(), 2, "the nested line, and the line after it");
    assert_eq!(
        records[0]["log"].as_str().map(str::len),
        Some(payload.len())
    );
    assert!(
        records[0].get("data").is_none(),
        "too deep to merge: kept as text in log"
    );
    assert_eq!(records[1]["log"], "next");
}

/// `shiplog --config CONFIG --once` as user `nobody`, which must succeed (see
/// [`util::shiplog_as_nobody`]).
fn run_once_as_nobody(node: &Node, config: &std::path::Path) -> Option<std::process::Output> {
    let config = config.to_str().expect("UTF-8");
    let output = util::shiplog_as_nobody(node, &["--config", config, "--once"])?;
    assert!(output.status.success(), "{}", util::stderr(&output));
    Some(output)
}

#[test]
fn a_file_it_may_not_read_is_reported_by_path_and_read_once_it_may() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new();
    node.container_log(
        "shop",
        "web-1",
        "app",
        b"2026-11-25T09:00:00.1Z stdout F readable\n",
    );
    let secret = node.container_log(
        "shop",
        "web-2",
        "app",
        b"2026-11-25T09:00:00.1Z stdout F was unreadable\n",
    );
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).expect("chmod");
    let config = node.config(&[]);
    let Some(output) = run_once_as_nobody(&node, &config) else {
        eprintln!("skipped: dropping to user nobody needs root and setpriv");
        return;
    };
    assert_eq!(
        logs(&node.records()),
        "readable",
        "the other file is shipped"
    );
    let stderr = util::stderr(&output);
    let warning = stderr
        .lines()
        .find(|line| line.contains("cannot open"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(
        warning.contains(&*secret.to_string_lossy()) && warning.contains("Permission denied"),
        "names the file and the reason: {warning}"
    );

    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
    let output = run_once_as_nobody(&node, &config).expect("ran before");
    assert_eq!(
        logs(&node.records()),
        "readablewas unreadable",
        "read from its start once readable, the other not again"
    );
    assert!(!util::stderr(&output).contains("cannot open"));
}
