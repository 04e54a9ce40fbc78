//! End to end: the real binary ships to CloudWatch Logs, here moto's server (the real
//! CloudWatch Logs JSON protocol over a 127.0.0.1 socket, `python -m moto.server` from the
//! virtualenv `util::moto` makes on first use), and the real AWS client reads back what
//! arrived.

mod util;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;
use util::{Node, Running, append, numbered_line, run_once_with_env, wait_until};

/// What shiplog needs in its environment to reach moto: any credentials, no IMDS.
const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// A moto server on a loopback port, killed by PID when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto on a free port.
    fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        Moto::start_on(port)
    }

    /// Starts moto on `port` and waits until it accepts connections.
    fn start_on(port: u16) -> Moto {
        let child = Command::new(util::moto::python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python -m moto.server starts");
        let moto = Moto { child, port };
        wait_until(Duration::from_secs(30), "moto to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server and waits until it is gone.
    fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.child.kill().ok();
            self.child.wait().ok();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client of `endpoint` and a runtime to drive it.
struct Reader {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Reader {
    fn new(endpoint: &str) -> Reader {
        let config = aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        Reader {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            client: Client::from_conf(config),
        }
    }

    /// Every log group and its streams, by name.
    fn streams(&self) -> BTreeMap<String, Vec<String>> {
        self.runtime.block_on(async {
            let groups = self
                .client
                .describe_log_groups()
                .send()
                .await
                .expect("DescribeLogGroups");
            let mut out = BTreeMap::new();
            for group in groups.log_groups() {
                let name = group.log_group_name().unwrap_or_default().to_owned();
                let streams = self
                    .client
                    .describe_log_streams()
                    .log_group_name(&name)
                    .send()
                    .await
                    .expect("DescribeLogStreams");
                let mut names: Vec<String> = streams
                    .log_streams()
                    .iter()
                    .filter_map(|s| s.log_stream_name().map(str::to_owned))
                    .collect();
                names.sort();
                out.insert(name, names);
            }
            out
        })
    }

    /// The messages of one stream from its head, every page; empty when it does not exist.
    fn messages(&self, group: &str, stream: &str) -> Vec<String> {
        self.runtime.block_on(async {
            let mut messages = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let page = self
                    .client
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await;
                let Ok(page) = page else { return messages };
                messages.extend(
                    page.events()
                        .iter()
                        .filter_map(|e| e.message().map(str::to_owned)),
                );
                let next = page.next_forward_token().map(str::to_owned);
                if page.events().is_empty() || next.is_none() || next == token {
                    return messages;
                }
                token = next;
            }
        })
    }

    /// The records of one stream, each message parsed as JSON.
    /// Creates a log group, as an administrator would.
    fn create_group(&self, group: &str) {
        self.runtime
            .block_on(self.client.create_log_group().log_group_name(group).send())
            .expect("CreateLogGroup");
    }

    fn records(&self, group: &str, stream: &str) -> Vec<Value> {
        self.messages(group, stream)
            .iter()
            .map(|m| serde_json::from_str(m).expect("each message is a record"))
            .collect()
    }
}

fn lines(file: usize, seqs: std::ops::Range<usize>) -> String {
    seqs.map(|seq| numbered_line(file, seq)).collect()
}

/// The `seq` of each numbered record of `file`, in order.
fn seqs(records: &[Value], file: usize) -> Vec<usize> {
    util::numbered(records)
        .into_iter()
        .map(|(f, seq)| {
            assert_eq!(f, file, "only file {file}'s records here");
            seq
        })
        .collect()
}

/// The `[sinks.cw]` table of a CloudWatch sink on `endpoint`, with `extra` lines.
fn cloudwatch_sink(endpoint: &str, extra: &str) -> String {
    format!("type = \"cloudwatch\"\nregion = \"us-east-1\"\nendpoint = \"{endpoint}\"\n{extra}")
}

#[test]
fn records_of_two_namespaces_land_in_their_groups_and_each_pods_stream_in_order() {
    let moto = Moto::start();
    let node = Node::new();
    // (namespace, pod, lines): file numbers are the index.
    let pods = [
        ("shop", "web-1", 400),
        ("shop", "web-2", 300),
        ("payments", "api-1", 250),
    ];
    for (file, (namespace, pod, count)) in pods.iter().enumerate() {
        node.container_log(namespace, pod, "app", lines(file, 0..*count).as_bytes());
    }
    let config = node.config(&[("sinks.cw", &cloudwatch_sink(&moto.endpoint(), ""))]);
    run_once_with_env(&config, &AWS_ENV);

    let reader = Reader::new(&moto.endpoint());
    assert_eq!(
        reader.streams(),
        BTreeMap::from([
            ("/k8s/payments".to_owned(), vec!["api-1.app".to_owned()]),
            (
                "/k8s/shop".to_owned(),
                vec!["web-1.app".to_owned(), "web-2.app".to_owned()]
            ),
        ])
    );
    for (file, (namespace, pod, count)) in pods.iter().enumerate() {
        let records = reader.records(&format!("/k8s/{namespace}"), &format!("{pod}.app"));
        assert_eq!(
            seqs(&records, file),
            (0..*count).collect::<Vec<_>>(),
            "{pod}: every line once, in order"
        );
        assert_eq!(records[0]["kubernetes"]["pod_name"], *pod);
    }
    // The file sink beside it got the same records: both acknowledged before the commit.
    assert_eq!(node.records().len(), 950);
}

#[test]
fn twenty_five_thousand_small_events_and_three_mebibytes_of_large_ones_arrive_whole() {
    let moto = Moto::start();
    let node = Node::new();
    node.container_log("bulk", "small-1", "app", lines(0, 0..25_000).as_bytes());
    // 30 lines of 100 KiB: over 3 MiB, so at least four requests of at most 1 MiB.
    let big: String = (0..30)
        .map(|seq| {
            let pad = "x".repeat(100 * 1024);
            format!("2026-11-25T09:00:00.{seq:09}Z stdout F 1:{seq} {pad}\n")
        })
        .collect();
    node.container_log("bulk", "large-1", "app", big.as_bytes());
    // One batch for all of it, so the sink itself must cut it into requests.
    let config = node.config(&[
        ("sinks.cw", &cloudwatch_sink(&moto.endpoint(), "")),
        (
            "pipeline",
            "batch_max_events = 30000\nbatch_max_bytes = \"32MiB\"\nmemory_limit = \"64MiB\"\nbatch_timeout = \"2s\"",
        ),
    ]);
    run_once_with_env(&config, &AWS_ENV);

    let reader = Reader::new(&moto.endpoint());
    let small = reader.records("/k8s/bulk", "small-1.app");
    assert_eq!(seqs(&small, 0), (0..25_000).collect::<Vec<_>>());
    let large = reader.records("/k8s/bulk", "large-1.app");
    let numbered: Vec<usize> = large
        .iter()
        .map(|r| {
            let log = r["log"].as_str().expect("log");
            let seq = log.split(' ').next().and_then(|n| n.strip_prefix("1:"));
            seq.and_then(|s| s.parse().ok()).expect("numbered")
        })
        .collect();
    assert_eq!(numbered, (0..30).collect::<Vec<_>>());
}

#[test]
fn a_server_down_for_20_s_and_back_empty_holds_the_offsets_back_and_loses_nothing() {
    let moto = Moto::start();
    let port = moto.port;
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0, 0..500).as_bytes());
    let config = node.config(&[
        ("sinks.cw", &cloudwatch_sink(&moto.endpoint(), "")),
        ("tail", "rescan_interval = \"200ms\""),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
    ]);
    let shiplog = Running::start_with_env(&config, &node.path("shiplog.log"), &AWS_ENV);
    let state = node.path("state.db");
    let before = std::fs::metadata(&path).expect("log file").len();
    util::wait_for_commit(&state, before, "the first lines committed");
    let reader = Reader::new(&moto.endpoint());
    assert_eq!(
        seqs(&reader.records("/k8s/shop", "web-1.app"), 0),
        (0..500).collect::<Vec<_>>()
    );

    moto.stop();
    append(&path, &lines(0, 500..1000));
    util::assert_offsets_held_back(&state, before, Duration::from_secs(20));
    assert_eq!(
        node.records().len(),
        1000,
        "the file sink beside it has every line: only CloudWatch holds the offsets back"
    );
    // A new server on the same port knows no group or stream: shiplog must make them again.
    let moto = Moto::start_on(port);
    let after = std::fs::metadata(&path).expect("log file").len();
    util::wait_for_commit(&state, after, "the rest committed");
    assert!(shiplog.stop().success());
    let log = std::fs::read_to_string(node.path("shiplog.log")).expect("shiplog's log");
    assert_eq!(
        log.matches("log group created").count(),
        2,
        "made at the start and again on the new server: {log}"
    );
    let reader = Reader::new(&moto.endpoint());
    assert_eq!(
        seqs(&reader.records("/k8s/shop", "web-1.app"), 0),
        (500..1000).collect::<Vec<_>>(),
        "every line of the outage once, in order"
    );
}

#[test]
fn events_cloudwatch_refuses_as_too_old_are_counted_failed_and_not_retried() {
    let moto = Moto::start();
    let node = Node::new();
    let now = jiff::Timestamp::now();
    let old: String = (0..5)
        .map(|seq| format!("2020-01-01T00:00:00.{seq:09}Z stdout F 0:{seq}\n"))
        .collect();
    let fresh: String = (5..10)
        .map(|seq| format!("{now} stdout F 0:{seq}\n"))
        .collect();
    node.container_log("shop", "web-1", "app", format!("{old}{fresh}").as_bytes());
    let config = node.config(&[("sinks.cw", &cloudwatch_sink(&moto.endpoint(), ""))]);
    let env = [AWS_ENV.as_slice(), &[("RUST_LOG", "info")]].concat();
    let output = run_once_with_env(&config, &env);
    let log = util::stderr(&output);
    assert!(log.contains("CloudWatch refused events too old"), "{log}");
    assert!(
        log.contains("5 to cw"),
        "only the fresh ones count as delivered: {log}"
    );

    let reader = Reader::new(&moto.endpoint());
    let records = reader.records("/k8s/shop", "web-1.app");
    assert_eq!(seqs(&records, 0), (5..10).collect::<Vec<_>>());
    // Acknowledged all the same: a second run has nothing to send.
    let output = run_once_with_env(&config, &env);
    assert!(util::stderr(&output).contains("0 to cw"));
    assert_eq!(reader.records("/k8s/shop", "web-1.app").len(), 5);
}

#[test]
fn without_auto_create_a_missing_group_holds_the_records_back_until_someone_creates_it() {
    let moto = Moto::start();
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0, 0..100).as_bytes());
    let config = node.config(&[
        (
            "sinks.cw",
            &cloudwatch_sink(&moto.endpoint(), "auto_create_group = false"),
        ),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start_with_env(&config, &log, &AWS_ENV);
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(20), "the missing group logged", || {
        said().contains("log group /k8s/shop does not exist (auto_create_group = false)")
    });
    let state = node.path("state.db");
    util::assert_offsets_held_back(&state, 0, Duration::from_secs(2));
    let reader = Reader::new(&moto.endpoint());
    assert_eq!(reader.streams(), BTreeMap::new(), "shiplog made no group");
    assert_eq!(
        node.records().len(),
        100,
        "the file sink beside it is not held up"
    );

    reader.create_group("/k8s/shop");
    let size = std::fs::metadata(&path).expect("log file").len();
    util::wait_for_commit(&state, size, "the lines delivered once the group exists");
    assert!(shiplog.stop().success());
    assert_eq!(
        seqs(&reader.records("/k8s/shop", "web-1.app"), 0),
        (0..100).collect::<Vec<_>>(),
        "every line once, in order, in a stream shiplog made in the new group"
    );
    assert!(!said().contains("log group created"), "{}", said());
}

