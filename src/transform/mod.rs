//! `[[transforms]]`: edits applied, in order, to every record before it is routed.
//!
//! Pure: the time a throttle counts by is passed in. A chunk is one file's records, so a
//! transform's `match` is decided once per chunk (and per record only for `streams`).
//! Records are edited as rendered: `add_fields` alone splices its pre-rendered keys after
//! the record's `{`; `remove_fields`, `rename_fields` and `redact` open the record as a
//! [`Document`] that parses only what they touch. A chunk no transform applies to is not
//! copied at all.
//!
//! A `throttle` drops the lines of a pod (or namespace) past its rate: the user's explicit
//! choice, counted, and the lines' offsets advance like delivered ones. Nothing else here
//! drops anything.

pub mod document;
pub mod throttle;

use std::time::Instant;

use crate::route::RouteValues;
use crate::route::matcher::{Match, StreamName};

pub use document::{Document, Node};
pub use throttle::{Limit, Per, Throttle};

/// A dotted path into a record, split: `kubernetes.annotations` → `["kubernetes",
/// "annotations"]`.
pub type FieldPath = Vec<String>;

/// A compiled regex that compares by its pattern (a config must compare equal to itself).
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// What one transform does.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Top-level keys added (or replaced): each key with its value rendered as JSON.
    AddFields(Vec<(String, String)>),
    /// Values removed at these paths.
    RemoveFields(Vec<FieldPath>),
    /// Values moved from the first path to the second.
    RenameFields(Vec<(FieldPath, FieldPath)>),
    /// Every match of `pattern` in the strings at `fields` replaced.
    Redact {
        /// What is redacted.
        pattern: Pattern,
        /// A string field, or an object (or array) every string inside of which is looked at.
        fields: Vec<FieldPath>,
        /// What each match becomes.
        replacement: String,
    },
    /// Lines past a rate dropped.
    Throttle(Limit),
}

/// One `[[transforms]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// What it does.
    pub edit: Edit,
    /// Which records it applies to; `None`: all.
    pub matcher: Option<Match>,
}

/// What transforming one chunk did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Transformed {
    /// The records, each followed by `\n`.
    pub json: Vec<u8>,
    /// Where each record's `\n` is.
    pub ends: Vec<usize>,
    /// Which of the chunk's records are here (by their place in it), in order.
    pub kept: Vec<usize>,
    /// Matches of `redact` patterns replaced.
    pub redactions: u64,
    /// Records a `throttle` dropped.
    pub throttled: u64,
}

/// The transforms of a run, with the throttles' buckets.
#[derive(Debug)]
pub struct Transformer {
    transforms: Vec<Transform>,
    /// One per transform (`None` for those that are not throttles).
    throttles: Vec<Option<Throttle>>,
    /// Whether edits need a [`Document`]: anything but `add_fields`, or two `add_fields`
    /// naming the same key (a splice would repeat it).
    needs_document: bool,
}

impl Transformer {
    /// The transformer of `transforms`, in their order.
    pub fn new(transforms: Vec<Transform>) -> Self {
        let throttles = transforms
            .iter()
            .map(|t| match t.edit {
                Edit::Throttle(limit) => Some(Throttle::new(limit)),
                _ => None,
            })
            .collect();
        let mut added = std::collections::HashSet::new();
        let needs_document = transforms.iter().any(|t| match &t.edit {
            Edit::AddFields(fields) => fields.iter().any(|(key, _)| !added.insert(key.clone())),
            Edit::Throttle(_) => false,
            _ => true,
        });
        Transformer {
            transforms,
            throttles,
            needs_document,
        }
    }

    /// Whether there is nothing to do, ever.
    pub fn is_empty(&self) -> bool {
        self.transforms.is_empty()
    }

