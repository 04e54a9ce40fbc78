//! The docs stay true: `docs/configuration.md` documents every key the config reader takes
//! and no key it refuses, and every relative link in README.md and docs/ resolves.
//!
//! The keys are not listed by hand here: each section of the real reader is asked with an
//! unknown key, and its "expected one of" answer is the section's key list. A new key, a new
//! section or a new sink type therefore fails this test until the reference documents it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use shiplog::config::Config;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The probe: a key no section takes.
const PROBE: &str = "__probe__";

/// The keys the reader refuses `PROBE` in favour of, from its error message.
fn expected_keys(toml: &str) -> BTreeSet<String> {
    let error = Config::from_toml(toml, Path::new("/probe/shiplog.toml"), &|_| None)
        .expect_err("the probe is refused");
    let reason = &error.reason;
    let list = reason
        .split_once("(expected one of: ")
        .map(|(_, rest)| rest.trim_end_matches(')'))
        .unwrap_or_else(|| {
            // A table that takes no keys at all.
            assert!(
                reason.contains("takes no other keys"),
                "unexpected answer to the probe {toml:?}: {reason}"
            );
            ""
        });
    list.split(", ")
        .filter(|key| !key.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A config the reader accepts, with `extra` appended.
fn with(extra: &str) -> String {
    format!("[sinks.probe_sink]\ntype = \"null\"\n{extra}\n")
}

/// Every section of the reader and its keys: `tail` → {include, ...}; sink types as
/// `sinks (kafka)`; keys common to every sink (`type`) under `sinks`.
fn reader_sections() -> BTreeMap<String, BTreeSet<String>> {
    let mut sections = BTreeMap::new();
    let top = expected_keys(&format!("{PROBE} = 1\n{}", with("")));
    for section in &top {
        if section == "sinks" || section == "transforms" {
            continue;
        }
        let keys = expected_keys(&with(&format!("[{section}]\n{PROBE} = 1")));
        sections.insert(section.clone(), keys);
    }
    let types = expected_keys(&format!("[sinks.s]\ntype = \"{PROBE}\"\n"));
    assert!(types.contains("kafka"), "sink types: {types:?}");
    for kind in &types {
        let required = match kind.as_str() {
            "kafka" => "brokers = \"127.0.0.1:9092\"\n",
            "file" => "path = \"out.jsonl\"\n",
            _ => "",
        };
        let keys = expected_keys(&format!(
            "[sinks.s]\ntype = \"{kind}\"\n{required}{PROBE} = 1\n"
        ));
        sections.insert(format!("sinks ({kind})"), keys);
    }
    sections.insert(
        "sinks".to_owned(),
        BTreeSet::from(["type".to_owned(), "match".to_owned()]),
    );
    let matches = expected_keys(&with(&format!("[sinks.probe_sink.match]\n{PROBE} = 1")));
    sections.insert("match".to_owned(), matches);
    // Transforms are read after `[kubernetes]`, which needs a node name unless off.
    let off = "[kubernetes]\nmetadata = \"off\"";
    let types = expected_keys(&with(&format!("{off}\n[[transforms]]\ntype = \"{PROBE}\"")));
    assert!(types.contains("redact"), "transform types: {types:?}");
    for kind in &types {
        let keys = expected_keys(&with(&format!(
            "{off}\n[[transforms]]\ntype = \"{kind}\"\n{PROBE} = 1"
        )));
        sections.insert(format!("transforms ({kind})"), keys);
    }
    sections.insert(
        "transforms".to_owned(),
        BTreeSet::from(["type".to_owned(), "match".to_owned()]),
    );
    sections
}

/// The keys docs/configuration.md documents, by section: a heading holding `` `[tail]` ``
/// starts section `tail` (with `` `type = "kafka"` `` in it: `sinks (kafka)`); each table row
/// whose first cell is a backquoted word documents that key.
fn documented_sections(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut sections: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            current = section_of_heading(line);
            if let Some(section) = &current {
                sections.entry(section.clone()).or_default();
            }
            continue;
        }
        let Some(section) = &current else { continue };
        let Some(cell) = line.strip_prefix("| `") else {
            continue;
        };
        let Some((key, _)) = cell.split_once('`') else {
            continue;
        };
        let fresh = sections
            .get_mut(section)
            .expect("entered above")
            .insert(key.to_owned());
        assert!(fresh, "{section}.{key} is documented twice");
    }
    sections
}

