//! The command line explains itself: every command's help lists the exit codes, the
//! signals and the environment variables, and `parse --help` names the built-in parsers.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(args)
        .output()
        .expect("shiplog runs");
    assert!(output.status.success(), "{args:?} exits 0");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

#[test]
fn every_help_lists_exit_codes_signals_and_environment() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["parse", "--help"],
    ] {
        let text = help(args);
        for needle in [
            "Exit codes:",
            "1  bad config or input",
            "2  runtime failure",
            "SIGTERM",
            "SIGHUP",
            "RUST_LOG",
            "SHIPLOG_LOG_FORMAT",
            "NODE_NAME",
            "KUBECONFIG",
        ] {
            assert!(
                text.contains(needle),
                "{args:?} help lacks {needle:?}:\n{text}"
            );
        }
    }
}

#[test]
fn parse_help_names_every_built_in_parser() {
    let text = help(&["parse", "--help"]);
    let line = text
        .lines()
        .find(|line| line.starts_with("Built-in parsers: "))
        .unwrap_or_else(|| panic!("no list of built-in parsers:\n{text}"));
    let parsers = shiplog::parse::ParserSet::builtin();
    for name in parsers.names() {
        assert!(line.contains(name), "{name} missing from {line:?}");
    }
}
