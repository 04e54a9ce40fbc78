//! What a start does before discovery: finish the files the last run had not finished.
//!
//! A checkpoint names a file by identity and the path it was read at. At start each one is
//! in one of four states, and only the rotated ones are read here; the file each path holds
//! now waits for them (its predecessors), so lines keep their order:
//!
//! - no longer at its path: rotated while shiplog was down (or while the last run was
//!   still reading it). Found by identity in its old folder, with the siblings rotated after
//!   it that the last run never checkpointed (the path may have rotated more than once), and
//!   read from the checkpoint;
//! - at its path, but cut (copytruncate while shiplog was down, or a crash before the lines
//!   read from the cut file were delivered): the copy in the same folder, found by its
//!   first bytes, is read from the checkpoint first, then any later copies;
//! - at its path, no longer matched there by the globs, and the path the globs matched it
//!   at holds another file now or is gone: a rotated file or copy the last run was still
//!   reading. Read to its end;
//! - at its path and still matched there: the current file, resumed by discovery. Still at
//!   its path but excluded (or no longer included) by the globs, it is left alone with its
//!   checkpoint, so including it again resumes where it stopped (issue 17: it was taken for
//!   a rotated file and shipped for as long as it grew).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{Candidate, Disconnected, Resume, Tailer, open};
use crate::tail::{FileId, FileSet, FoundFile};

impl Tailer {
    /// Reads, before discovery, what the last run left unfinished (see the module doc).
    pub(super) fn resume_rotated_while_down(&mut self) -> Result<(), Disconnected> {
        let mut moved = Vec::new();
        let mut cut = Vec::new();
        let mut aside = Vec::new();
        for resume in self.resume.values() {
            match open(&resume.path) {
                Some((file, metadata)) if FileId::of(&metadata) == resume.id => {
                    let same = resume.fingerprint.matches(&file).unwrap_or(false);
                    if !same || metadata.len() < resume.offset {
                        cut.push(resume.clone());
                    } else {
                        aside.push(resume.clone());
                    }
                }
                _ => moved.push(resume.clone()),
            }
        }
        self.resume_moved(moved)?;
        // Copies first: a copy's own checkpoint may be behind what the cut file's says.
        for resume in cut {
            self.resume_cut(resume)?;
        }
        self.finish_rotated_at_their_paths(aside)
    }

    /// Files no longer at their paths, found by identity, read from their checkpoints; per
    /// path oldest first, with the rotated siblings written after the oldest that the last
    /// run never checkpointed (it opened them but was killed before committing, or never
    /// saw them), each from its checkpoint if it has one, else whole.
    fn resume_moved(&mut self, moved: Vec<Resume>) -> Result<(), Disconnected> {
        let mut by_path: BTreeMap<PathBuf, Vec<(Resume, Candidate)>> = BTreeMap::new();
        for resume in moved {
            let Some((path, file)) = find_by_identity(&resume) else {
                continue;
            };
            let modified = file.metadata().and_then(|m| m.modified());
            let candidate = Candidate {
                path,
                file,
                id: resume.id,
                modified: modified.unwrap_or(SystemTime::UNIX_EPOCH),
            };
            by_path
                .entry(resume.path.clone())
                .or_default()
                .push((resume, candidate));
        }
        for (original, found) in by_path {
            let Some(since) = found.iter().map(|(_, c)| c.modified).min() else {
                continue;
            };
            let glob_path = found
                .iter()
                .find_map(|(resume, _)| resume.found_at.clone())
                .unwrap_or_else(|| original.clone());
            let ids: Vec<FileId> = found.iter().map(|(resume, _)| resume.id).collect();
            let mut chain: Vec<(Candidate, u64)> = found
                .into_iter()
                .map(|(resume, candidate)| {
                    tracing::info!(from = %resume.path.display(), now = %candidate.path.display(), "reading a file rotated while shiplog was down");
                    (candidate, resume.offset)
                })
                .collect();
            for later in self.siblings_since(&original, &ids, since) {
                let from = self.resume.get(&later.id).map_or(0, |r| r.offset);
                tracing::info!(path = %later.path.display(), from, "reading a file rotated while shiplog was down that the last run had not checkpointed");
                chain.push((later, from));
            }
            chain.sort_by_key(|(candidate, _)| candidate.modified);
            let mut predecessor = None;
            for (candidate, offset) in chain {
                self.resume.remove(&candidate.id);
                predecessor = self.start_after(&glob_path, candidate, offset, predecessor)?;
            }
            if let Some(last) = predecessor {
                self.predecessors.insert(original, last);
            }
        }
        Ok(())
    }

