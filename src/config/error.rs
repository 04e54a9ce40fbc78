//! `ConfigError`: what went wrong in a config file, naming the file, the key and the reason.

use std::path::{Path, PathBuf};

/// A config file that cannot be used. Displayed as `FILE: KEY: REASON`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{reason}", file.display(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// The dotted key, e.g. `tail.rescan_interval`; empty when the file as a whole is at fault.
    pub key: String,
    /// What is wrong, in a sentence a user can act on.
    pub reason: String,
}

impl ConfigError {
    /// An error about `key` in `file`.
    pub fn new(file: &Path, key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}
