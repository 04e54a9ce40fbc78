//! Reading one file in large chunks and cutting it at line ends, knowing every offset.
//!
//! Our own reader rather than linemux's: linemux yields `String` lines, so it gives no byte
//! offsets and rejects non-UTF-8, and offsets are what checkpoints are made of. A chunk
//! holds whole lines only; the bytes after the last newline wait for the rest of their
//! line, up to a limit that bounds memory: a line with no newline within `max_pending`
//! bytes is handed out in [`LineEnd::Cut`] pieces.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// How many bytes one read asks for: large enough that syscalls are a small cost, small
/// enough that one chunk is a modest unit of memory and of acknowledgement.
const READ_SIZE: usize = 256 * 1024;

/// Lines read from a file, with their place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// The bytes of the lines. With [`LineEnd::Newline`] every line ends in `\n`; otherwise
    /// `data` is one line without its end.
    pub data: Vec<u8>,
    /// The offset of `data`'s first byte in the file.
    pub start: u64,
    /// The offset just past `data`: where the next read starts.
    pub end: u64,
    /// How the last line of `data` ends.
    pub end_kind: LineEnd,
    /// The first line of `data` is the rest of a line cut before ([`LineEnd::Cut`]).
    pub continued: bool,
}

/// How the last line of a [`Lines`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    /// Every line ends in a newline.
    Newline,
    /// `data` is the first `max_pending` bytes of a longer line; the rest comes next.
    Cut,
    /// `data` is what followed the last newline when the file was finished with.
    EndOfFile,
}

/// Reads one file from an offset, chunk by chunk.
#[derive(Debug)]
pub struct LineReader {
    file: File,
    /// Offset of the first byte not yet returned. Invariant: `offset + pending.len()` is
    /// where the file's next read lands.
    offset: u64,
    /// Bytes read after the last newline returned, waiting for the rest of their line.
    pending: Vec<u8>,
    max_pending: usize,
    /// The last chunk returned was [`LineEnd::Cut`]: the next one continues its line.
    after_cut: bool,
}

impl LineReader {
    /// Opens `path` and positions the reader at `offset`.
    pub fn open(path: &Path, offset: u64, max_pending: usize) -> io::Result<LineReader> {
        LineReader::from_file(File::open(path)?, offset, max_pending)
    }

    /// Reads the open `file` from `offset`.
    pub fn from_file(mut file: File, offset: u64, max_pending: usize) -> io::Result<LineReader> {
        file.seek(SeekFrom::Start(offset))?;
        let max_pending = max_pending.max(1);
        Ok(LineReader {
            file,
            offset,
            pending: Vec::new(),
            max_pending,
            after_cut: false,
        })
    }

    /// The offset of the first byte not yet returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the next read from the file lands: past the bytes waiting for a newline.
    pub fn read_position(&self) -> u64 {
        self.offset + self.pending.len() as u64
    }

    /// The open file (to stat it, or fingerprint it with positioned reads).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The next complete lines, or `None` when the file holds no further complete line (what
    /// follows the last newline stays pending). A line with no newline within `max_pending`
    /// bytes comes out in [`LineEnd::Cut`] pieces.
    pub fn read_lines(&mut self) -> io::Result<Option<Lines>> {
        loop {
            let mut buf = std::mem::take(&mut self.pending);
            let scanned = buf.len();
            // Room for the whole read up front: one allocation and one read syscall per
            // chunk, where growing from empty took several of each and copied as it grew.
            buf.reserve_exact(READ_SIZE);
            let read = (&mut self.file)
                .take(READ_SIZE as u64)
                .read_to_end(&mut buf)?;
            if let Some(last) = memchr::memrchr(b'\n', &buf[scanned..]) {
                self.pending = buf.split_off(scanned + last + 1);
                return Ok(Some(self.take(buf, LineEnd::Newline)));
            }
            if buf.len() >= self.max_pending {
                self.pending = buf.split_off(self.max_pending);
                return Ok(Some(self.take(buf, LineEnd::Cut)));
            }
            self.pending = buf;
            if read == 0 {
                return Ok(None);
            }
        }
    }

    /// Forgets the bytes waiting for a newline: another reader reads them again (from a
    /// copytruncated file's copy).
    pub fn drop_pending(&mut self) {
        self.pending.clear();
    }

    /// The bytes after the last newline, when the file is finished with (it ends without a
    /// newline). `None` when nothing is pending.
    pub fn take_unterminated(&mut self) -> Option<Lines> {
        if self.pending.is_empty() {
            return None;
        }
        let data = std::mem::take(&mut self.pending);
        Some(self.take(data, LineEnd::EndOfFile))
    }

    fn take(&mut self, data: Vec<u8>, end_kind: LineEnd) -> Lines {
        let start = self.offset;
        self.offset += data.len() as u64;
        let continued = std::mem::replace(&mut self.after_cut, end_kind == LineEnd::Cut);
        Lines {
            data,
            start,
            end: self.offset,
            end_kind,
            continued,
        }
    }
}

#[cfg(test)]
mod tests;
