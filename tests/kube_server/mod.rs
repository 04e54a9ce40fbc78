//! A fake Kubernetes API server for end-to-end tests: plain HTTP/1.1 on `127.0.0.1:0`,
//! one thread per connection, serving genuine `k8s-openapi` pods.
//!
//! It answers what a pod watcher asks: `GET /api/v1/pods` (a list with `resourceVersion`,
//! or with `watch=1` a stream of ADDED / MODIFIED / DELETED / BOOKMARK events), `GET
//! /api/v1/namespaces/{ns}/pods/{name}`; the same list and watch of namespaces on `GET
//! /api/v1/namespaces`; and a watch from a resourceVersion older than the
//! history it keeps gets a 410 Gone (`Status`, reason `Expired`) event, as a real API
//! server after compaction. [`KubeServer::set_down`] simulates an outage; requests are
//! counted per kind. Reusable by any test that needs an API server.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};

/// Kinds of request the server counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Request {
    /// `GET /api/v1/pods` without `watch`.
    List,
    /// `GET /api/v1/pods?watch=1`.
    Watch,
    /// `GET /api/v1/namespaces/{ns}/pods/{name}`.
    Get,
    /// `GET /api/v1/namespaces` without `watch`.
    NamespaceList,
    /// `GET /api/v1/namespaces?watch=1`.
    NamespaceWatch,
    /// Anything else (answered 404).
    Other,
}

/// The kinds of object the server keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Pods,
    Namespaces,
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    kind: &'static str,
    resource: Resource,
    pod: Value,
}