    /// Applies every transform to the records of a chunk of `route`'s file (`json`, each
    /// record ending at an `ends` entry), at `now`. `None`: no transform applies to this
    /// chunk, which stays as it is.
    pub fn apply(
        &mut self,
        route: &RouteValues,
        json: &[u8],
        ends: &[usize],
        now: Instant,
    ) -> Option<Transformed> {
        let applying: Vec<usize> = (0..self.transforms.len())
            .filter(|&i| {
                self.transforms[i]
                    .matcher
                    .as_ref()
                    .is_none_or(|m| m.holds_for(route))
            })
            .collect();
        if applying.is_empty() || ends.is_empty() {
            return None;
        }
        let records: Vec<&[u8]> = records(json, ends).collect();
        let by_stream = applying.iter().any(|&i| {
            self.transforms[i]
                .matcher
                .as_ref()
                .is_some_and(Match::selects_streams)
        });
        let streams: Vec<Option<StreamName>> = if by_stream {
            records.iter().map(|r| StreamName::of_record(r)).collect()
        } else {
            Vec::new()
        };
        let admits = |t: &Transform, record: usize| {
            t.matcher
                .as_ref()
                .is_none_or(|m| !by_stream || m.admits_stream(streams[record]))
        };
        let mut kept = vec![true; records.len()];
        let mut out = Transformed::default();
        for &i in &applying {
            let Some(throttle) = self.throttles[i].as_mut() else {
                continue;
            };
            let subject: Vec<usize> = (0..records.len())
                .filter(|&r| kept[r] && admits(&self.transforms[i], r))
                .collect();
            let passed = throttle.admit(&route.namespace, &route.pod, subject.len(), now);
            for &r in &subject[passed..] {
                kept[r] = false;
            }
            out.throttled += (subject.len() - passed) as u64;
        }
        let edits_apply = applying
            .iter()
            .any(|&i| !matches!(self.transforms[i].edit, Edit::Throttle(_)));
        if !edits_apply && out.throttled == 0 {
            // Only throttles, and they let every record through: nothing to copy.
            return None;
        }
        out.json.reserve(json.len() + json.len() / 8);
        out.ends.reserve(records.len());
        for (r, record) in records.iter().enumerate() {
            if !kept[r] {
                continue;
            }
            let edits = applying
                .iter()
                .map(|&i| &self.transforms[i])
                .filter(|t| admits(t, r))
                .map(|t| &t.edit);
            out.redactions += edit_record(record, edits, self.needs_document, &mut out.json);
            out.ends.push(out.json.len());
            out.json.push(b'\n');
            out.kept.push(r);
        }
        Some(out)
    }
}

/// The records of a chunk, each without its `\n`.
pub fn records<'a>(json: &'a [u8], ends: &'a [usize]) -> impl Iterator<Item = &'a [u8]> {
    let starts = std::iter::once(0).chain(ends.iter().map(|end| end + 1));
    starts.zip(ends).map(move |(start, &end)| &json[start..end])
}

/// Appends `record` with `edits` applied to `out`; returns the redactions made.
fn edit_record<'a>(
    record: &[u8],
    edits: impl Iterator<Item = &'a Edit>,
    needs_document: bool,
    out: &mut Vec<u8>,
) -> u64 {
    if !needs_document {
        // Only add_fields, no key twice, none of the record's own (the config checks): the
        // keys go right after the record's `{`.
        let Some((open, rest)) = record.split_first() else {
            return 0;
        };
        out.push(*open);
        for edit in edits {
            if let Edit::AddFields(fields) = edit {
                for (key, value) in fields {
                    crate::record::write_json_str(out, key);
                    out.push(b':');
                    out.extend_from_slice(value.as_bytes());
                    out.push(b',');
                }
            }
        }
        out.extend_from_slice(rest);
        return 0;
    }
    let Some(mut doc) = Document::parse(record) else {
        // Not an object: cannot happen for records shiplog renders; shipped as it is.
        out.extend_from_slice(record);
        return 0;
    };
    let mut redactions = 0;
    for edit in edits {
        redactions += apply_edit(&mut doc, edit);
    }
    doc.write(out);
    redactions
}

/// Applies one edit to `doc`; returns the redactions made.
fn apply_edit(doc: &mut Document, edit: &Edit) -> u64 {
    match edit {
        Edit::AddFields(fields) => {
            for (key, value) in fields {
                let node = serde_json::value::RawValue::from_string(value.clone())
                    .map_or_else(|_| Node::string(value.clone()), Node::Raw);
                doc.insert(std::slice::from_ref(key), node);
            }
        }
        Edit::RemoveFields(paths) => {
            for path in paths {
                doc.remove(path);
            }
        }
        Edit::RenameFields(moves) => {
            for (from, to) in moves {
                if let Some(value) = doc.remove(from) {
                    doc.insert(to, value);
                }
            }
        }
        Edit::Redact {
            pattern,
            fields,
            replacement,
        } => {
            let mut count = 0u64;
            for path in fields {
                let Some(node) = doc.get_mut(path) else {
                    continue;
                };
                node.for_each_string(&mut |text| {
                    let found = pattern.0.find_iter(text).count();
                    if found > 0 {
                        count += found as u64;
                        *text = pattern
                            .0
                            .replace_all(text, regex::NoExpand(replacement))
                            .into_owned();
                    }
                });
            }
            return count;
        }
        Edit::Throttle(_) => {}
    }
    0
}

#[cfg(test)]
mod tests;
