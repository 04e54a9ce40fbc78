//! The properties the fuzz targets assert, in one place for both users: the targets under
//! `fuzz/fuzz_targets/` (coverage-guided, `cargo fuzz`) and `tests/fuzz_corpus.rs`, which
//! replays the committed corpus under `fuzz/corpus/` on every `cargo test`.
//!
//! Each check takes arbitrary bytes and panics when shiplog mishandles them: a panic in
//! shiplog's own code, or an assertion here. What is asserted is what a user relies on:
//! nothing is lost (every byte of a decoded line comes out of reassembly, in order), limits
//! hold (no message over `max_line_bytes`), and every record shiplog would ship is valid
//! JSON that gives back the line and the fields it was built from.

use std::borrow::Cow;
use std::sync::Arc;

use shiplog::decode::{Format, Message, Reassembler, Stream};
use shiplog::multiline::{Joiner, Rule, builtin};
use shiplog::parse::{ParserSet, json, nginx};
use shiplog::record::{Flags, Record, Shape};

/// Docker json-file lines: see [`runtime_lines`].
pub fn docker(data: &[u8]) {
    runtime_lines(Format::Docker, data);
}

/// CRI lines: see [`runtime_lines`].
pub fn cri(data: &[u8]) {
    runtime_lines(Format::Cri, data);
}

/// The first byte picks `max_line_bytes` (1 to 256), the rest is a file of `format` lines.
/// Every line decodes or is refused, without a panic; a decoded time is a plain ASCII
/// timestamp; the reassembler gives back, per stream, exactly the bytes decoded, in order,
/// in messages no longer than the limit, and nothing stays pending after the final flush.
pub fn runtime_lines(format: Format, data: &[u8]) {
    let Some((&limit, file)) = data.split_first() else {
        return;
    };
    let max_line_bytes = usize::from(limit) + 1;
    let mut reassembler = Reassembler::new(max_line_bytes);
    let mut decoded: [Vec<u8>; 2] = Default::default();
    let mut emitted: [Vec<u8>; 2] = Default::default();
    let mut emit = |message: shiplog::decode::Message<'_>| {
        assert!(
            message.bytes.len() <= max_line_bytes,
            "a message of {} bytes over the limit of {max_line_bytes}",
            message.bytes.len()
        );
        emitted[index(message.stream)].extend_from_slice(&message.bytes);
    };
    for line in file.split(|&b| b == b'\n') {
        let Ok(line) = format.decode(line) else {
            continue;
        };
        assert!(
            line.time.is_ascii() && !line.time.is_empty(),
            "decoded time {:?}",
            line.time
        );
        decoded[index(line.stream)].extend_from_slice(&line.message);
        reassembler.push(line, &mut emit);
    }
    reassembler.flush(&mut emit);
    assert!(reassembler.is_empty(), "a line still pending after flush");
    assert_eq!(
        emitted, decoded,
        "reassembly lost, added or reordered bytes"
    );
}

/// The multiline joiner. The first byte picks the rule (java, python, go, ruby or a custom
/// `start` regex) and `max_lines` (1 to 50), the second `max_bytes` (1 to 256); the rest is
/// lines, one per `\n`. The events, split at `\n` again, give back exactly the lines, in
/// order; no event has more than `max_lines` lines, nor (unless it is one line) more than
/// `max_bytes` bytes; nothing stays held after the flush, and no event is held at all when
/// every line stood alone.
pub fn multiline(data: &[u8]) {
    let [choice, bytes, rest @ ..] = data else {
        return;
    };
    let rule = match choice % 5 {
        0 => builtin("java"),
        1 => builtin("python"),
        2 => builtin("go"),
        3 => builtin("ruby"),
        _ => Rule::start(r"^\d{4}-|^[A-Z]").ok(),
    };
    let Some(rule) = rule else {
        panic!("rule {} missing", choice % 5);
    };
    let max_lines = usize::from(choice / 5) % 50 + 1;
    let max_bytes = usize::from(*bytes) + 1;
    let mut joiner = Joiner::new(Arc::new(rule), max_lines, max_bytes);
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut emit = |message: Message<'_>| {
        let count = message.bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        assert!(count <= max_lines, "{count} lines over {max_lines}");
        assert!(
            count == 1 || message.bytes.len() <= max_bytes,
            "{} bytes over {max_bytes}",
            message.bytes.len()
        );
        assert_eq!(message.time, "t", "the first line's time");
        out.extend(message.bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec));
    };
    for (n, line) in lines.iter().enumerate() {
        let message = Message {
            time: Cow::Borrowed("t"),
            stream: Stream::Stdout,
            bytes: Cow::Borrowed(line),
            truncated: false,
            partial: false,
        };
        joiner.push(message, n as u64, &mut emit);
        if let Some(start) = joiner.held_start() {
            assert!(
                start <= n as u64,
                "a held event starts after the line just pushed"
            );
        }
    }
    joiner.flush(&mut emit);
    assert_eq!(joiner.held_start(), None, "an event still held after flush");
    assert_eq!(out, lines, "the joiner lost, added or reordered lines");
}

