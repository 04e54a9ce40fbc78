//! End to end: pod metadata follows the cluster. Annotations and labels changed on a
//! running pod (`kubectl annotate`, `kubectl label`), or an exclusion put on its namespace,
//! reach the files already open within a second of the watch event; records that go out
//! without their pod's metadata are counted and said once per file.

mod kube_server;
mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube_server::{KubeServer, Request, namespace, pod};
use serde_json::{Value, json};
use util::{Node, Running, append, http_get, metric, wait_until};

const NODE: &str = "node-a";
const WAIT: Duration = Duration::from_secs(60);

/// The bound the issue sets between a watch event and the lines it applies to.
const WITHIN: Duration = Duration::from_secs(1);

fn cri(message: &str) -> String {
    format!("2026-11-25T09:00:00.000000001Z stdout F {message}\n")
}

/// A shiplog following `node` with pods from `server`, serving /metrics.
struct Setup {
    node: Node,
    running: Option<Running>,
    address: String,
}

fn start(server: &KubeServer, node: Node) -> Setup {
    server.kubeconfig(&node.path("kubeconfig"));
    let kubernetes = format!(
        "metadata = \"api\"\nnode_name = \"{NODE}\"\nkubeconfig = \"kubeconfig\"\nlookup_timeout = \"10s\""
    );
    let config = node.config(&[
        ("kubernetes", &kubernetes),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("stderr.log");
    let running = Running::start(&config, &log);
    let address = util::server_address(&log);
    Setup {
        node,
        running: Some(running),
        address,
    }
}

impl Setup {
    /// Stops shiplog (SIGTERM: it drains and commits).
    fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, text) = http_get(&self.address, "/metrics");
        metric(&text, name).unwrap_or(0.0)
    }

    /// The messages shipped for `pod`, in order.
    fn logs_of(&self, pod: &str) -> Vec<String> {
        records_of(&self.node.records(), pod)
            .iter()
            .filter_map(|r| r["log"].as_str().map(str::to_owned))
            .collect()
    }

    /// Waits for the record whose `log` is `message`, and returns it.
    fn wait_for(&self, pod: &str, message: &str) -> Value {
        let mut found = None;
        wait_until(WAIT, &format!("{pod}'s record {message:?}"), || {
            found = records_of(&self.node.records(), pod)
                .into_iter()
                .find(|r| r["log"] == message);
            found.is_some()
        });
        found.unwrap_or_default()
    }

    /// Waits until shiplog has counted `count` excluded records: it read those lines.
    fn wait_excluded(&self, count: usize) {
        wait_until(WAIT, &format!("{count} excluded records"), || {
            self.metric("shiplog_excluded_records_total") >= count as f64
        });
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.node.path("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("shiplog's log:\n{}", self.log());
        }
    }
}

fn records_of(records: &[Value], pod: &str) -> Vec<Value> {
    records
        .iter()
        .filter(|r| r["kubernetes"]["pod_name"] == pod)
        .cloned()
        .collect()
}

/// Applies `change` to the server and waits until its watch event went out, then for the
/// issue's bound: lines written from then on must see the change.
fn change_and_wait(server: &KubeServer, change: impl FnOnce(&KubeServer)) {
    let sent = server.events_sent();
    change(server);
    wait_until(WAIT, "the change's watch event", || {
        server.events_sent() > sent
    });
    std::thread::sleep(WITHIN);
}

fn with_annotations(mut pod: Pod, pairs: &[(&str, &str)]) -> Pod {
    let map: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pod.metadata.annotations = Some(map);
    pod
}

fn with_labels(mut pod: Pod, pairs: &[(&str, &str)]) -> Pod {
    let labels = pod.metadata.labels.get_or_insert_default();
    for (key, value) in pairs {
        labels.insert((*key).to_owned(), (*value).to_owned());
    }
    pod
}

fn annotated_namespace(name: &str, pairs: &[(&str, &str)]) -> Namespace {
    let mut namespace = namespace(name, &[]);
    namespace.metadata.annotations = Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    namespace
}

