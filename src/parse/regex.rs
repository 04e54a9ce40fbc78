//! The regex parser: a line matched against one regex; its named capture groups become the
//! fields of `data`, in group order, converted by `types`.
//!
//! As in Fluent Bit, a group that took no part in the match is left out and a `-` stays the
//! string `"-"`. The regex is compiled once, at load; matching is linear in the line
//! (Rust's `regex` crate has no backtracking blow-up). The built-in nginx regex is matched
//! by [`super::nginx`] instead, which gives the same groups faster.

use std::collections::BTreeMap;

use ::regex::Regex;

use super::Parsed;
use super::error::KeyError;
use super::fields::{FieldType, Fields};
use super::nginx;
use super::time::{TimeFormat, TimeKey};

/// A compiled regex parser.
#[derive(Debug, Clone)]
pub struct RegexParser {
    regex: Regex,
    /// The named groups, in group order, each with its declared type.
    groups: Vec<Group>,
    /// The group holding the time, and its format.
    time: Option<(usize, TimeFormat)>,
    /// The pattern is [`nginx::PATTERN`]: match with [`nginx::captures`].
    nginx: bool,
}

#[derive(Debug, Clone)]
struct Group {
    index: usize,
    name: String,
    ty: Option<FieldType>,
}

impl RegexParser {
    /// Compiles `pattern`. Every `types` entry and the `time` key must name a capture group:
    /// a type or time for a field the regex never captures is a mistake caught here.
    pub fn new(
        pattern: &str,
        types: &BTreeMap<String, FieldType>,
        time: Option<TimeKey>,
    ) -> Result<Self, KeyError> {
        let regex = Regex::new(pattern).map_err(|e| KeyError::new("regex", e.to_string()))?;
        let groups: Vec<Group> = regex
            .capture_names()
            .enumerate()
            .filter_map(|(index, name)| {
                let name = name?.to_string();
                let ty = types.get(&name).copied();
                Some(Group { index, name, ty })
            })
            .collect();
        if groups.is_empty() {
            return Err(KeyError::new(
                "regex",
                "no named capture group: write fields as (?<name>...)",
            ));
        }
        let index_of = |name: &str| groups.iter().find(|g| g.name == name).map(|g| g.index);
        if let Some(name) = types.keys().find(|name| index_of(name).is_none()) {
            return Err(KeyError::new(
                format!("types.{name}"),
                "no capture group of the regex has this name",
            ));
        }
        let time = match time {
            Some(TimeKey { key, format }) => match index_of(&key) {
                Some(index) => Some((index, format)),
                None => {
                    return Err(KeyError::new(
                        "time_key",
                        format!("no capture group of the regex is named {key:?}"),
                    ));
                }
            },
            None => None,
        };
        Ok(RegexParser {
            regex,
            groups,
            time,
            nginx: pattern == nginx::PATTERN,
        })
    }

    /// The fields `line` yields, or `None` when the regex does not match it.
    pub fn parse(&self, line: &str, year: i16) -> Option<Parsed> {
        if self.nginx {
            let spans = nginx::captures(line)?;
            let group = |index: usize| {
                let (start, end) = (*spans.get(index)?)?;
                line.get(start..end)
            };
            return self.fields(group, year);
        }
        let captures = self.regex.captures(line)?;
        self.fields(
            |index| captures.get(index).map(|found| found.as_str()),
            year,
        )
    }

    /// The fields of a match, `group` giving each group's text by index.
    fn fields<'a>(&self, group: impl Fn(usize) -> Option<&'a str>, year: i16) -> Option<Parsed> {
        let mut fields = Fields::with_capacity(group(0).map_or(0, str::len));
        for named in &self.groups {
            if let Some(found) = group(named.index) {
                fields.push(&named.name, found, named.ty);
            }
        }
        let time = self
            .time
            .as_ref()
            .and_then(|(index, format)| format.parse(group(*index)?, year));
        Some(Parsed {
            data: fields.finish()?,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parser(pattern: &str, types: &[(&str, FieldType)]) -> RegexParser {
        let types = types.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        RegexParser::new(pattern, &types, None).unwrap()
    }

    fn data(parser: &RegexParser, line: &str) -> Option<Value> {
        let parsed = parser.parse(line, 2024)?;
        Some(serde_json::from_str(&parsed.data).unwrap())
    }

    #[test]
    fn named_groups_become_fields_in_group_order() {
        let p = parser(r"^(?<b>\w+) (?:(?<a>\d+) )?(\w+)(?<c>.*)$", &[]);
        let parsed = p.parse("word 12 rest", 2024).unwrap();
        assert_eq!(parsed.data, r#"{"b":"word","a":"12","c":""}"#);
        assert_eq!(parsed.time, None);
    }

    #[test]
    fn groups_that_took_no_part_in_the_match_are_left_out() {
        let p = parser(r"^(?<b>\w+) (?:(?<a>\d+) )?(?<c>\w+)$", &[]);
        assert_eq!(
            data(&p, "word rest"),
            Some(json!({"b": "word", "c": "rest"}))
        );
        assert_eq!(data(&p, "two words and more"), None);
    }

    #[test]
    fn a_value_that_does_not_convert_stays_a_string() {
        let p = parser(
            r"^(?<code>\S+) (?<size>\S+)$",
            &[("code", FieldType::Integer), ("size", FieldType::Integer)],
        );
        assert_eq!(data(&p, "200 512"), Some(json!({"code": 200, "size": 512})));
        assert_eq!(data(&p, "200 -"), Some(json!({"code": 200, "size": "-"})));
        assert_eq!(
            data(&p, "2xx 1.5"),
            Some(json!({"code": "2xx", "size": "1.5"}))
        );
    }

    #[test]
    fn mistakes_in_a_regex_definition_name_their_key() {
        let integer = [("cdoe", FieldType::Integer)];
        let types: BTreeMap<String, FieldType> =
            integer.iter().map(|(k, t)| (k.to_string(), *t)).collect();
        let time = || TimeKey {
            key: "stamp".into(),
            format: TimeFormat::new("%s").unwrap(),
        };
        let cases = [
            (r"(?<code>\d+", BTreeMap::new(), None, "regex"),
            (r"(\d+)", BTreeMap::new(), None, "regex"),
            (r"(?<code>\d+)", types, None, "types.cdoe"),
            (r"(?<code>\d+)", BTreeMap::new(), Some(time()), "time_key"),
        ];
        for (pattern, types, time, key) in cases {
            let error = RegexParser::new(pattern, &types, time).unwrap_err();
            assert_eq!(error.key, key, "{pattern:?}: {}", error.reason);
        }
    }
}