    /// A file at its path but cut: its copy read from the checkpoint, then the later copies
    /// whole, before the file at the path.
    fn resume_cut(&mut self, resume: Resume) -> Result<(), Disconnected> {
        let Some(copy) = self.find_copy(&resume.path, resume.id, resume.fingerprint, resume.offset)
        else {
            return Ok(());
        };
        tracing::info!(cut = %resume.path.display(), copy = %copy.path.display(), from = resume.offset, "reading the copy of a file cut while its lines were not yet delivered");
        self.resume.remove(&copy.id);
        let glob_path = resume
            .found_at
            .clone()
            .unwrap_or_else(|| resume.path.clone());
        let (copy_id, modified) = (copy.id, copy.modified);
        let mut predecessor = self.start_after(&glob_path, copy, resume.offset, None)?;
        // Cut again while down: what came between is only in later copies, read in order
        // after the first and before the file at the path.
        for later in self.siblings_since(&resume.path, &[resume.id, copy_id], modified) {
            let from = self.resume.remove(&later.id).map_or(0, |r| r.offset);
            tracing::info!(copy = %later.path.display(), from, "reading a later copy of a file cut more than once while shiplog was down");
            predecessor = self.start_after(&glob_path, later, from, predecessor)?;
        }
        if let Some(last) = predecessor {
            self.predecessors.insert(resume.path, last);
        }
        Ok(())
    }

    /// Files at their own paths that the globs no longer match there because that path
    /// holds another file now or is gone: rotated files (or copies) the last run was still
    /// reading, read to their end before the file at the path. Files the globs exclude, or
    /// no longer include, are left alone.
    fn finish_rotated_at_their_paths(&mut self, aside: Vec<Resume>) -> Result<(), Disconnected> {
        let (matched, _) = self.files.scan();
        for resume in aside {
            if !self.resume.contains_key(&resume.id) {
                continue;
            }
            let successor = match rotated_at_own_path(&resume, &matched, &self.files) {
                Verdict::Current => continue,
                Verdict::Excluded => {
                    tracing::info!(path = %resume.path.display(), "not following a file the globs exclude now; its checkpoint is kept");
                    continue;
                }
                Verdict::Rotated { successor } => successor,
            };
            let Some((file, _)) = open(&resume.path) else {
                continue;
            };
            tracing::info!(path = %resume.path.display(), "finishing a rotated file the last run was reading");
            self.resume.remove(&resume.id);
            let found = FoundFile {
                path: resume
                    .found_at
                    .clone()
                    .unwrap_or_else(|| resume.path.clone()),
                target: resume.path.clone(),
            };
            let Some(key) = self.start(found, file, resume.id, resume.offset)? else {
                continue;
            };
            self.mark_rotated(key);
            if let Some(successor) = successor {
                self.predecessors.entry(successor).or_insert(key);
            }
        }
        Ok(())
    }
}

/// What a checkpointed file still at its own path is now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Matched by the globs there: discovery resumes it.
    Current,
    /// Rotated (or copied) away from the path the globs matched it at; that path's file now
    /// is `successor`, when there is one.
    Rotated { successor: Option<PathBuf> },
    /// Excluded, or no longer included, by the globs: not read, checkpoint kept.
    Excluded,
}

/// What `resume`, a file still at its own path, is, given the files the globs match now.
fn rotated_at_own_path(resume: &Resume, matched: &[FoundFile], files: &FileSet) -> Verdict {
    if matched.iter().any(|found| found.target == resume.path) {
        return Verdict::Current;
    }
    let Some(found_at) = &resume.found_at else {
        // A checkpoint from before `found_at` was kept: a file beside a matched one is
        // taken for a rotated one (the rule of that version), unless it is excluded itself.
        if files.excludes(&resume.path) {
            return Verdict::Excluded;
        }
        let folder = resume.path.parent();
        let beside = matched.iter().any(|f| f.target.parent() == folder);
        return match beside {
            true => Verdict::Rotated { successor: None },
            false => Verdict::Excluded,
        };
    };
    if let Some(now) = matched.iter().find(|found| &found.path == found_at) {
        return Verdict::Rotated {
            successor: Some(now.target.clone()),
        };
    }
    match found_at.symlink_metadata() {
        // Still there, not matched: the globs exclude it (or no longer include it).
        Ok(_) => Verdict::Excluded,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Verdict::Rotated { successor: None }
        }
        // Cannot tell: following an excluded file would be the worse mistake.
        Err(_) => Verdict::Excluded,
    }
}

