//! CRI lines, as containerd and CRI-O write them:
//! `<RFC 3339 time> <stdout|stderr> <P|F> <message>`.
//!
//! Owns the split of one line into its four fields and nothing else: joining `P` pieces
//! with the `F` that ends them is [`super::Reassembler`]'s job. Everything is borrowed from
//! the caller's line, and the message stays bytes: containers may write anything, and the
//! format does not promise UTF-8. The format is kubelet's
//! (<https://github.com/kubernetes/design-proposals-archive/blob/main/node/kubelet-cri-logging.md>);
//! the parse mirrors Vector's `parser/cri.rs` `parse_log_line`, with reasons instead of `None`.

use std::borrow::Cow;

use memchr::memchr;

#[cfg(test)]
use super::TimeError;
use super::{DecodeError, Decoded, Stream, record_time};

/// The fields of one CRI line, borrowed from it.
struct ParsedLog<'a> {
    /// The runtime's timestamp in the record's form.
    time: Cow<'a, str>,
    stream: Stream,
    /// `P`: the container's line goes on in the next line of this stream.
    partial: bool,
    message: &'a [u8],
}

/// Splits one CRI line (without its trailing newline) into its fields.
///
/// Equivalent regex (the time then checked and normalised by [`record_time`]):
/// `(?-u)^(?P<time>[^ ]*) (?P<stream>stdout|stderr) (?P<tag>P|F)(?: (?P<message>.*))?$`
///
/// Only the single space after the tag is a separator: the message keeps any further
/// leading spaces, and a line that ends right after the tag has an empty message.
fn parse_log_line(line: &[u8]) -> Result<ParsedLog<'_>, DecodeError> {
    const NOT_RFC3339: DecodeError = DecodeError::Cri("time is not RFC 3339");
    let (time, rest) = split_field(line);
    let time = match record_time(time, NOT_RFC3339)? {
        Some(normalised) => Cow::Owned(normalised),
        // A time in the record's form is ASCII, so this never fails.
        None => Cow::Borrowed(std::str::from_utf8(time).map_err(|_| NOT_RFC3339)?),
    };
    let (stream, partial, message) = after_time(rest).map_err(DecodeError::Cri)?;
    Ok(ParsedLog {
        time,
        stream,
        partial,
        message,
    })
}

/// The fields after the time: the stream, whether the tag is `P`, and the message.
fn after_time(rest: Option<&[u8]>) -> Result<(Stream, bool, &[u8]), &'static str> {
    let (stream, rest) = split_field(rest.ok_or("missing stream")?);
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err("stream must be stdout or stderr"),
    };
    let (tag, message) = split_field(rest.ok_or("missing tag")?);
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        _ => return Err("tag must be P or F"),
    };
    Ok((stream, partial, message.unwrap_or_default()))
}

/// Splits at the first space: the field before it, and what follows it if there is a space.
fn split_field(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    match memchr(b' ', bytes).and_then(|space| bytes.split_at_checked(space)) {
        Some((field, rest)) => (field, rest.get(1..)),
        None => (bytes, None),
    }
}

/// Decodes one CRI line (without its trailing newline).
pub(super) fn decode(line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    let parsed = parse_log_line(line)?;
    Ok(Decoded {
        time: parsed.time,
        stream: parsed.stream,
        message: Cow::Borrowed(parsed.message),
        partial: parsed.partial,
    })
}

