//! The JSON merge: is this payload a JSON object? If so, it is embedded as is under the
//! merge key, validated but never parsed into a tree and serialized again.

use serde_json::value::RawValue;

/// The JSON object `payload` holds, as text ready to embed: the payload without its
/// surrounding whitespace when it is exactly one valid JSON object, else `None` (arrays,
/// scalars, invalid JSON, trailing garbage). Nesting deeper than serde_json's limit of 128
/// levels is refused rather than risking the stack.
pub fn object(payload: &str) -> Option<&str> {
    let trimmed = payload.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    if !trimmed.starts_with('{') {
        return None;
    }
    serde_json::from_str::<&RawValue>(trimmed)
        .ok()
        .map(RawValue::get)
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
