//! Finding log files, following them through rotation, and reading their lines with exact
//! byte offsets.
//!
//! Knows files and offsets, nothing of Kubernetes or sinks. [`Tailer`] is the engine: one
//! loop over every followed file (see `engine.rs` for how each kind of rotation is handled);
//! [`LineReader`] cuts one file into lines; [`FileSet`] says which files to follow.

mod discover;
mod engine;
mod identity;
mod reader;
mod watch;

pub use discover::{FileSet, FoundFile, GlobError};
pub use engine::{Resume, TailEvent, TailSettings, Tailer, is_gone};
pub use identity::{FileId, Fingerprint};
pub use reader::{LineEnd, LineReader, Lines};
pub use watch::Wake;
