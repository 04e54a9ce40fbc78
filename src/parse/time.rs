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
//! - A format ending in an offset also accepts `Z` there, as RFC 3339 writes UTC.

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
    /// The format as written.
    format: String,
    /// `format` with its trailing offset directive replaced by a literal `Z`, for RFC 3339
    /// times in UTC; `None` when the format does not end in an offset.
    zulu: Option<String>,
}

/// The offset directives jiff parses, longest first so that `%:z` is not taken for `%z`.
const OFFSET_DIRECTIVES: [&str; 4] = ["%:::z", "%::z", "%:z", "%z"];

impl TimeFormat {
    /// Checks `format` by formatting a reference time with it and parsing the result back:
    /// an unknown directive, a directive that only formats (`%Z`, `%c`) or a format that
    /// cannot yield a date and a time is refused here rather than on every line.
    pub fn new(format: &str) -> Result<Self, String> {
        let zulu = OFFSET_DIRECTIVES
            .iter()
            .find_map(|directive| format.strip_suffix(directive))
            .map(|head| format!("{head}Z"));
        let time_format = TimeFormat {
            format: format.to_string(),
            zulu,
        };
        let reference = Timestamp::new(1_721_057_459, 123_456_789)
            .and_then(|t| Ok(t.to_zoned(TimeZone::fixed(Offset::from_hours(2)?))))
            .map_err(|e| format!("internal reference time: {e}"))?;
        let mut sample = String::new();
        BrokenDownTime::from(&reference)
            .format(format, &mut sample)
            .map_err(|e| format!("cannot format times with {format:?}: {e}"))?;
        time_format
            .try_parse(&sample, reference.year())
            .map_err(|e| format!("cannot parse times written as {format:?} ({sample:?}): {e}"))?;
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
}
