//! One parser's TOML table turned into a [`Parser`], and its examples checked against it.
//!
//! The schema (documented for users in `parsers/README.md`):
//!
//! ```toml
//! [nginx]
//! format = "regex"                        # "regex" | "json" | "logfmt" | "ltsv" | "multiline"
//! regex = '''^(?<remote>[^ ]*) ...$'''    # regex only: named groups become fields
//! time_key = "time"                       # with time_format, or neither
//! time_format = "%d/%b/%Y:%H:%M:%S %z"
//! types = { code = "integer" }            # regex, logfmt, ltsv: integer, float, bool, string
//!
//! [[nginx.example]]                       # any number; checked at load
//! line = '''...'''
//! fields = { remote = "10.0.0.1", ... }   # exactly the fields of `data`
//! time = "2000-10-10T20:55:36.000000000Z" # the parsed time; absent: none expected
//!
//! [[nginx.example]]
//! line = "not an access log line"
//! matches = false                         # a line the parser must not match
//! ```
//!
//! A multiline rule (`format = "multiline"`) has one key besides `format`: `start = 'REGEX'`,
//! a line matching it begins a new event (see [`crate::multiline`]).
//!
//! Examples are checked whenever a file loads, so a definition whose own examples disagree
//! with it is refused like any other mistake, naming `example[N]` (counted from 0).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Parser;
use super::error::{KeyError, ParserError};
use super::fields::FieldType;
use super::json::JsonParser;
use super::logfmt::LogfmtParser;
use super::ltsv::LtsvParser;
use super::regex::RegexParser;
use super::time::{TimeFormat, TimeKey};
use crate::multiline::Rule;

/// The year examples are checked with: formats without a year (syslog RFC 3164, klog) take
/// the year a line was read in, and examples read as if in this one.
pub const EXAMPLE_YEAR: i16 = 2024;

/// A parser's table, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Definition {
    format: Format,
    regex: Option<String>,
    start: Option<String>,
    time_key: Option<String>,
    time_format: Option<String>,
    #[serde(default)]
    types: BTreeMap<String, FieldType>,
    #[serde(default)]
    example: Vec<Example>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Format {
    Regex,
    Json,
    Logfmt,
    Ltsv,
    Multiline,
}

/// What a table defines: a parser, or a multiline rule.
#[derive(Debug)]
pub(super) enum Built {
    /// A parser, for `<prefix>/parser`.
    Parser(Parser),
    /// A multiline rule, for `shiplog.io/multiline`.
    Multiline(Rule),
}

/// A sample line and what the parser must make of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Example {
    line: String,
    #[serde(default = "matches_by_default")]
    matches: bool,
    fields: Option<toml::Table>,
    time: Option<String>,
}

fn matches_by_default() -> bool {
    true
}

/// Parser `name`, defined by `table` in `file`, with its examples checked.
pub(super) fn build(file: &Path, name: &str, table: toml::Value) -> Result<Built, ParserError> {
    if name.is_empty() {
        return Err(ParserError::new(file, name, "", "a parser needs a name"));
    }
    if !table.is_table() {
        return Err(ParserError::new(
            file,
            name,
            "",
            format!("expected a table [{name}] defining a parser, found a value"),
        ));
    }
    let definition: Definition = serde_path_to_error::deserialize(table)
        .map_err(|error| ParserError::from_serde(file, name, &error))?;
    if matches!(definition.format, Format::Multiline) {
        let rule = definition
            .multiline()
            .map_err(|error| error.at(file, name))?;
        return Ok(Built::Multiline(rule));
    }
    let parser = definition.parser().map_err(|error| error.at(file, name))?;
    for (index, example) in definition.example.iter().enumerate() {
        example
            .check(&parser)
            .map_err(|reason| ParserError::new(file, name, format!("example[{index}]"), reason))?;
    }
    Ok(Built::Parser(parser))
}

