//! Docker json-file lines:
//! `{"log":"hello\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}`.
//!
//! Owns the mapping from one json-file entry to a [`Decoded`] line and nothing else: joining
//! the 16 KiB pieces dockerd splits long lines into is [`super::Reassembler`]'s job. The
//! parse borrows from the caller's line; `log` is copied only when it holds a JSON escape
//! other than the `\n` that ends almost every entry. Fields other than `log`, `stream` and
//! `time` (`attrs`, ...) are skipped. The entry shape is moby's `jsonlog.JSONLog`
//! (<https://github.com/moby/moby/blob/master/daemon/logger/jsonfilelog/jsonlog/jsonlog.go>).

use std::borrow::Cow;

use memchr::memchr;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeError, Decoded, Stream, record_time};

/// The fields of a json-file entry we read. Each is optional here so that a missing one
/// gets its own reason instead of serde's allocated message.
#[derive(Deserialize)]
struct Entry<'a> {
    /// Kept raw: nearly every `log` ends in the escape `\n`, which serde would undo into a
    /// copy; [`log_message`] borrows instead when that is the only escape.
    #[serde(borrow)]
    log: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Option<Text<'a>>,
    #[serde(borrow)]
    time: Option<Text<'a>>,
}

/// A JSON string, borrowed unless it has escapes. The newtype exists because serde borrows
/// a `Cow<str>` only when it is a field's whole type: not inside an `Option`, and not
/// through `#[serde(transparent)]` either.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Decodes one docker json-file line (without its trailing newline).
pub(super) fn decode(line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(DecodeError::Docker("not a JSON object"));
    }
    let entry: Entry<'_> = serde_json::from_slice(line).map_err(|err| {
        DecodeError::Docker(match err.classify() {
            serde_json::error::Category::Data => "a field has the wrong type or is repeated",
            _ => "invalid JSON",
        })
    })?;
    let Some(log) = entry.log else {
        return Err(DecodeError::Docker("missing \"log\""));
    };
    let stream = match entry.stream.as_ref().map(|Text(stream)| stream.as_ref()) {
        Some("stdout") => Stream::Stdout,
        Some("stderr") => Stream::Stderr,
        Some(_) => return Err(DecodeError::Docker("stream must be stdout or stderr")),
        None => return Err(DecodeError::Docker("missing \"stream\"")),
    };
    let Some(Text(time)) = entry.time else {
        return Err(DecodeError::Docker("missing \"time\""));
    };
    let time = match record_time(time.as_bytes(), DecodeError::Docker("time is not RFC 3339"))? {
        Some(normalised) => Cow::Owned(normalised),
        None => time,
    };
    let (message, partial) = log_message(log.get())?;
    Ok(Decoded {
        time,
        stream,
        message,
        partial,
    })
}

/// Turns the raw JSON of `log` into the container's bytes and whether the line goes on in
/// the next entry: dockerd ends an entry with `\n` only where the container's line ended.
fn log_message(raw: &str) -> Result<(Cow<'_, [u8]>, bool), DecodeError> {
    let Some(body) = raw.strip_prefix('"').and_then(|raw| raw.strip_suffix('"')) else {
        return Err(DecodeError::Docker("\"log\" is not a string"));
    };
    // serde_json has validated the string, so without a backslash its body is its value.
    match body.strip_suffix("\\n") {
        Some(message) if !has_escape(message) => {
            return Ok((Cow::Borrowed(message.as_bytes()), false));
        }
        None if !has_escape(body) => return Ok((Cow::Borrowed(body.as_bytes()), true)),
        _ => {}
    }
    let log = unescape(body).ok_or(DecodeError::Docker("invalid JSON"))?;
    let mut message = log.into_bytes();
    let complete = message.last() == Some(&b'\n');
    if complete {
        message.pop();
    }
    Ok((Cow::Owned(message), !complete))
}

