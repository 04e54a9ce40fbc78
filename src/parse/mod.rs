//! Turning a line's payload into fields for the record's `data` object: the JSON merge
//! ([`json::object`]) and the named parsers a pod annotation selects.
//!
//! A [`ParserSet`] holds the parsers by name: the built-in definitions of `parsers/*.toml`
//! (embedded in the binary) and those of the folders in `[parsers] dirs`, read and checked
//! once at start-up. A [`Parser`] is one of three kinds, dispatched by `match`; parsing a
//! line is pure (no I/O, no clock) and never panics. Only loading reads files.
//!
//! # Layout
//!
//! - [`definition`]: the TOML schema of a parser, and its examples.
//! - [`regex`], [`json`], [`logfmt`]: the three kinds of parser; [`nginx`]: the built-in
//!   nginx regex, matched by hand for speed.
//! - [`fields`]: the `data` object they build, and `types` coercion.
//! - [`time`]: `time_key` + `time_format` → the record time.
//! - [`error`]: `ParserError`, naming the file, the parser, the key and the reason.

pub mod definition;
pub mod error;
pub mod fields;
pub mod fluent_bit;
pub mod json;
pub mod logfmt;
pub mod ltsv;
pub mod nginx;
pub mod regex;
pub mod time;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::error::ParserError;
use self::json::JsonParser;
use self::logfmt::LogfmtParser;
use self::ltsv::LtsvParser;
use self::regex::RegexParser;
use crate::multiline::{Rule, rules::BUILTIN_NAMES};

/// A parser, ready to use: regexes compiled and time formats checked.
#[derive(Debug, Clone)]
pub enum Parser {
    /// Named capture groups of a regex become fields.
    Regex(RegexParser),
    /// The line must be a JSON object; it is embedded as written.
    Json(JsonParser),
    /// `key=value` pairs become fields.
    Logfmt(LogfmtParser),
    /// Tab-separated `label:value` fields become fields.
    Ltsv(LtsvParser),
}

/// What a parser made of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// A JSON object, rendered, ready to embed under the record's merge key. Always valid
    /// JSON: it is copied into the record verbatim.
    pub data: String,
    /// The time `time_key` and `time_format` read, as RFC 3339 in UTC with nanoseconds
    /// (`2000-10-10T20:55:36.000000000Z`); `None` when the parser has no time key or the
    /// field is missing or does not fit the format. The field itself stays in `data`
    /// either way, as written.
    pub time: Option<String>,
}

impl Parser {
    /// The fields of `line`, or `None` when the line is not of this parser's kind.
    ///
    /// `year` is used only by time formats without a year (syslog RFC 3164, klog): pass the
    /// year of the line's runtime timestamp. Taking it as an argument keeps parsing pure.
    pub fn parse(&self, line: &str, year: i16) -> Option<Parsed> {
        match self {
            Parser::Regex(parser) => parser.parse(line, year),
            Parser::Json(parser) => parser.parse(line, year),
            Parser::Logfmt(parser) => parser.parse(line, year),
            Parser::Ltsv(parser) => parser.parse(line, year),
        }
    }
}

/// The built-in definitions, embedded so that a deployed binary has them without the
/// `parsers/` folder. Their examples are checked by the tests.
const BUILTIN: [(&str, &str); 7] = [
    ("json.toml", include_str!("../../parsers/json.toml")),
    ("logfmt.toml", include_str!("../../parsers/logfmt.toml")),
    ("ltsv.toml", include_str!("../../parsers/ltsv.toml")),
    ("nginx.toml", include_str!("../../parsers/nginx.toml")),
    ("apache.toml", include_str!("../../parsers/apache.toml")),
    ("syslog.toml", include_str!("../../parsers/syslog.toml")),
    ("klog.toml", include_str!("../../parsers/klog.toml")),
];

/// Parsers and multiline rules by name (one namespace for both). Cheap to share: each sits
/// behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct ParserSet {
    parsers: BTreeMap<String, Loaded>,
}

/// A loaded parser or multiline rule, and the file that defined it.
#[derive(Debug, Clone)]
struct Loaded {
    defined: Defined,
    file: PathBuf,
}

#[derive(Debug, Clone)]
enum Defined {
    Parser(Arc<Parser>),
    Multiline(Arc<Rule>),
}

impl ParserSet {
    /// The built-in parsers: `json`, `logfmt`, `ltsv`, `nginx`, `apache2`, `apache_error`,
    /// `syslog-rfc3164`, `syslog-rfc3164-local`, `syslog-rfc5424` and `klog`, and the
    /// multiline rules `java`, `python`, `go` and `ruby`. Their files are tested to load; were
    /// one ever broken, its parsers would be missing rather than the binary panicking.
    pub fn builtin() -> ParserSet {
        let mut set = ParserSet::default();
        for (name, text) in BUILTIN {
            if let Ok(file) = ParserSet::from_toml(text, &Path::new("built-in").join(name)) {
                set.parsers.extend(file.parsers);
            }
        }
        for name in BUILTIN_NAMES {
            if let Some(rule) = crate::multiline::builtin(name) {
                let loaded = Loaded {
                    defined: Defined::Multiline(Arc::new(rule)),
                    file: Path::new("built-in").join("multiline"),
                };
                set.parsers.insert(name.to_owned(), loaded);
            }
        }
        set
    }