fn log_file(node: &Node, namespace: &str, pod: &str, first: &str) -> PathBuf {
    node.container_log(namespace, pod, "app", cri(first).as_bytes())
}

fn write(path: &Path, messages: &[String]) {
    let text: String = messages.iter().map(|m| cri(m)).collect();
    append(path, &text);
}

fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix} {i}")).collect()
}

#[test]
fn an_exclude_annotation_on_a_running_pod_stops_its_records_within_a_second_and_removing_it_resumes()
 {
    let server = KubeServer::start();
    server.apply(pod("shop", "noisy", NODE));
    server.apply(pod("shop", "quiet", NODE));
    let node = Node::new();
    let noisy = log_file(&node, "shop", "noisy", "before");
    let quiet = log_file(&node, "shop", "quiet", "quiet 0");
    let mut setup = start(&server, node);
    setup.wait_for("noisy", "before");
    setup.wait_for("quiet", "quiet 0");

    change_and_wait(&server, |server| {
        server.apply(with_annotations(
            pod("shop", "noisy", NODE),
            &[("shiplog.io/exclude", "true")],
        ));
    });
    let excluded = numbered("excluded", 20);
    write(&noisy, &excluded);
    write(&quiet, &["quiet 1".to_owned()]);
    setup.wait_for("quiet", "quiet 1");
    setup.wait_excluded(excluded.len());

    change_and_wait(&server, |server| server.apply(pod("shop", "noisy", NODE)));
    write(&noisy, &["resumed".to_owned()]);
    setup.wait_for("noisy", "resumed");
    setup.stop();

    assert_eq!(
        setup.logs_of("noisy"),
        ["before", "resumed"],
        "nothing written while the pod was excluded is shipped, before and after it is"
    );
}

#[test]
fn a_parser_annotation_added_to_a_running_pod_parses_its_next_lines_and_removing_it_stops() {
    let server = KubeServer::start();
    server.apply(pod("shop", "web", NODE));
    let node = Node::new();
    let web = log_file(&node, "shop", "web", "level=info msg=first");
    let mut setup = start(&server, node);
    let first = setup.wait_for("web", "level=info msg=first");
    assert!(first.get("data").is_none(), "unparsed at first: {first}");

    change_and_wait(&server, |server| {
        server.apply(with_annotations(
            pod("shop", "web", NODE),
            &[("shiplog.io/parser", "logfmt")],
        ));
    });
    write(&web, &["level=warn msg=second".to_owned()]);
    let second = setup.wait_for("web", "level=warn msg=second");
    assert_eq!(second["data"], json!({"level": "warn", "msg": "second"}));

    change_and_wait(&server, |server| server.apply(pod("shop", "web", NODE)));
    write(&web, &["level=info msg=third".to_owned()]);
    let third = setup.wait_for("web", "level=info msg=third");
    setup.stop();
    assert!(
        third.get("data").is_none(),
        "the parser is gone with its annotation: {third}"
    );
    assert!(
        third["kubernetes"]["annotations"].is_null(),
        "the record shows the pod's annotations as they are now: {third}"
    );
}

#[test]
fn a_label_added_to_a_running_pod_shows_in_its_later_records() {
    let server = KubeServer::start();
    server.apply(pod("shop", "web", NODE));
    let node = Node::new();
    let web = log_file(&node, "shop", "web", "first");
    let mut setup = start(&server, node);
    let first = setup.wait_for("web", "first");
    assert_eq!(first["kubernetes"]["labels"], json!({"app": "web"}));

    change_and_wait(&server, |server| {
        server.apply(with_labels(
            pod("shop", "web", NODE),
            &[("team", "payments")],
        ));
    });
    write(&web, &["second".to_owned()]);
    let second = setup.wait_for("web", "second");
    setup.stop();
    assert_eq!(
        second["kubernetes"]["labels"],
        json!({"app": "web", "team": "payments"})
    );
}