/// Undoes the escapes of a JSON string body serde_json has already validated, in one pass
/// that copies the runs between backslashes whole. `None` for an escape JSON does not allow
/// (serde_json's validation lets a lone UTF-16 surrogate such as `\ud800` through).
fn unescape(body: &str) -> Option<String> {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = memchr(b'\\', rest.as_bytes()) {
        let (plain, escape) = rest.split_at(at);
        out.push_str(plain);
        let (char, len) = match escape.as_bytes().get(1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => unescape_unicode(escape)?,
            _ => return None,
        };
        out.push(char);
        // Every escape is ASCII, so `len` is a character boundary.
        rest = escape.get(len..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// The character a `\uXXXX` escape (or a `\uXXXX\uXXXX` surrogate pair) at the start of
/// `escape` stands for, and the escape's length.
fn unescape_unicode(escape: &str) -> Option<(char, usize)> {
    let hex = |at: usize| {
        let digits = escape.get(at..at + 4)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| u32::from_str_radix(digits, 16).ok())?
    };
    let first = hex(2)?;
    match first {
        0xd800..=0xdbff => {
            if escape.get(6..8)? != "\\u" {
                return None;
            }
            let second = hex(8)?;
            if !(0xdc00..=0xdfff).contains(&second) {
                return None;
            }
            let code = 0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00);
            Some((char::from_u32(code)?, 12))
        }
        _ => Some((char::from_u32(first)?, 6)),
    }
}

/// True when a JSON string body holds an escape sequence.
fn has_escape(body: &str) -> bool {
    memchr(b'\\', body.as_bytes()).is_some()
}

/// Docker lines that decode, with what they decode to.
/// Shared with other modules' tests through [`super::cases`].
#[cfg(test)]
pub(crate) fn valid_cases() -> Vec<(&'static [u8], Decoded<'static>)> {
    // Written as 2019-12-19T17:41:12.70630778Z: Go drops the fraction's trailing zero.
    const TIME: &str = "2019-12-19T17:41:12.706307780Z";
    let line = |message: &'static [u8], stream, partial| Decoded {
        time: Cow::Borrowed(TIME),
        stream,
        message: Cow::Borrowed(message),
        partial,
    };
    vec![
        (
            br#"{"log":"hello\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"hello", Stream::Stdout, false),
        ),
        (
            br#"{"log":"oops\n","stream":"stderr","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"oops", Stream::Stderr, false),
        ),
        (
            br#"{"time":"2019-12-19T17:41:12.70630778Z","stream":"stdout","log":"keys in any order\n"}"#,
            line(b"keys in any order", Stream::Stdout, false),
        ),
        (
            br#"{"log":"with attrs\n","attrs":{"tag":"x","n":[1,2]},"stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"with attrs", Stream::Stdout, false),
        ),
        (
            br#"{"log":"say \"hi\"\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(br#"say "hi""#, Stream::Stdout, false),
        ),
        (
            br#"{"log":"caf\u00e9\tok\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line("café\tok".as_bytes(), Stream::Stdout, false),
        ),
        (
            br#"{"log":"{\"message\":\"A new user signed up!\"}\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(
                br#"{"message":"A new user signed up!"}"#,
                Stream::Stdout,
                false,
            ),
        ),
        (
            br#"{"log":"\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"", Stream::Stdout, false),
        ),
        (
            br#"{"log":"only one newline is removed\n\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"only one newline is removed\n", Stream::Stdout, false),
        ),
        (
            br#"{"log":"first 16 KiB of a long line","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"first 16 KiB of a long line", Stream::Stdout, true),
        ),
        (
            br#"{"log":"a literal backslash-n \\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(br"a literal backslash-n \n", Stream::Stdout, true),
        ),
        (
            br#"{"log":"escaped piece\t","stream":"stderr","time":"2019-12-19T17:41:12.70630778Z"}"#,
            line(b"escaped piece\t", Stream::Stderr, true),
        ),
        (
            br#"  { "log" : "spaces\n" , "stream" : "stdout" , "time" : "2019-12-19T17:41:12.70630778Z" }  "#,
            line(b"spaces", Stream::Stdout, false),
        ),
    ]
}