    /// The parsers one definition file defines. `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<ParserSet, ParserError> {
        let tables: toml::Table =
            toml::from_str(text).map_err(|error| ParserError::from_syntax(origin, text, &error))?;
        let mut parsers = BTreeMap::new();
        for (name, table) in tables {
            let defined = match definition::build(origin, &name, table)? {
                definition::Built::Parser(parser) => Defined::Parser(Arc::new(parser)),
                definition::Built::Multiline(rule) => Defined::Multiline(Arc::new(rule)),
            };
            let file = origin.to_path_buf();
            parsers.insert(name, Loaded { defined, file });
        }
        Ok(ParserSet { parsers })
    }

    /// The parsers of a Fluent Bit `parsers.conf` text (`[PARSER]` sections) read from
    /// `origin`; what cannot be translated is an error naming the parser and its key.
    pub fn from_fluent_bit_conf(text: &str, origin: &Path) -> Result<ParserSet, ParserError> {
        let mut parsers = BTreeMap::new();
        for (name, parser) in fluent_bit::parsers(text, origin)? {
            if parsers.contains_key(&name) {
                return Err(ParserError::new(
                    origin,
                    name,
                    "Name",
                    "defined twice in this file",
                ));
            }
            let loaded = Loaded {
                defined: Defined::Parser(Arc::new(parser)),
                file: origin.to_path_buf(),
            };
            parsers.insert(name, loaded);
        }
        Ok(ParserSet { parsers })
    }

    /// Adds the parsers of every `*.toml` file and Fluent Bit `*.conf` file in `dirs`, in folder order and, within a
    /// folder, in file-name order. A definition replaces a parser of the same name already
    /// in the set (a built-in one, say); two definitions of one name within `dirs` are an
    /// error, as is a folder that cannot be read. On error the set is left unchanged.
    pub fn load_dirs(&mut self, dirs: &[PathBuf]) -> Result<(), ParserError> {
        let mut loaded: BTreeMap<String, Loaded> = BTreeMap::new();
        for dir in dirs {
            for file in parser_files(dir)? {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| ParserError::new(&file, "", "", format!("cannot read: {e}")))?;
                let parsers = if file.extension().is_some_and(|ext| ext == "conf") {
                    ParserSet::from_fluent_bit_conf(&text, &file)?
                } else {
                    ParserSet::from_toml(&text, &file)?
                };
                for (name, parser) in parsers.parsers {
                    if let Some(earlier) = loaded.get(&name) {
                        return Err(ParserError::new(
                            &file,
                            name,
                            "",
                            format!("already defined in {}", earlier.file.display()),
                        ));
                    }
                    loaded.insert(name, parser);
                }
            }
        }
        self.parsers.extend(loaded);
        Ok(())
    }

    /// The parser called `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Parser>> {
        match &self.parsers.get(name)?.defined {
            Defined::Parser(parser) => Some(Arc::clone(parser)),
            Defined::Multiline(_) => None,
        }
    }

    /// The multiline rule called `name`.
    pub fn multiline(&self, name: &str) -> Option<Arc<Rule>> {
        match &self.parsers.get(name)?.defined {
            Defined::Multiline(rule) => Some(Arc::clone(rule)),
            Defined::Parser(_) => None,
        }
    }

    /// The file that defined parser `name` (`built-in/<file>` for a built-in one).
    pub fn file(&self, name: &str) -> Option<&Path> {
        self.parsers.get(name).map(|d| d.file.as_path())
    }

    /// Every parser's name, in order (multiline rules not included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parsers
            .iter()
            .filter(|(_, loaded)| matches!(loaded.defined, Defined::Parser(_)))
            .map(|(name, _)| name.as_str())
    }

    /// Every multiline rule's name, in order.
    pub fn multiline_names(&self) -> impl Iterator<Item = &str> {
        self.parsers
            .iter()
            .filter(|(_, loaded)| matches!(loaded.defined, Defined::Multiline(_)))
            .map(|(name, _)| name.as_str())
    }
}

/// The `*.toml` and Fluent Bit `*.conf` parser files directly in `dir` (following symbolic
/// links, as in a mounted ConfigMap), sorted by file name.
fn parser_files(dir: &Path) -> Result<Vec<PathBuf>, ParserError> {
    let unreadable = |e: std::io::Error| {
        ParserError::new(dir, "", "", format!("cannot read parser folder: {e}"))
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path
            .extension()
            .is_some_and(|ext| ext == "toml" || ext == "conf")
            && path.is_file()
        {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}
