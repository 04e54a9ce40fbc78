//! `ParserError`: a parser definition that cannot be used, naming the file, the parser, the
//! key and the reason.
//!
//! Mirrors `config::ConfigError` (which `parse` may not import): serde's and the TOML
//! parser's wording is rephrased in the definition file's terms.

use crate::serde_words::{reword, split_quoted};
use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;

/// A parser definition that cannot be used. Displayed as `FILE: parser "NAME": KEY: REASON`,
/// leaving out the parser or the key when the fault is not theirs (a missing folder, a
/// TOML syntax error before the first table).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{}{reason}", file.display(),
    if parser.is_empty() { String::new() } else { format!("parser {parser:?}: ") },
    if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ParserError {
    /// The definition file, or the folder when the folder itself cannot be read.
    pub file: PathBuf,
    /// The parser's name (its table in the file); empty when no parser is at fault.
    pub parser: String,
    /// The dotted key inside the parser's table, e.g. `types.code` or `example[1]`; empty
    /// when the table as a whole is at fault.
    pub key: String,
    /// What is wrong, in a sentence a user can act on.
    pub reason: String,
}

impl ParserError {
    /// An error about `key` of parser `parser` in `file`.
    pub fn new(
        file: &Path,
        parser: impl Into<String>,
        key: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ParserError {
            file: file.to_path_buf(),
            parser: parser.into(),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// A TOML syntax error, located by line and column, and blamed on the parser whose
    /// table header comes last before it.
    pub(super) fn from_syntax(file: &Path, text: &str, error: &toml::de::Error) -> Self {
        let message = error.message().trim().replace('\n', "; ");
        let Some(span) = error.span() else {
            return ParserError::new(file, "", "", format!("invalid TOML: {message}"));
        };
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let column = before[line_start..].chars().count() + 1;
        ParserError::new(
            file,
            enclosing_table(before),
            "",
            format!("invalid TOML at line {line}, column {column}: {message}"),
        )
    }

    /// A shape error from deserializing parser `parser`'s table.
    pub(super) fn from_serde(
        file: &Path,
        parser: &str,
        error: &serde_path_to_error::Error<toml::de::Error>,
    ) -> Self {
        let key = dotted_key(error.path().iter());
        ParserError::new(file, parser, key, rephrase(error.inner().message()))
    }
}

/// A mistake in one key of a parser's table, before it is known which file and parser hold
/// it: the parser kinds report these, and loading adds the file and the parser's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    /// The dotted key inside the parser's table.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

impl KeyError {
    /// A mistake in `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        KeyError {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// This mistake, located in parser `parser` of `file`.
    pub fn at(self, file: &Path, parser: &str) -> ParserError {
        ParserError::new(file, parser, self.key, self.reason)
    }
}

/// The name of the last `[name]` or `[[name.example]]` header in `text`: the parser a
/// syntax error after it most likely belongs to. Empty when there is none.
fn enclosing_table(text: &str) -> String {
    text.lines()
        .rev()
        .filter_map(|line| line.trim().strip_prefix('['))
        .map(|header| header.trim_start_matches('[').trim_end_matches(']'))
        .map(|header| header.split('.').next().unwrap_or(header).trim())
        .map(|name| name.trim_matches(|c| c == '"' || c == '\''))
        .next()
        .unwrap_or_default()
        .to_string()
}

/// serde's path as `a.b[0].c`.
fn dotted_key<'a>(segments: impl Iterator<Item = &'a Segment>) -> String {
    let mut key = String::new();
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

/// Rephrases the serde messages a definition can cause in the file's terms. serde's path
/// for an unknown field already ends at that field, so the reason does not repeat its name.
fn rephrase(message: &str) -> String {
    if let Some((_, expected)) = message
        .strip_prefix("unknown field `")
        .and_then(split_quoted)
    {
        return format!("unknown key (expected one of: {})", expected.join(", "));
    }
    const WORDING: &[(&str, &str)] = &[
        ("expected a map", "expected a table"),
        ("expected a sequence", "expected an array of tables"),
        ("expected a boolean", "expected true or false"),
    ];
    reword(message, WORDING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_displays_as_file_parser_key_reason() {
        let file = Path::new("parsers/web.toml");
        let cases = [
            (
                ParserError::new(file, "nginx", "regex", "bad"),
                "parsers/web.toml: parser \"nginx\": regex: bad",
            ),
            (
                ParserError::new(file, "nginx", "", "bad"),
                "parsers/web.toml: parser \"nginx\": bad",
            ),
            (
                ParserError::new(file, "", "", "bad"),
                "parsers/web.toml: bad",
            ),
        ];
        for (error, shown) in cases {
            assert_eq!(error.to_string(), shown);
        }
    }

    #[test]
    fn serde_messages_are_rephrased_in_definition_terms() {
        let cases = [
            (
                "unknown field `regx`, expected one of `format`, `regex`",
                "unknown key (expected one of: format, regex)",
            ),
            (
                "unknown variant `xml`, expected one of `regex`, `json`, `logfmt`",
                "unknown value \"xml\" (expected one of: regex, json, logfmt)",
            ),
            ("missing field `format`", "missing key \"format\""),
            (
                "invalid type: integer `3`, expected a map",
                "invalid type: integer `3`, expected a table",
            ),
        ];
        for (message, want) in cases {
            assert_eq!(rephrase(message), want, "{message:?}");
        }
    }

    #[test]
    fn a_syntax_error_is_blamed_on_the_table_above_it() {
        let cases = [
            ("[nginx]\nformat = \"regex\"\n", "nginx"),
            (
                "[a]\nx = 1\n[[syslog-rfc3164.example]]\nline = ",
                "syslog-rfc3164",
            ),
            ("[\"odd name\"]\n", "odd name"),
            ("format = ", ""),
        ];
        for (text, table) in cases {
            assert_eq!(enclosing_table(text), table, "{text:?}");
        }
    }
}