/// Lines a docker decoder must refuse, with the reason.
/// Shared with other modules' tests through [`super::cases`].
#[cfg(test)]
pub(crate) fn invalid_cases() -> Vec<(&'static [u8], DecodeError)> {
    let error = DecodeError::Docker;
    vec![
        (b"", error("not a JSON object")),
        (b"   ", error("not a JSON object")),
        (b"garbage", error("not a JSON object")),
        (b"[1,2]", error("not a JSON object")),
        (
            b"2016-10-06T00:17:09.669794202Z stdout F a CRI line",
            error("not a JSON object"),
        ),
        (br#"{"log":"hel"#, error("invalid JSON")),
        (br#"{"log":"hello\n","stream":"stdout","time":"#, error("invalid JSON")),
        (
            br#"{"log":"hello\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"} trailing"#,
            error("invalid JSON"),
        ),
        (
            br#"{"log":"bad escape \q","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("invalid JSON"),
        ),
        (
            br#"{"stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("missing \"log\""),
        ),
        (
            br#"{"log":"hello\n","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("missing \"stream\""),
        ),
        (
            br#"{"log":"hello\n","stream":"stdout"}"#,
            error("missing \"time\""),
        ),
        (
            br#"{"log":"hello\n","stream":"stdin","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("stream must be stdout or stderr"),
        ),
        (
            br#"{"log":"hello\n","stream":"STDOUT","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("stream must be stdout or stderr"),
        ),
        (
            br#"{"log":"hello\n","stream":"stdout","time":"yesterday"}"#,
            error("time is not RFC 3339"),
        ),
        (
            br#"{"log":"hello\n","stream":"stdout","time":"2026-13-45T99:99:99Z"}"#,
            DecodeError::Time(super::TimeError::Date),
        ),
        (
            br#"{"log":"hello\n","stream":"stdout","time":"2026-12-03T10:00:04+24:00"}"#,
            DecodeError::Time(super::TimeError::Offset),
        ),
        (
            br#"{"log":42,"stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("\"log\" is not a string"),
        ),
        (
            br#"{"log":"hello\n","stream":1,"time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("a field has the wrong type or is repeated"),
        ),
        (
            br#"{"log":"lone surrogate \ud800\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("invalid JSON"),
        ),
        (
            b"{\"log\":\"raw control \x01 character\\n\",\"stream\":\"stdout\",\"time\":\"2019-12-19T17:41:12.70630778Z\"}",
            error("invalid JSON"),
        ),
        (
            b"{\"log\":\"not UTF-8 \xff\\n\",\"stream\":\"stdout\",\"time\":\"2019-12-19T17:41:12.70630778Z\"}",
            error("invalid JSON"),
        ),
        (
            br#"{"log":"a\n","log":"b\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#,
            error("a field has the wrong type or is repeated"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::decode::strategies;

    #[test]
    fn a_line_without_escapes_and_with_a_nine_digit_time_is_decoded_without_copying() {
        let line =
            br#"{"log":"hello\n","stream":"stdout","time":"2019-12-19T17:41:12.706307781Z"}"#;
        let decoded = decode(line);
        assert!(
            matches!(
                decoded,
                Ok(Decoded {
                    time: Cow::Borrowed(_),
                    message: Cow::Borrowed(_),
                    ..
                })
            ),
            "{decoded:?}"
        );
    }

    #[test]
    fn an_escaped_message_is_unescaped_into_an_owned_copy() {
        let line =
            br#"{"log":"tab\there\n","stream":"stdout","time":"2019-12-19T17:41:12.70630778Z"}"#;
        let decoded = decode(line);
        assert!(
            matches!(
                &decoded,
                Ok(Decoded { message: Cow::Owned(m), partial: false, .. }) if m == b"tab\there"
            ),
            "{decoded:?}"
        );
    }

    #[test]
    fn every_json_escape_is_undone() {
        let cases = [
            (r#"\"\\\/\b\f\n\r\t"#, Some("\"\\/\u{8}\u{c}\n\r\t")),
            (r"caf\u00e9 \u20AC", Some("café €")),
            (r"\ud83d\ude00!", Some("😀!")),
            (r"plain, with no escape", Some("plain, with no escape")),
            (r"\ud800", None),
            (r"\ud800\u0041", None),
            (r"\ude00", None),
            (r"\u00g0", None),
            (r"\x", None),
            (r"trailing \", None),
        ];
        for (body, expected) in cases {
            assert_eq!(unescape(body).as_deref(), expected, "{body}");
        }
    }

    /// One token of a JSON string body: a run of plain text, or one escape.
    fn json_string_token() -> impl Strategy<Value = String> {
        prop_oneof![
            "[^\"\\\\\\x00-\\x1f]{1,8}",
            prop::sample::select(vec![
                "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"
            ])
            .prop_map(str::to_owned),
            any::<u16>().prop_map(|unit| format!("\\u{unit:04x}")),
            any::<char>().prop_map(|char| {
                let mut units = [0; 2];
                char.encode_utf16(&mut units)
                    .iter()
                    .map(|unit| format!("\\u{unit:04X}"))
                    .collect()
            }),
        ]
    }

    proptest! {
        #[test]
        fn unescaping_agrees_with_serde_json(
            tokens in prop::collection::vec(json_string_token(), 0..16),
        ) {
            let body = tokens.concat();
            let serde: Option<String> = serde_json::from_str(&format!("\"{body}\"")).ok();
            prop_assert_eq!(unescape(&body), serde);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(
            line in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            if let Ok(decoded) = decode(&line) {
                prop_assert!(strategies::is_record_form(&decoded.time));
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
            }
        }

        #[test]
        fn a_rendered_entry_decodes_to_what_was_rendered(
            message in any::<String>(),
            stream in strategies::stream(),
            time in strategies::time(),
            partial in any::<bool>(),
        ) {
            // dockerd ends a partial entry mid-line, never right after a newline.
            prop_assume!(!(partial && message.ends_with('\n')));
            let log = if partial { message.clone() } else { format!("{message}\n") };
            let line = serde_json::to_vec(&serde_json::json!({
                "log": log,
                "stream": stream.as_str(),
                "time": time,
                "attrs": {"tag": "ignored"},
            }))?;
            prop_assert_eq!(
                decode(&line),
                Ok(Decoded {
                    time: Cow::Owned(strategies::in_record_form(&time)),
                    stream,
                    message: Cow::Borrowed(message.as_bytes()),
                    partial,
                })
            );
        }
    }
}
