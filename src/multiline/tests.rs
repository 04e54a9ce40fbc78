use std::borrow::Cow;
use std::sync::Arc;

use proptest::prelude::*;

use super::rules::builtin_patterns;
use super::*;
use crate::decode::{Message, Stream};

const JAVA: &str = include_str!("../../fixtures/multiline/java.txt");
const PYTHON: &str = include_str!("../../fixtures/multiline/python.txt");
const GO: &str = include_str!("../../fixtures/multiline/go.txt");
const RUBY: &str = include_str!("../../fixtures/multiline/ruby.txt");

/// What an event became: its text and whether it was flagged `truncated`.
type Event = (String, bool);

fn message(line: &str) -> Message<'_> {
    Message {
        time: Cow::Borrowed("2026-12-03T19:00:00.000000000Z"),
        stream: Stream::Stderr,
        bytes: Cow::Borrowed(line.as_bytes()),
        truncated: false,
        partial: false,
    }
}

/// The events `lines` become with `rule`, the held one flushed at the end.
fn join(rule: Rule, max_lines: usize, max_bytes: usize, lines: &[&str]) -> Vec<Event> {
    let mut joiner = Joiner::new(Arc::new(rule), max_lines, max_bytes);
    let mut events = Vec::new();
    let mut emit = |m: Message<'_>| {
        events.push((String::from_utf8_lossy(&m.bytes).into_owned(), m.truncated));
    };
    for (offset, line) in lines.iter().enumerate() {
        joiner.push(message(line), offset as u64, &mut emit);
    }
    joiner.flush(&mut emit);
    events
}

fn trace_lines(trace: &str) -> Vec<&str> {
    trace.lines().collect()
}

/// `trace` between ordinary lines: the trace is one event equal to its lines joined, and
/// every ordinary line is an event of its own.
fn assert_one_event_among_ordinary_lines(rule: &str, trace: &str) {
    let before = "2026-12-03 19:00:01 INFO  started worker pool size=8";
    let after = "2026-12-03 19:00:02 INFO  next request id=42";
    let mut lines = vec![before];
    lines.extend(trace_lines(trace));
    lines.push(after);
    lines.push(before);
    let events = join(builtin(rule).expect("built in"), 500, 1 << 20, &lines);
    let trace = trace.trim_end_matches('\n').to_owned();
    assert_eq!(
        events,
        vec![
            (before.to_owned(), false),
            (trace, false),
            (after.to_owned(), false),
            (before.to_owned(), false),
        ],
        "{rule}"
    );
}

#[test]
fn every_builtin_pattern_compiles() {
    for pattern in builtin_patterns() {
        assert!(regex::bytes::Regex::new(pattern).is_ok(), "{pattern}");
    }
    for name in rules::BUILTIN_NAMES {
        assert_eq!(builtin(name).and_then(|r| r.builtin_name()), Some(name));
    }
    assert!(builtin("cobol").is_none());
}

#[test]
fn a_java_exception_with_causes_suppressed_and_more_is_one_event() {
    assert_one_event_among_ordinary_lines("java", JAVA);
}

#[test]
fn a_chained_python_traceback_is_one_event() {
    assert_one_event_among_ordinary_lines("python", PYTHON);
}

#[test]
fn a_go_panic_with_several_goroutines_is_one_event() {
    assert_one_event_among_ordinary_lines("go", GO);
}

#[test]
fn a_ruby_backtrace_is_one_event() {
    assert_one_event_among_ordinary_lines("ruby", RUBY);
}

#[test]
fn two_java_traces_back_to_back_are_two_events() {
    let mut lines = trace_lines(JAVA);
    lines.extend(trace_lines(JAVA));
    let events = join(builtin("java").expect("built in"), 500, 1 << 20, &lines);
    let trace = JAVA.trim_end_matches('\n').to_owned();
    assert_eq!(events, vec![(trace.clone(), false), (trace, false)]);
}

#[test]
fn a_python_traceback_ends_at_the_first_line_that_is_not_part_of_it() {
    let mut lines = trace_lines(PYTHON);
    lines.push("INFO shutting down");
    let events = join(builtin("python").expect("built in"), 500, 1 << 20, &lines);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].0, "INFO shutting down");
}

