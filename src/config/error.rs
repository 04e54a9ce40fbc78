//! `ConfigError`: what went wrong in a config file, naming the file, the key and the reason.
//!
//! Also turns serde's and the TOML parser's messages into that shape: the dotted key comes
//! from `serde_path_to_error`, and serde's wording (`unknown field`, `expected u64`) is
//! rephrased in the config file's terms (`unknown key`, `a non-negative integer`).

use crate::serde_words::{reword, split_quoted};
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

/// A config file that cannot be used. Displayed as `FILE: KEY: REASON`, or `FILE: REASON`
/// when the file as a whole is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{reason}", file.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The dotted key, e.g. `tail.rescan_interval`; empty when the file as a whole is at fault.
    pub key: String,
    /// What is wrong, in a sentence a user can act on.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key` in `file`.
    pub fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A TOML syntax error, located by line and column when the parser gives a position.
    pub(super) fn from_syntax(file: &Path, text: &str, error: &toml::de::Error) -> Self {
        let message = error.message().trim().replace('\n', "; ");
        let reason = match error.span() {
            Some(span) => {
                let (line, column) = line_and_column(text, span.start);
                format!("invalid TOML at line {line}, column {column}: {message}")
            }
            None => format!("invalid TOML: {message}"),
        };
        ConfigError::new(file, "", reason)
    }

    /// A type or shape error from deserializing the table at dotted key `prefix` (empty
    /// for the whole file).
    pub(super) fn from_serde(
        file: &Path,
        prefix: &str,
        error: &serde_path_to_error::Error<toml::de::Error>,
    ) -> Self {
        let mut segments: Vec<&Segment> = error.path().iter().collect();
        let message = error.inner().message();
        let reason = match unknown_key(message) {
            Some(reason) => {
                // serde's path ends at the unknown key itself; name the table that holds it.
                segments.pop();
                reason
            }
            None => rephrase(message),
        };
        ConfigError::new(file, dotted_key(prefix, &segments), reason)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Joins `prefix` and serde's path into `a.b[0].c`.
fn dotted_key(prefix: &str, segments: &[&Segment]) -> String {
    let mut key = prefix.to_string();
    for segment in segments {
        let name = match segment {
            Segment::Seq { index } => {
                key.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } => key.as_str(),
            Segment::Enum { variant } => variant.as_str(),
            Segment::Unknown => "?",
        };
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(name);
    }
    key
}

/// serde's `unknown field `x`, expected one of `a`, `b`` as
/// `unknown key "x" (expected one of: a, b)`.
fn unknown_key(message: &str) -> Option<String> {
    let (name, expected) = split_quoted(message.strip_prefix("unknown field `")?)?;
    Some(match expected.as_slice() {
        [] => format!("unknown key {name:?} (this table takes no other keys)"),
        names => format!(
            "unknown key {name:?} (expected one of: {})",
            names.join(", ")
        ),
    })
}

/// Rephrases the other serde messages a config file can cause.
fn rephrase(message: &str) -> String {
    const WORDING: &[(&str, &str)] = &[
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array"),
        ("expected a boolean", "expected true or false"),
    ];
    reword(message, WORDING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_displays_as_file_key_reason() {
        let keyed = ConfigError::new(Path::new("/etc/shiplog.toml"), "tail.include", "bad glob");
        assert_eq!(
            keyed.to_string(),
            "/etc/shiplog.toml: tail.include: bad glob"
        );
        let whole = ConfigError::new(Path::new("shiplog.toml"), "", "empty file");
        assert_eq!(whole.to_string(), "shiplog.toml: empty file");
    }

    #[test]
    fn serde_messages_are_rephrased_in_config_terms() {
        let cases = [
            (
                "unknown field `inclde`, expected one of `include`, `exclude`",
                Some("unknown key \"inclde\" (expected one of: include, exclude)"),
            ),
            (
                "unknown field `x`, expected `tail` or `sinks`",
                Some("unknown key \"x\" (expected one of: tail, sinks)"),
            ),
            (
                "unknown field `path`, there are no fields",
                Some("unknown key \"path\" (this table takes no other keys)"),
            ),
            (
                "unknown field `a`, b`, expected `path`",
                Some("unknown key \"a`, b\" (expected one of: path)"),
            ),
            ("missing field `path`", None),
        ];
        for (message, want) in cases {
            assert_eq!(unknown_key(message).as_deref(), want, "{message:?}");
        }
        let cases = [
            (
                "unknown variant `middle`, expected `head` or `tail`",
                "unknown value \"middle\" (expected one of: head, tail)",
            ),
            ("missing field `path`", "missing key \"path\""),
            (
                "invalid value: integer `-1`, expected usize",
                "invalid value: integer `-1`, expected a non-negative integer",
            ),
            (
                "invalid type: integer `3`, expected a map",
                "invalid type: integer `3`, expected a table",
            ),
            (
                "invalid type: string \"x\", expected a boolean",
                "invalid type: string \"x\", expected true or false",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(rephrase(message), want, "{message:?}");
        }
    }

    #[test]
    fn syntax_error_positions_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = ?";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 6), (2, 1));
        assert_eq!(line_and_column(text, text.len() - 1), (2, 6));
    }
}
