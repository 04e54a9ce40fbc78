//! JSON payloads: the merge check ([`object`]) and the `json` parser built on it.
//!
//! A payload that is a JSON object is embedded as is under the merge key, validated but
//! never parsed into a tree and serialized again. The `json` parser does the same, and
//! reads its `time_key` from the object's top level without building a tree either.

use std::borrow::Cow;
use std::fmt;

use serde::Deserializer as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::Parsed;
use super::time::TimeKey;

/// The JSON object `payload` holds, as text ready to embed: the payload without its
/// surrounding whitespace when it is exactly one valid JSON object, else `None` (arrays,
/// scalars, invalid JSON, trailing garbage). Nesting deeper than serde_json's limit of 128
/// levels is refused rather than risking the stack.
///
/// An object whose strings hold a `\uD800`-`\uDFFF` escape that is not half of a surrogate
/// pair is refused too: it fits JSON's grammar, but it is no text, and strict readers
/// (serde_json, hence Vector; Go's decoder replaces it) would reject or alter the whole record.
/// Refused, the payload still ships, escaped as a string in `log`.
pub fn object(payload: &str) -> Option<&str> {
    let trimmed = payload.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if !trimmed.starts_with('{') {
        return None;
    }
    // Validating into a `RawValue` skips over string escapes without decoding them, so it
    // takes a lone surrogate. Escapes in the surrogate range are rare (an emoji written by
    // an ASCII-only encoder); only then is the object decoded in full, which checks them.
    let raw = serde_json::from_str::<&RawValue>(trimmed).ok()?.get();
    if has_surrogate_escape(raw) && serde_json::from_str::<serde_json::Value>(raw).is_err() {
        return None;
    }
    Some(raw)
}

/// True when `text` holds `\u` followed by `D8` to `DF`, in either case: the start of an
/// escaped UTF-16 surrogate (or an escaped backslash followed by such text, which only costs
/// the full check).
fn has_surrogate_escape(text: &str) -> bool {
    // memchr's iterator needs no searcher built per call, unlike memmem's.
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'\\', bytes).any(|at| {
        matches!(
            bytes.get(at + 1..at + 4),
            Some([b'u', b'd' | b'D', b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'])
        )
    })
}

/// The `json` parser: the line must be one JSON object, embedded as it is.
#[derive(Debug, Clone)]
pub struct JsonParser {
    time: Option<TimeKey>,
}

impl JsonParser {
    /// A json parser reading the record time from top-level field `time.key`, if given.
    pub fn new(time: Option<TimeKey>) -> Self {
        JsonParser { time }
    }

    /// The object `line` holds, or `None` when it is not exactly one JSON object. The time
    /// field may be a string or a number (for formats like `%s`); other values give no time.
    pub fn parse(&self, line: &str, year: i16) -> Option<Parsed> {
        let data = object(line)?;
        let time = self.time.as_ref().and_then(|time| {
            let value = top_level_scalar(data, &time.key)?;
            time.format.parse(&value, year)
        });
        Some(Parsed {
            data: data.to_string(),
            time,
        })
    }
}

/// The text of top-level field `key` of `object` when it is a string (unescaped) or a
/// number (as written). The first occurrence wins.
fn top_level_scalar<'a>(object: &'a str, key: &str) -> Option<Cow<'a, str>> {
    let mut deserializer = serde_json::Deserializer::from_str(object);
    let raw = deserializer.deserialize_map(FindKey { key }).ok()??;
    match serde_json::from_str::<Cow<'a, str>>(raw.get()) {
        Ok(text) => Some(text),
        Err(_)
            if raw
                .get()
                .starts_with(|c: char| c == '-' || c.is_ascii_digit()) =>
        {
            Some(Cow::Borrowed(raw.get()))
        }
        Err(_) => None,
    }
}

/// Walks an object's top level and returns the raw value of the first field named `key`,
/// skipping every other value without building it.
struct FindKey<'k> {
    key: &'k str,
}

