//! Pod annotations that steer shiplog: `<prefix>/parser`, `<prefix>/multiline`,
//! `<prefix>/exclude`, `<prefix>/topic`, with per-stream (`parser_stdout`) and per-container (`parser-nginx`,
//! `parser_stderr-nginx`) forms, for every prefix in `kubernetes.annotation_prefixes`.
//!
//! Pure. The most specific form wins (`<what>_<stream>-<container>`, then
//! `<what>-<container>`, then `<what>_<stream>`, then `<what>`); among prefixes of the
//! same form, the first configured prefix wins. These are Fluent Bit's forms
//! (`fluentbit.io/parser_stderr-<container>`), so a cluster migrating keeps its annotations.

use std::collections::BTreeMap;

use crate::decode::Stream;

/// An annotation that applies, and the key it was found under (for messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found<'a> {
    /// The full annotation key, e.g. `shiplog.io/parser-nginx`.
    pub key: &'a str,
    /// Its value.
    pub value: &'a str,
}

/// Reads a pod's steering annotations.
#[derive(Debug, Clone, Copy)]
pub struct Annotations<'a> {
    annotations: &'a BTreeMap<String, String>,
    prefixes: &'a [String],
}

impl<'a> Annotations<'a> {
    /// The annotations of one pod, read with `prefixes`.
    pub fn new(annotations: &'a BTreeMap<String, String>, prefixes: &'a [String]) -> Self {
        Annotations {
            annotations,
            prefixes,
        }
    }

    /// The most specific `what` annotation for `stream` of `container`.
    pub fn lookup(&self, what: &str, container: &str, stream: Stream) -> Option<Found<'a>> {
        let stream = stream.as_str();
        let forms = [
            format!("{what}_{stream}-{container}"),
            format!("{what}-{container}"),
            format!("{what}_{stream}"),
            what.to_owned(),
        ];
        forms.iter().find_map(|form| {
            self.prefixes.iter().find_map(|prefix| {
                let (key, value) = self
                    .annotations
                    .get_key_value(&format!("{prefix}/{form}"))?;
                Some(Found { key, value })
            })
        })
    }

    /// The object-wide `<prefix>/<what>` (no stream or container form), e.g. a
    /// namespace's `shiplog.io/exclude`.
    pub fn object_wide(&self, what: &str) -> Option<Found<'a>> {
        self.prefixes.iter().find_map(|prefix| {
            let (key, value) = self
                .annotations
                .get_key_value(&format!("{prefix}/{what}"))?;
            Some(Found { key, value })
        })
    }

    /// The pod-wide `<prefix>/topic`, if set and not empty.
    pub fn topic(&self) -> Option<Found<'a>> {
        self.prefixes.iter().find_map(|prefix| {
            let (key, value) = self.annotations.get_key_value(&format!("{prefix}/topic"))?;
            (!value.trim().is_empty()).then_some(Found {
                key,
                value: value.trim(),
            })
        })
    }
}

/// Reads an `exclude` value: `true`/`yes`/`on`/`1` and `false`/`no`/`off`/`0`, in any case
/// (Fluent Bit's `flb_utils_bool` accepts the same). `None` for anything else.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes() -> Vec<String> {
        vec!["shiplog.io".to_owned(), "fluentbit.io".to_owned()]
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_most_specific_parser_annotation_wins() {
        let pod = annotations(&[
            ("shiplog.io/parser", "json"),
            ("shiplog.io/parser_stderr", "logfmt"),
            ("shiplog.io/parser-nginx", "nginx"),
            ("fluentbit.io/parser_stderr-nginx", "apache_error"),
        ]);
        let prefixes = prefixes();
        let rules = Annotations::new(&pod, &prefixes);
        let cases = [
            ("nginx", Stream::Stderr, "apache_error"),
            ("nginx", Stream::Stdout, "nginx"),
            ("app", Stream::Stderr, "logfmt"),
            ("app", Stream::Stdout, "json"),
        ];
        for (container, stream, expected) in cases {
            let found = rules
                .lookup("parser", container, stream)
                .expect("an annotation applies");
            assert_eq!(found.value, expected, "{container} {stream:?}");
        }
    }

    #[test]
    fn the_first_prefix_wins_between_forms_of_the_same_specificity() {
        let pod = annotations(&[
            ("fluentbit.io/parser", "logfmt"),
            ("shiplog.io/parser", "json"),
        ]);
        let prefixes = prefixes();
        let found = Annotations::new(&pod, &prefixes).lookup("parser", "app", Stream::Stdout);
        assert_eq!(
            found,
            Some(Found {
                key: "shiplog.io/parser",
                value: "json"
            })
        );
    }

    #[test]
    fn the_fluent_bit_prefix_works_alone_and_unknown_prefixes_are_ignored() {
        let pod = annotations(&[
            ("fluentbit.io/exclude", "true"),
            ("example.com/parser", "json"),
        ]);
        let prefixes = prefixes();
        let rules = Annotations::new(&pod, &prefixes);
        assert_eq!(
            rules
                .lookup("exclude", "app", Stream::Stdout)
                .map(|f| f.value),
            Some("true")
        );
        assert_eq!(rules.lookup("parser", "app", Stream::Stdout), None);
    }

    #[test]
    fn a_container_can_opt_back_in_to_a_pod_wide_exclusion() {
        let pod = annotations(&[
            ("shiplog.io/exclude", "true"),
            ("shiplog.io/exclude-app", "false"),
        ]);
        let prefixes = prefixes();
        let rules = Annotations::new(&pod, &prefixes);
        let excluded = |container| {
            rules
                .lookup("exclude", container, Stream::Stdout)
                .and_then(|f| parse_bool(f.value))
        };
        assert_eq!(excluded("app"), Some(false));
        assert_eq!(excluded("sidecar"), Some(true));
    }

    #[test]
    fn booleans_read_like_fluent_bit_and_junk_is_not_a_boolean() {
        for (text, expected) in [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            (" on ", Some(true)),
            ("1", Some(true)),
            ("no", Some(false)),
            ("Off", Some(false)),
            ("maybe", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(text), expected, "{text:?}");
        }
    }

    #[test]
    fn the_topic_annotation_is_pod_wide_and_ignored_when_blank() {
        let prefixes = prefixes();
        let pod = annotations(&[("shiplog.io/topic", " "), ("fluentbit.io/topic", "audit")]);
        assert_eq!(
            Annotations::new(&pod, &prefixes).topic().map(|f| f.value),
            Some("audit")
        );
        let none = annotations(&[]);
        assert_eq!(Annotations::new(&none, &prefixes).topic(), None);
    }
}
