//! Enrichment: a decoded line plus its file's context becomes a rendered record.
//!
//! Pure. Everything that depends only on the pod is worked out once per file in a
//! [`FileContext`]: the `kubernetes` fragment, the topic, and per stream whether it is
//! excluded (by the pod's annotations or its namespace's) and which parser and multiline
//! rule its pod's annotations select. The caller works it out again when the pod or its namespace
//! changes, never per line. Per line there is the parser or the JSON merge, the UTF-8
//! check and a copy of bytes.

pub mod annotations;

use std::borrow::Cow;
use std::sync::Arc;

use self::annotations::{Annotations, parse_bool};
use crate::decode::{DecodeError, Message, Stream};
use crate::kube::{FragmentOptions, LogFileInfo, NamespaceMeta, PodMeta, render_fragment};
use crate::multiline::Rule;
use crate::parse::{self, Parser, ParserSet};
use crate::record::{Flags, Record, Shape};
use crate::route::allow::TopicOverrides;
use crate::route::{RouteValues, Template, is_valid_topic};

/// How records are built, fixed at start-up from `[kubernetes]` and `[route]`.
#[derive(Debug, Clone)]
pub struct Enricher {
    shape: Shape,
    merge_log: bool,
    fragment: FragmentOptions,
    topic: Template,
    /// `topic` uses the pod's labels or annotations: its filled value is a pod's choice.
    topic_pod_chosen: bool,
    default_topic: Arc<str>,
    topic_overrides: TopicOverrides,
    parsers: ParserSet,
    annotation_prefixes: Vec<String>,
    own_pod: Option<(String, String)>,
}

/// Settings of an [`Enricher`]; the pipeline fills them from the config.
#[derive(Debug, Clone)]
pub struct EnrichSettings {
    /// `kubernetes.merge_log`.
    pub merge_log: bool,
    /// `kubernetes.merge_log_key`.
    pub merge_log_key: String,
    /// `kubernetes.keep_log`.
    pub keep_log: bool,
    /// `kubernetes.include_labels` / `include_annotations`.
    pub fragment: FragmentOptions,
    /// `route.topic`, compiled.
    pub topic: Template,
    /// `route.default_topic`.
    pub default_topic: String,
    /// `route.topic_overrides`.
    pub topic_overrides: TopicOverrides,
    /// The parsers annotations may name.
    pub parsers: ParserSet,
    /// `kubernetes.annotation_prefixes`.
    pub annotation_prefixes: Vec<String>,
    /// shiplog's own pod (namespace, name), when it knows it: its files are never shipped,
    /// or every line it logs about shipping would be shipped, and logged about, again.
    pub own_pod: Option<(String, String)>,
}

/// What every record of one file shares, worked out once when the file is opened.
#[derive(Debug, Clone)]
pub struct FileContext {
    /// The `kubernetes` object, rendered; `None` for a file off the kubelet's naming.
    pub kubernetes: Option<String>,
    /// What the file's templates are filled from, its routing tag (every record's
    /// `topic`) included; shared by every chunk of the file.
    pub route: Arc<RouteValues>,
    /// What the pod's annotations say of each stream: stdout, then stderr.
    pub streams: [StreamRules; 2],
    /// Things worth a word in shiplog's own log, once per pod: unknown parser names,
    /// unreadable `exclude` values, a topic that is not a legal name.
    pub warnings: Vec<String>,
    /// The topic the pod asked for (template or annotation) was not a legal name, so its
    /// records go to `default_topic`.
    pub illegal_topic: bool,
    /// The topic the pod asked for (annotation, or template filled from its labels or
    /// annotations) is outside `route.topic_overrides`: its records keep the topic they
    /// would have had without it.
    pub topic_refused: bool,
}

/// What the pod's annotations ask for one stream of one container.
#[derive(Debug, Clone, Default)]
pub struct StreamRules {
    /// Ship nothing of this stream.
    pub excluded: bool,
    /// Parse every line of this stream with this parser.
    pub parser: Option<Arc<Parser>>,
    /// Join the lines of one event into one record with this rule
    /// (`shiplog.io/multiline`).
    pub multiline: Option<Arc<Rule>>,
}

impl FileContext {
    /// The rules of `stream`.
    pub fn stream(&self, stream: Stream) -> &StreamRules {
        &self.streams[usize::from(stream == Stream::Stderr)]
    }

    /// Every stream of the file is excluded: its lines need not even be decoded.
    pub fn all_excluded(&self) -> bool {
        self.streams.iter().all(|rules| rules.excluded)
    }
}

/// What became of a line's payload; the processor counts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A selected parser captured fields into `data`.
    Parsed,
    /// A selected parser did not match: the line went out with `log` only.
    Unmatched,
    /// No parser selected; the JSON object payload was merged into `data`.
    Merged,
    /// No parser selected and nothing to merge.
    Plain,
}