#[derive(Debug, Default)]
struct State {
    /// The last resourceVersion handed out.
    version: u64,
    /// Live pods by (namespace, name), each with its resourceVersion set.
    pods: BTreeMap<(String, String), Value>,
    /// Namespaces by name, each with its resourceVersion set.
    namespaces: BTreeMap<String, Value>,
    /// Changes after `oldest - 1`, in order; a watch from before that gets 410.
    history: Vec<Change>,
    oldest: u64,
    down: bool,
    /// Watches deliver nothing new while set (their events are late, not lost).
    held: bool,
    requests: BTreeMap<Request, usize>,
    /// Watch events written to sockets.
    events_sent: usize,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fake API server; it stops with the test process.
#[derive(Debug, Clone)]
pub struct KubeServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl KubeServer {
    /// Starts a server on a free port.
    pub fn start() -> KubeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared::default());
        shared.state().oldest = 1;
        let server = KubeServer { addr, shared };
        let accepting = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = accepting.clone();
                std::thread::spawn(move || handler.serve(stream));
            }
        });
        server
    }

    /// A kubeconfig pointing at this server, written to `path`.
    pub fn kubeconfig(&self, path: &Path) -> PathBuf {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user:\n    token: test\n",
            self.addr
        );
        std::fs::write(path, text).expect("write kubeconfig");
        path.to_owned()
    }

    /// Adds or replaces a pod (ADDED or MODIFIED).
    pub fn apply(&self, pod: Pod) {
        let mut state = self.shared.state();
        let mut pod = serde_json::to_value(pod).expect("a pod is JSON");
        state.version += 1;
        let version = state.version;
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
        let key = key_of(&pod);
        let kind = if state.pods.contains_key(&key) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.pods.insert(key, pod.clone());
        let resource = Resource::Pods;
        state.history.push(Change {
            version,
            kind,
            resource,
            pod,
        });
        self.shared.changed.notify_all();
    }

    /// Adds or replaces a namespace (ADDED or MODIFIED).
    pub fn apply_namespace(&self, namespace: Namespace) {
        let mut state = self.shared.state();
        let mut object = serde_json::to_value(namespace).expect("a namespace is JSON");
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let name = key_of(&object).1;
        let kind = if state.namespaces.contains_key(&name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        state.namespaces.insert(name, object.clone());
        state.history.push(Change {
            version,
            kind,
            resource: Resource::Namespaces,
            pod: object,
        });
        self.shared.changed.notify_all();
    }

    /// Deletes a pod (DELETED).
    pub fn delete(&self, namespace: &str, name: &str) {
        let mut state = self.shared.state();
        let Some(mut pod) = state.pods.remove(&(namespace.into(), name.into())) else {
            return;
        };
        state.version += 1;
        let version = state.version;
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
        state.history.push(Change {
            version,
            kind: "DELETED",
            resource: Resource::Pods,
            pod,
        });
        self.shared.changed.notify_all();
    }

    /// Forgets the change history, as etcd compaction does: a watch resuming from an
    /// older resourceVersion gets 410 Gone and must relist.
    pub fn compact(&self) {
        let mut state = self.shared.state();
        state.history.clear();
        state.oldest = state.version + 1;
    }

    /// Down: every request is refused with 503 and open watch streams end. Up: back.
    pub fn set_down(&self, down: bool) {
        self.shared.state().down = down;
        self.shared.changed.notify_all();
    }

    /// Held: open watches deliver no events (a slow watch); released: they catch up.
    pub fn hold_watch(&self, held: bool) {
        self.shared.state().held = held;
        self.shared.changed.notify_all();
    }

    /// How many requests of `kind` arrived.
    pub fn requests(&self, kind: Request) -> usize {
        self.shared
            .state()
            .requests
            .get(&kind)
            .copied()
            .unwrap_or(0)
    }

    /// How many watch events (bookmarks excluded) were written to clients.
    pub fn events_sent(&self) -> usize {
        self.shared.state().events_sent
    }

    /// The newest resourceVersion.
    pub fn version(&self) -> u64 {
        self.shared.state().version
    }

    fn serve(&self, stream: TcpStream) {
        let Some((path, query)) = read_request(&stream) else {
            return;
        };
        let kind = match path.split('/').collect::<Vec<_>>()[..] {
            ["", "api", "v1", "pods"] if query.contains_key("watch") => Request::Watch,
            ["", "api", "v1", "pods"] => Request::List,
            ["", "api", "v1", "namespaces", _, "pods", _] => Request::Get,
            ["", "api", "v1", "namespaces"] if query.contains_key("watch") => {
                Request::NamespaceWatch
            }
            ["", "api", "v1", "namespaces"] => Request::NamespaceList,
            _ => Request::Other,
        };
        let down = {
            let mut state = self.shared.state();
            *state.requests.entry(kind).or_default() += 1;
            state.down
        };
        if down {
            let status = status(503, "ServiceUnavailable", "the fake API server is down");
            return respond(stream, 503, &status);
        }
        match kind {
            Request::List => self.list(stream, &query),
            Request::Watch => self.watch(stream, &query, Resource::Pods),
            Request::NamespaceList => self.list_namespaces(stream),
            Request::NamespaceWatch => self.watch(stream, &query, Resource::Namespaces),
            Request::Get => {
                let parts: Vec<&str> = path.split('/').collect();
                self.get(stream, parts[4], parts[6]);
            }
            Request::Other => respond(stream, 404, &status(404, "NotFound", "no such path")),
        }
    }

    fn list(&self, stream: TcpStream, query: &BTreeMap<String, String>) {
        let state = self.shared.state();
        let node = node_of(query);
        let items: Vec<&Value> = state
            .pods
            .values()
            .filter(|pod| node.is_none_or(|node| pod["spec"]["nodeName"] == node))
            .collect();
        let list = json!({"kind": "PodList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": state.version.to_string()},
                          "items": items});
        drop(state);
        respond(stream, 200, &list);
    }

    fn list_namespaces(&self, stream: TcpStream) {
        let state = self.shared.state();
        let items: Vec<&Value> = state.namespaces.values().collect();
        let list = json!({"kind": "NamespaceList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": state.version.to_string()},
                          "items": items});
        drop(state);
        respond(stream, 200, &list);
    }

    fn get(&self, stream: TcpStream, namespace: &str, name: &str) {
        let pod = self
            .shared
            .state()
            .pods
            .get(&(namespace.into(), name.into()))
            .cloned();
        match pod {
            Some(pod) => respond(stream, 200, &pod),
            None => respond(stream, 404, &status(404, "NotFound", "pod not found")),
        }
    }

    /// Streams changes after the asked resourceVersion until the client's timeout, an
    /// outage, or a closed socket; a bookmark every second when asked for.
    fn watch(&self, mut stream: TcpStream, query: &BTreeMap<String, String>, resource: Resource) {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                    Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        if stream.write_all(head.as_bytes()).is_err() {
            return;
        }
        let from: u64 = query
            .get("resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bookmarks = query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true");
        let node = node_of(query).map(str::to_owned);
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(290), Duration::from_secs);
        let end = Instant::now() + timeout;
        let mut sent = from;
        if from + 1 < self.shared.state().oldest {
            let gone = status(410, "Expired", "too old resource version");
            chunk(&mut stream, &json!({"type": "ERROR", "object": gone}));
            return finish(stream);
        }
        let mut state = self.shared.state();
        while Instant::now() < end && !state.down {
            let changes: Vec<Change> = state
                .history
                .iter()
                .filter(|change| change.version > sent && !state.held)
                .filter(|change| change.resource == resource)
                .filter(|c| {
                    node.as_deref()
                        .is_none_or(|n| c.pod["spec"]["nodeName"] == n)
                })
                .cloned()
                .collect();
            let newest = if state.held { sent } else { state.version };
            drop(state);
            for change in &changes {
                let event = json!({"type": change.kind, "object": change.pod});
                if !chunk(&mut stream, &event) {
                    return;
                }
            }
            sent = newest;
            let mut relock = self.shared.state();
            relock.events_sent += changes.len();
            if changes.is_empty() && bookmarks && !relock.held {
                let kind = match resource {
                    Resource::Pods => "Pod",
                    Resource::Namespaces => "Namespace",
                };
                let bookmark = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": "v1",
                    "metadata": {"resourceVersion": newest.to_string()}}});
                drop(relock);
                if !chunk(&mut stream, &bookmark) {
                    return;
                }
                relock = self.shared.state();
            }
            let wait = Duration::from_secs(1);
            state = match self.shared.changed.wait_timeout(relock, wait) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(state);
        finish(stream);
    }
}

