//! `time_format`: a captured time string turned into the record time, RFC 3339 in UTC with
//! nanoseconds.
//!
//! Pure: no clock is read. Formats follow strptime as implemented by [`jiff::fmt::strtime`]
//! (`%d/%b/%Y:%H:%M:%S %z`, `%Y-%m-%dT%H:%M:%S%.f%:z`, `%b %d %H:%M:%S`, ...), with two
//! rules of ours:
//!
//! - A format without an offset (`%z`, `%:z`, `%s`) reads times as UTC, as Fluent Bit does
//!   without `Time_Offset`.
//! - A format without a year (syslog RFC 3164, klog) takes the year the caller passes in:
//!   the year of the line's runtime timestamp, so that parsing stays a pure function.
//! - A format ending in an offset also accepts `Z` there, as RFC 3339 writes UTC; a format
//!   with no offset at all also accepts a trailing `Z` (Fluent Bit's docker parser reads
//!   `…:12.70630778Z` with `%Y-%m-%dT%H:%M:%S.%L`).
//! - Fluent Bit's `%L` (fractional seconds, any number of digits up to nine) is accepted and
//!   read as jiff's `%f`; `%f`, `%N` and their precision forms (`%3f`, `%9N`) are jiff's own.
//!   An unknown specifier's error names these (issue 23).

use jiff::Timestamp;
use jiff::fmt::strtime::BrokenDownTime;
use jiff::fmt::temporal::DateTimePrinter;
use jiff::tz::{Offset, TimeZone};

/// A parser's `time_key` and `time_format`: the field holding the time, and how to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeKey {
    /// The field (capture group, JSON key or logfmt key) holding the time.
    pub key: String,
    /// How to read it.
    pub format: TimeFormat,
}

/// A checked `time_format`. Built once at load; [`TimeFormat::parse`] never panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    /// The format as jiff reads it: as written, with Fluent Bit's `%L` turned into `%f`.
    format: String,
    /// `format` with its trailing offset directive replaced by a literal `Z`, for RFC 3339
    /// times in UTC; `None` when the format does not end in an offset.
    zulu: Option<String>,
    /// `format` with `%z` as `%:z`: Fluent Bit's `%z` also reads `+02:00`, jiff's does not.
    /// `None` when the format has no `%z`.
    colon: Option<String>,
}

/// The offset directives jiff parses, longest first so that `%:z` is not taken for `%z`.
const OFFSET_DIRECTIVES: [&str; 4] = ["%:::z", "%::z", "%:z", "%z"];

impl TimeFormat {
    /// Checks `format` by formatting a reference time with it and parsing the result back:
    /// an unknown directive, a directive that only formats (`%Z`, `%c`) or a format that
    /// cannot yield a date and a time is refused here rather than on every line.
    pub fn new(written: &str) -> Result<Self, String> {
        let format = jiff_format(written);
        let format = format.as_str();
        let zulu = OFFSET_DIRECTIVES
            .iter()
            .find_map(|directive| format.strip_suffix(directive))
            .map(|head| format!("{head}Z"))
            .or_else(|| {
                let has_offset = ["%z", "%:z", "%::z", "%:::z", "%s", "%Z", "%Q"]
                    .iter()
                    .any(|directive| format.contains(directive));
                (!has_offset).then(|| format!("{format}Z"))
            });
        let colon =
            (format.contains("%z") && !format.contains("%%z")).then(|| format.replace("%z", "%:z"));
        let time_format = TimeFormat {
            format: format.to_string(),
            zulu,
            colon,
        };
        let reference = Timestamp::new(1_721_057_459, 123_456_789)
            .and_then(|t| Ok(t.to_zoned(TimeZone::fixed(Offset::from_hours(2)?))))
            .map_err(|e| format!("internal reference time: {e}"))?;
        let mut sample = String::new();
        BrokenDownTime::from(&reference)
            .format(format, &mut sample)
            .map_err(|e| format!("cannot format times with {written:?}: {e}{}", hint(&e)))?;
        time_format
            .try_parse(&sample, reference.year())
            .map_err(|e| format!("cannot parse times written as {written:?} ({sample:?}): {e}"))?;
        Ok(time_format)
    }

