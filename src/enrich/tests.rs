use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::decode::Stream;
use crate::parse::ParserSet;
use crate::route::allow::TopicOverrides;

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
        topic_overrides: TopicOverrides::Any,
        parsers: ParserSet::builtin(),
        annotation_prefixes: vec!["shiplog.io".into(), "fluentbit.io".into()],
        own_pod: Some(("shiplog".into(), "shiplog-x7k2p".into())),
    })
}

fn annotated(pairs: &[(&str, &str)]) -> PodMeta {
    let mut pod = pod();
    pod.annotations = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    pod
}

fn render_with(
    enricher: &Enricher,
    pod: &PodMeta,
    stream: Stream,
    bytes: &[u8],
) -> (Outcome, Value) {
    let context = enricher.context(Some(&info()), Some(pod));
    let mut out = Vec::new();
    let message = Message {
        stream,
        ..message(bytes)
    };
    let outcome = enricher.render(&context, &message, &mut out);
    (
        outcome,
        serde_json::from_slice(&out).expect("record is JSON"),
    )
}

const NGINX_LINE: &str = r#"10.0.0.7 - - [25/Nov/2026:09:00:01 +0000] "GET /api/cart HTTP/1.1" 200 512 "-" "curl/8.5.0""#;

#[test]
fn a_parser_annotation_turns_lines_into_typed_fields_and_sets_the_time() {
    let enricher = enricher(true, true, "{namespace}");
    let pod = annotated(&[("shiplog.io/parser", "nginx")]);
    let (outcome, record) = render_with(&enricher, &pod, Stream::Stdout, NGINX_LINE.as_bytes());
    assert_eq!(outcome, Outcome::Parsed);
    assert_eq!(record["data"]["code"], 200);
    assert_eq!(record["data"]["size"], 512);
    assert_eq!(record["data"]["method"], "GET");
    assert_eq!(record["time"], "2026-11-25T09:00:01.000000000Z");
    assert_eq!(record["log"], NGINX_LINE);
}

