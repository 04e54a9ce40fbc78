//! Enrichment: a decoded line plus its file's context becomes a rendered record.
//!
//! Pure. Everything that depends only on the pod (the `kubernetes` fragment, the topic) is
//! worked out once per file in a [`FileContext`]; per line there is the JSON merge, the
//! UTF-8 check and a copy of bytes.

pub mod annotations;

use std::borrow::Cow;
use std::sync::Arc;

use crate::decode::{DecodeError, Message};
use crate::kube::{FragmentOptions, LogFileInfo, PodMeta, render_fragment};
use crate::parse;
use crate::record::{Flags, Record, Shape};
use crate::route::{Placeholder, Template};

/// How records are built, fixed at start-up from `[kubernetes]` and `[route]`.
#[derive(Debug, Clone)]
pub struct Enricher {
    shape: Shape,
    merge_log: bool,
    fragment: FragmentOptions,
    topic: Template,
    default_topic: Arc<str>,
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
}

/// What every record of one file shares, worked out once when the file is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContext {
    /// The `kubernetes` object, rendered; `None` for a file off the kubelet's naming.
    pub kubernetes: Option<String>,
    /// The routing tag of every record of the file.
    pub topic: Arc<str>,
}

impl Enricher {
    /// An enricher with `settings`.
    pub fn new(settings: EnrichSettings) -> Self {
        Enricher {
            shape: Shape::new(&settings.merge_log_key, settings.keep_log),
            merge_log: settings.merge_log,
            fragment: settings.fragment,
            topic: settings.topic,
            default_topic: Arc::from(settings.default_topic),
        }
    }

    /// The context of a file whose path says `info`, belonging to `pod` when known.
    pub fn context(&self, info: Option<&LogFileInfo>, pod: Option<&PodMeta>) -> FileContext {
        let Some(info) = info else {
            return FileContext {
                kubernetes: None,
                topic: self.default_topic.clone(),
            };
        };
        let topic = self.topic.fill(|placeholder| match placeholder {
            Placeholder::Namespace => Some(info.namespace.as_str()),
            Placeholder::Pod => Some(info.pod_name.as_str()),
            Placeholder::Container => Some(info.container_name.as_str()),
            Placeholder::Label(key) => pod?.labels.get(key).map(String::as_str),
            Placeholder::Annotation(key) => pod?.annotations.get(key).map(String::as_str),
        });
        FileContext {
            kubernetes: Some(render_fragment(info, pod, self.fragment)),
            topic: topic.map_or_else(|| self.default_topic.clone(), Arc::from),
        }
    }

    /// Appends the record of `message` to `out`.
    pub fn render(&self, context: &FileContext, message: &Message<'_>, out: &mut Vec<u8>) {
        let log = String::from_utf8_lossy(&message.bytes);
        let data = if self.merge_log {
            parse::json::object(&log)
        } else {
            None
        };
        let record = Record {
            time: &message.time,
            stream: Some(message.stream.as_str()),
            log: &log,
            data,
            kubernetes: context.kubernetes.as_deref(),
            topic: &context.topic,
            flags: Flags {
                truncated: message.truncated,
                partial: message.partial,
                invalid_utf8: matches!(log, Cow::Owned(_)),
            },
            error: None,
        };
        record.render(&self.shape, out);
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
        let log = String::from_utf8_lossy(line);
        let record = Record {
            time: now,
            stream: None,
            log: &log,
            data: None,
            kubernetes: context.kubernetes.as_deref(),
            topic: &context.topic,
            flags: Flags {
                invalid_utf8: matches!(log, Cow::Owned(_)),
                ..flags
            },
            error: Some(reason),
        };
        record.render(&self.shape, out);
    }
}

#[cfg(test)]
mod tests;
