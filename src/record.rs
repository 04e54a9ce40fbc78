//! The record shipped for each log line, and its JSON rendering.
//!
//! Pure and allocation-free on the hot path: a [`Record`] borrows everything it shows (the
//! line, the pre-rendered `kubernetes` fragment, the topic) and [`Record::render`] appends
//! one JSON object to a caller-owned buffer. Key order follows CONTRACT.md: `time`,
//! `stream`, `log`, the merge key, `kubernetes`, `topic`, then the flags.

/// One log line as it will be shipped. Every field is already final; rendering only copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// RFC 3339 time, from the container runtime (or the read time for undecodable lines).
    pub time: &'a str,
    /// `stdout` or `stderr`; `None` when the line could not be decoded.
    pub stream: Option<&'a str>,
    /// The line as the container wrote it.
    pub log: &'a str,
    /// A JSON object, as text, to embed under the merge key: the merged payload or the
    /// fields a parser captured. Must be valid JSON: it is copied verbatim.
    pub data: Option<&'a str>,
    /// The pod's `kubernetes` object, pre-rendered once per file. Must be valid JSON.
    pub kubernetes: Option<&'a str>,
    /// The routing tag.
    pub topic: &'a str,
    /// Flags that tell a reader this record is not the plain line it looks like.
    pub flags: Flags,
    /// Why the line could not be decoded; the line then sits raw in `log`.
    pub error: Option<&'a str>,
}

/// Marks on a record that altered or incomplete data carries. Each is rendered only when set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// A piece of a line cut by `max_line_bytes`.
    pub truncated: bool,
    /// A line the runtime had not finished writing when it was shipped.
    pub partial: bool,
    /// The line held bytes that are not UTF-8; they were replaced with U+FFFD.
    pub invalid_utf8: bool,
}

/// How records are shaped, from the config: fixed for the life of the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// `"<merge_log_key>":`, escaped once.
    data_key: String,
    /// Keep `log` when `data` is present.
    keep_log: bool,
}

impl Shape {
    /// The shape for `merge_log_key` and `keep_log`.
    pub fn new(merge_log_key: &str, keep_log: bool) -> Self {
        let mut data_key = Vec::with_capacity(merge_log_key.len() + 3);
        write_json_str(&mut data_key, merge_log_key);
        data_key.push(b':');
        let data_key = String::from_utf8_lossy(&data_key).into_owned();
        Shape { data_key, keep_log }
    }
}

impl Record<'_> {
    /// Appends this record to `out` as one JSON object, without a newline.
    pub fn render(&self, shape: &Shape, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":");
        write_json_str(out, self.time);
        if let Some(stream) = self.stream {
            out.extend_from_slice(b",\"stream\":");
            write_json_str(out, stream);
        }
        if self.data.is_none() || shape.keep_log {
            out.extend_from_slice(b",\"log\":");
            write_json_str(out, self.log);
        }
        if let Some(data) = self.data {
            out.push(b',');
            out.extend_from_slice(shape.data_key.as_bytes());
            out.extend_from_slice(data.as_bytes());
        }
        if let Some(kubernetes) = self.kubernetes {
            out.extend_from_slice(b",\"kubernetes\":");
            out.extend_from_slice(kubernetes.as_bytes());
        }
        out.extend_from_slice(b",\"topic\":");
        write_json_str(out, self.topic);
        let flags = [
            (self.flags.truncated, &b",\"truncated\":true"[..]),
            (self.flags.partial, b",\"partial\":true"),
            (self.flags.invalid_utf8, b",\"invalid_utf8\":true"),
        ];
        for (set, text) in flags {
            if set {
                out.extend_from_slice(text);
            }
        }
        if let Some(error) = self.error {
            out.extend_from_slice(b",\"shiplog_error\":");
            write_json_str(out, error);
        }
        out.push(b'}');
    }
}

/// Appends `s` as a JSON string literal. Escapes `"`, `\\` and control characters, copying
/// the runs between them in one go. Runs are scanned eight bytes at a time
/// ([`escape_mask`]); each escape found restarts the scan just past it, so text dense with
/// quotes (a JSON payload kept in `log`) costs one step per escape, not per byte.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(<[u8]>::first_chunk::<8>) {
        let mask = escape_mask(u64::from_le_bytes(*word));
        if mask == 0 {
            at += 8;
            continue;
        }
        // The lowest flagged byte is always a true one (see `escape_mask`).
        at += (mask.trailing_zeros() / 8) as usize;
        out.extend_from_slice(&bytes[start..at]);
        write_escape(out, bytes[at]);
        at += 1;
        start = at;
    }
    for (i, &b) in bytes.iter().enumerate().skip(at) {
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[start..i]);
            write_escape(out, b);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes the escape of `b`, one of `"`, `\\` or a control character.
