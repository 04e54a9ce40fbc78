use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::*;

const FIXTURE: &str = include_str!("../../../fixtures/fluent-bit/parsers.conf");

/// Each section of the fixture on its own: the parser, or the refusal.
fn outcomes() -> Vec<Result<(String, Parser), ParserError>> {
    let origin = Path::new("parsers.conf");
    sections(FIXTURE, origin)
        .unwrap()
        .iter()
        .map(|section| translate(section, origin))
        .collect()
}

fn parsed(parser: &Parser, line: &str) -> (Value, Option<String>) {
    let parsed = parser
        .parse(line, 2026)
        .unwrap_or_else(|| panic!("no match: {line}"));
    (serde_json::from_str(&parsed.data).unwrap(), parsed.time)
}

#[test]
fn every_section_of_a_parsers_conf_loads_or_is_refused_naming_its_key() {
    let loaded = [
        "web_access",
        "app_json",
        "worker_lines",
        "kv",
        "wrapped_in_slashes",
        "shouting",
        "no_time_format",
        "tab_separated",
    ];
    let refused = [
        ("decodes_a_field", "Decode_Field_As", "merge_log"),
        ("local_time", "Time_Offset", "%z"),
        ("lookbehind", "Regex", "look-around"),
        ("hex_type", "Types", "hex"),
        ("two_time_formats", "Time_Format", "given twice"),
        ("ruby_only_class", "Regex", "escape"),
        (
            "skips_empty",
            "Skip_Empty_Values",
            "not a key shiplog translates",
        ),
    ];
    let outcomes = outcomes();
    assert_eq!(outcomes.len(), loaded.len() + refused.len());
    let (ok, errors): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(Result::is_ok);
    let names: Vec<String> = ok.into_iter().map(|r| r.unwrap().0).collect();
    assert_eq!(names, loaded);
    for (error, (parser, key, reason)) in errors.into_iter().map(Result::unwrap_err).zip(refused) {
        assert_eq!(error.file, Path::new("parsers.conf"));
        assert_eq!(
            (error.parser.as_str(), error.key.as_str()),
            (parser, key),
            "{error}"
        );
        assert!(error.reason.contains(reason), "{error}");
    }
}

#[test]
fn translated_parsers_read_lines_as_fluent_bit_does() {
    let parsers: BTreeMap<String, Parser> = outcomes().into_iter().flatten().collect();
    let (data, time) = parsed(
        &parsers["web_access"],
        r#"10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326"#,
    );
    assert_eq!(data["status"], 200);
    assert_eq!(data["bytes"], 2326);
    assert_eq!(data["url"], "/a.gif");
    assert_eq!(time.as_deref(), Some("2000-10-10T20:55:36.000000000Z"));

    let (data, time) = parsed(
        &parsers["app_json"],
        r#"{"ts":"2026-11-25T10:00:00.5+01:00","msg":"x"}"#,
    );
    assert_eq!(
        data,
        json!({"ts": "2026-11-25T10:00:00.5+01:00", "msg": "x"})
    );
    assert_eq!(time.as_deref(), Some("2026-11-25T09:00:00.500000000Z"));

    let (data, time) = parsed(
        &parsers["worker_lines"],
        "2026-11-25T09:00:00.70630778Z INFO  [main] started",
    );
    assert_eq!(data["thread"], "main");
    assert_eq!(time.as_deref(), Some("2026-11-25T09:00:00.706307780Z"));

    let (data, time) = parsed(
        &parsers["kv"],
        r#"at="2026-11-25 09:00:00,123" attempt=3 ok=true"#,
    );
    assert_eq!((&data["attempt"], &data["ok"]), (&json!(3), &json!(true)));
    assert_eq!(time.as_deref(), Some("2026-11-25T09:00:00.123000000Z"));

    let (data, _) = parsed(&parsers["wrapped_in_slashes"], "<13>hello");
    assert_eq!(data, json!({"pri": "13", "rest": "hello"}));
    let (data, _) = parsed(&parsers["shouting"], "HELLO world");
    assert_eq!(data["who"], "world");
    let (data, _) = parsed(&parsers["tab_separated"], "host:10.0.0.1\tstatus:200");
    assert_eq!(data, json!({"host": "10.0.0.1", "status": "200"}));
    let (_, time) = parsed(&parsers["no_time_format"], "yesterday something");
    assert_eq!(
        time, None,
        "Fluent Bit reads a time only with a Time_Format"
    );
}

#[test]
fn a_ruby_regex_literal_loses_its_slashes_and_keeps_its_flags() {
    assert_eq!(ruby_regex("/^a$/"), "^a$");
    assert_eq!(ruby_regex("/^a.b$/im"), "(?is)^a.b$");
    assert_eq!(ruby_regex("^a/b$"), "^a/b$");
    assert_eq!(ruby_regex("/path/to/(?<x>.*)"), "/path/to/(?<x>.*)");
    assert_eq!(ruby_regex(r"^\<(?<pri>\d+)\>"), r"^<(?<pri>\d+)>");
    assert_eq!(
        ruby_regex(r"a\\<b"),
        r"a\\<b",
        "an escaped backslash before <"
    );
}

#[test]
fn other_sections_and_stray_keys_are_refused_with_their_line() {
    let origin = Path::new("p.conf");
    let error = parsers("[MULTILINE_PARSER]\n  name x\n", origin).unwrap_err();
    assert_eq!(error.key, "line 1: [MULTILINE_PARSER]");
    assert!(error.reason.contains("multiline"), "{error}");
    let error = parsers("# c\nName x\n", origin).unwrap_err();
    assert_eq!(error.key, "line 2");
    let error = parsers("[PARSER]\n  Format json\n", origin).unwrap_err();
    assert_eq!(error.key, "line 1: Name");
}
