//! The logfmt parser: `key=value key2="quoted \" value" flag` → fields, as Fluent Bit's
//! `flb_parser_logfmt.c` reads them (itself after <https://brandur.org/logfmt>).
//!
//! A key is a run of bytes above space other than `=` and `"`; anything else between pairs
//! is skipped. `key=value` takes a bare value up to the next space or `"`, `key="..."` a
//! quoted one in which `\"`, `\\`, `\n`, `\t`, `\r`, `\b`, `\f`, `\/` and `\uXXXX` are
//! unescaped (an unknown escape is kept as written, an unterminated quote runs to the end
//! of the line), and a key alone is `true`. A line without a single `key=` pair is not
//! logfmt.
//!
//! Three deliberate differences from Fluent Bit, each keeping more of what the line says:
//! a bare value may hold `=` (`url=/a?b=c` is one field, not `url=/a?b` and a key `c`),
//! `key=` is the empty string rather than `true`, and when a key repeats the last value
//! wins, so that `data` never holds duplicate keys.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use super::Parsed;
use super::fields::{FieldType, Fields};
use super::time::TimeKey;

/// A logfmt parser, with its `types` and time field.
#[derive(Debug, Clone)]
pub struct LogfmtParser {
    types: BTreeMap<String, FieldType>,
    time: Option<TimeKey>,
}

/// One `key`, `key=value` or `key="value"` of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pair<'a> {
    key: &'a str,
    /// `None` for a key without `=`.
    value: Option<Cow<'a, str>>,
}

impl LogfmtParser {
    /// A logfmt parser converting fields by `types` and reading the time from `time`.
    pub fn new(types: BTreeMap<String, FieldType>, time: Option<TimeKey>) -> Self {
        LogfmtParser { types, time }
    }

    /// The fields of `line`, or `None` when it holds no `key=` pair.
    pub fn parse(&self, line: &str, year: i16) -> Option<Parsed> {
        let mut pairs = pairs(line);
        if !pairs.iter().any(|pair| pair.value.is_some()) {
            return None;
        }
        keep_last_of_each_key(&mut pairs);
        let mut fields = Fields::with_capacity(line.len());
        let mut time = None;
        for pair in &pairs {
            let Some(value) = &pair.value else {
                fields.push_true(pair.key);
                continue;
            };
            if let Some(rule) = self.time.as_ref().filter(|rule| rule.key == pair.key) {
                time = rule.format.parse(value, year);
            }
            fields.push(pair.key, value, self.types.get(pair.key).copied());
        }
        Some(Parsed {
            data: fields.finish()?,
            time,
        })
    }
}

/// A byte that may appear in a key.
fn is_ident(byte: u8) -> bool {
    byte > b' ' && byte != b'=' && byte != b'"'
}

/// A byte that may appear in a bare value: a key's bytes, and `=`.
fn is_bare_value(byte: u8) -> bool {
    byte > b' ' && byte != b'"'
}

/// Every pair of `line`, in order. Only ASCII bytes end a key or a value, so every slice
/// falls on a character boundary.
fn pairs(line: &str) -> Vec<Pair<'_>> {
    let bytes = line.as_bytes();
    let run = |from: usize, allowed: fn(u8) -> bool| {
        bytes[from..]
            .iter()
            .position(|&b| !allowed(b))
            .map_or(bytes.len(), |n| from + n)
    };
    let mut pairs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_ident(bytes[i]) {
            i += 1;
            continue;
        }
        let key_end = run(i, is_ident);
        let key = &line[i..key_end];
        i = key_end;
        let value = if bytes.get(i) == Some(&b'=') {
            i += 1;
            if bytes.get(i) == Some(&b'"') {
                let (value, end) = quoted(line, i + 1);
                i = end;
                Some(value)
            } else {
                let end = run(i, is_bare_value);
                let value = Cow::Borrowed(&line[i..end]);
                i = end;
                Some(value)
            }
        } else {
            None
        };
        pairs.push(Pair { key, value });
    }
    pairs
}

/// The quoted value starting at `start` (after the opening quote), unescaped, and the index
/// after its closing quote (or the end of the line when it has none).
fn quoted(line: &str, start: usize) -> (Cow<'_, str>, usize) {
    let bytes = line.as_bytes();
    let mut i = start;
    let mut escaped = false;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => break,
            b'\\' => {
                escaped = true;
                i += 2;
            }
            _ => i += 1,
        }
    }
    let end = i.min(bytes.len());
    let raw = &line[start..end];
    let value = if escaped {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    };
    (value, (end + 1).min(bytes.len()))
}