impl Enricher {
    /// An enricher with `settings`.
    pub fn new(settings: EnrichSettings) -> Self {
        Enricher {
            shape: Shape::new(&settings.merge_log_key, settings.keep_log),
            merge_log: settings.merge_log,
            fragment: settings.fragment,
            topic_pod_chosen: !settings.topic.pod_chosen().is_empty(),
            topic: settings.topic,
            default_topic: Arc::from(settings.default_topic),
            topic_overrides: settings.topic_overrides,
            parsers: settings.parsers,
            annotation_prefixes: settings.annotation_prefixes,
            own_pod: settings.own_pod,
        }
    }

    /// The context of a file whose path says `info`, belonging to `pod` when known, its
    /// namespace's annotations unknown.
    pub fn context(&self, info: Option<&LogFileInfo>, pod: Option<&PodMeta>) -> FileContext {
        self.context_in(info, pod, None)
    }

    /// The context of a file whose path says `info`, belonging to `pod` when known, in
    /// `namespace` when known: a namespace annotated `<prefix>/exclude: "true"` excludes
    /// every stream of every pod in it, whatever the pods' own annotations say (the
    /// namespace is the operator's word; a pod cannot opt back in).
    pub fn context_in(
        &self,
        info: Option<&LogFileInfo>,
        pod: Option<&PodMeta>,
        namespace: Option<&NamespaceMeta>,
    ) -> FileContext {
        let Some(info) = info else {
            return FileContext {
                kubernetes: None,
                route: Arc::new(RouteValues {
                    topic: self.default_topic.clone(),
                    ..RouteValues::default()
                }),
                streams: Default::default(),
                warnings: Vec::new(),
                illegal_topic: false,
                topic_refused: false,
            };
        };
        let mut warnings = Vec::new();
        let no_annotations = std::collections::BTreeMap::new();
        let steering = Annotations::new(
            pod.map_or(&no_annotations, |p| &p.annotations),
            &self.annotation_prefixes,
        );
        let streams = [Stream::Stdout, Stream::Stderr].map(|stream| {
            self.stream_rules(&steering, &info.container_name, stream, &mut warnings)
        });
        let own = self.own_pod.as_ref().is_some_and(|(namespace, name)| {
            *namespace == info.namespace && *name == info.pod_name
        });
        let namespace_excluded =
            namespace.is_some_and(|namespace| self.namespace_excluded(namespace, &mut warnings));
        let streams = if own || namespace_excluded {
            streams.map(|rules| StreamRules {
                excluded: true,
                ..rules
            })
        } else {
            streams
        };
        // Both streams usually read the same annotation: say it once.
        warnings.dedup();

        let mut route = RouteValues {
            topic: Arc::from(""),
            namespace: info.namespace.clone(),
            pod: info.pod_name.clone(),
            container: info.container_name.clone(),
            labels: pod.map(|p| p.labels.clone()).unwrap_or_default(),
            annotations: pod.map(|p| p.annotations.clone()).unwrap_or_default(),
        };
        let (topic, topic_refused) = self.chosen_topic(&steering, &route, &mut warnings);
        let illegal_topic = topic.as_deref().is_some_and(|topic| !is_valid_topic(topic));
        let topic = match topic {
            Some(topic) if is_valid_topic(&topic) => Arc::from(topic),
            Some(topic) => {
                warnings.push(format!(
                    "topic {topic:?} is not a legal topic name; using {:?}",
                    self.default_topic
                ));
                self.default_topic.clone()
            }
            None => self.default_topic.clone(),
        };
        route.topic = topic;
        FileContext {
            kubernetes: Some(render_fragment(info, pod, self.fragment)),
            route: Arc::new(route),
            streams,
            warnings,
            illegal_topic,
            topic_refused,
        }
    }

    /// The topic of a file's records before the legality check: the pod's
    /// `<prefix>/topic` when `route.topic_overrides` allows it, else `route.topic` filled
    /// (checked against the same list when filled from the pod's labels or annotations;
    /// refused, it is `default_topic`). `None` when the template cannot be filled. Also
    /// says whether a choice of the pod was refused, with a warning naming the value and
    /// the rule.
    fn chosen_topic(
        &self,
        steering: &Annotations<'_>,
        route: &RouteValues,
        warnings: &mut Vec<String>,
    ) -> (Option<String>, bool) {
        let rule = &self.topic_overrides;
        let namespace = &route.namespace;
        let mut refused = false;
        if let Some(found) = steering.topic() {
            if rule.allows(found.value, namespace) {
                return (Some(found.value.to_owned()), false);
            }
            if !matches!(rule, TopicOverrides::Off) {
                refused = true;
                warnings.push(format!(
                    "{}: {:?} refused by route.topic_overrides {rule}; records keep the topic they would have without it",
                    found.key, found.value
                ));
            }
        }
        let topic = self.topic.render(route);
        match topic {
            Some(topic) if self.topic_pod_chosen && !rule.allows_template(&topic, namespace) => {
                warnings.push(format!(
                    "route.topic {} gives {topic:?}, from the pod's labels or annotations, refused by route.topic_overrides {rule}; records go to {:?}",
                    self.topic, self.default_topic
                ));
                (Some(self.default_topic.to_string()), true)
            }
            topic => (topic, refused),
        }
    }

