//! Finding log files and reading their lines with exact byte offsets.
//!
//! Knows files and offsets, nothing of Kubernetes or sinks. Today this is the reader that
//! `--once` needs: every matched file read from its first byte to its end. Following files
//! through rotation, with offsets persisted, is the tail engine's (see ARCHITECTURE.md).

mod discover;
mod identity;
mod once;
mod reader;

pub use discover::{FileSet, FoundFile, GlobError};
pub use identity::{FileId, Fingerprint};
pub use once::{TailEvent, read_once};
pub use reader::{LineEnd, LineReader, Lines};
