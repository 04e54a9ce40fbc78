//! `match` tables: which records a sink gets (`[sinks.NAME.match]`) and which records a
//! transform edits (`[transforms.match]`).
//!
//! Pure. Every condition but `streams` is about the record's pod and routing tag, which
//! every record of a chunk shares (one file, one pod): those are decided once per chunk
//! ([`Match::holds_for`]); only `streams` is looked at per record ([`Match::admits_stream`]).

use std::collections::BTreeMap;

use super::RouteValues;

/// The keys a `match` table may hold, as listed in error messages.
pub const MATCH_KEYS: &str = "namespaces, exclude_namespaces, labels, streams, topics";

/// A record's stream, as rendered (`"stdout"` or `"stderr"`); records that could not be
/// decoded have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamName {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl StreamName {
    /// The stream named `name`, if it is one.
    pub fn parse(name: &str) -> Option<StreamName> {
        match name {
            "stdout" => Some(StreamName::Stdout),
            "stderr" => Some(StreamName::Stderr),
            _ => None,
        }
    }

    /// The stream of a rendered record (`record.rs`): `"stream"` directly follows
    /// `"time"`, and a time never holds a quote. `None` for a record without one (a line
    /// that could not be decoded).
    pub fn of_record(record: &[u8]) -> Option<StreamName> {
        let after_time = record.strip_prefix(b"{\"time\":\"")?;
        let close = memchr::memchr(b'"', after_time)?;
        let rest = after_time.get(close + 1..)?;
        if rest.starts_with(b",\"stream\":\"stdout\"") {
            Some(StreamName::Stdout)
        } else if rest.starts_with(b",\"stream\":\"stderr\"") {
            Some(StreamName::Stderr)
        } else {
            None
        }
    }
}

/// One `match` table. Every condition that is set must hold; an empty list sets none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// The pod's namespace is one of these (empty: any).
    pub namespaces: Vec<String>,
    /// The pod's namespace is none of these.
    pub exclude_namespaces: Vec<String>,
    /// The pod has every one of these labels with this value.
    pub labels: BTreeMap<String, String>,
    /// The record's stream is one of these (empty: any). A record with no stream (a line
    /// that could not be decoded) matches only when this is empty.
    pub streams: Vec<StreamName>,
    /// The record's routing tag (`topic`) is one of these (empty: any).
    pub topics: Vec<String>,
}

impl Match {
    /// Whether the conditions on the pod and the routing tag hold for records of `route`.
    pub fn holds_for(&self, route: &RouteValues) -> bool {
        let any_of =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        any_of(&self.namespaces, &route.namespace)
            && !self.exclude_namespaces.contains(&route.namespace)
            && any_of(&self.topics, &route.topic)
            && self
                .labels
                .iter()
                .all(|(key, value)| route.labels.get(key) == Some(value))
    }

    /// Whether the condition on streams looks at each record.
    pub fn selects_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Whether a record of `stream` passes the condition on streams.
    pub fn admits_stream(&self, stream: Option<StreamName>) -> bool {
        self.streams.is_empty() || stream.is_some_and(|s| self.streams.contains(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(namespace: &str, topic: &str, labels: &[(&str, &str)]) -> RouteValues {
        RouteValues {
            topic: topic.into(),
            namespace: namespace.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..RouteValues::default()
        }
    }

    #[test]
    fn every_condition_set_must_hold_and_an_empty_match_holds_for_all() {
        let audit = route("audit", "audit", &[("app", "api"), ("tier", "web")]);
        let other = route("shop", "shop-orders", &[("app", "api")]);
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let cases = [
            (Match::default(), true, true),
            (
                Match {
                    namespaces: strings(&["audit", "kube-system"]),
                    ..Match::default()
                },
                true,
                false,
            ),
            (
                Match {
                    exclude_namespaces: strings(&["audit"]),
                    ..Match::default()
                },
                false,
                true,
            ),
            (
                Match {
                    labels: [("app".to_owned(), "api".to_owned())].into(),
                    ..Match::default()
                },
                true,
                true,
            ),
            (
                Match {
                    labels: [
                        ("app".to_owned(), "api".to_owned()),
                        ("tier".to_owned(), "web".to_owned()),
                    ]
                    .into(),
                    ..Match::default()
                },
                true,
                false,
            ),
            (
                Match {
                    topics: strings(&["shop-orders"]),
                    ..Match::default()
                },
                false,
                true,
            ),
        ];
        for (matcher, for_audit, for_other) in cases {
            assert_eq!(matcher.holds_for(&audit), for_audit, "{matcher:?} audit");
            assert_eq!(matcher.holds_for(&other), for_other, "{matcher:?} other");
        }
    }

    #[test]
    fn a_rendered_records_stream_is_read_from_just_after_its_time() {
        let cases: [(&[u8], Option<StreamName>); 4] = [
            (
                br#"{"time":"2024-01-01T00:00:00Z","stream":"stderr","log":"x"}"#,
                Some(StreamName::Stderr),
            ),
            (
                br#"{"time":"2024-01-01T00:00:00Z","stream":"stdout","log":"x"}"#,
                Some(StreamName::Stdout),
            ),
            (
                br#"{"time":"2024-01-01T00:00:00Z","log":"\",\"stream\":\"stderr\""}"#,
                None,
            ),
            (br#"{"cluster":"a","time":"t","stream":"stderr"}"#, None),
        ];
        for (record, stream) in cases {
            assert_eq!(
                StreamName::of_record(record),
                stream,
                "{}",
                String::from_utf8_lossy(record)
            );
        }
    }

    #[test]
    fn streams_admit_only_the_streams_listed_and_undecodable_records_only_without_a_list() {
        let stderr = Match {
            streams: vec![StreamName::Stderr],
            ..Match::default()
        };
        assert!(stderr.admits_stream(Some(StreamName::Stderr)));
        assert!(!stderr.admits_stream(Some(StreamName::Stdout)));
        assert!(!stderr.admits_stream(None));
        assert!(Match::default().admits_stream(None));
    }
}