impl<'de> Visitor<'de> for FindKey<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.key))? {
            if matches && found.is_none() {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes a key into "is it this one?", without allocating it.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_a_whole_json_object_merges() {
        let cases = [
            (r#"{"a":1}"#, Some(r#"{"a":1}"#)),
            (
                "  {\"a\": [1, {\"b\": null}]}\t\r\n",
                Some("{\"a\": [1, {\"b\": null}]}"),
            ),
            ("{}", Some("{}")),
            ("[1,2]", None),
            ("42", None),
            ("\"text\"", None),
            ("null", None),
            ("{\"a\":1", None),
            ("{\"a\":1} trailing", None),
            ("{\"a\":1}{\"b\":2}", None),
            ("GET /index.html 200", None),
            ("", None),
            // Surrogate escapes: a pair is a character; half of one is no text.
            (r#"{"e":"\ud83d\ude00"}"#, Some(r#"{"e":"\ud83d\ude00"}"#)),
            (
                r#"{"e":"\uD83D\uDE00 ok"}"#,
                Some(r#"{"e":"\uD83D\uDE00 ok"}"#),
            ),
            (r#"{"e":"\ud800"}"#, None),
            (r#"{"e":"\udc00\ud800"}"#, None),
            (r#"{"\uDFFF":1}"#, None),
            (r#"{"path":"C:\\ud800"}"#, Some(r#"{"path":"C:\\ud800"}"#)),
        ];
        for (payload, expected) in cases {
            assert_eq!(object(payload), expected, "{payload:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let deep = format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert_eq!(object(&deep), None);
    }

    fn json_with_time(key: &str, format: &str) -> JsonParser {
        JsonParser::new(Some(TimeKey {
            key: key.into(),
            format: super::super::time::TimeFormat::new(format).unwrap(),
        }))
    }

    #[test]
    fn the_json_parser_embeds_the_object_as_written() {
        let parser = JsonParser::new(None);
        let parsed = parser.parse(" {\"b\": 1, \"a\": [2]} ", 2024).unwrap();
        assert_eq!(parsed.data, "{\"b\": 1, \"a\": [2]}");
        assert_eq!(parsed.time, None);
        assert!(parser.parse("[1]", 2024).is_none());
    }

    #[test]
    fn the_json_parser_reads_its_time_from_the_top_level_only() {
        let parser = json_with_time("ts", "%Y-%m-%dT%H:%M:%S%.f%:z");
        let cases = [
            (
                r#"{"ts":"2024-05-01T10:00:00.5Z"}"#,
                Some("2024-05-01T10:00:00.500000000Z"),
            ),
            (
                r#"{"t\u0073":"2024-05-01T10:00:00+02:00"}"#,
                Some("2024-05-01T08:00:00.000000000Z"),
            ),
            (r#"{"a":{"ts":"2024-05-01T10:00:00Z"}}"#, None),
            (r#"{"ts":"yesterday"}"#, None),
            (r#"{"ts":null}"#, None),
            (
                r#"{"ts":"2024-05-01T10:00:00Z","ts":"2000-01-01T00:00:00Z"}"#,
                Some("2024-05-01T10:00:00.000000000Z"),
            ),
        ];
        for (line, want) in cases {
            let parsed = parser.parse(line, 2024).unwrap();
            assert_eq!(parsed.time.as_deref(), want, "{line}");
            assert_eq!(parsed.data, line);
        }
        let epoch = json_with_time("ts", "%s");
        let parsed = epoch.parse(r#"{"ts":1700000000}"#, 2024).unwrap();
        assert_eq!(
            parsed.time.as_deref(),
            Some("2023-11-14T22:13:20.000000000Z")
        );
    }

    proptest! {
        #[test]
        fn whatever_merges_is_a_json_object(payload in ".*") {
            if let Some(text) = object(&payload) {
                let value: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
                prop_assert!(value.is_object());
            }
        }

        #[test]
        fn serialized_objects_always_merge(map in proptest::collection::btree_map(".*", ".*", 0..5)) {
            let text = serde_json::to_string(&map).expect("serializable");
            let padded = format!(" {text} ");
            prop_assert_eq!(object(&padded), Some(text.as_str()));
        }
    }
}