#[inline]
fn write_escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

/// The high bit of each of the eight bytes of `word` that is `"`, `\\` or below 0x20 (the
/// classic "has a zero byte / a byte less than" bit tricks). Bytes of 0x80 and above are
/// never flagged (masked out by `!word`). A borrow can flag a byte above a flagged one by
/// mistake, never below it, so the lowest flag is always exact.
fn escape_mask(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let below_0x20 = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    below_0x20
        | has_zero(word ^ (ONES * u64::from(b'"')))
        | has_zero(word ^ (ONES * u64::from(b'\\')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn record<'a>() -> Record<'a> {
        Record {
            time: "2019-12-19T17:41:12.70630778Z",
            stream: Some("stdout"),
            log: "{\"message\":\"A new user signed up!\"}",
            data: Some("{\"message\":\"A new user signed up!\"}"),
            kubernetes: Some("{\"pod_name\":\"web\"}"),
            topic: "shop",
            flags: Flags::default(),
            error: None,
        }
    }

    fn render(record: &Record<'_>, shape: &Shape) -> Value {
        let mut out = Vec::new();
        record.render(shape, &mut out);
        serde_json::from_slice(&out).expect("rendered record is JSON")
    }

    #[test]
    fn a_merged_record_has_the_contract_shape() {
        let value = render(&record(), &Shape::new("data", true));
        assert_eq!(
            value,
            json!({
                "time": "2019-12-19T17:41:12.70630778Z",
                "stream": "stdout",
                "log": "{\"message\":\"A new user signed up!\"}",
                "data": {"message": "A new user signed up!"},
                "kubernetes": {"pod_name": "web"},
                "topic": "shop",
            })
        );
    }

    #[test]
    fn keep_log_false_drops_log_only_when_data_is_present() {
        let shape = Shape::new("data", false);
        assert!(render(&record(), &shape).get("log").is_none());
        let plain = Record {
            data: None,
            ..record()
        };
        assert_eq!(
            render(&plain, &shape)["log"],
            "{\"message\":\"A new user signed up!\"}"
        );
    }

    #[test]
    fn the_merge_key_is_configurable_and_escaped() {
        let value = render(&record(), &Shape::new("pay\"load", true));
        assert_eq!(value["pay\"load"]["message"], "A new user signed up!");
    }

    #[test]
    fn flags_and_errors_appear_only_when_set() {
        let shape = Shape::new("data", true);
        let plain = render(&record(), &shape);
        for key in ["truncated", "partial", "invalid_utf8", "shiplog_error"] {
            assert!(plain.get(key).is_none(), "{key} rendered without being set");
        }
        let flagged = Record {
            stream: None,
            flags: Flags {
                truncated: true,
                partial: true,
                invalid_utf8: true,
            },
            error: Some("not a CRI line: missing stream"),
            ..record()
        };
        let value = render(&flagged, &shape);
        assert_eq!(value["truncated"], true);
        assert_eq!(value["partial"], true);
        assert_eq!(value["invalid_utf8"], true);
        assert_eq!(value["shiplog_error"], "not a CRI line: missing stream");
        assert!(value.get("stream").is_none());
    }

    #[test]
    fn the_first_byte_that_needs_escaping_is_found_at_every_position_of_a_word() {
        let specials: Vec<u8> = (0u8..0x20).chain([b'"', b'\\']).collect();
        for &special in &specials {
            for at in 0..8 {
                // Plain bytes below, and any bytes above, which may be flagged too.
                for &above in specials.iter().chain(&[b'a', 0xc3, 0xff]) {
                    let mut bytes = [b'a'; 8];
                    bytes[at] = special;
                    bytes[at + 1..].fill(above);
                    let mask = escape_mask(u64::from_le_bytes(bytes));
                    assert_eq!(mask.trailing_zeros() / 8, at as u32, "{special:#x} at {at}");
                }
            }
        }
        for plain in (0x20u8..=0xff).filter(|b| *b != b'"' && *b != b'\\') {
            assert_eq!(escape_mask(u64::from_le_bytes([plain; 8])), 0, "{plain:#x}");
        }
    }

    proptest! {
        #[test]
        fn any_string_renders_as_the_same_json_string(s in any::<String>()) {
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out).expect("valid JSON string");
            prop_assert_eq!(back, s);
        }

        #[test]
        fn text_dense_with_escapes_renders_as_the_same_json_string(
            s in "[\"\\\\\\x00-\\x1fa-zé]{0,40}"
        ) {
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            let back: String = serde_json::from_slice(&out).expect("valid JSON string");
            prop_assert_eq!(back, s);
        }
    }
}
