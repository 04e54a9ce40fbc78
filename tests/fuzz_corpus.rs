//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' checks on
//! every `cargo test`, so that an input a fuzzing run once found interesting (or once
//! crashed on, kept under `fuzz/corpus/<target>/regressions-*`) keeps passing without
//! libFuzzer or a nightly compiler. The coverage-guided runs themselves: fuzz/README.md.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>`, and fails if there are none: an
/// empty corpus would make this test pass without testing anything.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: input {} fails", path.display());
        inputs += 1;
    }
    assert!(
        inputs >= 10,
        "{target}: only {inputs} inputs in {}",
        dir.display()
    );
}

#[test]
fn docker_corpus() {
    replay("docker", checks::docker);
}

#[test]
fn cri_corpus() {
    replay("cri", checks::cri);
}

#[test]
fn json_merge_corpus() {
    replay("json_merge", checks::json_merge);
}

#[test]
fn builtin_parsers_corpus() {
    replay("builtin_parsers", checks::builtin_parsers);
}

#[test]
fn multiline_corpus() {
    replay("multiline", checks::multiline);
}
