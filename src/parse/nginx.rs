//! A hand-written matcher for the built-in `nginx` regex (`parsers/nginx.toml`), giving
//! exactly the capture groups the regex gives, about ten times faster.
//!
//! Why our own: nginx access lines are the most common parsed lines on a node, and the
//! `regex` crate spends about 1.8 µs on each one (a quarter of the whole process's CPU on
//! the benchmark workload). Finding where the match ends is quick (a lazy DFA); the cost
//! is the capture groups, which the regex crate can only fill with its bounded
//! backtracker here: its fast capture engine (the one-pass DFA) refuses this regex,
//! because where the path ends and the protocol begins (`[^"]*?` then ` +[^ "]*`) is
//! only known at the closing quote.
//!
//! [`RegexParser`](super::regex::RegexParser) uses this matcher when, and only when, its
//! pattern is exactly [`PATTERN`]; the property test below and the `builtin_parsers` fuzz
//! target check that both always agree, and a test checks that `PATTERN` is the regex of
//! the built-in definition, so neither can drift.
//!
//! How the regex is read (leftmost-first, anchored at both ends): every group but the path
//! is a run of bytes up to a delimiter it cannot contain (space, `]` or `"`), so each is
//! fixed by the first delimiter after it. The request is everything between the quotes;
//! its method runs to the first space, then all spaces, then the lazy path takes the
//! shortest prefix after which only ` +[^ "]*` remains: up to the last run of spaces, or
//! all of it when there is none. Delimiters are ASCII, so scanning bytes of UTF-8 text
//! finds the same places as the regex's character classes.

/// The regex this module matches; it must equal the `regex` of `parsers/nginx.toml`.
pub const PATTERN: &str = r#"^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?:(?<method>[^ "]+)(?: +(?<path>[^"]*?)(?: +[^ "]*)?)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^"]*)" "(?<agent>[^"]*)"(?: .*)?)?$"#;

/// Capture groups of [`PATTERN`], counting the whole match as group 0.
pub const GROUPS: usize = 11;

/// A group's byte range in the line, or `None` when it took no part in the match.
pub type Spans = [Option<(usize, usize)>; GROUPS];

/// The groups [`PATTERN`] captures in `line`, indexed like the regex's groups, or `None`
/// when the regex does not match.
pub fn captures(line: &str) -> Option<Spans> {
    let bytes = line.as_bytes();
    let mut spans: Spans = [None; GROUPS];
    spans[0] = Some((0, bytes.len()));
    let mut at = 0;
    // remote, host, user: each up to the next space, which the pattern then requires.
    for span in &mut spans[1..=3] {
        let end = find(bytes, at, b' ')?;
        *span = Some((at, end));
        at = end + 1;
    }
    // \[ time \] then ` "`.
    at = expect(bytes, at, b"[")?;
    let end = find(bytes, at, b']')?;
    spans[4] = Some((at, end));
    at = expect(bytes, end, b"] \"")?;
    // The request: everything up to the next quote, which closes it.
    let close = find(bytes, at, b'"')?;
    if !request(bytes, at, close, &mut spans) {
        return None;
    }
    at = expect(bytes, close, b"\" ")?;
    let end = find(bytes, at, b' ')?;
    spans[7] = Some((at, end));
    at = end + 1;
    let size_end = find(bytes, at, b' ').unwrap_or(bytes.len());
    spans[8] = Some((at, size_end));
    if size_end == bytes.len() {
        return Some(spans);
    }
    // ` "referer" "agent"`, then nothing, or a space and anything up to the end without a
    // newline (`(?: .*)?$`).
    at = expect(bytes, size_end, b" \"")?;
    let end = find(bytes, at, b'"')?;
    spans[9] = Some((at, end));
    at = expect(bytes, end, b"\" \"")?;
    let end = find(bytes, at, b'"')?;
    spans[10] = Some((at, end));
    let rest = &bytes[end + 1..];
    let rest_matches =
        rest.is_empty() || (rest[0] == b' ' && memchr::memchr(b'\n', rest).is_none());
    rest_matches.then_some(spans)
}

/// Fills method (5) and path (6) from the request `bytes[start..close]`; false when the
/// request part of the pattern cannot match it.
fn request(bytes: &[u8], start: usize, close: usize, spans: &mut Spans) -> bool {
    let request = &bytes[start..close];
    if request.is_empty() {
        return true;
    }
    let method_end = memchr::memchr(b' ', request).unwrap_or(request.len());
    if method_end == 0 {
        return false;
    }
    spans[5] = Some((start, start + method_end));
    if method_end == request.len() {
        return true;
    }
    let path_start = request[method_end..]
        .iter()
        .position(|&b| b != b' ')
        .map_or(request.len(), |n| method_end + n);
    let rest = &request[path_start..];
    let path_end = match memchr::memrchr(b' ', rest) {
        // The start of the last run of spaces.
        Some(last) => rest[..last]
            .iter()
            .rposition(|&b| b != b' ')
            .map_or(0, |n| n + 1),
        None => rest.len(),
    };
    spans[6] = Some((start + path_start, start + path_start + path_end));
    true
}