/// Whether the file a checkpoint names is gone for good: not at its path, and nowhere in
/// its folder, not even as a copy holding lines beyond the checkpoint (or the folder itself
/// is gone, as the kubelet removes a deleted pod's). A folder that cannot be listed, or a
/// path that cannot be looked at for another reason than its absence, counts as present:
/// only a file known gone may lose its checkpoint.
pub fn is_gone(resume: &Resume) -> bool {
    let same = |file: &File, metadata: &std::fs::Metadata| {
        FileId::of(metadata) == resume.id && resume.fingerprint.matches(file).unwrap_or(true)
    };
    match File::open(&resume.path).and_then(|file| Ok((file.metadata()?, file))) {
        Ok((metadata, file)) if same(&file, &metadata) => return false,
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return false,
    }
    let Some(dir) = resume.path.parent() else {
        return false;
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) => return error.kind() == std::io::ErrorKind::NotFound,
    };
    // The file itself, moved within the folder, or a copy of it holding lines not yet
    // delivered (copytruncate's, when the file at the path was cut).
    let copy = |file: &File, metadata: &std::fs::Metadata| {
        metadata.len() > resume.offset && resume.fingerprint.matches(file).unwrap_or(false)
    };
    !entries.flatten().any(|entry| {
        open(&entry.path())
            .is_some_and(|(file, metadata)| same(&file, &metadata) || copy(&file, &metadata))
    })
}

/// The file `resume` names, looked for by (device, inode) and fingerprint in the folder
/// it was in.
fn find_by_identity(resume: &Resume) -> Option<(PathBuf, File)> {
    let dir = resume.path.parent()?;
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let path = entry.path();
        let (file, metadata) = open(&path)?;
        let same = FileId::of(&metadata) == resume.id && resume.fingerprint.matches(&file).ok()?;
        (same && resume.offset <= metadata.len()).then_some((path, file))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::tail::Fingerprint;

    fn resume(path: &Path, found_at: Option<&Path>) -> Resume {
        Resume {
            id: FileId { dev: 1, ino: 2 },
            fingerprint: Fingerprint::of(b"x"),
            path: path.to_path_buf(),
            offset: 0,
            found_at: found_at.map(Path::to_path_buf),
        }
    }

    fn found(path: &Path, target: &Path) -> FoundFile {
        FoundFile {
            path: path.to_path_buf(),
            target: target.to_path_buf(),
        }
    }

    #[test]
    fn a_file_at_its_own_path_is_rotated_only_when_its_glob_path_names_another_file_or_none() {
        let dir = tempfile::tempdir().expect("temp dir");
        let at = |name: &str| dir.path().join(name);
        for name in [
            "app.log",
            "app.log.1",
            "other.log",
            "link.log",
            "0.log",
            "1.log",
        ] {
            std::fs::write(at(name), b"x").expect("write");
        }
        let files =
            FileSet::new(&[], &[format!("{}/excluded*", dir.path().display())]).expect("globs");
        let app = found(&at("app.log"), &at("app.log"));
        let link_now = found(&at("link.log"), &at("1.log"));
        let rotated = |successor: &str| Verdict::Rotated {
            successor: Some(at(successor)),
        };
        let cases = [
            // (the file, where the globs found it, what they match now, verdict)
            (
                "app.log",
                Some("app.log"),
                vec![app.clone()],
                Verdict::Current,
            ),
            (
                "app.log.1",
                Some("app.log"),
                vec![app.clone()],
                rotated("app.log"),
            ),
            (
                "0.log",
                Some("link.log"),
                vec![link_now.clone()],
                rotated("1.log"),
            ),
            (
                "other.log",
                Some("other.log"),
                vec![app.clone()],
                Verdict::Excluded,
            ),
            (
                "0.log",
                Some("link.log"),
                vec![app.clone()],
                Verdict::Excluded,
            ),
            (
                "0.log",
                Some("gone.log"),
                vec![app.clone()],
                Verdict::Rotated { successor: None },
            ),
            // Checkpoints from before `found_at`: beside a matched file, unless excluded.
            (
                "other.log",
                None,
                vec![app.clone()],
                Verdict::Rotated { successor: None },
            ),
            ("excluded.log", None, vec![app.clone()], Verdict::Excluded),
            ("other.log", None, vec![], Verdict::Excluded),
        ];
        for (file, found_at, matched, verdict) in cases {
            let found_at = found_at.map(at);
            let checkpoint = resume(&at(file), found_at.as_deref());
            assert_eq!(
                rotated_at_own_path(&checkpoint, &matched, &files),
                verdict,
                "{file} found at {found_at:?}, matched now: {matched:?}"
            );
        }
    }
}
