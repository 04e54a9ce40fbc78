//! End to end: the real binary reads a node tree once and writes records to a file sink.

mod util;

use serde_json::{Value, json};
use util::{Node, container_id, run_once, shiplog, stderr};

fn docker(log: &str, stream: &str) -> String {
    let line = json!({"log": log, "stream": stream, "time": "2026-11-25T09:00:00.000000001Z"});
    format!("{line}\n")
}

fn logs(records: &[Value]) -> Vec<&str> {
    records
        .iter()
        .map(|r| r["log"].as_str().expect("log is a string"))
        .collect()
}

#[test]
fn docker_lines_split_by_dockerd_every_16_kib_arrive_as_one_record() {
    let node = Node::new();
    let piece = "a".repeat(16 * 1024);
    let content = [
        docker(&piece, "stdout"),
        docker(&piece, "stdout"),
        docker("end\n", "stdout"),
        docker("next\n", "stdout"),
    ];
    node.container_log("shop", "web-1", "app", content.concat().as_bytes());
    run_once(&node.config(&[]));

    let records = node.records();
    assert_eq!(
        logs(&records),
        [format!("{piece}{piece}end").as_str(), "next"]
    );
    assert!(
        records
            .iter()
            .all(|r| r.get("partial").is_none() && r.get("truncated").is_none())
    );
}

#[test]
fn cri_partial_lines_join_and_a_partial_at_the_end_of_the_file_ships_flagged() {
    let node = Node::new();
    let content = "2026-11-25T09:00:00.1Z stdout P {\"a\":\n\
                   2026-11-25T09:00:00.2Z stdout P  1,\n\
                   2026-11-25T09:00:00.3Z stdout F \"b\":2}\n\
                   2026-11-25T09:00:00.4Z stderr F oops\n\
                   2026-11-25T09:00:00.5Z stdout P never finished\n";
    node.container_log("shop", "web-1", "app", content.as_bytes());
    run_once(&node.config(&[]));

    let records = node.records();
    assert_eq!(
        logs(&records),
        ["{\"a\": 1,\"b\":2}", "oops", "never finished"]
    );
    assert_eq!(records[0]["data"], json!({"a": 1, "b": 2}));
    assert_eq!(
        records[0]["time"], "2026-11-25T09:00:00.100000000Z",
        "a joined line has its first piece's time"
    );
    assert_eq!(records[1]["stream"], "stderr");
    assert_eq!(records[2]["partial"], true);
    assert!(records[..2].iter().all(|r| r.get("partial").is_none()));
}

#[test]
fn malformed_lines_ship_raw_with_the_reason_and_nothing_is_dropped() {
    let node = Node::new();
    let mut content = b"2026-11-25T09:00:00.1Z stdout F first\n".to_vec();
    content.extend_from_slice(b"this is not a CRI line\n");
    content.extend_from_slice(b"2026-11-25T09:00:00.2Z stdout F caf\xe9 latin-1\n");
    content.extend_from_slice(b"2026-11-25T09:00:00.3Z stdout F last\n");
    node.container_log("shop", "web-1", "app", &content);
    run_once(&node.config(&[]));

    let records = node.records();
    assert_eq!(
        logs(&records),
        [
            "first",
            "this is not a CRI line",
            "caf\u{fffd} latin-1",
            "last"
        ]
    );
    assert!(
        records[1]["shiplog_error"]
            .as_str()
            .expect("a reason")
            .starts_with("not a CRI line")
    );
    assert_eq!(
        records[1]["kubernetes"]["pod_name"], "web-1",
        "still carries its pod"
    );
    assert_eq!(records[2]["invalid_utf8"], true);
    assert!(
        records
            .iter()
            .filter(|r| r.get("shiplog_error").is_some())
            .count()
            == 1
    );
}

