//! Placeholder until the checkpoint store lands (branch `checkpoint`).

use std::path::{Path, PathBuf};

use crate::tail::{FileId, Fingerprint};

/// A file's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Identity.
    pub id: FileId,
    /// First bytes.
    pub fingerprint: Fingerprint,
    /// Resolved path.
    pub path: PathBuf,
    /// Committed offset.
    pub offset: u64,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

/// The store.
#[derive(Debug)]
pub struct Store;

impl Store {
    /// Opens.
    pub fn open(_path: &Path) -> Result<Store, StoreError> {
        Ok(Store)
    }
    /// Loads.
    pub fn load(&self) -> Result<Vec<Checkpoint>, StoreError> {
        Ok(Vec::new())
    }
    /// Commits.
    pub fn commit(&mut self, _checkpoints: &[Checkpoint]) -> Result<(), StoreError> {
        Ok(())
    }
    /// Forgets.
    pub fn forget(&mut self, _ids: &[FileId]) -> Result<(), StoreError> {
        Ok(())
    }
}
