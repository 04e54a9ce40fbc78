//! The LTSV parser (Labeled Tab-separated Values, <http://ltsv.org/>): `label:value` fields
//! separated by tabs → fields, as Fluent Bit's `ltsv` format reads them.
//!
//! A field is split at its first `:`, so a value may hold more (`time:10:00:01`); a field
//! without a `:` or with an empty label is skipped. A line without a single `label:value`
//! field is not LTSV. When a label repeats the last value wins, so that `data` never holds
//! duplicate keys (as the logfmt parser does).

use std::collections::{BTreeMap, HashSet};

use super::Parsed;
use super::fields::{FieldType, Fields};
use super::time::TimeKey;

/// An LTSV parser, with its `types` and time field.
#[derive(Debug, Clone)]
pub struct LtsvParser {
    types: BTreeMap<String, FieldType>,
    time: Option<TimeKey>,
}

impl LtsvParser {
    /// An LTSV parser converting fields by `types` and reading the time from `time`.
    pub fn new(types: BTreeMap<String, FieldType>, time: Option<TimeKey>) -> Self {
        LtsvParser { types, time }
    }

    /// The fields of `line`, or `None` when it holds no `label:value` field.
    pub fn parse(&self, line: &str, year: i16) -> Option<Parsed> {
        let mut seen = HashSet::new();
        let mut pairs: Vec<(&str, &str)> = line
            .split('\t')
            .filter_map(|field| field.split_once(':'))
            .filter(|(label, _)| !label.is_empty())
            .rev()
            .filter(|(label, _)| seen.insert(*label))
            .collect();
        if pairs.is_empty() {
            return None;
        }
        pairs.reverse();
        let mut fields = Fields::with_capacity(line.len());
        let mut time = None;
        for (label, value) in pairs {
            if let Some(rule) = self.time.as_ref().filter(|rule| rule.key == label) {
                time = rule.format.parse(value, year);
            }
            fields.push(label, value, self.types.get(label).copied());
        }
        Some(Parsed {
            data: fields.finish()?,
            time,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::parse::time::TimeFormat;

    fn parse(line: &str) -> Option<Value> {
        let types = BTreeMap::from([("status".to_string(), FieldType::Integer)]);
        let parsed = LtsvParser::new(types, None).parse(line, 2024)?;
        Some(serde_json::from_str(&parsed.data).unwrap())
    }

    #[test]
    fn labelled_fields_become_data() {
        let cases = [
            (
                "host:127.0.0.1\tident:-\treq:GET /a HTTP/1.1\tstatus:200",
                json!({"host": "127.0.0.1", "ident": "-", "req": "GET /a HTTP/1.1", "status": 200}),
            ),
            (
                "time:10:00:01\tempty:\tbare\t:no label",
                json!({"time": "10:00:01", "empty": ""}),
            ),
            ("a:1\ta:2", json!({"a": "2"})),
            ("status:-", json!({"status": "-"})),
            ("caf\u{e9}:\u{2615}", json!({"caf\u{e9}": "\u{2615}"})),
        ];
        for (line, want) in cases {
            assert_eq!(parse(line), Some(want), "{line:?}");
        }
    }

    #[test]
    fn a_line_without_a_labelled_field_is_not_ltsv() {
        for line in ["", "plain text", "\t\t", ":x"] {
            assert_eq!(parse(line), None, "{line:?}");
        }
    }

    #[test]
    fn the_time_field_is_read_with_its_format() {
        let time = TimeKey {
            key: "time".to_string(),
            format: TimeFormat::new("%d/%b/%Y:%H:%M:%S %z").unwrap(),
        };
        let parsed = LtsvParser::new(BTreeMap::new(), Some(time))
            .parse("time:10/Oct/2000:13:55:36 -0700\tx:1", 2024)
            .unwrap();
        assert_eq!(
            parsed.time.as_deref(),
            Some("2000-10-10T20:55:36.000000000Z")
        );
    }

    proptest! {
        /// Any labels and values written as LTSV come back, the last of a label winning.
        #[test]
        fn written_fields_come_back(
            fields in prop::collection::vec(("[a-z_.-]{1,8}", "[^\t\n]{0,16}"), 1..8),
        ) {
            let line: Vec<String> = fields.iter().map(|(l, v)| format!("{l}:{v}")).collect();
            let parsed = LtsvParser::new(BTreeMap::new(), None)
                .parse(&line.join("\t"), 2024)
                .unwrap();
            let data: serde_json::Map<String, Value> = serde_json::from_str(&parsed.data).unwrap();
            let mut want = serde_json::Map::new();
            for (label, value) in &fields {
                want.insert(label.clone(), Value::String(value.clone()));
            }
            prop_assert_eq!(data, want);
        }
    }
}