fn section_of_heading(line: &str) -> Option<String> {
    let start = line.find("`[")? + 2;
    let end = start + line[start..].find("]`")?;
    let table = line[start..end].trim_matches(|c| c == '[' || c == ']');
    let section = match table.strip_suffix(".match") {
        // `[sinks.NAME.match]` and `[transforms.match]` share their keys.
        Some(_) => "match",
        None => table.split('.').next().unwrap_or(table),
    };
    match line.split_once("`type = \"") {
        Some((_, rest)) => {
            let kind = rest.split('"').next().unwrap_or_default();
            Some(format!("{section} ({kind})"))
        }
        None => Some(section.to_owned()),
    }
}

#[test]
fn the_configuration_reference_documents_every_key_and_only_real_keys() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/configuration.md"))
        .expect("docs/configuration.md");
    let documented = documented_sections(&text);
    let reader = reader_sections();
    let mut problems = Vec::new();
    for (section, keys) in &reader {
        let Some(documented) = documented.get(section) else {
            problems.push(format!("section [{section}] is not documented"));
            continue;
        };
        for key in keys.difference(documented) {
            problems.push(format!("{section}.{key} is read but not documented"));
        }
        for key in documented.difference(keys) {
            problems.push(format!(
                "{section}.{key} is documented but the reader refuses it"
            ));
        }
    }
    for section in documented.keys() {
        if !reader.contains_key(section) {
            problems.push(format!(
                "section [{section}] is documented but does not exist"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md is out of date:\n  {}",
        problems.join("\n  ")
    );
}

/// Markdown files users read: README.md, and everything under docs/.
fn markdown_files() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    let mut files = vec![
        root.join("README.md"),
        root.join("RELIABILITY.md"),
        root.join("deploy/README.md"),
        root.join("parsers/README.md"),
        root.join("fuzz/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 4, "docs/ holds the four guides: {docs:?}");
    files.extend(docs);
    files
}

/// The targets of inline links `[text](target)` in `text`, outside code spans and blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Drop code spans: what is between backquotes is not a link.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_block = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("read");
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("folder").join(path)
            };
            let where_ = format!("{}: ({target})", file.display());
            if !resolved.exists() {
                broken.push(format!("{where_}: no such file"));
                continue;
            }
            if !resolved.starts_with(ROOT) || path.contains("shared/") {
                broken.push(format!("{where_}: outside the repository"));
                continue;
            }
            if !fragment.is_empty() && resolved.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&resolved).expect("read");
                if !anchors(&text).contains(fragment) {
                    broken.push(format!("{where_}: no heading #{fragment}"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_link_checker_sees_links_and_anchors() {
    let text =
        "# Big `[tail]` heading!\nsee [a](b.md#c-d) and `[x](not-a-link)`\n```\n[y](z)\n```\n";
    assert_eq!(link_targets(text), ["b.md#c-d"]);
    assert!(anchors(text).contains("big-tail-heading"));
    assert_eq!(
        section_of_heading("### `[sinks.NAME]`, `type = \"kafka\"`"),
        Some("sinks (kafka)".to_owned())
    );
}

/// Every source file under `src/`, relative to it (`tail/engine.rs`), tests left out.
fn source_files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("src/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name");
        if path.is_dir() {
            source_files(&path, &format!("{prefix}{name}/"), out);
        } else if name.ends_with(".rs") && name != "tests.rs" {
            out.insert(format!("{prefix}{name}"));
        }
    }
}

#[test]
fn the_module_map_names_every_source_file_and_only_real_ones() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docs/architecture.md"))
        .expect("docs/architecture.md");
    let mut sources = BTreeSet::new();
    source_files(&Path::new(ROOT).join("src"), "", &mut sources);
    let mapped: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split_once('`').map(|(file, _)| file.to_owned()))
        .collect();
    let missing: Vec<&String> = sources.difference(&mapped).collect();
    let stale: Vec<&String> = mapped.difference(&sources).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/architecture.md's module map: not named {missing:?}; no such file {stale:?}"
    );
}