/// Issue 23: records carry RFC 3339 UTC with nine fractional digits whatever form the
/// runtime wrote, and a timestamp that is not a time ships the line with the reason.
#[test]
fn record_times_are_utc_with_nanoseconds_and_an_impossible_time_ships_with_the_reason() {
    let cases = [
        (
            "2026-11-25T09:00:00.669794202Z",
            "2026-11-25T09:00:00.669794202Z",
        ),
        (
            "2026-11-25T09:00:00.70630778Z",
            "2026-11-25T09:00:00.706307780Z",
        ),
        ("2026-11-25T09:00:04Z", "2026-11-25T09:00:04.000000000Z"),
        (
            "2026-11-25T10:00:05.5+01:00",
            "2026-11-25T09:00:05.500000000Z",
        ),
        (
            "2026-11-25T01:00:06.25-08:00",
            "2026-11-25T09:00:06.250000000Z",
        ),
    ];
    let node = Node::new();
    let mut cri = String::new();
    let mut docker = String::new();
    for (written, _) in cases {
        cri.push_str(&format!("{written} stdout F at {written}\n"));
        let line = json!({"log": format!("at {written}\n"), "stream": "stdout", "time": written});
        docker.push_str(&format!("{line}\n"));
    }
    cri.push_str("2026-13-45T99:99:99Z stdout F impossible\n");
    cri.push_str("2026-11-25T09:00:07Z stdout F after\n");
    node.container_log("shop", "web-1", "cri", cri.as_bytes());
    node.container_log("shop", "web-1", "docker", docker.as_bytes());
    let before = std::time::SystemTime::now();
    run_once(&node.config(&[]));

    let records = node.records();
    for container in ["cri", "docker"] {
        let times: Vec<&str> = records
            .iter()
            .filter(|r| r["kubernetes"]["container_name"] == container)
            .filter(|r| r.get("shiplog_error").is_none())
            .map(|r| r["time"].as_str().expect("a time"))
            .collect();
        let mut want: Vec<&str> = cases.iter().map(|(_, record)| *record).collect();
        if container == "cri" {
            want.push("2026-11-25T09:00:07.000000000Z");
        }
        assert_eq!(times, want, "{container}");
    }
    let impossible: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("shiplog_error").is_some())
        .collect();
    assert_eq!(
        impossible.len(),
        1,
        "nothing else is refused, nothing dropped"
    );
    let impossible = impossible[0];
    assert_eq!(
        impossible["log"],
        "2026-13-45T99:99:99Z stdout F impossible"
    );
    assert_eq!(
        impossible["shiplog_error"],
        "invalid runtime timestamp: time is not a valid date (no such month or day)"
    );
    let read_at: std::time::SystemTime =
        humantime::parse_rfc3339(impossible["time"].as_str().expect("a time")).expect("RFC 3339");
    assert!(read_at >= before, "the time it was read, not the runtime's");
}

#[test]
fn json_payloads_merge_under_data_only_when_they_are_objects() {
    let node = Node::new();
    let payloads = [
        r#"{"level":"info"}"#,
        "  {\"padded\":true}  ",
        "[1,2]",
        "42",
        "{\"broken\":",
        "plain",
    ];
    let content: String = payloads
        .iter()
        .map(|p| docker(&format!("{p}\n"), "stdout"))
        .collect();
    node.container_log("shop", "web-1", "app", content.as_bytes());
    run_once(&node.config(&[]));

    let records = node.records();
    assert_eq!(logs(&records), payloads);
    let data: Vec<Option<&Value>> = records.iter().map(|r| r.get("data")).collect();
    let object = json!({"level": "info"});
    let padded = json!({"padded": true});
    assert_eq!(data, [Some(&object), Some(&padded), None, None, None, None]);
}

#[test]
fn records_carry_pod_metadata_from_the_pods_file_or_else_from_the_file_name() {
    let node = Node::new();
    node.container_log(
        "shop",
        "web-1",
        "nginx",
        docker("known\n", "stdout").as_bytes(),
    );
    node.container_log(
        "shop",
        "gone-2",
        "nginx",
        docker("unknown\n", "stdout").as_bytes(),
    );
    node.write(
        "pods.yaml",
        b"apiVersion: v1\nkind: List\nitems:\n\
          - metadata: {name: web-1, namespace: shop, uid: u-1, labels: {app: web}}\n\
          \x20 spec: {nodeName: node-a, containers: [{name: nginx, image: nginx:1.27}]}\n",
    );
    run_once(&node.config(&[(
        "kubernetes",
        "metadata = \"file\"\npods_file = \"pods.yaml\"",
    )]));

    let records = node.records();
    let known = records
        .iter()
        .find(|r| r["log"] == "known")
        .expect("known pod's record");
    assert_eq!(known["kubernetes"]["host"], "node-a");
    assert_eq!(known["kubernetes"]["pod_id"], "u-1");
    assert_eq!(known["kubernetes"]["labels"], json!({"app": "web"}));
    assert_eq!(known["kubernetes"]["container_image"], "nginx:1.27");
    assert_eq!(known["topic"], "shop");
    let unknown = records
        .iter()
        .find(|r| r["log"] == "unknown")
        .expect("unknown pod's record");
    let kubernetes = unknown["kubernetes"].as_object().expect("an object");
    let mut keys: Vec<&str> = kubernetes.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "container_name",
            "docker_id",
            "namespace_name",
            "pod_id",
            "pod_name"
        ]
    );
    assert_eq!(
        unknown["kubernetes"]["pod_id"], "uid-gone-2",
        "the pods folder name carries the uid"
    );
}