/// `raw` with its backslash escapes replaced.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.as_str();
        let Some(next) = chars.next() else {
            out.push('\\');
            break;
        };
        let simple = match next {
            '"' => Some('"'),
            '\\' => Some('\\'),
            '/' => Some('/'),
            'n' => Some('\n'),
            't' => Some('\t'),
            'r' => Some('\r'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            _ => None,
        };
        let unicode = || {
            let hex = rest
                .get(1..5)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            char::from_u32(u32::from_str_radix(hex, 16).ok()?)
        };
        match (simple, next) {
            (Some(c), _) => out.push(c),
            (None, 'u') if unicode().is_some() => {
                out.extend(unicode());
                chars = rest[5..].chars();
            }
            (None, other) => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    out
}

/// Drops every pair whose key comes again later, keeping the order of those left. Short
/// lines are checked pair by pair; long ones through a set, so no line costs quadratic time.
fn keep_last_of_each_key(pairs: &mut Vec<Pair<'_>>) {
    let repeats = pairs.len() > 16
        || (0..pairs.len()).any(|i| pairs[i + 1..].iter().any(|p| p.key == pairs[i].key));
    if !repeats {
        return;
    }
    let mut seen = HashSet::with_capacity(pairs.len());
    let last: Vec<bool> = pairs.iter().rev().map(|p| seen.insert(p.key)).collect();
    let mut last = last.into_iter().rev();
    pairs.retain(|_| last.next().unwrap_or(true));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn data(line: &str) -> Option<Value> {
        let parser = LogfmtParser::new(BTreeMap::new(), None);
        let parsed = parser.parse(line, 2024)?;
        Some(serde_json::from_str(&parsed.data).unwrap())
    }

    #[test]
    fn pairs_quoted_values_and_bare_keys_become_fields() {
        let cases = [
            (
                r#"level=info msg="user signed up" user_id=42 admin"#,
                json!({"level": "info", "msg": "user signed up", "user_id": "42", "admin": true}),
            ),
            (
                r#"msg="say \"hi\" \\ now\n" path=/a/b?c=d"#,
                json!({"msg": "say \"hi\" \\ now\n", "path": "/a/b?c=d"}),
            ),
            (r#"a= b="" c"#, json!({"a": "", "b": "", "c": true})),
            (
                r#"a="unterminated value"#,
                json!({"a": "unterminated value"}),
            ),
            (
                r#"a="ends in backslash\"#,
                json!({"a": "ends in backslash\\"}),
            ),
            (
                r#"a="\u00e9t\u00E9 \q \uZZZZ""#,
                json!({"a": "été \\q \\uZZZZ"}),
            ),
            ("  ts=1  \t lvl=warn\r\n", json!({"ts": "1", "lvl": "warn"})),
            (
                "clé=valeur ünïcode=✓",
                json!({"clé": "valeur", "ünïcode": "✓"}),
            ),
            ("a=1 b=2 a=3", json!({"b": "2", "a": "3"})),
            ("== a=b=c =d", json!({"a": "b=c", "d": true})),
        ];
        for (line, want) in cases {
            assert_eq!(data(line), Some(want), "{line:?}");
        }
    }

    #[test]
    fn a_line_without_a_key_value_pair_is_not_logfmt() {
        for line in ["", "   ", "just some words", "\"quoted\"", "= = ="] {
            assert_eq!(data(line), None, "{line:?}");
        }
    }

    #[test]
    fn repeated_keys_keep_their_last_value_on_long_lines_too() {
        let line: String = (0..40).map(|i| format!("k{}={i} ", i % 20)).collect();
        let value = data(&line).unwrap();
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 20);
        assert_eq!(object["k3"], "23");
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 20);
    }

    #[test]
    fn types_and_the_time_field_apply_to_logfmt_values() {
        let types = BTreeMap::from([
            ("n".to_string(), FieldType::Integer),
            ("ok".to_string(), FieldType::Bool),
        ]);
        let time = TimeKey {
            key: "ts".into(),
            format: super::super::time::TimeFormat::new("%Y-%m-%dT%H:%M:%S%.f%:z").unwrap(),
        };
        let parser = LogfmtParser::new(types, Some(time));
        let parsed = parser
            .parse(
                r#"ts=2024-03-01T12:00:00Z n="12" ok=true bad=x n2=7 ok"#,
                2024,
            )
            .unwrap();
        assert_eq!(
            parsed.time.as_deref(),
            Some("2024-03-01T12:00:00.000000000Z")
        );
        let value: Value = serde_json::from_str(&parsed.data).unwrap();
        assert_eq!(
            value,
            json!({"ts": "2024-03-01T12:00:00Z", "n": 12, "bad": "x", "n2": "7", "ok": true})
        );
        let untimed = parser.parse("ts=soon n=x", 2024).unwrap();
        assert_eq!(untimed.time, None);
        assert_eq!(untimed.data, r#"{"ts":"soon","n":"x"}"#);
    }
}