    /// Whether the namespace's annotations exclude it.
    fn namespace_excluded(&self, namespace: &NamespaceMeta, warnings: &mut Vec<String>) -> bool {
        let annotations = Annotations::new(&namespace.annotations, &self.annotation_prefixes);
        annotations.object_wide("exclude").is_some_and(|found| {
            parse_bool(found.value).unwrap_or_else(|| {
                warnings.push(format!(
                    "namespace annotation {}: {:?} is not true or false; not excluding",
                    found.key, found.value
                ));
                false
            })
        })
    }

    fn stream_rules(
        &self,
        steering: &Annotations<'_>,
        container: &str,
        stream: Stream,
        warnings: &mut Vec<String>,
    ) -> StreamRules {
        let excluded = steering
            .lookup("exclude", container, stream)
            .is_some_and(|found| {
                parse_bool(found.value).unwrap_or_else(|| {
                    warnings.push(format!(
                        "{}: {:?} is not true or false; not excluding",
                        found.key, found.value
                    ));
                    false
                })
            });
        let parser = steering
            .lookup("parser", container, stream)
            .and_then(|found| {
                let parser = self.parsers.get(found.value.trim());
                if parser.is_none() {
                    warnings.push(format!(
                        "{}: no parser named {:?}; lines go out unparsed",
                        found.key, found.value
                    ));
                }
                parser
            });
        let multiline = steering
            .lookup("multiline", container, stream)
            .and_then(|found| {
                let rule = self.parsers.multiline(found.value.trim());
                if rule.is_none() {
                    warnings.push(format!(
                        "{}: no multiline rule named {:?}; lines go out one record each",
                        found.key, found.value
                    ));
                }
                rule
            });
        StreamRules {
            excluded,
            parser,
            multiline,
        }
    }

    /// Appends the record of `message` to `out`, and says what became of its payload.
    pub fn render(
        &self,
        context: &FileContext,
        message: &Message<'_>,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let log = text(&message.bytes);
        let parsed = context
            .stream(message.stream)
            .parser
            .as_ref()
            .map(|parser| parser.parse(&log, year_of(&message.time)));
        let (outcome, data, time) = match &parsed {
            Some(Some(parsed)) => (
                Outcome::Parsed,
                Some(parsed.data.as_str()),
                parsed.time.as_deref(),
            ),
            Some(None) => (Outcome::Unmatched, None, None),
            None => match self.merge_log.then(|| parse::json::object(&log)).flatten() {
                Some(object) => (Outcome::Merged, Some(object), None),
                None => (Outcome::Plain, None, None),
            },
        };
        let record = Record {
            time: time.unwrap_or(&message.time),
            stream: Some(message.stream.as_str()),
            log: &log,
            data,
            kubernetes: context.kubernetes.as_deref(),
            topic: &context.route.topic,
            flags: Flags {
                truncated: message.truncated,
                partial: message.partial,
                invalid_utf8: matches!(log, Cow::Owned(_)),
            },
            error: None,
        };
        record.render(&self.shape, out);
        outcome
    }

    /// Appends the record of a line that could not be decoded: the raw line in `log`, the
    /// reason in `shiplog_error`, and `now` (the read time) as its time. `partial`: the
    /// runtime never finished the line.
    pub fn render_undecodable(
        &self,
        context: &FileContext,
        line: &[u8],
        error: DecodeError,
        now: &str,
        partial: bool,
        out: &mut Vec<u8>,
    ) {
        let flags = Flags {
            partial,
            ..Flags::default()
        };
        self.render_raw(context, line, now, flags, &error.to_string(), out);
    }

    /// Appends the record of one piece of a line too long to hold whole: raw, flagged
    /// `truncated`, with the reason.
    pub fn render_raw_piece(
        &self,
        context: &FileContext,
        piece: &[u8],
        now: &str,
        partial: bool,
        out: &mut Vec<u8>,
    ) {
        let flags = Flags {
            truncated: true,
            partial,
            ..Flags::default()
        };
        let reason = "line too long to decode: shipped raw in pieces";
        self.render_raw(context, piece, now, flags, reason, out);
    }

    fn render_raw(
        &self,
        context: &FileContext,
        line: &[u8],
        now: &str,
        flags: Flags,
        reason: &str,
        out: &mut Vec<u8>,
    ) {
        let log = text(line);
        let record = Record {
            time: now,
            stream: None,
            log: &log,
            data: None,
            kubernetes: context.kubernetes.as_deref(),
            topic: &context.route.topic,
            flags: Flags {
                invalid_utf8: matches!(log, Cow::Owned(_)),
                ..flags
            },
            error: Some(reason),
        };
        record.render(&self.shape, out);
    }
}

/// The year of an RFC 3339 time, for parsers whose formats have none (syslog, klog).
fn year_of(time: &str) -> i16 {
    time.get(..4)
        .and_then(|year| year.parse().ok())
        .unwrap_or(1970)
}

/// `bytes` as text: borrowed when valid UTF-8, which nearly every line is; otherwise with
/// each invalid sequence replaced by U+FFFD (then owned, which flags `invalid_utf8`).
/// `from_utf8` first because it checks ASCII a word at a time, where the lossy
/// conversion's scan goes byte by byte.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

#[cfg(test)]
mod tests;