fn key_of(pod: &Value) -> (String, String) {
    let name = |field: &str| {
        pod["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (name("namespace"), name("name"))
}

fn node_of(query: &BTreeMap<String, String>) -> Option<&str> {
    query.get("fieldSelector")?.strip_prefix("spec.nodeName=")
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// Reads a request head; returns its path and decoded query.
fn read_request(stream: &TcpStream) -> Option<(String, BTreeMap<String, String>)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let target = line.split_whitespace().nth(1)?.to_owned();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect();
    Some((path.to_owned(), query))
}

/// Percent-decoding, enough for field selectors.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(mut stream: TcpStream, code: u16, body: &Value) {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The client may have gone; nothing to do about it.
    stream.write_all(head.as_bytes()).ok();
    stream.write_all(body.as_bytes()).ok();
}

/// Writes one event as a chunk; false when the client is gone.
fn chunk(stream: &mut TcpStream, event: &Value) -> bool {
    let line = format!("{event}\n");
    let framed = format!("{:x}\r\n{line}\r\n", line.len());
    stream.write_all(framed.as_bytes()).is_ok()
}

fn finish(mut stream: TcpStream) {
    stream.write_all(b"0\r\n\r\n").ok();
}

/// A namespace with `labels`.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": format!("uid-ns-{name}"), "labels": labels}}))
    .expect("a valid Namespace")
}

/// A pod on `node` with one container `app`, labelled `app=<name>`.
pub fn pod(namespace: &str, name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}"),
                     "labels": {"app": name},
                     "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox:1.36"}]},
        "status": {"containerStatuses": [{"name": "app", "image": "docker.io/library/busybox:1.36",
            "imageID": "docker.io/library/busybox@sha256:feed", "containerID": "containerd://abc",
            "ready": true, "restartCount": 0}]}
    }))
    .expect("a valid Pod")
}
