//! End to end: pods steer shiplog with annotations (parser, exclude, topic), with the
//! `file` metadata source, and `shiplog parse` tries a parser on stdin.

mod util;

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use util::{Node, run_once};

const NGINX: &str = r#"10.0.0.7 - - [25/Nov/2026:09:00:01 +0000] "GET /api/cart HTTP/1.1" 200 512 "-" "curl/8.5.0""#;

fn cri(stream: &str, message: &str) -> String {
    format!("2026-11-25T09:00:00.000000001Z {stream} F {message}\n")
}

fn pod(namespace: &str, name: &str, labels: Value, annotations: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                        "labels": labels, "annotations": annotations},
           "spec": {"nodeName": "node-a", "containers": [{"name": "web"}, {"name": "sidecar"}]}})
}

fn records_of<'a>(records: &'a [Value], pod: &str, container: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| {
            r["kubernetes"]["pod_name"] == pod && r["kubernetes"]["container_name"] == container
        })
        .collect()
}

#[test]
fn annotations_pick_parsers_exclude_pods_and_route_topics() {
    let node = Node::new();
    let pods = json!({"kind": "List", "apiVersion": "v1", "items": [
        pod("shop", "web-1", json!({}), json!({"shiplog.io/parser": "nginx"})),
        pod("shop", "legacy-1", json!({}), json!({"fluentbit.io/parser": "nginx"})),
        pod("shop", "mixed-1", json!({}), json!({
            "shiplog.io/parser": "nginx", "shiplog.io/parser-sidecar": "logfmt"})),
        pod("kube-system", "noisy-1", json!({}), json!({"shiplog.io/exclude": "true"})),
        pod("shop", "audit-1", json!({"team": "payments"}), json!({"shiplog.io/topic": "shop-audit"})),
        pod("shop", "team-1", json!({"team": "payments"}), json!({})),
    ]});
    node.write("pods.json", pods.to_string().as_bytes());
    node.container_log("shop", "web-1", "web", cri("stdout", NGINX).as_bytes());
    node.container_log("shop", "legacy-1", "web", cri("stdout", NGINX).as_bytes());
    node.container_log("shop", "mixed-1", "web", cri("stdout", NGINX).as_bytes());
    node.container_log(
        "shop",
        "mixed-1",
        "sidecar",
        cri("stderr", "level=info msg=ready").as_bytes(),
    );
    let noisy: String = (0..500)
        .map(|i| cri("stdout", &format!("chatter {i}")))
        .collect();
    node.container_log("kube-system", "noisy-1", "web", noisy.as_bytes());
    node.container_log("shop", "audit-1", "web", cri("stdout", "login").as_bytes());
    node.container_log("shop", "team-1", "web", cri("stdout", "hello").as_bytes());
    let config = node.config(&[
        (
            "kubernetes",
            "metadata = \"file\"\npods_file = \"pods.json\"",
        ),
        (
            "route",
            "topic = \"{namespace}-{label.team}\"\ndefault_topic = \"fallback\"",
        ),
    ]);
    run_once(&config);
    let records = node.records();

    for pod in ["web-1", "legacy-1", "mixed-1"] {
        let web = records_of(&records, pod, "web");
        assert_eq!(web.len(), 1, "{pod}");
        assert_eq!(web[0]["data"]["code"], 200, "{pod}: code is an integer");
        assert_eq!(web[0]["data"]["size"], 512, "{pod}: size is an integer");
        assert_eq!(web[0]["data"]["path"], "/api/cart");
    }
    let sidecar = records_of(&records, "mixed-1", "sidecar");
    assert_eq!(
        sidecar[0]["data"],
        json!({"level": "info", "msg": "ready"}),
        "per container wins"
    );

    assert!(
        records_of(&records, "noisy-1", "web").is_empty(),
        "an excluded pod ships nothing"
    );
    assert_eq!(
        records_of(&records, "audit-1", "web")[0]["topic"],
        "shop-audit",
        "its own namespace's topic, specialised"
    );
    assert_eq!(
        records_of(&records, "team-1", "web")[0]["topic"],
        "shop-payments"
    );
    assert_eq!(
        records_of(&records, "web-1", "web")[0]["topic"],
        "fallback",
        "no team label"
    );

    // The excluded pod's offsets advanced: a second run ships nothing and reads nothing new.
    let before = records.len();
    let noisy_path = node.path("var/log/pods/kube-system_noisy-1_uid-noisy-1/web/0.log");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(noisy_path)
        .expect("open");
    file.write_all(cri("stdout", "more chatter").as_bytes())
        .expect("append");
    let output = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["--config", config.to_str().expect("UTF-8"), "--once"])
        .env("RUST_LOG", "info")
        .output()
        .expect("shiplog runs");
    assert!(output.status.success());
    assert_eq!(node.records().len(), before);
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!log.contains("ERROR"), "{log}");
    // Only the appended line was read, and excluded: the 500 before it were committed.
    assert!(
        log.contains("\"lines\":1,") && log.contains("\"excluded\":1,"),
        "{log}"
    );
}

