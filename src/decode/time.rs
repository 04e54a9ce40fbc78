//! Runtime timestamps: what docker or the CRI runtime wrote, checked as a real time and
//! normalised to the record's form, RFC 3339 in UTC with nine fractional digits
//! (`2019-12-19T17:41:12.706307780Z`, always 30 bytes).
//!
//! Owns the check and the normalisation and nothing else. Runtimes write Go's RFC3339Nano,
//! which drops trailing zeros of the fraction (`…12.7063078Z`, `…12Z`), and CRI-O writes
//! the node's offset (`…12.5+02:00`); both become the record form. A time already in that
//! form (most lines) is checked in place and borrowed; anything else is copied once. Pure:
//! no clock, no allocation on the common path (issue 23: `2026-13-45T99:99:99Z` used to
//! pass a characters-only check).

use jiff::civil::{Date, DateTime, Time};
use jiff::fmt::temporal::DateTimePrinter;
use jiff::tz::Offset;
use jiff::{SignedDuration, Timestamp};

/// Why a runtime timestamp is not a time. Small and `Copy`: this is the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    #[error("time is not RFC 3339")]
    Shape,
    /// A month outside 01..12, or a day the month does not have (`02-30`).
    #[error("time is not a valid date (no such month or day)")]
    Date,
    /// An hour past 23, a minute or a second past 59.
    #[error("time of day out of range (hour, minute or second)")]
    TimeOfDay,
    /// More than nine fractional digits: finer than a nanosecond.
    #[error("time has more than nine fractional digits")]
    Fraction,
    /// An offset past ±23:59.
    #[error("time offset out of range")]
    Offset,
}

/// The length of a time in the record's form.
const RECORD_TIME_LEN: usize = 30;

/// `time` checked and in the record's form: `Ok(None)` when it already is in that form (so
/// the caller can keep borrowing it), `Ok(Some(copy))` when it had to be rewritten.
pub(crate) fn normalise(time: &[u8]) -> Result<Option<String>, TimeError> {
    let (date_time, rest) = time.split_first_chunk::<19>().ok_or(TimeError::Shape)?;
    let (date, time_of_day) = civil(date_time)?;
    let (fraction, zone) = match rest.split_first() {
        Some((b'.', rest)) => {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            rest.split_at(digits)
        }
        _ => (&[][..], rest),
    };
    if rest.first() == Some(&b'.') && fraction.is_empty() {
        return Err(TimeError::Shape);
    }
    if fraction.len() > 9 {
        return Err(TimeError::Fraction);
    }
    let offset = offset_seconds(zone)?;
    if offset == 0 && fraction.len() == 9 && zone == b"Z" && time.len() == RECORD_TIME_LEN {
        return Ok(None);
    }
    let mut nanos = 0;
    for i in 0..9 {
        nanos = nanos * 10 + fraction.get(i).map_or(0, |digit| i32::from(digit - b'0'));
    }
    let offset = Offset::from_seconds(offset).map_err(|_| TimeError::Offset)?;
    // Out of range only past the year 9999 once moved to UTC.
    let instant = DateTime::from_parts(date, time_of_day)
        .to_zoned(offset.to_time_zone())
        .and_then(|zoned| {
            zoned
                .timestamp()
                .checked_add(SignedDuration::from_nanos(i64::from(nanos)))
        })
        .map_err(|_| TimeError::Date)?;
    let rendered = render(instant);
    // Year 0000 moved back past its start by an offset has no four-digit year.
    if rendered.len() != RECORD_TIME_LEN {
        return Err(TimeError::Date);
    }
    Ok(Some(rendered))
}