    /// `value` read with this format, as RFC 3339 in UTC with nanoseconds, e.g.
    /// `2024-07-15T15:30:59.123456789Z`; `None` when it does not fit the format. `year` is
    /// used only when the format has none.
    pub fn parse(&self, value: &str, year: i16) -> Option<String> {
        self.try_parse(value, year).ok()
    }

    fn try_parse(&self, value: &str, year: i16) -> Result<String, jiff::Error> {
        let parsed = match (BrokenDownTime::parse(&self.format, value), &self.zulu) {
            (Err(_), Some(zulu)) if value.ends_with(['Z', 'z']) => {
                BrokenDownTime::parse(zulu, value)
            }
            (Err(error), _) => match &self.colon {
                Some(colon) => BrokenDownTime::parse(colon, value).map_err(|_| error),
                None => Err(error),
            },
            (parsed, _) => parsed,
        };
        let mut time = parsed?;
        if time.timestamp().is_none() {
            if time.year().is_none() && time.iso_week_year().is_none() {
                time.set_year(Some(year))?;
            }
            if time.offset().is_none() {
                time.set_offset(Some(Offset::UTC));
            }
        }
        let instant = time.to_timestamp()?;
        let mut out = String::with_capacity(30);
        DateTimePrinter::new()
            .precision(Some(9))
            .print_timestamp(&instant, &mut out)?;
        Ok(out)
    }
}