#[test]
fn lines_longer_than_max_line_bytes_arrive_as_flagged_pieces_in_order() {
    let node = Node::new();
    let long: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let content =
        format!("2026-11-25T09:00:00.1Z stdout F {long}\n2026-11-25T09:00:00.2Z stdout F short\n");
    node.container_log("shop", "web-1", "app", content.as_bytes());
    run_once(&node.config(&[("tail", "max_line_bytes = \"1KiB\"")]));

    let records = node.records();
    let (pieces, rest) = records.split_at(records.len() - 1);
    assert_eq!(pieces.len(), 5);
    assert!(pieces.iter().all(|r| r["truncated"] == true));
    assert_eq!(logs(pieces).concat(), long);
    assert_eq!(logs(rest), ["short"]);
    assert!(rest[0].get("truncated").is_none());
}

/// Issue 23: a line longer than the reader holds (`max_line_bytes` + 64 KiB of framing)
/// used to ship in 320 KiB raw pieces, the CRI prefix inside `log` and no `stream`.
#[test]
fn a_line_too_long_for_the_reader_ships_in_pieces_of_max_line_bytes_with_its_stream() {
    let node = Node::new();
    // Longer than a read (256 KiB), so that the reader cuts it.
    let long: String = (0..700_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let content =
        format!("2026-11-25T09:00:00.1Z stderr F {long}\n2026-11-25T09:00:00.2Z stdout F short\n");
    node.container_log("shop", "web-1", "cri", content.as_bytes());
    let docker_line =
        json!({"log": format!("{long}\n"), "stream": "stdout", "time": "2026-11-25T09:00:00.3Z"});
    let docker_line = format!("{docker_line}\n{}", docker("after\n", "stdout"));
    node.container_log("shop", "web-1", "docker", docker_line.as_bytes());
    run_once(&node.config(&[("tail", "max_line_bytes = \"16KiB\"")]));

    let records = node.records();
    let of = |container: &str| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| r["kubernetes"]["container_name"] == container)
            .collect()
    };
    let cri = of("cri");
    let (pieces, rest) = cri.split_at(cri.len() - 1);
    assert_eq!(pieces.len(), 700_000_usize.div_ceil(16 * 1024));
    for piece in pieces {
        assert!(piece["log"].as_str().expect("log").len() <= 16 * 1024);
        assert_eq!(piece["truncated"], true);
        assert_eq!(piece["stream"], "stderr");
        assert_eq!(piece["time"], "2026-11-25T09:00:00.100000000Z");
        assert!(piece.get("shiplog_error").is_none(), "{piece}");
    }
    let joined: String = pieces
        .iter()
        .map(|r| r["log"].as_str().expect("log"))
        .collect();
    assert_eq!(
        joined, long,
        "the message, without the CRI prefix, nothing lost"
    );
    assert_eq!(rest[0]["log"], "short");
    assert!(rest[0].get("truncated").is_none());

    // A docker entry cannot be decoded without its end: raw, but bounded and complete.
    let docker = of("docker");
    let (pieces, rest) = docker.split_at(docker.len() - 1);
    assert!(pieces.len() > 1);
    for piece in pieces {
        assert!(piece["log"].as_str().expect("log").len() <= 16 * 1024);
        assert_eq!(piece["truncated"], true);
        assert!(piece.get("shiplog_error").is_some(), "{piece}");
    }
    let joined: String = pieces
        .iter()
        .map(|r| r["log"].as_str().expect("log"))
        .collect();
    assert_eq!(
        format!("{joined}\n"),
        docker_line
            .lines()
            .next()
            .map(|l| format!("{l}\n"))
            .expect("a line")
    );
    assert_eq!(rest[0]["log"], "after");
}

#[test]
fn the_demo_prints_enriched_records_on_stdout() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/shiplog.toml");
    let state = tempfile::tempdir().expect("temp dir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["--config", demo, "--once"])
        .env("SHIPLOG_STATE_DIR", state.path())
        .output()
        .expect("shiplog runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let records: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON record"))
        .collect();
    assert!(
        records.len() >= 40,
        "the demo has dozens of lines, got {}",
        records.len()
    );
    let checkout: Vec<&Value> = records
        .iter()
        .filter(|r| r["kubernetes"]["pod_name"] == "checkout-7d9f8b6c5-x2k4q")
        .collect();
    assert!(
        checkout.iter().any(|r| r["data"].is_object()),
        "JSON app lines are merged"
    );
    assert!(
        checkout
            .iter()
            .all(|r| r["kubernetes"]["host"] == "demo-node" && r["topic"] == "default")
    );
    let orphan = records
        .iter()
        .find(|r| r["kubernetes"]["pod_name"] == "orphan-job-abc12")
        .expect("orphan");
    assert!(
        orphan["kubernetes"].get("host").is_none(),
        "not in pods.json: file-name metadata only"
    );
    assert!(
        records.iter().all(|r| r.get("shiplog_error").is_none()),
        "the demo decodes cleanly"
    );
}