#[test]
fn a_log_group_a_pods_annotation_fills_outside_allowed_destinations_falls_back_and_is_counted() {
    let moto = Moto::start();
    let node = Node::new();
    let pod = |name: &str, team: &str| {
        serde_json::json!({"metadata": {"name": name, "namespace": "dev", "uid": format!("uid-{name}"),
                                        "annotations": {"team": team}},
                           "spec": {"nodeName": "node-a", "containers": [{"name": "app"}]}})
    };
    let pods = serde_json::json!({"kind": "List", "apiVersion": "v1",
                                  "items": [pod("reports", "dev-reports"), pod("intruder", "payments")]});
    node.write("pods.json", pods.to_string().as_bytes());
    node.container_log("dev", "reports", "app", lines(0, 0..30).as_bytes());
    node.container_log("dev", "intruder", "app", lines(1, 0..40).as_bytes());
    let sink = cloudwatch_sink(
        &moto.endpoint(),
        "log_group = \"/k8s/{annotation.team}\"\n\
         allowed_destinations = [\"/k8s/{namespace}\", \"/k8s/{namespace}-*\"]",
    );
    let config = node.config(&[
        ("sinks.cw", &sink),
        (
            "kubernetes",
            "metadata = \"file\"\npods_file = \"pods.json\"",
        ),
        ("route", "default_topic = \"unassigned\""),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start_with_env(&config, &log, &AWS_ENV);
    let address = util::server_address(&log);
    let reader = Reader::new(&moto.endpoint());
    wait_until(
        Duration::from_secs(60),
        "both pods' records in CloudWatch",
        || {
            reader.records("/k8s/dev-reports", "reports.app").len() == 30
                && reader.records("/k8s/unassigned", "intruder.app").len() == 40
        },
    );
    let (_, metrics) = util::http_get(&address, "/metrics");
    assert!(shiplog.stop().success());

    assert_eq!(
        reader.streams(),
        BTreeMap::from([
            (
                "/k8s/dev-reports".to_owned(),
                vec!["reports.app".to_owned()]
            ),
            (
                "/k8s/unassigned".to_owned(),
                vec!["intruder.app".to_owned()]
            ),
        ]),
        "no group /k8s/payments: the intruder's records went to the fallback"
    );
    assert_eq!(
        util::metric(&metrics, "shiplog_destinations_refused_total{sink=\"cw\"}"),
        Some(40.0)
    );
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    let warnings = said
        .lines()
        .filter(|line| line.contains("not in allowed_destinations"))
        .count();
    assert_eq!(warnings, 1, "logged once for the value: {said}");
}
