//! Durations (`"500ms"`, `"5s"`, `"5m"`, `"1h"`) and sizes (`"64MiB"`, `"1MB"`, `"512B"`) as
//! config strings, parsed into [`Duration`] and byte counts.
//!
//! Pure: no I/O. A value is a whole number, optional spaces, then a unit; fractions,
//! signs and missing or unknown units are refused with a reason that lists the units, so
//! that `"1.5s"` or `"10"` never means something the user did not write. Sizes may also be
//! plain TOML integers, read as bytes. The `deserialize_*` functions plug these parsers into
//! serde (`#[serde(deserialize_with = ..)]`), so errors carry the key path.

use std::fmt;
use std::time::Duration;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// Duration units and how many milliseconds each is worth.
const DURATION_UNITS: &[(&str, u64)] = &[("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000)];
/// How duration units are listed in error messages.
const DURATION_HINT: &str = "use ms, s, m, h";

/// Size units and how many bytes each is worth: binary (1024-based) and decimal (1000-based).
const SIZE_UNITS: &[(&str, u64)] = &[
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("KB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];
/// How size units are listed in error messages.
const SIZE_HINT: &str = "use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB for powers of 1000";

/// Parses a duration such as `"500ms"` or `"5m"`. The error is a full reason, e.g.
/// `invalid duration "5 parsecs": unknown unit "parsecs" (use ms, s, m, h)`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let millis = parse_quantity(text, DURATION_UNITS, DURATION_HINT)
        .map_err(|why| format!("invalid duration {text:?}: {why}"))?;
    Ok(Duration::from_millis(millis))
}

/// Parses a size such as `"64MiB"` or `"1MB"` into bytes. The error is a full reason, e.g.
/// `invalid size "64 MB/s": unknown unit "MB/s" (use B, KiB, ...)`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    parse_quantity(text, SIZE_UNITS, SIZE_HINT)
        .map_err(|why| format!("invalid size {text:?}: {why}"))
}

/// Splits `text` into a whole number and a unit from `units`, and multiplies them.
fn parse_quantity(text: &str, units: &[(&str, u64)], hint: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty value ({hint})"));
    }
    if text.starts_with('-') {
        return Err("negative values are not allowed".to_string());
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, rest) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "expected a whole number followed by a unit ({hint})"
        ));
    }
    if rest.starts_with(['.', ',']) {
        return Err(format!(
            "fractions are not supported; use a smaller unit ({hint})"
        ));
    }
    let unit = rest.trim_start();
    if unit.is_empty() {
        return Err(format!("missing unit ({hint})"));
    }
    let Some(&(_, scale)) = units.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("unknown unit {unit:?} ({hint})"));
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| "the value is too large".to_string())
}

/// serde `deserialize_with` for a duration string.
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

/// serde `deserialize_with` for a size string or a non-negative integer of bytes.
pub(crate) fn deserialize_size<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<u64, D::Error> {
    deserializer.deserialize_any(SizeVisitor)
}

/// Accepts only strings: a bare number of unknown unit is refused.
struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a duration string such as \"500ms\", \"5s\", \"5m\" or \"1h\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }
}

/// Accepts strings with a unit, and integers as bytes.
struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a size string such as \"256KiB\" or \"64MiB\", or a number of bytes")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_size(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
        Ok(bytes)
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
        u64::try_from(bytes).map_err(|_| {
            E::custom(format!(
                "invalid size {bytes}: negative values are not allowed"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit_parse() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("0s", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            (" 30 s ", Duration::from_secs(30)),
            ("007s", Duration::from_secs(7)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn malformed_durations_are_refused_with_a_reason() {
        let cases = [
            (
                "5 parsecs",
                "invalid duration \"5 parsecs\": unknown unit \"parsecs\" (use ms, s, m, h)",
            ),
            (
                "5",
                "invalid duration \"5\": missing unit (use ms, s, m, h)",
            ),
            (
                "-5s",
                "invalid duration \"-5s\": negative values are not allowed",
            ),
            (
                "1.5s",
                "invalid duration \"1.5s\": fractions are not supported; use a smaller unit (use ms, s, m, h)",
            ),
            ("", "invalid duration \"\": empty value (use ms, s, m, h)"),
            (
                "s",
                "invalid duration \"s\": expected a whole number followed by a unit (use ms, s, m, h)",
            ),
            (
                "+5s",
                "invalid duration \"+5s\": expected a whole number followed by a unit (use ms, s, m, h)",
            ),
            (
                "5S",
                "invalid duration \"5S\": unknown unit \"S\" (use ms, s, m, h)",
            ),
            (
                "5sec",
                "invalid duration \"5sec\": unknown unit \"sec\" (use ms, s, m, h)",
            ),
            (
                "1h30m",
                "invalid duration \"1h30m\": unknown unit \"h30m\" (use ms, s, m, h)",
            ),
            (
                "99999999999999999999s",
                "invalid duration \"99999999999999999999s\": the value is too large",
            ),
            (
                "18446744073709551615h",
                "invalid duration \"18446744073709551615h\": the value is too large",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Err(want.to_string()), "{text:?}");
        }
    }

    #[test]
    fn sizes_in_binary_and_decimal_units_parse() {
        let cases = [
            ("512B", 512),
            ("0B", 0),
            ("256KiB", 256 * 1024),
            ("64MiB", 64 * 1024 * 1024),
            ("1GiB", 1024 * 1024 * 1024),
            ("1TiB", 1 << 40),
            ("2KB", 2_000),
            ("1MB", 1_000_000),
            ("3GB", 3_000_000_000),
            ("1TB", 1_000_000_000_000),
            ("64 MiB", 64 * 1024 * 1024),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn malformed_sizes_are_refused_with_a_reason() {
        let hint = SIZE_HINT;
        let cases = [
            ("64", format!("invalid size \"64\": missing unit ({hint})")),
            (
                "64mb",
                format!("invalid size \"64mb\": unknown unit \"mb\" ({hint})"),
            ),
            (
                "64M",
                format!("invalid size \"64M\": unknown unit \"M\" ({hint})"),
            ),
            (
                "lots",
                format!(
                    "invalid size \"lots\": expected a whole number followed by a unit ({hint})"
                ),
            ),
            (
                "-1KiB",
                "invalid size \"-1KiB\": negative values are not allowed".to_string(),
            ),
            (
                "1.5MiB",
                format!(
                    "invalid size \"1.5MiB\": fractions are not supported; use a smaller unit ({hint})"
                ),
            ),
            (
                "20000000000GiB",
                "invalid size \"20000000000GiB\": the value is too large".to_string(),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Err(want), "{text:?}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "deserialize_size")]
        size: u64,
        #[serde(default, deserialize_with = "deserialize_duration")]
        wait: Duration,
    }

    fn holder(text: &str) -> Result<Holder, String> {
        toml::from_str::<Holder>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn sizes_may_be_plain_integers_of_bytes_but_durations_may_not() {
        assert_eq!(holder("size = 4096").map(|h| h.size), Ok(4096));
        assert_eq!(holder("size = \"4KiB\"").map(|h| h.size), Ok(4096));
        assert_eq!(
            holder("wait = \"2s\"").map(|h| h.wait),
            Ok(Duration::from_secs(2))
        );
        let negative = holder("size = -1").map(|h| h.size);
        assert_eq!(
            negative,
            Err("invalid size -1: negative values are not allowed".into())
        );
        let bare = holder("wait = 5").map(|h| h.wait);
        let expected = "invalid type: integer `5`, expected a duration string such as \"500ms\", \"5s\", \"5m\" or \"1h\"";
        assert_eq!(bare, Err(expected.into()));
    }
}
