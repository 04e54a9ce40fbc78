//! A fake Kubernetes API server for end-to-end tests: plain HTTP/1.1 on `127.0.0.1:0`,
//! one thread per connection (`Connection: close`), serving genuine `k8s-openapi` objects
//! as JSON. Reusable by any test that needs an API server.
//!
//! What it serves:
//! - pods: `GET /api/v1/pods` (a list with `resourceVersion`, or with `watch=1` a stream
//!   of ADDED / MODIFIED / DELETED / BOOKMARK events; `fieldSelector=spec.nodeName=` is
//!   honoured) and `GET /api/v1/namespaces/{ns}/pods/{name}`;
//! - namespaces: the same list and watch on `GET /api/v1/namespaces`;
//! - events.k8s.io/v1 events ([`events`]): list and watch on
//!   `GET /apis/events.k8s.io/v1/events` and `GET /apis/events.k8s.io/v1/namespaces/{ns}/events`;
//! - coordination.k8s.io/v1 leases ([`leases`]): `GET`, `POST` (create) and `PUT`
//!   (replace, with optimistic concurrency on `resourceVersion`: 409 Conflict when stale)
//!   under `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases`.
//!
//! Every change takes the next resourceVersion of one global counter. A watch from a
//! resourceVersion older than the history it keeps gets a 410 Gone (`Status`, reason
//! `Expired`) event, as a real API server after compaction ([`KubeServer::compact`]).
//! [`KubeServer::set_down`] simulates an outage (503 to everything, open watches end);
//! requests are counted per [`Request`] kind. Anything else is answered 404.

#![allow(dead_code)] // each test binary uses a different part of this module

mod events;
mod leases;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use serde_json::{Value, json};

#[allow(unused_imports)] // like dead code: not every test binary builds events
pub use events::{event, with_series};

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
    /// `GET /apis/events.k8s.io/v1[/namespaces/{ns}]/events` without `watch`.
    EventList,
    /// `GET /apis/events.k8s.io/v1[/namespaces/{ns}]/events?watch=1`.
    EventWatch,
    /// `GET /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}`.
    LeaseGet,
    /// `POST /apis/coordination.k8s.io/v1/namespaces/{ns}/leases`.
    LeaseCreate,
    /// `PUT /apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}`.
    LeaseUpdate,
    /// Anything else (answered 404).
    Other,
}

impl Request {
    /// What `request` asks for, from its method and path.
    fn of(request: &HttpRequest) -> Request {
        const EVENTS: &str = "events.k8s.io";
        const LEASES: &str = "coordination.k8s.io";
        let watch = request.query.contains_key("watch");
        match (request.method.as_str(), &request.segments()[..]) {
            ("GET", ["", "api", "v1", "pods"]) if watch => Request::Watch,
            ("GET", ["", "api", "v1", "pods"]) => Request::List,
            ("GET", ["", "api", "v1", "namespaces", _, "pods", _]) => Request::Get,
            ("GET", ["", "api", "v1", "namespaces"]) if watch => Request::NamespaceWatch,
            ("GET", ["", "api", "v1", "namespaces"]) => Request::NamespaceList,
            ("GET", ["", "apis", EVENTS, "v1", "events"])
            | ("GET", ["", "apis", EVENTS, "v1", "namespaces", _, "events"])
                if watch =>
            {
                Request::EventWatch
            }
            ("GET", ["", "apis", EVENTS, "v1", "events"])
            | ("GET", ["", "apis", EVENTS, "v1", "namespaces", _, "events"]) => Request::EventList,
            ("GET", ["", "apis", LEASES, "v1", "namespaces", _, "leases", _]) => Request::LeaseGet,
            ("POST", ["", "apis", LEASES, "v1", "namespaces", _, "leases"]) => Request::LeaseCreate,
            ("PUT", ["", "apis", LEASES, "v1", "namespaces", _, "leases", _]) => {
                Request::LeaseUpdate
            }
            _ => Request::Other,
        }
    }
}

