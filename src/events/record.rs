//! A Kubernetes event as a shiplog record (pure): when it was last seen, and its JSON.
//!
//! ```json
//! {"time": "2026-12-02T10:00:05.000000000Z", "log": "Started container app",
//!  "event": {"namespace": "shop", "name": "web-1.17f3", "uid": "...", "reason": "Started",
//!            "type": "Normal", "action": "Started",
//!            "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "...",
//!                          "field_path": "spec.containers{app}"},
//!            "reporting_controller": "kubelet", "reporting_instance": "node-a",
//!            "count": 3, "first_seen": "...", "last_seen": "..."},
//!  "topic": "k8s-events", "cluster": "prod-eu"}
//! ```
//!
//! `event.related` appears when the event names a second object; absent fields are left
//! out. Tags from `[events.tags]` are top-level fields.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use serde_json::{Map, Value, json};

/// When the event last happened: its series' last observation, else the deprecated
/// `lastTimestamp` older clients set, else its `eventTime`, else when it was created.
pub fn last_seen(event: &Event) -> Option<Timestamp> {
    event
        .series
        .as_ref()
        .map(|series| series.last_observed_time.0)
        .or_else(|| event.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// When it first happened: `eventTime`, else the deprecated `firstTimestamp`, else its
/// creation.
fn first_seen(event: &Event) -> Option<Timestamp> {
    event
        .event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.deprecated_first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// How many times it happened: the series' count, else the deprecated count, else once.
fn count(event: &Event) -> i32 {
    event
        .series
        .as_ref()
        .map(|series| series.count)
        .or(event.deprecated_count)
        .unwrap_or(1)
}

/// RFC 3339 with nanoseconds, as records' `time` is everywhere.
pub fn rfc3339_nanos(time: Timestamp) -> String {
    format!(
        "{}.{:09}Z",
        time.strftime("%Y-%m-%dT%H:%M:%S"),
        time.subsec_nanosecond()
    )
}

/// The record for `event`, one JSON object without a newline.
pub fn render(event: &Event, topic: &str, tags: &BTreeMap<String, String>) -> Vec<u8> {
    let meta = &event.metadata;
    let mut fields = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(key.to_owned(), value);
        }
    };
    let text = |value: &Option<String>| value.as_ref().map(|v| json!(v));
    let time = |value: Option<Timestamp>| value.map(|t| json!(rfc3339_nanos(t)));
    put("namespace", text(&meta.namespace));
    put("name", text(&meta.name));
    put("uid", text(&meta.uid));
    put("reason", text(&event.reason));
    put("type", text(&event.type_));
    put("action", text(&event.action));
    put("regarding", event.regarding.as_ref().map(reference));
    put("related", event.related.as_ref().map(reference));
    let reporting_controller = event.reporting_controller.clone().or_else(|| {
        let source = event.deprecated_source.as_ref()?;
        source.component.clone()
    });
    put("reporting_controller", text(&reporting_controller));
    put("reporting_instance", text(&event.reporting_instance));
    put("count", Some(json!(count(event))));
    put("first_seen", time(first_seen(event)));
    put("last_seen", time(last_seen(event)));

    let mut record = Map::new();
    let seen = last_seen(event).unwrap_or_else(Timestamp::now);
    record.insert("time".to_owned(), json!(rfc3339_nanos(seen)));
    record.insert(
        "log".to_owned(),
        json!(event.note.as_deref().unwrap_or_default()),
    );
    record.insert("event".to_owned(), Value::Object(fields));
    record.insert("topic".to_owned(), json!(topic));
    for (name, value) in tags {
        record.insert(name.clone(), json!(value));
    }
    // A map of strings and numbers always serializes.
    serde_json::to_vec(&Value::Object(record)).unwrap_or_default()
}

fn reference(object: &ObjectReference) -> Value {
    let mut fields = Map::new();
    let pairs = [
        ("kind", &object.kind),
        ("namespace", &object.namespace),
        ("name", &object.name),
        ("uid", &object.uid),
        ("field_path", &object.field_path),
    ];
    for (key, value) in pairs {
        if let Some(value) = value {
            fields.insert(key.to_owned(), json!(value));
        }
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(extra: Value) -> Event {
        let mut object = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web-1.17f3", "namespace": "shop", "uid": "u-1",
                         "creationTimestamp": "2026-12-02T10:00:00Z"},
            "eventTime": "2026-12-02T10:00:00.250000Z",
            "reason": "BackOff", "note": "Back-off restarting failed container app",
            "type": "Warning", "action": "Restarting",
            "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "p-1",
                          "fieldPath": "spec.containers{app}"},
            "reportingController": "kubelet", "reportingInstance": "node-a"
        });
        if let (Some(object), Value::Object(extra)) = (object.as_object_mut(), extra) {
            object.extend(extra);
        }
        serde_json::from_value(object).expect("a valid Event")
    }

    fn rendered(event: &Event) -> Value {
        let tags = BTreeMap::from([("cluster".to_owned(), "prod-eu".to_owned())]);
        serde_json::from_slice(&render(event, "k8s-events", &tags)).expect("JSON")
    }

    #[test]
    fn an_event_becomes_a_record_with_its_note_as_log_and_its_fields_under_event() {
        let record = rendered(&event(json!({})));
        assert_eq!(
            record,
            json!({
                "time": "2026-12-02T10:00:00.250000000Z",
                "log": "Back-off restarting failed container app",
                "event": {
                    "namespace": "shop", "name": "web-1.17f3", "uid": "u-1",
                    "reason": "BackOff", "type": "Warning", "action": "Restarting",
                    "regarding": {"kind": "Pod", "namespace": "shop", "name": "web-1",
                                  "uid": "p-1", "field_path": "spec.containers{app}"},
                    "reporting_controller": "kubelet", "reporting_instance": "node-a",
                    "count": 1,
                    "first_seen": "2026-12-02T10:00:00.250000000Z",
                    "last_seen": "2026-12-02T10:00:00.250000000Z"
                },
                "topic": "k8s-events",
                "cluster": "prod-eu"
            })
        );
    }

    #[test]
    fn a_series_gives_the_count_and_the_last_time_it_was_seen() {
        let repeated = event(json!({"series": {"count": 7,
            "lastObservedTime": "2026-12-02T10:04:00.000001Z"}}));
        let record = rendered(&repeated);
        assert_eq!(record["event"]["count"], 7);
        assert_eq!(record["time"], "2026-12-02T10:04:00.000001000Z");
        assert_eq!(
            record["event"]["first_seen"],
            "2026-12-02T10:00:00.250000000Z"
        );
    }

    #[test]
    fn an_event_from_an_old_client_uses_the_deprecated_fields() {
        let mut old = event(json!({"deprecatedCount": 3,
            "deprecatedFirstTimestamp": "2026-12-02T09:00:00Z",
            "deprecatedLastTimestamp": "2026-12-02T09:30:00Z",
            "deprecatedSource": {"component": "kube-scheduler"}}));
        old.event_time = None;
        old.reporting_controller = None;
        let record = rendered(&old);
        assert_eq!(record["event"]["count"], 3);
        assert_eq!(
            record["event"]["first_seen"],
            "2026-12-02T09:00:00.000000000Z"
        );
        assert_eq!(record["time"], "2026-12-02T09:30:00.000000000Z");
        assert_eq!(record["event"]["reporting_controller"], "kube-scheduler");
    }

    #[test]
    fn a_bare_event_still_renders_with_what_it_has() {
        let bare: Event =
            serde_json::from_value(json!({"metadata": {"name": "x"}})).expect("a valid Event");
        let record: Value =
            serde_json::from_slice(&render(&bare, "t", &BTreeMap::new())).expect("JSON");
        assert_eq!(record["log"], "");
        assert_eq!(record["event"], json!({"name": "x", "count": 1}));
        assert!(record["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
