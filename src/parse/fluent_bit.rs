//! Fluent Bit `parsers.conf` files, read as they are: each classic `[PARSER]` section is
//! translated to the TOML definition shiplog would have (`format`, `regex`, `time_key`,
//! `time_format`, `types`) and built like one, so users coming from a Fluent Bit DaemonSet
//! keep their parser files (issue 23).
//!
//! Owns the file's syntax and the key-by-key translation, nothing else. What cannot be
//! translated faithfully is refused, naming the file, the parser and the Fluent Bit key,
//! with the reason: a parser that silently did something else would be worse than one
//! that must be rewritten. Keys are matched case-insensitively, as Fluent Bit does.
//!
//! | Fluent Bit | shiplog |
//! |---|---|
//! | `Name` | the parser's name |
//! | `Format` `regex` / `json` / `logfmt` / `ltsv` | `format` |
//! | `Regex` | `regex` (Ruby-style `(?<name>…)` groups are the regex crate's syntax too; a `/…/` literal and `\<`, `\>` are read as Onigmo reads them) |
//! | `Time_Key`, `Time_Format` | `time_key`, `time_format` (`%L` accepted; `Time_Key` defaults to `time`) |
//! | `Time_Keep` | accepted: shiplog keeps the time field in `data` either way |
//! | `Time_Offset` | only `+0000`: a format without an offset reads UTC |
//! | `Types a:integer b:float` | `types` (`hex` refused) |
//! | `Decode_Field_As`, `Decode_Field`, anything else | refused with the reason |

use std::path::Path;

use super::Parser;
use super::definition;
use super::error::ParserError;

/// One `[PARSER]` section: its keys as written (with their line), in order.
#[derive(Debug, Default)]
struct Section {
    line: usize,
    entries: Vec<(usize, String, String)>,
}

/// The parsers of a `parsers.conf` text read from `origin`, in file order.
pub(super) fn parsers(text: &str, origin: &Path) -> Result<Vec<(String, Parser)>, ParserError> {
    sections(text, origin)?
        .iter()
        .map(|section| translate(section, origin))
        .collect()
}

/// The `[PARSER]` sections of `text`; any other section, or a key outside a section, is
/// refused.
fn sections(text: &str, origin: &Path) -> Result<Vec<Section>, ParserError> {
    let mut sections: Vec<Section> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            if !header.trim().eq_ignore_ascii_case("PARSER") {
                let reason = if header.trim().eq_ignore_ascii_case("MULTILINE_PARSER") {
                    "multiline parsers are not translated: shiplog's multiline rules are \
                     TOML tables with format = \"multiline\" and a start regex"
                } else {
                    "only [PARSER] sections are read from a parsers.conf file"
                };
                return Err(ParserError::new(
                    origin,
                    "",
                    format!("line {number}: [{}]", header.trim()),
                    reason,
                ));
            }
            sections.push(Section {
                line: number,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = sections.last_mut() else {
            return Err(ParserError::new(
                origin,
                "",
                format!("line {number}"),
                "a key before any [PARSER] section",
            ));
        };
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(key, value)| (key, value.trim()));
        section
            .entries
            .push((number, key.to_string(), value.to_string()));
    }
    Ok(sections)
}

