//! Tests of the parser set: the built-in definitions and their examples (the golden test),
//! definition errors, loading folders, and properties every parser keeps on any input.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

const BUILTIN_NAMES: [&str; 10] = [
    "apache2",
    "apache_error",
    "json",
    "klog",
    "logfmt",
    "ltsv",
    "nginx",
    "syslog-rfc3164",
    "syslog-rfc3164-local",
    "syslog-rfc5424",
];

fn parse(set: &ParserSet, name: &str, line: &str) -> Option<(Value, Option<String>)> {
    let parsed = set.get(name).unwrap().parse(line, 2024)?;
    Some((serde_json::from_str(&parsed.data).unwrap(), parsed.time))
}

fn load_error(text: &str) -> String {
    ParserSet::from_toml(text, Path::new("p.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn every_example_of_every_built_in_parser_holds() {
    // Loading checks each example against its parser; a failure names it.
    for (file, text) in BUILTIN {
        if let Err(error) = ParserSet::from_toml(text, &Path::new("parsers").join(file)) {
            panic!("{error}");
        }
    }
}

#[test]
fn the_built_in_set_holds_the_parsers_of_the_contract() {
    let set = ParserSet::builtin();
    assert_eq!(set.names().collect::<Vec<_>>(), BUILTIN_NAMES);
    assert_eq!(set.file("nginx"), Some(Path::new("built-in/nginx.toml")));
}

#[test]
fn every_built_in_parser_has_two_to_four_examples_and_one_that_does_not_match() {
    let mut parsers = 0;
    for (file, text) in BUILTIN {
        let tables: toml::Table = toml::from_str(text).unwrap();
        for (name, table) in tables {
            let examples = table["example"].as_array().unwrap();
            assert!((2..=4).contains(&examples.len()), "{file}: {name}");
            let negative = examples
                .iter()
                .filter(|e| e.get("matches").and_then(toml::Value::as_bool) == Some(false));
            assert!(negative.count() >= 1, "{file}: {name}");
            parsers += 1;
        }
    }
    assert_eq!(parsers, BUILTIN_NAMES.len());
}

#[test]
fn the_built_in_files_on_disk_are_the_embedded_ones() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("parsers");
    for (file, text) in BUILTIN {
        assert_eq!(std::fs::read_to_string(dir.join(file)).unwrap(), text);
    }
    let mut on_disk = ParserSet::default();
    on_disk.load_dirs(&[dir]).unwrap();
    assert_eq!(on_disk.names().collect::<Vec<_>>(), BUILTIN_NAMES);
}

#[test]
fn nginx_reads_the_record_time_and_keeps_the_field() {
    let set = ParserSet::builtin();
    let line = r#"10.0.0.1 - - [01/Jan/2024:00:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "x""#;
    let (data, time) = parse(&set, "nginx", line).unwrap();
    assert_eq!(time.as_deref(), Some("2023-12-31T23:00:00.000000000Z"));
    assert_eq!(data["time"], "01/Jan/2024:00:00:00 +0100");
    let bad_time = line.replace("01/Jan/2024", "01/Foo/2024");
    let (data, time) = parse(&set, "nginx", &bad_time).unwrap();
    assert_eq!(time, None);
    assert_eq!(data["time"], "01/Foo/2024:00:00:00 +0100");
}

#[test]
fn definition_mistakes_name_the_file_the_parser_and_the_key() {
    let cases = [
        (
            "[web]\nformat = \"regex\"\nregex = '(?<code>\\d+'\n",
            "p.toml: parser \"web\": regex: regex parse error:",
        ),
        (
            "[web]\nformat = \"xml\"\n",
            "p.toml: parser \"web\": format: unknown value \"xml\" (expected one of: regex, json, logfmt, ltsv, multiline)",
        ),
        (
            "[web]\nformat = \"logfmt\"\nregx = 'a'\n",
            "p.toml: parser \"web\": regx: unknown key (expected one of: format, regex, start, time_key, time_format, types, example)",
        ),
        (
            "[web]\nformat = \"logfmt\"\ntypes = { code = \"int\" }\n",
            "p.toml: parser \"web\": types.code: unknown type \"int\" (expected one of: integer, float, bool, string)",
        ),
        (
            "[web]\nformat = \"logfmt\"\ntime_format = \"%s\"\n",
            "p.toml: parser \"web\": time_format: needs a time_key naming the field that holds the time",
        ),
        (
            "[web]\nformat = \"logfmt\"\ntime_key = \"ts\"\n",
            "p.toml: parser \"web\": time_key: needs a time_format",
        ),
        (
            "[web]\nformat = \"logfmt\"\ntime_key = \"ts\"\ntime_format = \"%H:%M\"\n",
            "p.toml: parser \"web\": time_format: cannot parse times written as \"%H:%M\"",
        ),
        (
            "[web]\nformat = \"regex\"\n",
            "p.toml: parser \"web\": regex: missing",
        ),
        (
            "[web]\nformat = \"regex\"\nregex = '(?<a>.)'\ntypes = { b = \"integer\" }\n",
            "p.toml: parser \"web\": types.b: no capture group of the regex has this name",
        ),
        (
            "[web]\nformat = \"json\"\ntypes = { a = \"integer\" }\n",
            "p.toml: parser \"web\": types: a json parser embeds the object as written",
        ),
        (
            "[web]\nformat = \"json\"\nregex = '(?<a>.)'\n",
            "p.toml: parser \"web\": regex: a json parser takes no regex",
        ),
        ("[web]\n", "p.toml: parser \"web\": missing key \"format\""),
        (
            "[web]\nformat = \"logfmt\"\ntypes = { code = 1 }\n",
            "p.toml: parser \"web\": types.code: invalid type: integer `1`, expected a string",
        ),
        (
            "web = \"regex\"\n",
            "p.toml: parser \"web\": expected a table [web] defining a parser",
        ),
        (
            "[ok]\nformat = \"json\"\n[web]\nformat = \"regex\nregex = 'a'\n",
            "p.toml: parser \"web\": invalid TOML at line 4, column 16: invalid basic string",
        ),
        ("format = ", "p.toml: invalid TOML at line 1, column 10:"),
    ];
    for (text, want) in cases {
        let error = load_error(text);
        assert!(
            error.starts_with(want),
            "{text:?}\n got: {error}\nwant: {want}"
        );
    }
}

#[test]
fn an_example_the_parser_disagrees_with_is_refused_at_load() {
    let head = "[kv]\nformat = \"logfmt\"\n[[kv.example]]\nline = 'a=1'\nfields = { a = \"1\" }\n";
    assert!(ParserSet::from_toml(head, Path::new("p.toml")).is_ok());
    let cases = [
        (
            "[[kv.example]]\nline = 'a=1'\nfields = { a = 1 }\n",
            "example[1]: expected fields {\"a\":1}, got {\"a\":\"1\"}",
        ),
        (
            "[[kv.example]]\nline = 'no pairs'\nfields = {}\n",
            "example[1]: the parser does not match this line",
        ),
        (
            "[[kv.example]]\nline = 'b=2'\nmatches = false\n",
            "example[1]: expected no match, got {\"b\":\"2\"}",
        ),
        (
            "[[kv.example]]\nline = 'b=2'\nfields = { b = \"2\" }\ntime = \"2024-01-01T00:00:00Z\"\n",
            "example[1]: expected time 2024-01-01T00:00:00Z, got (none)",
        ),
        (
            "[[kv.example]]\nline = 'b=2'\n",
            "example[1]: missing key \"fields\" (or matches = false)",
        ),
        (
            "[[kv.example]]\nline = 'x'\nmatches = false\nfields = {}\n",
            "example[1]: an example with matches = false takes no fields or time",
        ),
        (
            "[[kv.example]]\nlines = 'x'\n",
            "example[1].lines: unknown key (expected one of: line, matches, fields, time)",
        ),
    ];
    for (example, want) in cases {
        let error = load_error(&format!("{head}{example}"));
        assert_eq!(
            error,
            format!("p.toml: parser \"kv\": {want}"),
            "{example:?}"
        );
    }
}

/// Writes `files` (name, text) into a new folder.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn a_user_definition_replaces_the_built_in_of_the_same_name() {
    let user = "[nginx]\nformat = \"regex\"\nregex = '^(?<word>\\w+)$'\n";
    let dir = folder(&[("nginx.toml", user), ("notes.txt", "not a definition")]);
    let mut set = ParserSet::builtin();
    set.load_dirs(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(
        parse(&set, "nginx", "hello"),
        Some((json!({"word": "hello"}), None))
    );
    assert_eq!(
        set.file("nginx"),
        Some(dir.path().join("nginx.toml").as_path())
    );
    assert_eq!(set.names().count(), BUILTIN_NAMES.len());
}

#[test]
fn folders_add_their_parsers_and_refuse_a_name_defined_twice() {
    let one = folder(&[
        ("b.toml", "[kv]\nformat = \"logfmt\"\n"),
        ("a.toml", "[doc]\nformat = \"json\"\n"),
    ]);
    let two = folder(&[("c.toml", "[kv]\nformat = \"json\"\n")]);
    let mut set = ParserSet::default();
    set.load_dirs(&[one.path().to_path_buf()]).unwrap();
    assert_eq!(set.names().collect::<Vec<_>>(), ["doc", "kv"]);

    let mut set = ParserSet::builtin();
    let error = set
        .load_dirs(&[one.path().to_path_buf(), two.path().to_path_buf()])
        .unwrap_err();
    assert_eq!(error.file, two.path().join("c.toml"));
    assert_eq!(error.parser, "kv");
    assert_eq!(
        error.reason,
        format!("already defined in {}", one.path().join("b.toml").display())
    );
    assert_eq!(
        set.names().collect::<Vec<_>>(),
        BUILTIN_NAMES,
        "unchanged on error"
    );
}

#[test]
fn a_missing_folder_or_a_broken_file_is_an_error_naming_it() {
    let mut set = ParserSet::builtin();
    let missing = PathBuf::from("/nonexistent/shiplog/parsers");
    let error = set.load_dirs(std::slice::from_ref(&missing)).unwrap_err();
    assert_eq!(error.file, missing);
    assert!(
        error.reason.starts_with("cannot read parser folder:"),
        "{error}"
    );

    let dir = folder(&[("bad.toml", "[web]\nformat = \"regex\"\nregex = '('\n")]);
    let error = set.load_dirs(&[dir.path().to_path_buf()]).unwrap_err();
    assert_eq!(
        (error.parser.as_str(), error.key.as_str()),
        ("web", "regex")
    );
}

fn builtin_parsers() -> Vec<(String, Arc<Parser>)> {
    let set = ParserSet::builtin();
    set.names()
        .map(|name| (name.to_string(), set.get(name).unwrap()))
        .collect()
}

/// Lines near what the parsers expect: every example line, cut and spliced with noise.
fn near_lines() -> impl Strategy<Value = String> {
    let mut lines = Vec::new();
    for (_, text) in BUILTIN {
        let tables: toml::Table = toml::from_str(text).unwrap();
        for table in tables.values() {
            for example in table["example"].as_array().unwrap() {
                lines.push(example["line"].as_str().unwrap().to_string());
            }
        }
    }
    (proptest::sample::select(lines), any::<usize>(), ".{0,8}").prop_map(|(line, at, noise)| {
        let at = (0..=at % (line.len() + 1))
            .rev()
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}{noise}{}", &line[..at], &line[at..])
    })
}

