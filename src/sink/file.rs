//! The `file` sink: one JSON record per line, appended to a file and synced per batch.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Batch, SendError};

/// Appends batches to a file. A batch counts as delivered once it is written and synced
/// to disk: the acknowledgement means it survives a crash of the machine.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    /// `None` after a failed write: the path is opened again before the next attempt, so
    /// a file moved away, or a full disk mounted anew, is picked up without a restart.
    file: Option<File>,
}

impl FileSink {
    /// Opens (creating if missing) `path` for appending.
    pub fn open(path: &Path) -> Result<FileSink, String> {
        let file = open_append(path)?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// Writes and syncs the batch. A failed write is retried whole: after a partial write
    /// the records written twice are duplicates, never gaps.
    pub fn send(&mut self, batch: &Batch) -> Result<(), SendError> {
        let file = match self.file.as_mut() {
            Some(file) => file,
            None => self
                .file
                .insert(open_append(&self.path).map_err(SendError::Retry)?),
        };
        let written = batch
            .chunks()
            .iter()
            .try_for_each(|chunk| file.write_all(&chunk.json))
            .and_then(|()| file.sync_data());
        written.map_err(|error| {
            self.file = None;
            SendError::Retry(format!("writing {}: {error}", self.path.display()))
        })
    }
}

/// Whether [`FileSink::open`] would succeed, leaving no trace: an existing file is opened
/// for appending and closed; a missing one is created and removed again.
pub fn check(path: &Path) -> Result<(), String> {
    if path.exists() {
        return OpenOptions::new()
            .append(true)
            .open(path)
            .map(drop)
            .map_err(|error| format!("cannot open {}: {error}", path.display()));
    }
    OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(path)
        .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    std::fs::remove_file(path)
        .map_err(|error| format!("cannot remove {} again: {error}", path.display()))
}

fn open_append(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| format!("cannot open {}: {error}", path.display()))
}
