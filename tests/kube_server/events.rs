//! events.k8s.io/v1 events: kept like pods, by (namespace, name), each change recorded
//! for watches. Listed and watched on `GET /apis/events.k8s.io/v1/events` (all
//! namespaces) and `GET /apis/events.k8s.io/v1/namespaces/{ns}/events`.

use std::net::TcpStream;

use k8s_openapi::api::events::v1::Event;
use serde_json::{Value, json};

use super::{KubeServer, Resource, key_of, respond};

impl KubeServer {
    /// Adds or replaces an event (ADDED or MODIFIED).
    pub fn apply_event(&self, event: Event) {
        let event = serde_json::to_value(event).expect("an event is JSON");
        let key = key_of(&event);
        self.change(|state| state.upsert(Resource::Events, |s| &mut s.events, key, event));
    }

    /// Deletes an event (DELETED); nothing if there is none.
    pub fn delete_event(&self, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.change(|state| state.remove(Resource::Events, |s| &mut s.events, &key));
    }

    /// Answers an `EventList` of every namespace, or of `namespace` only.
    pub(super) fn list_events(&self, stream: TcpStream, namespace: Option<&str>) {
        let state = self.shared.state();
        let items: Vec<&Value> = state
            .events
            .iter()
            .filter(|((ns, _), _)| namespace.is_none_or(|namespace| ns == namespace))
            .map(|(_, event)| event)
            .collect();
        let list = json!({"kind": "EventList", "apiVersion": "events.k8s.io/v1",
                          "metadata": {"resourceVersion": state.version.to_string()},
                          "items": items});
        drop(state);
        respond(stream, 200, &list);
    }
}

/// A `Normal` event about the pod `web-1` in `namespace`, as the kubelet on `node-a`
/// reports one.
pub fn event(namespace: &str, name: &str, reason: &str, note: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-event-{name}")},
        "eventTime": "2026-12-02T10:00:00.000000Z",
        "reason": reason,
        "note": note,
        "type": "Normal",
        "action": "Started",
        "regarding": {"kind": "Pod", "apiVersion": "v1", "namespace": namespace,
                      "name": "web-1", "uid": "uid-web-1"},
        "reportingController": "kubelet",
        "reportingInstance": "node-a"
    }))
    .expect("a valid Event")
}

/// `event` seen `count` times, last at `last` (a MicroTime such as
/// `2026-12-02T10:05:00.000000Z`).
pub fn with_series(event: Event, count: i32, last: &str) -> Event {
    let mut event = serde_json::to_value(event).expect("an event is JSON");
    event["series"] = json!({"count": count, "lastObservedTime": last});
    serde_json::from_value(event).expect("a valid Event with a series")
}