fn check_every_parser(line: &str) -> Result<(), TestCaseError> {
    for (name, parser) in builtin_parsers() {
        for year in [i16::MIN, 0, 2024, i16::MAX] {
            if let Some(parsed) = parser.parse(line, year) {
                let value: Result<Value, _> = serde_json::from_str(&parsed.data);
                prop_assert!(
                    value.as_ref().is_ok_and(Value::is_object),
                    "{name} gave {:?} for {line:?}",
                    parsed.data
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn no_parser_panics_and_all_data_is_a_json_object(line in any::<String>()) {
        check_every_parser(&line)?;
    }

    #[test]
    fn lines_close_to_the_examples_give_json_objects_too(line in near_lines()) {
        check_every_parser(&line)?;
    }
}

#[test]
fn a_multiline_rule_is_defined_by_its_start_regex_and_a_bad_one_names_file_and_key() {
    let text = "[spring]\nformat = \"multiline\"\nstart = '^\\d{4}-\\d{2}-\\d{2} '\n";
    let set = ParserSet::from_toml(text, Path::new("p.toml")).unwrap();
    assert!(set.multiline("spring").is_some());
    assert!(set.get("spring").is_none(), "a multiline rule is no parser");
    assert_eq!(set.names().count(), 0);
    let cases = [
        (
            "[spring]\nformat = \"multiline\"\nstart = '^(\\d{4}'\n",
            "p.toml: parser \"spring\": start: regex parse error:",
        ),
        (
            "[spring]\nformat = \"multiline\"\n",
            "p.toml: parser \"spring\": start: missing: a multiline rule needs start",
        ),
        (
            "[spring]\nformat = \"multiline\"\nstart = 'x'\nregex = 'y'\n",
            "p.toml: parser \"spring\": regex: a multiline rule takes only start",
        ),
        (
            "[web]\nformat = \"logfmt\"\nstart = 'x'\n",
            "p.toml: parser \"web\": start: only a multiline rule",
        ),
    ];
    for (text, expected) in cases {
        let error = load_error(text);
        assert!(error.starts_with(expected), "{error}\nexpected: {expected}");
    }
}

#[test]
fn the_built_in_set_holds_the_multiline_rules_of_the_contract() {
    let set = ParserSet::builtin();
    assert_eq!(
        set.multiline_names().collect::<Vec<_>>(),
        ["go", "java", "python", "ruby"]
    );
}
