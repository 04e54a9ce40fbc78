//! Which files the `tail.include` / `tail.exclude` globs match right now.
//!
//! `/var/log/containers/*.log` are symlinks into `/var/log/pods/...`: a file is known by the
//! path it was found at (whose name carries the pod identity) and by its resolved target
//! (what is actually read, and what two links to the same file share).

use std::path::{Path, PathBuf};

use glob::{Pattern, PatternError};

/// The compiled include and exclude globs.
#[derive(Debug, Clone)]
pub struct FileSet {
    include: Vec<String>,
    exclude: Vec<Pattern>,
}

/// A matched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    /// The path the include glob matched (for kubelet files, the `/var/log/containers` link).
    pub path: PathBuf,
    /// The regular file it resolves to.
    pub target: PathBuf,
}

/// A glob that is not valid; names the pattern and the reason.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {pattern:?}: {source}")]
pub struct GlobError {
    /// The pattern as configured.
    pub pattern: String,
    /// What is wrong with it.
    pub source: PatternError,
}

impl FileSet {
    /// Compiles the globs; an invalid one is an error naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<FileSet, GlobError> {
        let compile = |pattern: &String| {
            Pattern::new(pattern).map_err(|source| GlobError {
                pattern: pattern.clone(),
                source,
            })
        };
        include
            .iter()
            .try_for_each(|pattern| compile(pattern).map(drop))?;
        let exclude = exclude.iter().map(compile).collect::<Result<_, _>>()?;
        Ok(FileSet {
            include: include.to_vec(),
            exclude,
        })
    }

    /// The folders the include globs read: each glob's longest prefix without a wildcard.
    /// Watching them tells of files appearing and vanishing.
    pub fn watch_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .include
            .iter()
            .filter_map(|pattern| {
                let literal: PathBuf = Path::new(pattern)
                    .components()
                    .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                    .collect();
                let dir = if literal.as_os_str() == pattern.as_str() {
                    literal.parent()?.to_path_buf()
                } else {
                    literal
                };
                (!dir.as_os_str().is_empty()).then_some(dir)
            })
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Whether an exclude glob matches `path`.
    pub fn excludes(&self, path: &Path) -> bool {
        self.exclude
            .iter()
            .any(|pattern| pattern.matches_path(path))
    }

    /// The regular files matched now, each once (by target), in path order. Paths that
    /// cannot be resolved (a dangling link, a loop, a directory where a file was) are
    /// returned in `skipped` with the reason, never read.
    pub fn scan(&self) -> (Vec<FoundFile>, Vec<(PathBuf, String)>) {
        let mut found: Vec<FoundFile> = Vec::new();
        let mut skipped = Vec::new();
        let matches = self
            .include
            .iter()
            .filter_map(|pattern| glob::glob(pattern).ok())
            .flatten();
        for entry in matches {
            let path = match entry {
                Ok(path) => path,
                Err(error) => {
                    skipped.push((error.path().to_path_buf(), error.error().to_string()));
                    continue;
                }
            };
            if self.excludes(&path) {
                continue;
            }
            match resolve(&path) {
                Ok(target) => found.push(FoundFile { path, target }),
                Err(reason) => skipped.push((path, reason)),
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        let mut seen = std::collections::HashSet::new();
        found.retain(|file| seen.insert(file.target.clone()));
        (found, skipped)
    }
}

fn resolve(path: &std::path::Path) -> Result<PathBuf, String> {
    let target = std::fs::canonicalize(path).map_err(|e| format!("cannot resolve: {e}"))?;
    let metadata = std::fs::metadata(&target).map_err(|e| e.to_string())?;
    if metadata.is_file() {
        Ok(target)
    } else {
        Err("not a regular file".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn links_resolve_to_their_targets_and_each_file_is_found_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pods = dir.path().join("pods");
        let containers = dir.path().join("containers");
        fs::create_dir_all(&pods).expect("mkdir");
        fs::create_dir_all(&containers).expect("mkdir");
        fs::write(pods.join("0.log"), "x\n").expect("write");
        std::os::unix::fs::symlink("../pods/0.log", containers.join("a.log")).expect("link");
        std::os::unix::fs::symlink("../pods/0.log", containers.join("b.log")).expect("link");
        std::os::unix::fs::symlink("../pods/gone.log", containers.join("c.log")).expect("link");
        fs::create_dir(containers.join("d.log")).expect("mkdir");
        fs::write(containers.join("skip.log"), "x\n").expect("write");

        let include = [format!("{}/*.log", containers.display())];
        let exclude = [format!("{}/skip*", containers.display())];
        let (found, skipped) = FileSet::new(&include, &exclude)
            .expect("valid globs")
            .scan();

        let target = fs::canonicalize(pods.join("0.log")).expect("exists");
        assert_eq!(
            found,
            vec![FoundFile {
                path: containers.join("a.log"),
                target
            }]
        );
        let skipped: Vec<_> = skipped.iter().map(|(path, _)| path.clone()).collect();
        assert_eq!(
            skipped,
            vec![containers.join("c.log"), containers.join("d.log")]
        );
    }

    #[test]
    fn an_invalid_glob_is_named() {
        let error = FileSet::new(&["/var/log/[.log".to_owned()], &[]).expect_err("invalid");
        assert!(
            error
                .to_string()
                .starts_with("invalid glob \"/var/log/[.log\""),
            "{error}"
        );
    }
}
