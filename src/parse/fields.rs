//! The `data` object a regex or logfmt parser builds: keys in the order found, string
//! values escaped with [`record::write_json_str`], and the `types` coercion.
//!
//! A value that does not convert to its declared type stays a string: a record is never
//! failed over a field.

use std::io::Write as _;

use serde::Deserialize;

use crate::record::write_json_str;

/// The JSON type a field is converted to, from a parser's `types` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum FieldType {
    /// A 64-bit signed integer (`"404"` → `404`).
    Integer,
    /// A finite 64-bit float (`"0.25"` → `0.25`); `NaN` and infinities stay strings.
    Float,
    /// `true` or `false`, in any ASCII case.
    Bool,
    /// Kept as a string: the default, accepted so that a definition can say so.
    String,
}

impl TryFrom<String> for FieldType {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "integer" => Ok(FieldType::Integer),
            "float" => Ok(FieldType::Float),
            "bool" => Ok(FieldType::Bool),
            "string" => Ok(FieldType::String),
            _ => Err(format!(
                "unknown type {name:?} (expected one of: integer, float, bool, string)"
            )),
        }
    }
}

/// A JSON object being written, one field at a time.
#[derive(Debug)]
pub struct Fields {
    out: Vec<u8>,
    count: usize,
}

impl Fields {
    /// An empty object, with room for a line of `len` bytes.
    pub fn with_capacity(len: usize) -> Self {
        let mut out = Vec::with_capacity(len + 32);
        out.push(b'{');
        Fields { out, count: 0 }
    }

    /// Appends `"key":value`, converting `value` to `ty` when it converts.
    pub fn push(&mut self, key: &str, value: &str, ty: Option<FieldType>) {
        self.key(key);
        let written = match ty {
            Some(FieldType::Integer) => value
                .parse::<i64>()
                .is_ok_and(|n| write!(self.out, "{n}").is_ok()),
            Some(FieldType::Float) => value
                .parse::<f64>()
                .is_ok_and(|f| f.is_finite() && serde_json::to_writer(&mut self.out, &f).is_ok()),
            Some(FieldType::Bool) => match parse_bool(value) {
                Some(b) => {
                    let text: &[u8] = if b { b"true" } else { b"false" };
                    self.out.extend_from_slice(text);
                    true
                }
                None => false,
            },
            Some(FieldType::String) | None => false,
        };
        if !written {
            write_json_str(&mut self.out, value);
        }
    }

    /// Appends `"key":true`: a logfmt key without a value.
    pub fn push_true(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"true");
    }

    /// The finished object. Only `&str` text went in, so the bytes are UTF-8; `None` is
    /// unreachable but spares a panic.
    pub fn finish(mut self) -> Option<String> {
        self.out.push(b'}');
        String::from_utf8(self.out).ok()
    }

    fn key(&mut self, key: &str) {
        if self.count > 0 {
            self.out.push(b',');
        }
        self.count += 1;
        write_json_str(&mut self.out, key);
        self.out.push(b':');
    }
}

/// `true` or `false` in any ASCII case; anything else is not a bool.
fn parse_bool(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("true") {
        Some(true)
    } else if value.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str, ty: FieldType) -> serde_json::Value {
        let mut fields = Fields::with_capacity(0);
        fields.push("v", value, Some(ty));
        let object: serde_json::Value = serde_json::from_str(&fields.finish().unwrap()).unwrap();
        object["v"].clone()
    }

    #[test]
    fn values_that_convert_take_their_type_and_others_stay_strings() {
        use FieldType::*;
        use serde_json::json;
        let cases = [
            ("404", Integer, json!(404)),
            ("-12", Integer, json!(-12)),
            ("+7", Integer, json!(7)),
            ("007", Integer, json!(7)),
            ("-0", Integer, json!(0)),
            ("-", Integer, json!("-")),
            ("12.5", Integer, json!("12.5")),
            (
                "99999999999999999999",
                Integer,
                json!("99999999999999999999"),
            ),
            ("", Integer, json!("")),
            ("0.25", Float, json!(0.25)),
            ("3", Float, json!(3.0)),
            ("1e3", Float, json!(1000.0)),
            ("NaN", Float, json!("NaN")),
            ("inf", Float, json!("inf")),
            ("TRUE", Bool, json!(true)),
            ("false", Bool, json!(false)),
            ("yes", Bool, json!("yes")),
            ("42", String, json!("42")),
        ];
        for (value, ty, want) in cases {
            assert_eq!(one(value, ty), want, "{value:?} as {ty:?}");
        }
    }

    #[test]
    fn keys_and_values_are_escaped_and_kept_in_order() {
        let mut fields = Fields::with_capacity(0);
        fields.push("a\"b", "line\nbreak", None);
        fields.push_true("flag");
        fields.push("z", "\u{1}", None);
        assert_eq!(
            fields.finish().unwrap(),
            r#"{"a\"b":"line\nbreak","flag":true,"z":"\u0001"}"#
        );
        assert_eq!(Fields::with_capacity(0).finish().unwrap(), "{}");
    }
}
