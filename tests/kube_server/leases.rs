//! coordination.k8s.io/v1 leases, by (namespace, name), for leader election: `GET`,
//! `POST` (create) and `PUT` (replace) under
//! `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases`. A replace must carry the stored
//! resourceVersion, else it is refused with 409 Conflict, as a real API server does.
//! Leases take their resourceVersion from the global counter but are not watched.

use std::net::TcpStream;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::{KubeServer, State, key_of, respond, status};

/// A failed request's answer: a status code and a `Status` body.
type Failure = (u16, Value);

impl KubeServer {
    /// The stored lease `namespace/name`, if any.
    pub fn lease(&self, namespace: &str, name: &str) -> Option<Lease> {
        let state = self.shared.state();
        let lease = state.leases.get(&(namespace.into(), name.into()))?;
        Some(serde_json::from_value(lease.clone()).expect("a stored lease is a Lease"))
    }

    /// Stores `lease` as is (under its metadata's namespace and name) with a new
    /// resourceVersion, e.g. to preset another holder.
    pub fn set_lease(&self, lease: Lease) {
        let mut lease = serde_json::to_value(lease).expect("a lease is JSON");
        let mut state = self.shared.state();
        state.stamp(&mut lease);
        state.leases.insert(key_of(&lease), lease);
    }

    /// Answers `GET .../namespaces/{namespace}/leases/{name}`: the lease or 404.
    pub(super) fn get_lease(&self, stream: TcpStream, namespace: &str, name: &str) {
        let lease = (self.shared.state().leases)
            .get(&(namespace.into(), name.into()))
            .cloned();
        match lease {
            Some(lease) => respond(stream, 200, &lease),
            None => answer(stream, Err(not_found(name))),
        }
    }

    /// Answers `POST .../namespaces/{namespace}/leases`: 201 and the stored lease, or
    /// 409 AlreadyExists.
    pub(super) fn create_lease(&self, stream: TcpStream, namespace: &str, body: &[u8]) {
        let created = create(&mut self.shared.state(), namespace, body);
        answer(stream, created.map(|lease| (201, lease)));
    }

    /// Answers `PUT .../namespaces/{namespace}/leases/{name}`: 200 and the stored lease,
    /// 404 if there is none, or 409 Conflict if the body's resourceVersion is not the
    /// stored one.
    pub(super) fn update_lease(&self, stream: TcpStream, namespace: &str, name: &str, body: &[u8]) {
        let updated = update(&mut self.shared.state(), namespace, name, body);
        answer(stream, updated.map(|lease| (200, lease)));
    }
}

/// Stores a new lease from a create `body`.
fn create(state: &mut State, namespace: &str, body: &[u8]) -> Result<Value, Failure> {
    let mut lease = parse(body, namespace)?;
    let name = key_of(&lease).1;
    if name.is_empty() {
        let message = "Lease.coordination.k8s.io \"\" is invalid: metadata.name: Required value: \
                       name or generateName is required";
        return Err((422, status(422, "Invalid", message)));
    }
    let version = lease["metadata"]["resourceVersion"].as_str();
    if version.is_some_and(|version| !version.is_empty()) {
        // What etcd3's store answers, as a plain (reason-less) internal error.
        let message = "resourceVersion should not be set on objects to be created";
        return Err((500, status(500, "", message)));
    }
    let key = (namespace.to_owned(), name.clone());
    if state.leases.contains_key(&key) {
        let message = format!("leases.coordination.k8s.io \"{name}\" already exists");
        return Err((409, lease_status(409, "AlreadyExists", &name, &message)));
    }
    let metadata = &mut lease["metadata"];
    metadata["uid"] = json!(format!("uid-lease-{name}"));
    metadata["creationTimestamp"] = serde_json::to_value(Time(Timestamp::now())).expect("JSON");
    state.stamp(&mut lease);
    state.leases.insert(key, lease.clone());
    Ok(lease)
}

/// Replaces the lease `namespace/name` with an update `body` carrying its resourceVersion.
fn update(state: &mut State, namespace: &str, name: &str, body: &[u8]) -> Result<Value, Failure> {
    let mut lease = parse(body, namespace)?;
    let named = key_of(&lease).1;
    if named != name {
        let message =
            format!("the name of the object ({named}) does not match the name on the URL ({name})");
        return Err((400, status(400, "BadRequest", &message)));
    }
    let key = (namespace.to_owned(), name.to_owned());
    let Some(stored) = state.leases.get(&key) else {
        return Err(not_found(name));
    };
    let sent = &lease["metadata"]["resourceVersion"];
    if sent.is_null() || *sent != stored["metadata"]["resourceVersion"] {
        let message = format!(
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object \
             has been modified; please apply your changes to the latest version and try again"
        );
        return Err((409, lease_status(409, "Conflict", name, &message)));
    }
    // What the server owns stays as stored.
    let metadata = lease["metadata"]
        .as_object_mut()
        .expect("metadata is an object");
    for field in ["uid", "creationTimestamp"] {
        match stored["metadata"].get(field) {
            Some(value) => metadata.insert(field.to_owned(), value.clone()),
            None => metadata.remove(field),
        };
    }
    state.stamp(&mut lease);
    state.leases.insert(key, lease.clone());
    Ok(lease)
}

/// A request body as a Lease in `namespace` (set if the body has none), or 400.
fn parse(body: &[u8], namespace: &str) -> Result<Value, Failure> {
    let bad = |message: &str| (400, status(400, "BadRequest", message));
    let lease: Lease =
        serde_json::from_slice(body).map_err(|e| bad(&format!("not a Lease: {e}")))?;
    let mut lease = serde_json::to_value(lease).expect("a lease is JSON");
    match lease["metadata"]["namespace"].as_str() {
        None => lease["metadata"]["namespace"] = json!(namespace),
        Some(ns) if ns == namespace => {}
        Some(_) => {
            let message = "the namespace of the provided object does not match the namespace \
                           sent on the request";
            return Err(bad(message));
        }
    }
    Ok(lease)
}

/// 404 for the lease `name`.
fn not_found(name: &str) -> Failure {
    let message = format!("leases.coordination.k8s.io \"{name}\" not found");
    (404, lease_status(404, "NotFound", name, &message))
}

/// A failure `Status` about the lease `name`, with the details a real server gives.
fn lease_status(code: u16, reason: &str, name: &str, message: &str) -> Value {
    let mut status = status(code, reason, message);
    status["details"] = json!({"name": name, "group": "coordination.k8s.io", "kind": "leases"});
    status
}

/// Writes a success `(code, lease)` or a failure `(code, status)`.
fn answer(stream: TcpStream, result: Result<(u16, Value), Failure>) {
    let (code, body) = result.unwrap_or_else(|failure| failure);
    respond(stream, code, &body);
}
