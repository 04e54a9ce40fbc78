//! Placeholder until the identity module lands (branch `checkpoint`).

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;

/// (device, inode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

impl FileId {
    /// The id of a file's metadata.
    pub fn of(metadata: &Metadata) -> FileId {
        FileId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// Hash of the first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// Bytes hashed.
    pub len: u32,
    /// Their hash.
    pub hash: u64,
}

impl Fingerprint {
    /// Reads it.
    pub fn read(_file: &mut File) -> io::Result<Fingerprint> {
        Ok(Fingerprint { len: 0, hash: 0 })
    }
    /// Compares it.
    pub fn matches(&self, _file: &File) -> io::Result<bool> {
        Ok(true)
    }
}