#[test]
fn shiplog_parse_prints_what_a_parser_makes_of_each_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["parse", "--parser", "nginx"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shiplog parse runs");
    let input = format!("{NGINX}\nnot an access line\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["data"]["code"], 200);
    assert_eq!(lines[0]["time"], "2026-11-25T09:00:01.000000000Z");
    assert_eq!(
        lines[1],
        json!({"log": "not an access line", "matched": false})
    );
}

/// Issue 23: a line that is not UTF-8 used to stop `shiplog parse` with exit 1.
#[test]
fn shiplog_parse_replaces_invalid_utf8_as_the_pipeline_does_and_reads_every_line() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["parse", "--parser", "logfmt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shiplog parse runs");
    let input: &[u8] = b"level=info msg=caf\xe9\n\xff\xfe\nlevel=warn msg=ok\r\nlast=1";
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("UTF-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0]["log"], "level=info msg=caf\u{fffd}");
    assert_eq!(lines[0]["data"]["msg"], "caf\u{fffd}");
    assert_eq!(lines[0]["invalid_utf8"], true);
    assert_eq!(lines[1]["log"], "\u{fffd}\u{fffd}");
    assert_eq!(lines[1]["invalid_utf8"], true);
    assert_eq!(
        lines[2],
        json!({"log": "level=warn msg=ok", "data": {"level": "warn", "msg": "ok"}})
    );
    assert_eq!(
        lines[3]["data"]["last"], "1",
        "the last line, without a newline"
    );
}

/// Issue 23: a Fluent Bit parsers.conf in a parsers folder is read as it is; a section
/// that cannot be translated stops `shiplog check` naming the file, the parser and the key.
#[test]
fn a_fluent_bit_parsers_conf_loads_and_an_untranslatable_key_fails_check() {
    let node = Node::new();
    node.write(
        "parsers/parsers.conf",
        b"[PARSER]\n    Name   app\n    Format regex\n    Regex  ^(?<level>[A-Z]+) (?<msg>.*)$\n",
    );
    let dir = node.path("parsers");
    let dir = dir.to_str().expect("UTF-8");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["parse", "--parser", "app", "--parsers-dir", dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("shiplog parse runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"WARN disk nearly full\n")
        .expect("write");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success());
    let line: Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        line["data"],
        json!({"level": "WARN", "msg": "disk nearly full"})
    );

    node.write(
        "parsers/parsers.conf",
        b"[PARSER]\n    Name   local\n    Format regex\n    Regex  ^(?<time>[^ ]+) (?<msg>.*)$\n    Time_Key time\n    Time_Format %H:%M:%S\n    Time_Offset +0200\n",
    );
    let config = node.config(&[("parsers", "dirs = [\"parsers\"]")]);
    let output = util::shiplog(&["check", "--config", config.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1));
    let message = util::stderr(&output);
    assert!(
        message.contains("parsers.conf")
            && message.contains("\"local\"")
            && message.contains("Time_Offset"),
        "{message}"
    );
}

#[test]
fn unknown_parsers_and_bad_parser_folders_are_refused_with_exit_1() {
    let unknown = util::shiplog(&["parse", "--parser", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(util::stderr(&unknown).contains("no parser named \"nope\""));

    let node = Node::new();
    node.write(
        "parsers/bad.toml",
        b"[broken]\nformat = \"regex\"\nregex = \"(?<x>[\"\n",
    );
    let config = node.config(&[("parsers", "dirs = [\"parsers\"]")]);
    let output = util::shiplog(&["check", "--config", config.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(1));
    let message = util::stderr(&output);
    assert!(
        message.contains("bad.toml") && message.contains("broken"),
        "{message}"
    );
}

#[test]
fn shiplog_skips_its_own_containers_log_when_it_knows_its_pod() {
    let node = Node::new();
    node.container_log(
        "shiplog",
        "shiplog-x7k2p",
        "shiplog",
        cri("stderr", "{\"level\":\"INFO\"}").as_bytes(),
    );
    node.container_log("shop", "web-1", "web", cri("stdout", "hello").as_bytes());
    let config = node.config(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["--config", config.to_str().expect("UTF-8"), "--once"])
        .env("POD_NAMESPACE", "shiplog")
        .env("POD_NAME", "shiplog-x7k2p")
        .output()
        .expect("shiplog runs");
    assert!(output.status.success());
    let pods: Vec<String> = node
        .records()
        .iter()
        .map(|r| {
            r["kubernetes"]["pod_name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(pods, ["web-1"]);
}