/// The kinds of object the server keeps and watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resource {
    Pods,
    Namespaces,
    Events,
}

impl Resource {
    /// The `kind` of one object, as a bookmark carries it.
    fn kind(self) -> &'static str {
        match self {
            Resource::Pods => "Pod",
            Resource::Namespaces => "Namespace",
            Resource::Events => "Event",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Resource::Pods | Resource::Namespaces => "v1",
            Resource::Events => "events.k8s.io/v1",
        }
    }
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
struct Change {
    version: u64,
    kind: &'static str,
    resource: Resource,
    object: Value,
}

#[derive(Debug, Default)]
struct State {
    /// The last resourceVersion handed out.
    version: u64,
    /// Live pods by (namespace, name), each with its resourceVersion set.
    pods: BTreeMap<(String, String), Value>,
    /// Namespaces by name, each with its resourceVersion set.
    namespaces: BTreeMap<String, Value>,
    /// Live events.k8s.io events by (namespace, name), each with its resourceVersion set.
    events: BTreeMap<(String, String), Value>,
    /// Leases by (namespace, name), each with its resourceVersion set (not watched).
    leases: BTreeMap<(String, String), Value>,
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

/// Picks one of the maps of [`State`] (pods, namespaces, events).
type Select<K> = fn(&mut State) -> &mut BTreeMap<K, Value>;

impl State {
    /// Takes the next resourceVersion and sets it on `object`.
    fn stamp(&mut self, object: &mut Value) -> u64 {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.version
    }

    /// Stamps `object`, stores it under `key` in the map `select` picks, and records
    /// the change (ADDED if new, else MODIFIED) for watches.
    fn upsert<K: Ord>(&mut self, resource: Resource, select: Select<K>, key: K, mut object: Value) {
        let version = self.stamp(&mut object);
        let previous = select(self).insert(key, object.clone());
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.history.push(Change {
            version,
            kind,
            resource,
            object,
        });
    }

    /// Removes what is under `key` in the map `select` picks, if anything, and records
    /// a DELETED change carrying a new resourceVersion.
    fn remove<K: Ord>(&mut self, resource: Resource, select: Select<K>, key: &K) {
        let Some(mut object) = select(self).remove(key) else {
            return;
        };
        let version = self.stamp(&mut object);
        self.history.push(Change {
            version,
            kind: "DELETED",
            resource,
            object,
        });
    }
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

    /// Runs `change` on the state under its lock, then wakes the watches.
    fn change(&self, change: impl FnOnce(&mut State)) {
        change(&mut self.shared.state());
        self.shared.changed.notify_all();
    }

    /// Adds or replaces a pod (ADDED or MODIFIED).
    pub fn apply(&self, pod: Pod) {
        let pod = serde_json::to_value(pod).expect("a pod is JSON");
        self.change(|state| state.upsert(Resource::Pods, |s| &mut s.pods, key_of(&pod), pod));
    }

    /// Adds or replaces a namespace (ADDED or MODIFIED).
    pub fn apply_namespace(&self, namespace: Namespace) {
        let object = serde_json::to_value(namespace).expect("a namespace is JSON");
        let name = key_of(&object).1;
        self.change(|state| {
            state.upsert(Resource::Namespaces, |s| &mut s.namespaces, name, object)
        });
    }