#[test]
fn a_line_the_parser_does_not_match_keeps_only_log_even_when_it_is_json() {
    let enricher = enricher(true, true, "{namespace}");
    let pod = annotated(&[("fluentbit.io/parser", "nginx")]);
    let (outcome, record) = render_with(&enricher, &pod, Stream::Stdout, br#"{"a":1}"#);
    assert_eq!(outcome, Outcome::Unmatched);
    assert!(
        record.get("data").is_none(),
        "the parser replaces the JSON merge"
    );
}

#[test]
fn per_stream_and_per_container_annotations_pick_the_parser() {
    let enricher = enricher(true, true, "{namespace}");
    let pod = annotated(&[
        ("shiplog.io/parser", "json"),
        ("shiplog.io/parser_stderr-app", "logfmt"),
    ]);
    let (outcome, record) = render_with(&enricher, &pod, Stream::Stderr, b"level=warn msg=slow");
    assert_eq!(
        (outcome, &record["data"]["level"]),
        (Outcome::Parsed, &json!("warn"))
    );
    let (outcome, _) = render_with(&enricher, &pod, Stream::Stdout, b"level=warn msg=slow");
    assert_eq!(
        outcome,
        Outcome::Unmatched,
        "stdout uses the pod-wide json parser"
    );
}

#[test]
fn exclusion_and_unknown_parsers_are_worked_out_once_per_file() {
    let enricher = enricher(true, true, "{namespace}");
    let pod = annotated(&[
        ("shiplog.io/exclude_stderr", "true"),
        ("shiplog.io/parser", "no-such-parser"),
        ("shiplog.io/topic", "not a topic!"),
    ]);
    let context = enricher.context(Some(&info()), Some(&pod));
    assert!(context.stream(Stream::Stderr).excluded && !context.stream(Stream::Stdout).excluded);
    assert!(!context.all_excluded());
    assert!(context.stream(Stream::Stdout).parser.is_none());
    assert_eq!(
        &*context.route.topic, "unknown",
        "an illegal topic falls back to the default"
    );
    assert_eq!(context.warnings.len(), 2, "{:?}", context.warnings);
    assert!(
        context.warnings[0].contains("no-such-parser"),
        "{:?}",
        context.warnings
    );
}

#[test]
fn the_topic_annotation_overrides_the_template() {
    let enricher = enricher(true, true, "{namespace}");
    let pod = annotated(&[("fluentbit.io/topic", "audit-logs")]);
    assert_eq!(
        &*enricher.context(Some(&info()), Some(&pod)).route.topic,
        "audit-logs"
    );
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
        &*by_label.context(Some(&info()), Some(&pod())).route.topic,
        "logs-payments"
    );
    assert_eq!(
        &*by_label.context(Some(&info()), None).route.topic,
        "unknown"
    );
    let plain = enricher(true, true, "{namespace}");
    let unnamed = plain.context(None, None);
    assert_eq!(
        (&*unnamed.route.topic, unnamed.kubernetes),
        ("unknown", None)
    );
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

#[test]
fn shiplog_never_ships_its_own_pods_lines() {
    let enricher = enricher(true, true, "{namespace}");
    let own = LogFileInfo {
        namespace: "shiplog".into(),
        pod_name: "shiplog-x7k2p".into(),
        ..info()
    };
    assert!(enricher.context(Some(&own), None).all_excluded());
    assert!(!enricher.context(Some(&info()), None).all_excluded());
}

fn with_overrides(overrides: TopicOverrides, topic: &str) -> Enricher {
    Enricher::new(EnrichSettings {
        topic: Template::compile(topic).expect("valid template"),
        topic_overrides: overrides,
        ..settings()
    })
}

fn settings() -> EnrichSettings {
    EnrichSettings {
        merge_log: true,
        merge_log_key: "data".into(),
        keep_log: true,
        fragment: FragmentOptions {
            labels: true,
            annotations: true,
        },
        topic: Template::compile("{namespace}").expect("valid template"),
        default_topic: "unknown".into(),
        topic_overrides: TopicOverrides::default(),
        parsers: ParserSet::builtin(),
        annotation_prefixes: vec!["shiplog.io".into()],
        own_pod: None,
    }
}

#[test]
fn by_default_a_pod_may_specialise_its_namespaces_topic_and_not_reach_another() {
    let enricher = with_overrides(TopicOverrides::default(), "{namespace}");
    let cases = [
        ("shop-audit", "shop-audit", false),
        ("shop", "shop", false),
        ("payments", "shop", true),
        ("shopping", "shop", true),
    ];
    for (asked, topic, refused) in cases {
        let pod = annotated(&[("shiplog.io/topic", asked)]);
        let context = enricher.context(Some(&info()), Some(&pod));
        assert_eq!(&*context.route.topic, topic, "{asked}");
        assert_eq!(context.topic_refused, refused, "{asked}");
        assert_eq!(context.warnings.len(), usize::from(refused), "{asked}");
    }
    let pod = annotated(&[("shiplog.io/topic", "payments")]);
    let warning = &enricher.context(Some(&info()), Some(&pod)).warnings[0];
    assert_eq!(
        warning,
        r#"shiplog.io/topic: "payments" refused by route.topic_overrides ["{namespace}", "{namespace}-*"]; records keep the topic they would have without it"#
    );
}

#[test]
fn off_ignores_the_annotation_and_any_takes_it_as_it_is() {
    let pod = annotated(&[("shiplog.io/topic", "payments")]);
    let off = with_overrides(TopicOverrides::Off, "{namespace}").context(Some(&info()), Some(&pod));
    assert_eq!((&*off.route.topic, off.topic_refused), ("shop", false));
    assert!(off.warnings.is_empty(), "{:?}", off.warnings);
    let any = with_overrides(TopicOverrides::Any, "{namespace}").context(Some(&info()), Some(&pod));
    assert_eq!((&*any.route.topic, any.topic_refused), ("payments", false));
}

#[test]
fn a_topic_template_filled_from_the_pods_labels_is_held_to_the_same_list() {
    let enricher = with_overrides(TopicOverrides::default(), "{label.team}");
    // The pod labelled team=payments lives in `shop`.
    let context = enricher.context(Some(&info()), Some(&pod()));
    assert_eq!(
        (&*context.route.topic, context.topic_refused),
        ("unknown", true)
    );
    assert!(
        context.warnings[0].contains("\"payments\""),
        "{:?}",
        context.warnings
    );
    let within = with_overrides(TopicOverrides::default(), "{namespace}-{label.team}");
    let context = within.context(Some(&info()), Some(&pod()));
    assert_eq!(
        (&*context.route.topic, context.topic_refused),
        ("shop-payments", false)
    );
    // The annotation refused, the template decides, and is checked in turn.
    let pod = annotated(&[("shiplog.io/topic", "payments")]);
    let context = enricher.context(Some(&info()), Some(&pod));
    assert!(context.topic_refused);
    assert_eq!(
        &*context.route.topic, "unknown",
        "team=payments is refused too"
    );
}

#[test]
fn a_namespace_annotated_to_exclude_excludes_every_stream_whatever_the_pod_says() {
    let enricher = with_overrides(TopicOverrides::default(), "{namespace}");
    let namespace = |value: &str| crate::kube::NamespaceMeta {
        annotations: [("shiplog.io/exclude".to_owned(), value.to_owned())].into(),
        ..Default::default()
    };
    let opted_in = annotated(&[("shiplog.io/exclude", "false")]);
    let excluded = enricher.context_in(Some(&info()), Some(&opted_in), Some(&namespace("true")));
    assert!(excluded.all_excluded());
    let pod_unknown = enricher.context_in(Some(&info()), None, Some(&namespace("true")));
    assert!(pod_unknown.all_excluded(), "the path says the namespace");
    let not = enricher.context_in(Some(&info()), Some(&pod()), Some(&namespace("false")));
    assert!(!not.all_excluded());
    let junk = enricher.context_in(Some(&info()), Some(&pod()), Some(&namespace("maybe")));
    assert!(!junk.all_excluded());
    assert!(
        junk.warnings[0].contains("namespace annotation shiplog.io/exclude"),
        "{:?}",
        junk.warnings
    );
}

#[test]
fn the_most_specific_multiline_annotation_picks_each_streams_rule() {
    let enricher = enricher(true, true, "{namespace}");
    let container = info().container_name;
    let pod = annotated(&[
        ("shiplog.io/multiline", "java"),
        ("shiplog.io/multiline_stdout", "go"),
        (
            &format!("shiplog.io/multiline_stderr-{container}"),
            "python",
        ),
        ("shiplog.io/multiline-other", "ruby"),
    ]);
    let context = enricher.context(Some(&info()), Some(&pod));
    let name = |stream| {
        context
            .stream(stream)
            .multiline
            .as_ref()
            .and_then(|rule| rule.builtin_name())
    };
    assert_eq!(name(Stream::Stderr), Some("python"));
    assert_eq!(name(Stream::Stdout), Some("go"));
    assert!(context.warnings.is_empty(), "{:?}", context.warnings);
}

#[test]
fn pods_without_the_multiline_annotation_join_nothing_and_unknown_rules_are_reported() {
    let enricher = enricher(true, true, "{namespace}");
    let plain = enricher.context(Some(&info()), Some(&pod()));
    assert!(plain.streams.iter().all(|rules| rules.multiline.is_none()));
    let pod = annotated(&[
        ("shiplog.io/multiline", "cobol"),
        ("shiplog.io/parser_stdout", "java"),
    ]);
    let context = enricher.context(Some(&info()), Some(&pod));
    assert!(
        context
            .streams
            .iter()
            .all(|rules| rules.multiline.is_none())
    );
    assert!(
        context.stream(Stream::Stdout).parser.is_none(),
        "a multiline rule is not a parser"
    );
    assert!(
        context
            .warnings
            .iter()
            .any(|w| w.contains("no multiline rule named \"cobol\"")),
        "{:?}",
        context.warnings
    );
}
