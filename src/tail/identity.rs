//! Which file is this: (device, inode) plus a fingerprint of the file's first bytes.
//!
//! A checkpoint must find its file again after a restart, whatever the file is called by
//! then: rotation renames files, and `/var/log/containers` links are replaced. The kernel's
//! (device, inode) pair follows a file through renames, but it is not enough alone: once a
//! file is deleted its inode number is free, and the next file created often gets it. Keyed
//! by inode alone, a new file inherits the old file's checkpoint and is resumed at a stale
//! offset, skipping its first lines or reading from the middle of one (Fluent Bit's
//! fluent/fluent-bit#1875, #4895, #8025). The [`Fingerprint`], a hash of the first
//! [`Fingerprint::MAX_LEN`] bytes, tells the two apart: container log lines start with a
//! timestamp, so two files' first bytes differ.
//!
//! Knows files only: nothing of offsets' storage, Kubernetes or sinks.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// A file's place in the kernel: the same for every path and link that leads to it, and
/// kept through renames. Reused after the file is deleted: pair it with a [`Fingerprint`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    /// The device the file lives on (`st_dev`).
    pub dev: u64,
    /// The inode number on that device (`st_ino`).
    pub ino: u64,
}

impl FileId {
    /// The identity of the file `metadata` describes. Take the metadata of the opened file
    /// (`File::metadata`), not of a path, so the id is that of the file actually read.
    pub fn of(metadata: &Metadata) -> FileId {
        FileId {
            dev: metadata.dev(),
            ino: metadata.ino(),
        }
    }
}

/// A hash of a file's first `len` bytes, `len` at most [`Fingerprint::MAX_LEN`].
///
/// A file shorter than `MAX_LEN` bytes has a fingerprint of all of it; it still matches the
/// file after the file grows, since its first `len` bytes do not change, but it is weaker
/// than a full one (an empty file's matches any file). Taking a longer fingerprint as the
/// file grows is the caller's business: read it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// How many bytes from the start of the file were hashed. Invariant: `len <= MAX_LEN`;
    /// a fingerprint with a larger `len` (which [`Fingerprint::read`] never makes) matches
    /// no file.
    pub len: u32,
    /// FNV-1a 64 of those bytes.
    pub hash: u64,
}

impl Fingerprint {
    /// How many bytes from the start of a file are hashed. Enough to cover a kubelet log
    /// line's timestamp and the start of its message, so two files differ; small enough to
    /// read on every rescan.
    pub const MAX_LEN: u32 = 256;

    /// The fingerprint of a file whose content starts with `content`: a hash of its first
    /// `min(content.len(), MAX_LEN)` bytes.
    pub fn of(content: &[u8]) -> Fingerprint {
        let prefix = &content[..content.len().min(MAX_LEN)];
        Fingerprint {
            // At most MAX_LEN, so the cast is lossless.
            len: prefix.len() as u32,
            hash: fnv1a_64(prefix),
        }
    }

    /// The fingerprint of `file`'s first `min(size, MAX_LEN)` bytes. Reads at offset 0 with
    /// `read_at`, so the file's position (where a reader of it is) does not move. An empty
    /// file has `len == 0`.
    pub fn read(file: &File) -> io::Result<Fingerprint> {
        let mut buf = [0u8; MAX_LEN];
        let read = read_prefix(file, &mut buf)?;
        Ok(Fingerprint::of(&buf[..read]))
    }

    /// Whether `file` starts with the bytes this fingerprint was taken of: true for the same
    /// file, also after it grew; false when the file is now shorter than `len` (truncated, or
    /// another file) or its first `len` bytes differ. A fingerprint with `len == 0` matches
    /// any file. Does not move the file's position.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        let Some(len) = usize::try_from(self.len).ok().filter(|&len| len <= MAX_LEN) else {
            return Ok(false);
        };
        let mut buf = [0u8; MAX_LEN];
        let read = read_prefix(file, &mut buf[..len])?;
        Ok(read == len && fnv1a_64(&buf[..len]) == self.hash)
    }
}

const MAX_LEN: usize = Fingerprint::MAX_LEN as usize;

/// Fills `buf` from offset 0 of `file`, stopping early only at the end of the file; returns
/// how many bytes were read. `read_at` may return fewer bytes than asked, hence the loop.
fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// FNV-1a, 64-bit (<http://www.isthe.com/chongo/tech/comp/fnv/>).
///
/// Written here rather than taken from `std`: fingerprints are stored in the checkpoint
/// database and compared after an upgrade, so the hash must give the same value in every
/// release and on every machine, which `std::hash::DefaultHasher` does not promise. No
/// adversary chooses log files' first bytes to collide, so a fast non-cryptographic hash
/// is enough; a collision also needs the same (device, inode) to matter.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests;