/// One section as a shiplog parser.
fn translate(section: &Section, origin: &Path) -> Result<(String, Parser), ParserError> {
    let name = section
        .entries
        .iter()
        .find(|(_, key, _)| key.eq_ignore_ascii_case("Name"))
        .map(|(_, _, value)| value.clone())
        .ok_or_else(|| {
            ParserError::new(
                origin,
                "",
                format!("line {}: Name", section.line),
                "a [PARSER] section needs a Name",
            )
        })?;
    let refuse = |key: &str, reason: &str| ParserError::new(origin, &name, key, reason);
    let mut table = toml::Table::new();
    let mut time_key = None;
    let mut time_format = None;
    for (_, key, value) in &section.entries {
        let seen = |toml_key: &str| table.contains_key(toml_key);
        match key.to_ascii_lowercase().as_str() {
            "name" => continue,
            "format" => {
                let format = value.to_ascii_lowercase();
                match format.as_str() {
                    "regex" | "json" | "logfmt" | "ltsv" => {}
                    _ => {
                        return Err(refuse(
                            key,
                            &format!("unknown format {value:?}: regex, json, logfmt or ltsv"),
                        ));
                    }
                }
                if seen("format") {
                    return Err(refuse(key, "given twice"));
                }
                table.insert("format".into(), format.into());
            }
            "regex" => {
                if seen("regex") {
                    return Err(refuse(key, "given twice"));
                }
                table.insert("regex".into(), ruby_regex(value).into());
            }
            "time_key" | "time_format" => {
                let slot = if key.eq_ignore_ascii_case("time_key") {
                    &mut time_key
                } else {
                    &mut time_format
                };
                if slot.replace(value.clone()).is_some() {
                    return Err(refuse(
                        key,
                        "given twice: keep the one the parser's times are written in",
                    ));
                }
            }
            "time_keep" => match value.to_ascii_lowercase().as_str() {
                "on" | "off" | "true" | "false" => {}
                _ => return Err(refuse(key, "expected On or Off")),
            },
            "time_offset" => match value.as_str() {
                "+0000" | "-0000" | "+00:00" | "-00:00" | "UTC" | "Z" => {}
                _ => {
                    return Err(refuse(
                        key,
                        "not translated: shiplog reads a time without an offset as UTC; \
                         put the offset in the time (%z in Time_Format) instead",
                    ));
                }
            },
            "types" => {
                table.insert(
                    "types".into(),
                    types(value).map_err(|r| refuse(key, &r))?.into(),
                );
            }
            "decode_field_as" | "decode_field" => {
                return Err(refuse(
                    key,
                    "not translated: shiplog decodes a JSON log into data by itself \
                     (kubernetes.merge_log); other decoders have no counterpart",
                ));
            }
            _ => {
                return Err(refuse(
                    key,
                    "not a key shiplog translates (Name, Format, Regex, Time_Key, \
                     Time_Format, Time_Keep, Time_Offset, Types)",
                ));
            }
        }
    }
    // Fluent Bit reads the time only with a Time_Format, from Time_Key or else `time`.
    if let Some(format) = time_format {
        let key = time_key.unwrap_or_else(|| "time".to_string());
        table.insert("time_key".into(), key.into());
        table.insert("time_format".into(), format.into());
    }
    match definition::build(origin, &name, toml::Value::Table(table))
        .map_err(|error| fluent_bit_key(error, section))?
    {
        definition::Built::Parser(parser) => Ok((name, parser)),
        // `Format` admits parsers only (checked above); multiline rules are
        // `[MULTILINE_PARSER]` sections, refused as such.
        definition::Built::Multiline(_) => Err(refuse("Format", "not a parser format")),
    }
}

/// A `Regex` as the regex crate reads it. Fluent Bit's Onigmo (Ruby syntax) also takes a
/// Ruby literal `/.../` with `i`, `m` or `x` after it, where Ruby's `m` is the regex
/// crate's `s` (dot matches a newline); and its `\<` and `\>` are the characters `<` and
/// `>` (Fluent Bit's syslog parsers write `^\<(?<pri>…)\>`), where the regex crate reads
/// word boundaries.
fn ruby_regex(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let pattern = ruby_literal(value);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(angle @ ('<' | '>')) => out.push(angle),
            Some(escaped) => {
                out.push('\\');
                out.push(escaped);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// The pattern of a Ruby literal `/.../flags`, its flags as a `(?flags)` prefix; any other
/// value as it is.
fn ruby_literal(value: &str) -> String {
    let literal = value.strip_prefix('/').and_then(|rest| {
        let end = rest.rfind('/')?;
        let (body, flags) = (&rest[..end], &rest[end + 1..]);
        flags
            .chars()
            .all(|flag| matches!(flag, 'i' | 'm' | 'x'))
            .then_some((body, flags))
    });
    let Some((body, flags)) = literal else {
        return value.to_string();
    };
    if flags.is_empty() {
        return body.to_string();
    }
    let flags: String = flags
        .chars()
        .map(|flag| if flag == 'm' { 's' } else { flag })
        .collect();
    format!("(?{flags}){body}")
}

/// `Types a:integer b:float` as shiplog's `types` table.
fn types(value: &str) -> Result<toml::Table, String> {
    let mut types = toml::Table::new();
    for entry in value.split_whitespace() {
        let Some((field, kind)) = entry.split_once(':') else {
            return Err(format!("{entry:?} is not FIELD:TYPE"));
        };
        let kind = kind.to_ascii_lowercase();
        match kind.as_str() {
            "integer" | "float" | "bool" | "string" => {}
            "hex" => return Err(format!("{field}:hex is not supported by shiplog")),
            _ => return Err(format!("{field}: unknown type {kind:?}")),
        }
        types.insert(field.to_string(), kind.into());
    }
    Ok(types)
}

/// `error`, from building the translated table, naming the Fluent Bit key it came from.
fn fluent_bit_key(mut error: ParserError, section: &Section) -> ParserError {
    let written = |lower: &str| {
        section
            .entries
            .iter()
            .find(|(_, key, _)| key.eq_ignore_ascii_case(lower))
            .map(|(_, key, _)| key.clone())
    };
    let head = error.key.split(['.', '[']).next().unwrap_or_default();
    if let Some(key) = written(head) {
        error.key = key;
    }
    error
}

#[cfg(test)]
mod tests;
