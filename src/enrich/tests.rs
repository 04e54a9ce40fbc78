use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::decode::Stream;

fn enricher(merge_log: bool, keep_log: bool, topic: &str) -> Enricher {
    Enricher::new(EnrichSettings {
        merge_log,
        merge_log_key: "data".into(),
        keep_log,
        fragment: FragmentOptions {
            labels: true,
            annotations: true,
        },
        topic: Template::compile(topic).expect("valid template"),
        default_topic: "unknown".into(),
    })
}

fn info() -> LogFileInfo {
    LogFileInfo {
        namespace: "shop".into(),
        pod_name: "web-1".into(),
        container_name: "app".into(),
        container_id: Some("c0ffee".into()),
        pod_uid: None,
    }
}

fn pod() -> PodMeta {
    PodMeta {
        namespace: "shop".into(),
        name: "web-1".into(),
        labels: BTreeMap::from([("team".to_owned(), "payments".to_owned())]),
        ..PodMeta::default()
    }
}

fn message(bytes: &[u8]) -> Message<'_> {
    Message {
        time: Cow::Borrowed("2026-11-25T09:00:00.000000001Z"),
        stream: Stream::Stderr,
        bytes: Cow::Borrowed(bytes),
        truncated: false,
        partial: false,
    }
}

fn render(enricher: &Enricher, bytes: &[u8]) -> Value {
    let context = enricher.context(Some(&info()), Some(&pod()));
    let mut out = Vec::new();
    enricher.render(&context, &message(bytes), &mut out);
    serde_json::from_slice(&out).expect("record is JSON")
}

#[test]
fn json_object_payloads_merge_under_data_and_others_stay_in_log() {
    let enricher = enricher(true, true, "{namespace}");
    let cases: [(&str, Option<Value>); 6] = [
        (
            r#"{"level":"info","n":1}"#,
            Some(json!({"level": "info", "n": 1})),
        ),
        ("   {\"padded\": true}  ", Some(json!({"padded": true}))),
        ("[1,2,3]", None),
        ("17", None),
        ("{\"broken\": ", None),
        ("plain text", None),
    ];
    for (payload, data) in cases {
        let record = render(&enricher, payload.as_bytes());
        assert_eq!(record["log"], payload, "log keeps the line as written");
        assert_eq!(record.get("data"), data.as_ref(), "{payload}");
    }
}

#[test]
fn merge_can_be_turned_off_and_log_dropped_after_a_merge() {
    let payload = br#"{"a":1}"#;
    assert!(
        render(&enricher(false, true, "{namespace}"), payload)
            .get("data")
            .is_none()
    );
    let dropped = render(&enricher(true, false, "{namespace}"), payload);
    assert!(dropped.get("log").is_none());
    assert_eq!(dropped["data"], json!({"a": 1}));
}

#[test]
fn a_record_carries_time_stream_kubernetes_and_topic() {
    let record = render(&enricher(true, true, "{namespace}"), b"hello");
    assert_eq!(record["time"], "2026-11-25T09:00:00.000000001Z");
    assert_eq!(record["stream"], "stderr");
    assert_eq!(record["kubernetes"]["pod_name"], "web-1");
    assert_eq!(record["kubernetes"]["labels"]["team"], "payments");
    assert_eq!(record["topic"], "shop");
}

#[test]
fn topics_come_from_the_template_or_fall_back_to_the_default() {
    let by_label = enricher(true, true, "logs-{label.team}");
    assert_eq!(
        &*by_label.context(Some(&info()), Some(&pod())).topic,
        "logs-payments"
    );
    assert_eq!(&*by_label.context(Some(&info()), None).topic, "unknown");
    let plain = enricher(true, true, "{namespace}");
    let unnamed = plain.context(None, None);
    assert_eq!((&*unnamed.topic, unnamed.kubernetes), ("unknown", None));
}

#[test]
fn invalid_utf8_is_replaced_and_flagged() {
    let record = render(&enricher(true, true, "{namespace}"), b"caf\xe9 ok");
    assert_eq!(record["log"], "caf\u{fffd} ok");
    assert_eq!(record["invalid_utf8"], true);
    assert!(
        render(&enricher(true, true, "{namespace}"), "café".as_bytes())
            .get("invalid_utf8")
            .is_none()
    );
}

#[test]
fn undecodable_lines_ship_raw_with_the_reason() {
    let enricher = enricher(true, true, "{namespace}");
    let context = enricher.context(Some(&info()), None);
    let mut out = Vec::new();
    let now = "2026-11-25T10:00:00Z";
    enricher.render_undecodable(
        &context,
        b"{\"log\":",
        DecodeError::Docker("invalid JSON"),
        now,
        false,
        &mut out,
    );
    let record: Value = serde_json::from_slice(&out).expect("record is JSON");
    assert_eq!(record["log"], "{\"log\":");
    assert_eq!(
        record["shiplog_error"],
        "not a docker json-file line: invalid JSON"
    );
    assert_eq!(record["time"], now);
    assert!(record.get("data").is_none() && record.get("stream").is_none());
}
