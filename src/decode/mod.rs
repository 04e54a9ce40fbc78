//! Container-runtime line formats: docker json-file and CRI, turned into [`Decoded`] lines.
//!
//! Everything here is pure: functions over borrowed bytes, no I/O, no clock, no Kubernetes.
//! A line is decoded borrowing from the caller's buffer; a copy is made only when a docker
//! message has JSON escapes to undo. [`Reassembler`] (one per file, kept by the pipeline)
//! joins the pieces runtimes split long lines into: CRI `P`…`F` and docker's 16 KiB entries.
//! A runtime's timestamp is checked as a real time and put in the record's form (RFC 3339
//! UTC, nine fractional digits) by [`time`]; one that is not a time makes the line
//! undecodable, so it ships raw with the reason and the time it was read.

mod cri;
mod docker;
mod partial;
mod time;

use std::borrow::Cow;

pub use partial::{Message, Reassembler};
pub use time::TimeError;

/// Which output stream of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The name used in records and in both runtime formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The on-disk format of one container log file. Detected once per file, from its first
/// recognisable line, by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker's json-file driver: `{"log":"...\n","stream":"stdout","time":"..."}`.
    Docker,
    /// The CRI format (containerd, CRI-O): `<RFC 3339 time> <stream> <P|F> <message>`.
    Cri,
}

impl Format {
    /// Decodes one line (without its trailing newline) in this format.
    pub fn decode(self, line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
        match self {
            Format::Docker => docker::decode(line),
            Format::Cri => cri::decode(line),
        }
    }
}

/// Guesses the format of a file from one of its lines: the format that decodes it, if any.
pub fn detect(line: &[u8]) -> Option<Format> {
    [Format::Docker, Format::Cri]
        .into_iter()
        .find(|format| format.decode(line).is_ok())
}

/// The runtime's `time`, checked and in the record's form (see [`time`]); `None` when it
/// already is in that form, so the caller keeps borrowing it. A time of the wrong shape is
/// refused with `shape` (the format's own reason), any other problem with its own.
fn record_time(time: &[u8], shape: DecodeError) -> Result<Option<String>, DecodeError> {
    time::normalise(time).map_err(|error| match error {
        TimeError::Shape => shape,
        error => DecodeError::Time(error),
    })
}

/// One runtime line, decoded. Borrows from the line where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The runtime's timestamp in the record's form: RFC 3339 UTC with nine fractional
    /// digits (borrowed when the runtime wrote it so).
    pub time: Cow<'a, str>,
    /// Which stream the container wrote it to.
    pub stream: Stream,
    /// What the container wrote, without the trailing newline the runtime recorded.
    pub message: Cow<'a, [u8]>,
    /// True when this is not the end of the container's line: a CRI `P` line, or a docker
    /// entry whose `log` does not end in `\n` (dockerd splits lines every 16 KiB).
    pub partial: bool,
}

/// Why a line could not be decoded. Small and `Copy`: this is the hot path, and the reason
/// is rendered into the record's `shiplog_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A docker line that is not a JSON object of the json-file shape.
    #[error("not a docker json-file line: {0}")]
    Docker(&'static str),
    /// A line that does not have CRI's `<time> <stream> <P|F> <message>` shape.
    #[error("not a CRI line: {0}")]
    Cri(&'static str),
    /// A line whose runtime timestamp has the right shape but is not a time (month 13, a
    /// 25th hour, an offset past ±23:59).
    #[error("invalid runtime timestamp: {0}")]
    Time(TimeError),
    /// A line of a file whose format could not be recognised (yet).
    #[error("unrecognised log line format")]
    UnknownFormat,
}

/// Case tables of both formats, for any module's tests: `(line, what it decodes to)` and
/// `(line, why it is refused)`.
#[cfg(test)]
pub(crate) mod cases {
    pub(crate) use super::cri::{invalid_cases as cri_invalid, valid_cases as cri_valid};
    pub(crate) use super::docker::{invalid_cases as docker_invalid, valid_cases as docker_valid};
}

/// proptest strategies for the runtime formats, shared by the decoders' and reassembler's tests.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use super::Stream;

    /// A time a runtime could have written: RFC 3339, with up to nanoseconds and any offset.
    pub(crate) fn time() -> impl Strategy<Value = String> {
        concat!(
            "(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
            "T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
            "(\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        )
    }

    /// `time` (from [`time()`]) as records carry it.
    pub(crate) fn in_record_form(time: &str) -> String {
        match super::time::normalise(time.as_bytes()) {
            Ok(Some(copy)) => copy,
            Ok(None) => time.to_string(),
            Err(error) => panic!("{time}: {error}"),
        }
    }

    /// Whether `time` is in the form records carry.
    pub(crate) fn is_record_form(time: &str) -> bool {
        super::time::normalise(time.as_bytes()) == Ok(None)
    }

    /// Either stream.
    pub(crate) fn stream() -> impl Strategy<Value = Stream> {
        prop_oneof![Just(Stream::Stdout), Just(Stream::Stderr)]
    }

    /// What a container may write on one CRI line: any bytes but a newline, often UTF-8
    /// text with multi-byte characters, sometimes not UTF-8 at all.
    pub(crate) fn cri_message() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            text().prop_map(String::into_bytes),
            prop::collection::vec(
                any::<u8>().prop_filter("a newline ends the line", |&b| b != b'\n'),
                0..64
            ),
        ]
    }

    /// Text with one-, two-, three- and four-byte characters, and no newline.
    pub(crate) fn text() -> impl Strategy<Value = String> {
        "[a-z é€😀\t\"\\\\]{0,64}"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_table_line_decodes_as_its_table_says() {
        let tables = [
            (
                Format::Docker,
                cases::docker_valid(),
                cases::docker_invalid(),
            ),
            (Format::Cri, cases::cri_valid(), cases::cri_invalid()),
        ];
        for (format, valid, invalid) in tables {
            for (line, expected) in valid {
                let shown = String::from_utf8_lossy(line);
                assert_eq!(format.decode(line), Ok(expected), "{format:?}: {shown}");
            }
            for (line, expected) in invalid {
                let shown = String::from_utf8_lossy(line);
                assert_eq!(format.decode(line), Err(expected), "{format:?}: {shown}");
            }
        }
    }
    #[test]
    fn every_valid_line_is_detected_as_its_format() {
        for (line, _) in cases::docker_valid() {
            assert_eq!(
                detect(line),
                Some(Format::Docker),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        for (line, _) in cases::cri_valid() {
            assert_eq!(
                detect(line),
                Some(Format::Cri),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn a_line_neither_format_accepts_is_not_detected() {
        let invalid = cases::docker_invalid()
            .into_iter()
            .chain(cases::cri_invalid());
        for (line, _) in invalid {
            if Format::Docker.decode(line).is_err() && Format::Cri.decode(line).is_err() {
                assert_eq!(detect(line), None, "{}", String::from_utf8_lossy(line));
            }
        }
        for line in [
            &b""[..],
            b"garbage",
            b"{\"log\":\"hel",
            b"2016-10-06T00:17:09Z stdin F x",
        ] {
            assert_eq!(detect(line), None, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_line_is_decoded_by_the_format_it_is_in() {
        for (line, expected) in cases::docker_valid() {
            assert_eq!(Format::Docker.decode(line), Ok(expected));
            assert!(Format::Cri.decode(line).is_err());
        }
        for (line, expected) in cases::cri_valid() {
            assert_eq!(Format::Cri.decode(line), Ok(expected));
            assert!(Format::Docker.decode(line).is_err());
        }
    }
}