/// CRI lines that decode, with what they decode to.
/// Shared with other modules' tests through [`super::cases`].
#[cfg(test)]
pub(crate) fn valid_cases() -> Vec<(&'static [u8], Decoded<'static>)> {
    let line = |time: &'static str, stream, partial, message: &'static [u8]| Decoded {
        time: Cow::Borrowed(time),
        stream,
        message: Cow::Borrowed(message),
        partial,
    };
    const TIME: &str = "2016-10-06T00:17:09.669794202Z";
    vec![
        (
            b"2016-10-06T00:17:09.669794202Z stdout F The content of the log entry 1",
            line(
                TIME,
                Stream::Stdout,
                false,
                b"The content of the log entry 1",
            ),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stderr F an error",
            line(TIME, Stream::Stderr, false, b"an error"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout P First line of log entry 2",
            line(TIME, Stream::Stdout, true, b"First line of log entry 2"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F ",
            line(TIME, Stream::Stdout, false, b""),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F",
            line(TIME, Stream::Stdout, false, b""),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout P ",
            line(TIME, Stream::Stdout, true, b""),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F   indented, with  spaces ",
            line(TIME, Stream::Stdout, false, b"  indented, with  spaces "),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F {\"escapes\":\"stay \\\"as\\\" written\\t\"}",
            line(
                TIME,
                Stream::Stdout,
                false,
                b"{\"escapes\":\"stay \\\"as\\\" written\\t\"}",
            ),
        ),
        (
            "2016-10-06T00:17:09.669794202Z stdout F café ☕".as_bytes(),
            line(TIME, Stream::Stdout, false, "café ☕".as_bytes()),
        ),
        (
            b"2021-08-05T17:35:26.640507539Z stdout P Hello World \xd0\x9f\xd1\x80\xd0\xb8 \xd1",
            line(
                "2021-08-05T17:35:26.640507539Z",
                Stream::Stdout,
                true,
                b"Hello World \xd0\x9f\xd1\x80\xd0\xb8 \xd1",
            ),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F \xff\xfe\x00 raw bytes",
            line(TIME, Stream::Stdout, false, b"\xff\xfe\x00 raw bytes"),
        ),
        (
            b"2016-10-06T02:17:09.669794202+02:00 stdout F with an offset",
            line(
                "2016-10-06T00:17:09.669794202Z",
                Stream::Stdout,
                false,
                b"with an offset",
            ),
        ),
        (
            b"2016-10-06T00:17:09Z stderr F whole seconds",
            line(
                "2016-10-06T00:17:09.000000000Z",
                Stream::Stderr,
                false,
                b"whole seconds",
            ),
        ),
    ]
}

/// Lines a CRI decoder must refuse, with the reason.
/// Shared with other modules' tests through [`super::cases`].
#[cfg(test)]
pub(crate) fn invalid_cases() -> Vec<(&'static [u8], DecodeError)> {
    let error = DecodeError::Cri;
    vec![
        (b"", error("time is not RFC 3339")),
        (b"garbage", error("time is not RFC 3339")),
        (b"garbage stdout F message", error("time is not RFC 3339")),
        (
            b"2016-10-06 00:17:09.669794202Z stdout F a space in the time",
            error("time is not RFC 3339"),
        ),
        (
            b"16-10-06T00:17:09Z stdout F a two-digit year",
            error("time is not RFC 3339"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z\xff stdout F a non-UTF-8 time",
            error("time is not RFC 3339"),
        ),
        (
            br#"{"log":"hello\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("time is not RFC 3339"),
        ),
        (
            b"2016-13-06T00:17:09.669794202Z stdout F month 13",
            DecodeError::Time(TimeError::Date),
        ),
        (
            b"2016-10-06T24:17:09Z stdout F hour 24",
            DecodeError::Time(TimeError::TimeOfDay),
        ),
        (b"2016-10-06T00:17:09.669794202Z", error("missing stream")),
        (
            b"2016-10-06T00:17:09.669794202Z stdout",
            error("missing tag"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdin F message",
            error("stream must be stdout or stderr"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z  stdout F two spaces",
            error("stream must be stdout or stderr"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout X message",
            error("tag must be P or F"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout PF message",
            error("tag must be P or F"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F:x message",
            error("tag must be P or F"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout p message",
            error("tag must be P or F"),
        ),
        (
            b"2016-10-06T00:17:09.669794202Z stdout  F message",
            error("tag must be P or F"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::decode::strategies;

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            line in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Ok(decoded) = decode(&line) {
                prop_assert!(strategies::is_record_form(&decoded.time));
                prop_assert!(line.ends_with(&decoded.message));
            }
        }

        #[test]
        fn decoding_a_mangled_valid_line_never_panics(
            case in prop::sample::select(valid_cases()),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut line = case.0.to_vec();
            let at = at.index(line.len());
            line.truncate(at + 1);
            if let Some(last) = line.last_mut() {
                *last = byte;
            }
            if let Ok(decoded) = decode(&line) {
                prop_assert!(strategies::is_record_form(&decoded.time));
                prop_assert!(line.ends_with(&decoded.message));
            }
        }

        #[test]
        fn a_rendered_line_decodes_to_what_was_rendered(
            message in strategies::cri_message(),
            stream in strategies::stream(),
            time in strategies::time(),
            partial in any::<bool>(),
        ) {
            let tag = if partial { "P" } else { "F" };
            let mut line = format!("{time} {} {tag} ", stream.as_str()).into_bytes();
            line.extend_from_slice(&message);
            prop_assert_eq!(
                decode(&line),
                Ok(Decoded {
                    time: Cow::Owned(strategies::in_record_form(&time)),
                    stream,
                    message: Cow::Borrowed(message.as_slice()),
                    partial,
                })
            );
        }
    }
}