#[test]
fn a_namespace_annotated_to_exclude_stops_every_pod_in_it_and_removing_it_resumes_from_where_the_files_are()
 {
    let server = KubeServer::start();
    server.apply_namespace(namespace("batch", &[]));
    server.apply_namespace(namespace("shop", &[]));
    for name in ["job-1", "job-2"] {
        server.apply(pod("batch", name, NODE));
    }
    server.apply(pod("shop", "web", NODE));
    let node = Node::new();
    let jobs = [
        log_file(&node, "batch", "job-1", "before"),
        log_file(&node, "batch", "job-2", "before"),
    ];
    let web = log_file(&node, "shop", "web", "web 0");
    let mut setup = start(&server, node);
    for name in ["job-1", "job-2"] {
        setup.wait_for(name, "before");
    }

    change_and_wait(&server, |server| {
        server.apply_namespace(annotated_namespace(
            "batch",
            &[("shiplog.io/exclude", "true")],
        ));
    });
    let excluded = numbered("excluded", 10);
    for job in &jobs {
        write(job, &excluded);
    }
    write(&web, &["web 1".to_owned()]);
    setup.wait_for("web", "web 1");
    setup.wait_excluded(2 * excluded.len());

    change_and_wait(&server, |server| {
        server.apply_namespace(namespace("batch", &[]));
    });
    for job in &jobs {
        write(job, &["resumed".to_owned()]);
    }
    for name in ["job-1", "job-2"] {
        setup.wait_for(name, "resumed");
    }
    setup.stop();

    for name in ["job-1", "job-2"] {
        assert_eq!(
            setup.logs_of(name),
            ["before", "resumed"],
            "{name}: lines written while its namespace was excluded are not shipped"
        );
    }
    assert_eq!(setup.logs_of("web"), ["web 0", "web 1"]);
    assert_eq!(server.requests(Request::NamespaceWatch), 1);
}

#[test]
fn a_static_pods_lines_before_its_mirror_pod_exists_are_counted_and_said_once_then_full() {
    let server = KubeServer::start();
    let node = Node::new();
    // The kubelet runs a static pod's containers before it creates the mirror pod in the
    // API: the file comes first, and the pod's GET finds nothing.
    let name = format!("etcd-{NODE}");
    let etcd = node.container_log("kube-system", &name, "app", cri("boot 0").as_bytes());
    let mut setup = start(&server, node);
    let first = setup.wait_for(&name, "boot 0");
    assert_eq!(first["kubernetes"]["namespace_name"], "kube-system");
    assert!(first["kubernetes"]["labels"].is_null(), "{first}");
    write(&etcd, &["boot 1".to_owned()]);
    setup.wait_for(&name, "boot 1");
    wait_until(WAIT, "the records without metadata counted", || {
        setup.metric("shiplog_records_without_metadata_total") == 2.0
    });

    let mirror = with_annotations(
        pod("kube-system", &name, NODE),
        &[("kubernetes.io/config.mirror", "0123abcd")],
    );
    change_and_wait(&server, |server| server.apply(mirror));
    write(&etcd, &["ready".to_owned()]);
    let ready = setup.wait_for(&name, "ready");
    assert_eq!(ready["kubernetes"]["labels"]["app"], name.as_str());
    assert_eq!(ready["kubernetes"]["host"], NODE);
    assert_eq!(
        setup.metric("shiplog_records_without_metadata_total"),
        2.0,
        "the records with metadata are not counted"
    );
    let log = setup.log();
    setup.stop();
    let said: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("without their pod's metadata"))
        .collect();
    assert_eq!(said.len(), 1, "once per file: {log}");
    assert!(
        said[0].contains("\"level\":\"INFO\"")
            && said[0].contains(&format!("{name}_kube-system_app-"))
            && said[0].contains("the API has no such pod yet"),
        "the path and the reason: {}",
        said[0]
    );
    assert!(log.contains("the pod is known now"), "{log}");
}