/// `written` with Fluent Bit's `%L` (fractional seconds) as jiff's `%f`; `%%` is kept
/// whole, so `%%L` stays a literal `%L`.
fn jiff_format(written: &str) -> String {
    let mut out = String::with_capacity(written.len());
    let mut rest = written;
    while let Some(at) = rest.find('%') {
        let (plain, directive) = rest.split_at(at);
        out.push_str(plain);
        let (taken, len) = match directive.as_bytes().get(1) {
            Some(b'L') => ("%f", 2),
            Some(b'%') => ("%%", 2),
            _ => ("%", 1),
        };
        out.push_str(taken);
        rest = directive.get(len..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// What to add to jiff's error about a format: for an unknown specifier, the ones that
/// read fractional seconds, the usual reason for one (`%3L`, `%l`, `%u` in Ruby or Java
/// formats).
fn hint(error: &jiff::Error) -> &'static str {
    if error.to_string().contains("unrecognized") {
        "; fractional seconds are written %L (Fluent Bit), %f, %N or %.f (optional, with its \
         dot), and an offset %z or %:z"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rendered_in_utc_with_nanoseconds() {
        let cases = [
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "10/Oct/2000:13:55:36 -0700",
                "2000-10-10T20:55:36.000000000Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S%.f%:z",
                "2003-08-24T05:14:15.000003-07:00",
                "2003-08-24T12:14:15.000003000Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S%.f%:z",
                "2003-10-11T22:14:15.003Z",
                "2003-10-11T22:14:15.003000000Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S%.f%:z",
                "2003-10-11T22:14:15Z",
                "2003-10-11T22:14:15.000000000Z",
            ),
            (
                "%Y-%m-%d %H:%M:%S",
                "2024-02-29 23:59:59",
                "2024-02-29T23:59:59.000000000Z",
            ),
            ("%s", "1700000000", "2023-11-14T22:13:20.000000000Z"),
        ];
        for (format, value, want) in cases {
            let format = TimeFormat::new(format).unwrap();
            assert_eq!(
                format.parse(value, 1999).as_deref(),
                Some(want),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_format_without_a_year_takes_the_year_passed_in() {
        let syslog = TimeFormat::new("%b %d %H:%M:%S").unwrap();
        assert_eq!(
            syslog.parse("Oct 11 22:14:15", 2003).as_deref(),
            Some("2003-10-11T22:14:15.000000000Z")
        );
        assert_eq!(
            syslog.parse("Feb  3 01:02:03", 2025).as_deref(),
            Some("2025-02-03T01:02:03.000000000Z")
        );
        assert_eq!(syslog.parse("Feb 29 01:02:03", 2025), None);
        let klog = TimeFormat::new("%m%d %H:%M:%S%.f").unwrap();
        assert_eq!(
            klog.parse("0102 15:04:05.123456", 2024).as_deref(),
            Some("2024-01-02T15:04:05.123456000Z")
        );
    }

    #[test]
    fn times_that_do_not_fit_the_format_give_none() {
        let format = TimeFormat::new("%d/%b/%Y:%H:%M:%S %z").unwrap();
        for value in [
            "",
            "-",
            "10/Oct/2000:13:55:36",
            "10/Oct/2000:13:55:36 -0700 trailing",
            "32/Oct/2000:13:55:36 -0700",
            "10/Foo/2000:13:55:36 -0700",
        ] {
            assert_eq!(format.parse(value, 2000), None, "{value:?}");
        }
    }

    #[test]
    fn formats_that_cannot_parse_a_time_are_refused_at_load() {
        for format in ["%H:%M:%S", "%Y-%m-%d %Z", "%Q%Q%K", "no directives", "%c"] {
            let error = TimeFormat::new(format).unwrap_err();
            assert!(error.contains(format), "{format:?}: {error}");
        }
    }

    #[test]
    fn fluent_bit_fractional_seconds_are_read_to_the_nanosecond() {
        let cases = [
            // Fluent Bit's docker and cri parsers, and the forms users write.
            (
                "%Y-%m-%dT%H:%M:%S.%L",
                "2019-12-19T17:41:12.70630778Z",
                "2019-12-19T17:41:12.706307780Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%L%z",
                "2016-10-06T00:17:09.669794202Z",
                "2016-10-06T00:17:09.669794202Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%L%z",
                "2016-10-06T02:17:09.669794202+02:00",
                "2016-10-06T00:17:09.669794202Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%L%z",
                "2016-10-06T00:17:09.1-0130",
                "2016-10-06T01:47:09.100000000Z",
            ),
            (
                "%d/%b/%Y:%H:%M:%S.%L",
                "10/Oct/2000:13:55:36.123",
                "2000-10-10T13:55:36.123000000Z",
            ),
            (
                "%Y-%m-%d %H:%M:%S,%L",
                "2024-02-29 23:59:59,000001",
                "2024-02-29T23:59:59.000001000Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%N",
                "2024-02-29T23:59:59.999999999",
                "2024-02-29T23:59:59.999999999Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%f",
                "2024-02-29T23:59:59.5",
                "2024-02-29T23:59:59.500000000Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S%.f",
                "2024-02-29T23:59:59",
                "2024-02-29T23:59:59.000000000Z",
            ),
        ];
        for (format, value, want) in cases {
            let time_format = TimeFormat::new(format).unwrap();
            assert_eq!(
                time_format.parse(value, 1999).as_deref(),
                Some(want),
                "{format:?} {value:?}"
            );
        }
    }

    #[test]
    fn a_literal_percent_before_l_is_not_fractional_seconds() {
        assert_eq!(jiff_format("%Y %%L %L"), "%Y %%L %f");
        assert_eq!(jiff_format("100%"), "100%");
    }

    #[test]
    fn an_unknown_specifier_is_refused_naming_the_accepted_ones() {
        for format in ["%Y-%m-%dT%H:%M:%S.%K", "%Y-%m-%dT%H:%M:%S.%E"] {
            let error = TimeFormat::new(format).unwrap_err();
            assert!(error.contains(format), "{error}");
            assert!(error.contains("%L (Fluent Bit), %f, %N"), "{error}");
        }
    }
}