/// The date and time of day of `YYYY-MM-DDTHH:MM:SS`.
fn civil(text: &[u8; 19]) -> Result<(Date, Time), TimeError> {
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| text[at] != byte) {
        return Err(TimeError::Shape);
    }
    let number = |from: usize, len: usize| {
        text[from..from + len].iter().try_fold(0i16, |n, &b| {
            b.is_ascii_digit()
                .then(|| n * 10 + i16::from(b - b'0'))
                .ok_or(TimeError::Shape)
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    // Every field is at most 4 digits and non-negative, so these conversions are exact.
    let date = Date::new(year, month as i8, day as i8).map_err(|_| TimeError::Date)?;
    let time =
        Time::new(hour as i8, minute as i8, second as i8, 0).map_err(|_| TimeError::TimeOfDay)?;
    Ok((date, time))
}

/// The offset of `Z` or `±HH:MM`, in seconds east of UTC.
fn offset_seconds(zone: &[u8]) -> Result<i32, TimeError> {
    let [sign, h1, h0, b':', m1, m0] = zone else {
        return if zone == b"Z" {
            Ok(0)
        } else {
            Err(TimeError::Shape)
        };
    };
    let sign = match sign {
        b'+' => 1,
        b'-' => -1,
        _ => return Err(TimeError::Shape),
    };
    let digits = [h1, h0, m1, m0];
    if !digits.iter().all(|b| b.is_ascii_digit()) {
        return Err(TimeError::Shape);
    }
    let [h1, h0, m1, m0] = digits.map(|&b| i32::from(b - b'0'));
    let (hours, minutes) = (h1 * 10 + h0, m1 * 10 + m0);
    if hours > 23 || minutes > 59 {
        return Err(TimeError::Offset);
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// `instant` in the record's form.
fn render(instant: Timestamp) -> String {
    let mut out = String::with_capacity(RECORD_TIME_LEN);
    // Writing to a String cannot fail, and every instant has an RFC 3339 form.
    let _written = DateTimePrinter::new()
        .precision(Some(9))
        .print_timestamp(&instant, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What runtimes write, and what the record carries.
    #[test]
    fn runtime_times_are_normalised_to_utc_with_nine_fractional_digits() {
        let cases: &[(&str, &str)] = &[
            // containerd and docker: Go's RFC3339Nano, trailing zeros dropped.
            (
                "2016-10-06T00:17:09.669794202Z",
                "2016-10-06T00:17:09.669794202Z",
            ),
            (
                "2019-12-19T17:41:12.70630778Z",
                "2019-12-19T17:41:12.706307780Z",
            ),
            ("2019-12-19T17:41:12.5Z", "2019-12-19T17:41:12.500000000Z"),
            ("2019-12-19T17:41:12Z", "2019-12-19T17:41:12.000000000Z"),
            // CRI-O on a node not in UTC.
            (
                "2019-12-19T17:41:12.123456789+01:00",
                "2019-12-19T16:41:12.123456789Z",
            ),
            (
                "2019-12-19T17:41:12.5-08:00",
                "2019-12-20T01:41:12.500000000Z",
            ),
            (
                "2020-01-01T00:30:00+05:30",
                "2019-12-31T19:00:00.000000000Z",
            ),
            (
                "2019-12-19T17:41:12+00:00",
                "2019-12-19T17:41:12.000000000Z",
            ),
            (
                "2019-12-19T17:41:12-00:00",
                "2019-12-19T17:41:12.000000000Z",
            ),
            // Leap day, last nanosecond of a year.
            (
                "2024-02-29T23:59:59.999999999Z",
                "2024-02-29T23:59:59.999999999Z",
            ),
            (
                "2024-12-31T23:59:59.999999999-00:01",
                "2025-01-01T00:00:59.999999999Z",
            ),
        ];
        for &(written, want) in cases {
            let normalised = normalise(written.as_bytes());
            let got = match &normalised {
                Ok(None) => Some(written),
                Ok(Some(copy)) => Some(copy.as_str()),
                Err(_) => None,
            };
            assert_eq!(got, Some(want), "{written}: {normalised:?}");
        }
    }

    #[test]
    fn a_time_in_the_record_form_is_kept_as_it_is() {
        assert_eq!(normalise(b"2016-10-06T00:17:09.669794202Z"), Ok(None));
        assert_eq!(normalise(b"2016-10-06T00:17:09.000000000Z"), Ok(None));
    }

    #[test]
    fn what_is_not_a_time_is_refused_with_its_reason() {
        let cases: &[(&[u8], TimeError)] = &[
            (b"2026-13-45T99:99:99Z", TimeError::Date),
            (b"2026-02-29T10:00:00Z", TimeError::Date),
            (b"2026-04-31T10:00:00.1Z", TimeError::Date),
            (b"2026-00-10T10:00:00Z", TimeError::Date),
            (b"2026-01-00T10:00:00Z", TimeError::Date),
            (b"2026-01-01T24:00:00Z", TimeError::TimeOfDay),
            (b"2026-01-01T23:60:00Z", TimeError::TimeOfDay),
            (b"2026-01-01T23:59:60Z", TimeError::TimeOfDay),
            (b"2026-01-01T23:59:59.1234567891Z", TimeError::Fraction),
            (b"2026-01-01T23:59:59+24:00", TimeError::Offset),
            (b"2026-01-01T23:59:59-01:60", TimeError::Offset),
            (b"2026-01-01T23:59:59", TimeError::Shape),
            (b"2026-01-01T23:59:59.Z", TimeError::Shape),
            (b"2026-01-01T23:59:59z", TimeError::Shape),
            (b"2026-01-01t23:59:59Z", TimeError::Shape),
            (b"2026-01-01 23:59:59Z", TimeError::Shape),
            (b"2026-01-01T23:59:59+0100", TimeError::Shape),
            (b"2026-01-01T23:59:59ZZ", TimeError::Shape),
            (b"2026-1-01T23:59:59Z", TimeError::Shape),
            (b"+2026-01-01T23:59:59Z", TimeError::Shape),
            (b"0000-01-01T00:00:00+01:00", TimeError::Date),
            (b"9999-12-31T23:59:59-01:00", TimeError::Date),
            (b"2019-12-19", TimeError::Shape),
            (b"", TimeError::Shape),
            (b"\xff\xfe", TimeError::Shape),
        ];
        for &(time, want) in cases {
            assert_eq!(
                normalise(time),
                Err(want),
                "{}",
                String::from_utf8_lossy(time)
            );
        }
    }

    proptest::proptest! {
        /// Any instant, written with any fraction length and offset, comes out as the same
        /// instant in the record's form.
        #[test]
        fn any_written_instant_comes_out_as_the_same_instant(
            seconds in 86_400i64..253_402_214_400 - 86_400,
            nanos in 0i32..1_000_000_000,
            digits in 0usize..=9,
            offset_minutes in -1439i32..=1439,
        ) {
            let kept = 10i32.pow(9 - digits as u32);
            let nanos = nanos / kept * kept;
            let instant = Timestamp::new(seconds, nanos).unwrap();
            let offset = Offset::from_seconds(offset_minutes * 60).unwrap();
            let zoned = instant.to_zoned(offset.to_time_zone());
            let mut written = zoned.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            if digits > 0 {
                let fraction = format!("{nanos:09}");
                written.push('.');
                written.push_str(&fraction[..digits]);
            }
            if offset_minutes == 0 {
                written.push('Z');
            } else {
                written.push_str(&zoned.strftime("%:z").to_string());
            }
            let normalised = normalise(written.as_bytes()).unwrap();
            let got = normalised.as_deref().unwrap_or(&written);
            proptest::prop_assert_eq!(got.len(), RECORD_TIME_LEN);
            proptest::prop_assert_eq!(got.parse::<Timestamp>().unwrap(), instant);
            proptest::prop_assert_eq!(got, render(instant));
        }
    }
}
