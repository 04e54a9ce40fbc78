use super::*;

fn route(namespace: &str, pod: &str) -> RouteValues {
    RouteValues {
        topic: namespace.into(),
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        ..RouteValues::default()
    }
}

fn chunk(records: &[&str]) -> (Vec<u8>, Vec<usize>) {
    let mut json = Vec::new();
    let mut ends = Vec::new();
    for record in records {
        json.extend_from_slice(record.as_bytes());
        ends.push(json.len());
        json.push(b'\n');
    }
    (json, ends)
}

fn path(dotted: &str) -> FieldPath {
    dotted.split('.').map(str::to_owned).collect()
}

fn run(
    transforms: Vec<Transform>,
    route: &RouteValues,
    records: &[&str],
) -> Option<(Vec<String>, Transformed)> {
    let (json, ends) = chunk(records);
    let out = Transformer::new(transforms).apply(route, &json, &ends, Instant::now())?;
    let lines = records_of(&out);
    Some((lines, out))
}

fn records_of(out: &Transformed) -> Vec<String> {
    super::records(&out.json, &out.ends)
        .map(|r| String::from_utf8(r.to_vec()).unwrap())
        .collect()
}

fn all(edit: Edit) -> Transform {
    Transform {
        edit,
        matcher: None,
    }
}

const OUT: &str = r#"{"time":"t","stream":"stdout","log":"password=hunter2 ok","data":{"user":{"password":"password=x"},"msg":"hi"},"kubernetes":{"pod_name":"p","annotations":{"big":"x"}},"topic":"shop"}"#;
const ERR: &str = r#"{"time":"t","stream":"stderr","log":"boom","topic":"shop"}"#;

#[test]
fn add_fields_alone_splices_its_keys_after_the_brace() {
    let add = all(Edit::AddFields(vec![
        ("cluster".into(), r#""eu-1""#.into()),
        ("n".into(), "3".into()),
    ]));
    let (lines, _) = run(vec![add], &route("shop", "p"), &[ERR]).unwrap();
    assert_eq!(
        lines,
        [r#"{"cluster":"eu-1","n":3,"time":"t","stream":"stderr","log":"boom","topic":"shop"}"#]
    );
}

#[test]
fn edits_apply_in_order_and_only_where_their_match_holds() {
    let transforms = vec![
        all(Edit::RenameFields(vec![(
            path("data.msg"),
            path("message"),
        )])),
        all(Edit::RemoveFields(vec![
            path("kubernetes.annotations"),
            path("data"),
        ])),
        Transform {
            edit: Edit::AddFields(vec![("seen".into(), "true".into())]),
            matcher: Some(Match {
                streams: vec![StreamName::Stderr],
                ..Match::default()
            }),
        },
        Transform {
            edit: Edit::AddFields(vec![("never".into(), "1".into())]),
            matcher: Some(Match {
                namespaces: vec!["audit".into()],
                ..Match::default()
            }),
        },
    ];
    let (lines, out) = run(transforms, &route("shop", "p"), &[OUT, ERR]).unwrap();
    assert_eq!(
        lines,
        [
            r#"{"time":"t","stream":"stdout","log":"password=hunter2 ok","kubernetes":{"pod_name":"p"},"topic":"shop","message":"hi"}"#,
            r#"{"time":"t","stream":"stderr","log":"boom","topic":"shop","seen":true}"#,
        ]
    );
    assert_eq!(out.kept, [0, 1]);
}

#[test]
fn redact_replaces_every_match_in_log_and_inside_data_and_counts_them() {
    let redact = all(Edit::Redact {
        pattern: Pattern(regex::Regex::new("password=[^ \"]*").unwrap()),
        fields: vec![path("log"), path("data")],
        replacement: "[REDACTED]".into(),
    });
    let (lines, out) = run(vec![redact], &route("shop", "p"), &[OUT]).unwrap();
    assert_eq!(
        lines,
        [
            r#"{"time":"t","stream":"stdout","log":"[REDACTED] ok","data":{"user":{"password":"[REDACTED]"},"msg":"hi"},"kubernetes":{"pod_name":"p","annotations":{"big":"x"}},"topic":"shop"}"#
        ]
    );
    assert_eq!(out.redactions, 2);
}

#[test]
fn a_chunk_no_transform_matches_is_left_alone() {
    let only_audit = Transform {
        edit: Edit::RemoveFields(vec![path("log")]),
        matcher: Some(Match {
            namespaces: vec!["audit".into()],
            ..Match::default()
        }),
    };
    assert!(run(vec![only_audit], &route("shop", "p"), &[OUT]).is_none());
}

#[test]
fn throttle_drops_the_lines_past_the_burst_and_counts_them() {
    let throttle = all(Edit::Throttle(Limit {
        per: Per::Pod,
        rate: 1.0,
        burst: 2.0,
    }));
    let (json, ends) = chunk(&[ERR, OUT, ERR]);
    let mut transformer = Transformer::new(vec![throttle]);
    let now = Instant::now();
    let first = transformer
        .apply(&route("shop", "a"), &json, &ends, now)
        .unwrap();
    assert_eq!(records_of(&first), [ERR, OUT]);
    assert_eq!((first.throttled, first.kept.clone()), (1, vec![0, 1]));
    let other = transformer
        .apply(&route("shop", "b"), &json, &ends, now)
        .unwrap();
    assert_eq!(other.throttled, 1, "another pod has its own bucket");
    let again = transformer
        .apply(&route("shop", "a"), &json, &ends, now)
        .unwrap();
    assert_eq!((again.ends.len(), again.throttled), (0, 3));
}

#[test]
fn a_throttle_that_lets_a_chunk_through_leaves_it_as_it_is() {
    let throttle = all(Edit::Throttle(Limit {
        per: Per::Namespace,
        rate: 10.0,
        burst: 10.0,
    }));
    assert!(run(vec![throttle], &route("shop", "p"), &[OUT, ERR]).is_none());
}