fn index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The JSON merge: the payload is embedded only when it is one JSON object, and the record
/// then holds that object, equal to the payload parsed on its own, beside the line as written.
/// A payload refused is shipped in `log` only. Either way the record is valid JSON.
pub fn json_merge(data: &[u8]) {
    let line = String::from_utf8_lossy(data);
    let merged = json::object(&line);
    let Some(record) = render(&line, merged, None) else {
        return;
    };
    assert_eq!(
        record["log"].as_str(),
        Some(&*line),
        "the line is kept as written"
    );
    match merged.and_then(decode) {
        Some(object) => {
            assert!(
                object.is_object(),
                "embedded a payload that is not an object"
            );
            assert_eq!(record["data"], object);
        }
        None => assert!(
            merged.is_some() || record.get("data").is_none(),
            "data without a JSON object"
        ),
    }
}

/// `text` decoded, or `None` when it is valid JSON that `serde_json::Value` cannot hold:
/// numbers wider than f64 (`1e400`), or an object whose first key is serde_json's private
/// token `$serde_json::private::RawValue` (with the `raw_value` feature, which shiplog
/// uses, `Value` takes such an object for a raw value and refuses it; a logfmt line can
/// name a field so). shiplog ships such JSON as written, as JSON allows. Any other failure
/// is a bug and panics.
fn decode(text: &str) -> Option<serde_json::Value> {
    const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";
    match serde_json::from_str(text) {
        Ok(value) => Some(value),
        Err(error)
            if error.to_string().starts_with("number out of range")
                || text.contains(RAW_VALUE_TOKEN) =>
        {
            let raw: Result<&serde_json::value::RawValue, _> = serde_json::from_str(text);
            assert!(raw.is_ok(), "invalid JSON: {text}");
            None
        }
        Err(error) => panic!("invalid JSON ({error}): {text}"),
    }
}

/// Every built-in parser on the same line: a parser either refuses it or gives fields that
/// are one valid JSON object and, when it read a time, an RFC 3339 UTC time; the record
/// built from them is valid JSON.
pub fn builtin_parsers(data: &[u8]) {
    // Built once: compiling every parser's regex per input would be most of the work.
    static PARSERS: std::sync::OnceLock<ParserSet> = std::sync::OnceLock::new();
    let parsers = PARSERS.get_or_init(ParserSet::builtin);
    let line = String::from_utf8_lossy(data);
    nginx_matches_its_regex(&line);
    for name in parsers.names() {
        let Some(parser) = parsers.get(name) else {
            continue;
        };
        let Some(parsed) = parser.parse(&line, 2024) else {
            continue;
        };
        let fields = decode(&parsed.data);
        assert!(
            fields
                .as_ref()
                .map_or(parsed.data.starts_with('{'), |f| f.is_object()),
            "parser {name} gave a non-object: {}",
            parsed.data
        );
        if let Some(time) = &parsed.time {
            assert!(
                time.parse::<jiff::Timestamp>().is_ok() && time.ends_with('Z'),
                "parser {name} gave time {time:?}"
            );
        }
        let record = render(&line, Some(&parsed.data), parsed.time.as_deref());
        if let (Some(record), Some(fields)) = (record, fields) {
            assert_eq!(
                record["data"], fields,
                "parser {name}: fields changed in the record"
            );
        }
    }
}

/// The hand-written matcher of the built-in nginx regex captures exactly what the regex
/// captures, or fails to match exactly when it does.
fn nginx_matches_its_regex(line: &str) {
    static REGEX: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let regex = REGEX.get_or_init(|| regex::Regex::new(nginx::PATTERN).expect("it compiles"));
    let by_regex = regex.captures(line).map(|found| {
        (0..nginx::GROUPS)
            .map(|group| found.get(group).map(|m| (m.start(), m.end())))
            .collect::<Vec<_>>()
    });
    let by_hand = nginx::captures(line).map(|spans| spans.to_vec());
    assert_eq!(
        by_hand, by_regex,
        "the nginx matcher and its regex disagree on {line:?}"
    );
}

/// The record shiplog would ship for `line`, decoded (see [`decode`]).
fn render(line: &str, data: Option<&str>, time: Option<&str>) -> Option<serde_json::Value> {
    let record = Record {
        time: time.unwrap_or("2024-05-01T12:00:00.000000000Z"),
        stream: Some("stdout"),
        log: line,
        data,
        kubernetes: Some(r#"{"namespace_name":"default","pod_name":"fuzz"}"#),
        topic: "default",
        flags: Flags::default(),
        error: None,
    };
    let mut out = Vec::new();
    record.render(&Shape::new("data", true), &mut out);
    decode(std::str::from_utf8(&out).expect("a record is UTF-8"))
}