#[test]
fn a_custom_rule_starts_an_event_at_each_start_line() {
    let rule = Rule::start(r"^\d{4}-\d{2}-\d{2} ").expect("valid");
    let lines = [
        "  stray continuation with no event before it",
        "2026-12-03 first",
        "  detail a",
        "  detail b",
        "2026-12-03 second",
        "2026-12-03 third",
        "  detail c",
    ];
    let events = join(rule, 500, 1 << 20, &lines);
    let texts: Vec<&str> = events.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "  stray continuation with no event before it",
            "2026-12-03 first\n  detail a\n  detail b",
            "2026-12-03 second",
            "2026-12-03 third\n  detail c",
        ]
    );
}

#[test]
fn a_bad_custom_regex_is_refused_with_the_regex_crates_reason() {
    let error = Rule::start("^(unclosed").expect_err("invalid");
    assert!(error.contains("unclosed group"), "{error}");
}

#[test]
fn a_700_line_trace_is_cut_at_500_lines_into_truncated_pieces() {
    let mut lines = vec!["java.lang.StackOverflowError: deep".to_owned()];
    lines.extend((1..700).map(|n| format!("\tat com.acme.Deep.recurse(Deep.java:{n})")));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let events = join(builtin("java").expect("built in"), 500, 1 << 20, &refs);
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], (lines[..500].join("\n"), true));
    assert_eq!(events[1], (lines[500..].join("\n"), true));
}

#[test]
fn an_event_past_max_bytes_is_cut_at_a_line_boundary() {
    let rule = Rule::start("^start").expect("valid");
    let lines = ["start 0123456789", "more 0123456789", "more 0123456789"];
    // 16 + 1 + 15 = 32 bytes fit; the third line would make 48.
    let events = join(rule, 500, 40, &lines);
    assert_eq!(
        events,
        vec![
            ("start 0123456789\nmore 0123456789".to_owned(), true),
            ("more 0123456789".to_owned(), true),
        ]
    );
}

#[test]
fn the_held_event_keeps_its_first_lines_offset_until_it_is_emitted() {
    let mut joiner = Joiner::new(Arc::new(builtin("java").expect("built in")), 2, 1 << 20);
    let mut count = 0;
    let mut emit = |_: Message<'_>| count += 1;
    joiner.push(message("plain line"), 0, &mut emit);
    assert_eq!(
        joiner.held_start(),
        None,
        "a line that starts nothing is not held"
    );
    joiner.push(message("java.lang.Error: x"), 10, &mut emit);
    joiner.push(message("\tat a.b(C.java:1)"), 20, &mut emit);
    joiner.push(message("\tat a.b(C.java:2)"), 30, &mut emit);
    assert_eq!(joiner.held_start(), Some(10), "kept across a max_lines cut");
    joiner.flush(&mut emit);
    assert_eq!(joiner.held_start(), None);
    assert_eq!(count, 3);
}

/// Lines drawn from trace-like shapes, so that events of every rule form and end.
fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("java.lang.IllegalStateException: boom".to_owned()),
        Just("\tat a.B.c(B.java:1)".to_owned()),
        Just("Caused by: java.io.IOException: x".to_owned()),
        Just("\t... 3 more".to_owned()),
        Just("Traceback (most recent call last):".to_owned()),
        Just("  File \"x.py\", line 1, in f".to_owned()),
        Just("ValueError: bad".to_owned()),
        Just("During handling of the above exception, another exception occurred:".to_owned()),
        Just("panic: oops".to_owned()),
        Just("goroutine 1 [running]:".to_owned()),
        Just("main.main()".to_owned()),
        Just("x.rb:1:in `f'".to_owned()),
        Just("\tfrom x.rb:2:in `g'".to_owned()),
        Just(String::new()),
        "[ -~]{0,20}",
    ]
}

fn any_rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just("java"),
        Just("python"),
        Just("go"),
        Just("ruby"),
        Just("custom"),
    ]
    .prop_map(|name| match builtin(name) {
        Some(rule) => rule,
        None => Rule::start("^(?:java|Traceback|panic)").expect("valid"),
    })
}

proptest! {
    #[test]
    fn joined_events_give_back_the_input_lines_in_order(
        rule in any_rule(),
        lines in prop::collection::vec(line(), 0..60),
        max_lines in 1usize..8,
        max_bytes in 1usize..200,
    ) {
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let events = join(rule, max_lines, max_bytes, &refs);
        let mut again = Vec::new();
        for (text, _) in &events {
            let count = text.split('\n').count();
            prop_assert!(count <= max_lines);
            prop_assert!(count == 1 || text.len() <= max_bytes, "{text:?}");
            again.extend(text.split('\n').map(str::to_owned));
        }
        prop_assert_eq!(again, lines);
    }
}