    /// Deletes a pod (DELETED).
    pub fn delete(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.change(|state| state.remove(Resource::Pods, |s| &mut s.pods, &key));
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

    /// Answers one request on its own connection.
    fn serve(&self, stream: TcpStream) {
        let Some(request) = read_request(&stream) else {
            return;
        };
        let kind = Request::of(&request);
        let down = {
            let mut state = self.shared.state();
            *state.requests.entry(kind).or_default() += 1;
            state.down
        };
        if down {
            let status = status(503, "ServiceUnavailable", "the fake API server is down");
            return respond(stream, 503, &status);
        }
        let query = &request.query;
        let segments = request.segments();
        // Namespaced paths are `/api[s]/../namespaces/{ns}/...`: the namespace is the
        // segment after "namespaces"; the cluster-wide event path has none.
        let namespace = segments
            .iter()
            .position(|s| *s == "namespaces")
            .and_then(|i| segments.get(i + 1).copied());
        let name = segments.last().copied().unwrap_or_default();
        match kind {
            Request::List => self.list(stream, query),
            Request::Watch => self.watch(stream, query, Resource::Pods, None),
            Request::NamespaceList => self.list_namespaces(stream),
            Request::NamespaceWatch => self.watch(stream, query, Resource::Namespaces, None),
            Request::Get => self.get(stream, segments[4], segments[6]),
            Request::EventList => self.list_events(stream, namespace),
            Request::EventWatch => self.watch(stream, query, Resource::Events, namespace),
            Request::LeaseGet => self.get_lease(stream, segments[5], name),
            Request::LeaseCreate => self.create_lease(stream, segments[5], &request.body),
            Request::LeaseUpdate => self.update_lease(stream, segments[5], name, &request.body),
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

    /// Streams changes of `resource` (in `namespace` if given) after the asked
    /// resourceVersion until the client's timeout, an outage, or a closed socket; a
    /// bookmark every second when asked for.
    fn watch(
        &self,
        mut stream: TcpStream,
        query: &BTreeMap<String, String>,
        resource: Resource,
        namespace: Option<&str>,
    ) {
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
        let filter = Filter {
            resource,
            namespace: namespace.map(str::to_owned),
            node: node_of(query).map(str::to_owned),
        };
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
                .filter(|change| filter.matches(change))
                .cloned()
                .collect();
            let newest = if state.held { sent } else { state.version };
            drop(state);
            for change in &changes {
                let event = json!({"type": change.kind, "object": change.object});
                if !chunk(&mut stream, &event) {
                    return;
                }
            }
            sent = newest;
            let mut relock = self.shared.state();
            relock.events_sent += changes.len();
            if changes.is_empty() && bookmarks && !relock.held {
                let bookmark = json!({"type": "BOOKMARK", "object": {
                    "kind": resource.kind(), "apiVersion": resource.api_version(),
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

/// Which changes one watch sends.
struct Filter {
    resource: Resource,
    /// Only objects in this namespace (namespaced watches).
    namespace: Option<String>,
    /// Only objects with this `spec.nodeName` (`fieldSelector=spec.nodeName=...`).
    node: Option<String>,
}

impl Filter {
    fn matches(&self, change: &Change) -> bool {
        let object = &change.object;
        change.resource == self.resource
            && (self.namespace.as_deref()).is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && (self.node.as_deref()).is_none_or(|n| object["spec"]["nodeName"] == n)
    }
}

/// One HTTP request: its method, path, decoded query and body.
#[derive(Debug)]
struct HttpRequest {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl HttpRequest {
    /// The path split at `/`; the first segment is the empty one before the leading `/`.
    fn segments(&self) -> Vec<&str> {
        self.path.split('/').collect()
    }
}

/// An object's (namespace, name).
fn key_of(object: &Value) -> (String, String) {
    let name = |field: &str| {
        object["metadata"][field]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (name("namespace"), name("name"))
}

fn node_of(query: &BTreeMap<String, String>) -> Option<&str> {
    query.get("fieldSelector")?.strip_prefix("spec.nodeName=")
}

/// A failure `Status`, as an API server answers errors.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// Reads one request: its head, then a body of `Content-Length` bytes if announced
/// (kube-rs sends its JSON bodies so; a chunked body is not supported).
fn read_request(stream: &TcpStream) -> Option<HttpRequest> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let target = words.next()?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), decode(v)))
        .collect();
    Some(HttpRequest {
        method,
        path: path.to_owned(),
        query,
        body,
    })
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

/// Writes a whole JSON response with status `code`.
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