impl Definition {
    /// A multiline rule: `start` and nothing else.
    fn multiline(&self) -> Result<Rule, KeyError> {
        let extra = [
            ("regex", self.regex.is_some()),
            ("time_key", self.time_key.is_some()),
            ("time_format", self.time_format.is_some()),
            ("types", !self.types.is_empty()),
            ("example", !self.example.is_empty()),
        ];
        if let Some((key, _)) = extra.into_iter().find(|(_, set)| *set) {
            return Err(KeyError::new(
                key,
                "a multiline rule takes only start = 'REGEX' (a line matching it begins an event)",
            ));
        }
        let Some(start) = &self.start else {
            return Err(KeyError::new(
                "start",
                "missing: a multiline rule needs start = 'REGEX', matching the first line of an event",
            ));
        };
        Rule::start(start).map_err(|reason| KeyError::new("start", reason))
    }

    fn parser(&self) -> Result<Parser, KeyError> {
        if self.start.is_some() {
            return Err(KeyError::new(
                "start",
                "only a multiline rule (format = \"multiline\") takes start",
            ));
        }
        let time = self.time()?;
        match self.format {
            Format::Regex => {
                let Some(regex) = &self.regex else {
                    return Err(KeyError::new(
                        "regex",
                        "missing: a regex parser needs a regex with named groups (?<name>...)",
                    ));
                };
                Ok(Parser::Regex(RegexParser::new(regex, &self.types, time)?))
            }
            Format::Json => {
                self.refuse_regex("json")?;
                if !self.types.is_empty() {
                    return Err(KeyError::new(
                        "types",
                        "a json parser embeds the object as written, so it converts no \
                         field: types apply to regex and logfmt parsers",
                    ));
                }
                Ok(Parser::Json(JsonParser::new(time)))
            }
            Format::Logfmt => {
                self.refuse_regex("logfmt")?;
                Ok(Parser::Logfmt(LogfmtParser::new(self.types.clone(), time)))
            }
            Format::Ltsv => {
                self.refuse_regex("ltsv")?;
                Ok(Parser::Ltsv(LtsvParser::new(self.types.clone(), time)))
            }
            // `build` reads multiline tables with `multiline`, never here.
            Format::Multiline => Err(KeyError::new("format", "a multiline rule is not a parser")),
        }
    }

    fn time(&self) -> Result<Option<TimeKey>, KeyError> {
        match (&self.time_key, &self.time_format) {
            (Some(key), Some(format)) => {
                let format =
                    TimeFormat::new(format).map_err(|e| KeyError::new("time_format", e))?;
                let key = key.clone();
                Ok(Some(TimeKey { key, format }))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err(KeyError::new(
                "time_key",
                "needs a time_format saying how to read the time",
            )),
            (None, Some(_)) => Err(KeyError::new(
                "time_format",
                "needs a time_key naming the field that holds the time",
            )),
        }
    }

    fn refuse_regex(&self, format: &str) -> Result<(), KeyError> {
        match self.regex {
            Some(_) => Err(KeyError::new(
                "regex",
                format!("a {format} parser takes no regex: only format = \"regex\" does"),
            )),
            None => Ok(()),
        }
    }
}

impl Example {
    /// Whether `parser` does with this line what the example says, or the difference.
    fn check(&self, parser: &Parser) -> Result<(), String> {
        let parsed = parser.parse(&self.line, EXAMPLE_YEAR);
        let (expected, parsed) = match (self.matches, &self.fields, parsed) {
            (false, None, None) if self.time.is_none() => return Ok(()),
            (false, None, Some(parsed)) if self.time.is_none() => {
                return Err(format!("expected no match, got {}", parsed.data));
            }
            (false, _, _) => {
                return Err("an example with matches = false takes no fields or time".into());
            }
            (true, None, _) => {
                return Err("missing key \"fields\" (or matches = false)".into());
            }
            (true, Some(_), None) => return Err("the parser does not match this line".into()),
            (true, Some(fields), Some(parsed)) => (fields, parsed),
        };
        let got: serde_json::Value = serde_json::from_str(&parsed.data)
            .map_err(|e| format!("the parser gave invalid JSON {:?}: {e}", parsed.data))?;
        let want = serde_json::to_value(expected).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!("expected fields {want}, got {got}"));
        }
        if parsed.time != self.time {
            return Err(format!(
                "expected time {}, got {}",
                self.time.as_deref().unwrap_or("(none)"),
                parsed.time.as_deref().unwrap_or("(none)")
            ));
        }
        Ok(())
    }
}
