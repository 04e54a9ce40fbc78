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
    file: File,
}

impl FileSink {
    /// Opens (creating if missing) `path` for appending.
    pub fn open(path: &Path) -> Result<FileSink, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        Ok(FileSink {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Writes and syncs the batch. A failed write is retried whole: after a partial write
    /// the records written twice are duplicates, never gaps.
    pub fn send(&mut self, batch: &Batch) -> Result<(), SendError> {
        let file = &mut self.file;
        batch
            .chunks()
            .iter()
            .try_for_each(|chunk| file.write_all(&chunk.json))
            .and_then(|()| file.sync_data())
            .map_err(|error| SendError::Retry(format!("writing {}: {error}", self.path.display())))
    }
}