/// The position of the first `byte` at or after `from`.
fn find(bytes: &[u8], from: usize, byte: u8) -> Option<usize> {
    memchr::memchr(byte, bytes.get(from..)?).map(|n| from + n)
}

/// The position after `literal`, which must be at `at`.
fn expect(bytes: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    let end = at.checked_add(literal.len())?;
    (bytes.get(at..end)? == literal).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the regex itself captures.
    fn by_regex(regex: &regex::Regex, line: &str) -> Option<Spans> {
        let found = regex.captures(line)?;
        let mut spans: Spans = [None; GROUPS];
        for (group, span) in spans.iter_mut().enumerate() {
            *span = found.get(group).map(|m| (m.start(), m.end()));
        }
        Some(spans)
    }

    fn regex() -> &'static regex::Regex {
        static REGEX: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| regex::Regex::new(PATTERN).expect("the pattern compiles"));
        &REGEX
    }

    #[test]
    fn the_pattern_is_the_builtin_definition() {
        let file: toml::Value =
            toml::from_str(include_str!("../../parsers/nginx.toml")).expect("nginx.toml");
        assert_eq!(file["nginx"]["regex"].as_str(), Some(PATTERN));
        assert_eq!(regex().captures_len(), GROUPS);
    }

    #[test]
    fn agrees_with_the_regex_on_chosen_lines() {
        let regex = regex();
        let lines = [
            r#"93.184.216.34 - - [10/Oct/2023:13:55:36 +0000] "GET /index.html HTTP/1.1" 200 612 "-" "Mozilla/5.0 (X11)""#,
            r#"10.0.0.5 - - [10/Oct/2023:13:55:37 +0000] "" 400 0 "-" "-""#,
            r#"10.0.0.5 - - [t] "GET" 200 0"#,
            r#"10.0.0.5 - - [t] "GET   " 200 0"#,
            r#"10.0.0.5 - - [t] "GET /a b  c   HTTP/1.1" 200 0 "r" "a" "x-forwarded""#,
            r#"10.0.0.5 - - [t] "GET /a  HTTP/1.1  " 200 0 "r" "a""#,
            r#"10.0.0.5 - - [t] " GET /" 200 0"#,
            r#"10.0.0.5 - - [t] "GET /" 200 0 "r" "a"x"#,
            "10.0.0.5 - - [t] \"GET /\" 200 0 \"r\" \"a\" x\ny",
            r#"10.0.0.5 - - [t] "GET /" 200 0 "r""#,
            r#"10.0.0.5 - - [t] "GET /" 200"#,
            r#"10.0.0.5 - - [t]x "GET /" 200 0"#,
            r#"é - - [ü] "GËT /ä ö" 2ö0 0"#,
            "",
            " ",
        ];
        for line in lines {
            assert_eq!(captures(line), by_regex(regex, line), "{line:?}");
        }
    }

    /// Lines made of the bytes the pattern cares about: access lines with random request
    /// and ending, access lines with any byte anywhere, and plain noise.
    fn line() -> impl Strategy<Value = String> {
        let field = "[a-z0-9\\-é]{0,5}";
        let request = "[ a-z/é\"]{0,14}";
        let ending = "( \"[a-z \"]{0,4}\" \"[a-z \"]{0,4}\"([ x\n]{0,3})?)?";
        let well_shaped = (field, field, field, field, request, field, field, ending).prop_map(
            |(remote, host, user, time, request, code, size, ending)| {
                format!("{remote} {host} {user} [{time}] \"{request}\" {code} {size}{ending}")
            },
        );
        let token = "[ \"\\[\\]\\-a/é\n0-9]{0,6}";
        let rough = proptest::collection::vec(token, 11).prop_map(|t| {
            format!(
                "{} {} {} [{}] \"{} {}\" {} {} \"{}\" \"{}\"{}",
                t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9], t[10]
            )
        });
        prop_oneof![well_shaped, rough, "[ \"\\[\\]\\-a/é\n]{0,40}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn agrees_with_the_regex(line in line()) {
            prop_assert_eq!(captures(&line), by_regex(regex(), &line));
        }
    }
}