#[test]
fn the_demo_run_again_with_the_same_state_says_nothing_is_new() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/shiplog.toml");
    let state = tempfile::tempdir().expect("temp dir");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_shiplog"))
            .args(["--config", demo, "--once"])
            .env("SHIPLOG_STATE_DIR", state.path())
            .env("SHIPLOG_LOG_FORMAT", "text")
            .output()
            .expect("shiplog runs")
    };
    let first = run();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!first.stdout.is_empty());
    assert!(
        !stderr(&first).contains("nothing new"),
        "{}",
        stderr(&first)
    );
    let second = run();
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout),
        "",
        "no record twice"
    );
    assert!(
        stderr(&second).contains("nothing new"),
        "{}",
        stderr(&second)
    );
}

#[test]
fn a_bad_config_exits_1_naming_the_file_the_key_and_the_reason() {
    let node = Node::new();
    let config = node.config(&[("tail", "rescan_interval = \"5 parsecs\"")]);
    let path = config.to_str().expect("UTF-8");

    for args in [
        vec!["--config", path, "--once"],
        vec!["check", "--config", path],
    ] {
        let output = shiplog(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = stderr(&output);
        assert!(message.contains(path), "names the file: {message}");
        assert!(
            message.contains("tail.rescan_interval"),
            "names the key: {message}"
        );
        assert!(message.contains("parsecs"), "says what is wrong: {message}");
    }
}

#[test]
fn check_accepts_a_good_config_and_the_demo_and_says_what_they_will_do() {
    let node = Node::new();
    let config = node.config(&[]);
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/shiplog.toml");
    for path in [config.to_str().expect("UTF-8"), demo] {
        let output = shiplog(&["check", "--config", path]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let screen = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(screen.contains("parsers:  10 ("), "{screen}");
    }
}

#[test]
fn a_sink_that_cannot_be_opened_fails_at_start_up_with_exit_1() {
    let node = Node::new();
    node.container_log("shop", "web-1", "app", docker("x\n", "stdout").as_bytes());
    let config = node.config(&[]);
    let text = std::fs::read_to_string(&config)
        .expect("read")
        .replace("out.jsonl", "missing/dir/out.jsonl");
    std::fs::write(&config, text).expect("write");
    let output = shiplog(&["--config", config.to_str().expect("UTF-8"), "--once"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("sinks.out"), "{}", stderr(&output));
}

#[test]
fn container_ids_in_link_names_become_docker_id() {
    let node = Node::new();
    let content = docker("hello\n", "stderr");
    node.container_log("shop", "web-1", "app", content.as_bytes());
    run_once(&node.config(&[]));
    let records = node.records();
    let expected = container_id(&format!("{:x}", content.len() + "web-1".len()));
    assert_eq!(records[0]["kubernetes"]["docker_id"], expected.as_str());
    assert_eq!(records[0]["stream"], "stderr");
}

#[test]
fn an_unusable_state_database_fails_at_start_up_naming_state_path() {
    let node = Node::new();
    node.container_log("shop", "web-1", "app", docker("x\n", "stdout").as_bytes());
    node.write("not-a-db", b"this is a text file, not SQLite\n");
    let config = node.config(&[("state", "path = \"not-a-db\"")]);
    let output = shiplog(&["--config", config.to_str().expect("UTF-8"), "--once"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("state.path") && message.contains("not-a-db"),
        "{message}"
    );
    assert!(
        node.records().is_empty(),
        "nothing is read without a place to keep offsets"
    );
}

#[test]
fn check_reports_the_files_a_run_would_read_and_where_records_go() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo/shiplog.toml");
    let output = shiplog(&["check", "--config", demo]);
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(screen.contains("files:    6 matched now"), "{screen}");
    assert!(screen.contains("metadata: from a file: 4 pods"), "{screen}");
    assert!(screen.contains("sinks:    console (stdout)"), "{screen}");
    assert!(screen.contains("server:   off"), "{screen}");
}
