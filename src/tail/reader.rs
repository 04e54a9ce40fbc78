//! Reading one file in large chunks and cutting it at line ends, knowing every offset.
//!
//! Our own reader rather than linemux's: linemux yields `String` lines, so it gives no byte
//! offsets and rejects non-UTF-8, and offsets are what checkpoints are made of. A chunk
//! holds whole lines only. The bytes after the last newline are not kept in memory: the
//! reader only remembers how many there are, reads on from behind them, and reads them
//! again from the file once their line ends (or its file is finished with). So an
//! unfinished line costs no memory however many files hold one (issue 17); the file is its
//! buffer, as it is for everything not yet delivered. A line with no newline within
//! `max_pending` bytes is handed out in [`LineEnd::Cut`] pieces.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
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
    /// Offset of the first byte not yet returned.
    offset: u64,
    /// How many bytes from `offset` on are known to hold no newline: the start of an
    /// unfinished line, left in the file. Invariants: `offset + unterminated` is where the
    /// next read starts, and `unterminated < max_pending`.
    unterminated: u64,
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
    pub fn from_file(file: File, offset: u64, max_pending: usize) -> io::Result<LineReader> {
        Ok(LineReader {
            file,
            offset,
            unterminated: 0,
            max_pending: max_pending.max(1),
            after_cut: false,
        })
    }

    /// The offset of the first byte not yet returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the next read from the file lands: past the bytes waiting for a newline.
    pub fn read_position(&self) -> u64 {
        self.offset + self.unterminated
    }

    /// The open file (to stat it, or fingerprint it with positioned reads).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The next complete lines, or `None` when the file holds no further complete line (what
    /// follows the last newline stays in the file, to be read again with the rest of its
    /// line). A line with no newline within `max_pending` bytes comes out in
    /// [`LineEnd::Cut`] pieces.
    pub fn read_lines(&mut self) -> io::Result<Option<Lines>> {
        loop {
            let mut buf = Vec::with_capacity(READ_SIZE);
            let full = read_at_most(&self.file, self.read_position(), READ_SIZE, &mut buf)?;
            if let Some(last) = memchr::memrchr(b'\n', &buf) {
                // What follows the last newline is read again by the next call.
                buf.truncate(last + 1);
                let data = self.after_unterminated(buf)?;
                return Ok(Some(self.take(data, LineEnd::Newline)));
            }
            let known = usize::try_from(self.unterminated).unwrap_or(usize::MAX);
            if known.saturating_add(buf.len()) >= self.max_pending {
                let mut data = self.after_unterminated(buf)?;
                data.truncate(self.max_pending);
                return Ok(Some(self.take(data, LineEnd::Cut)));
            }
            self.unterminated += buf.len() as u64;
            if !full {
                return Ok(None);
            }
        }
    }

    /// Forgets the bytes waiting for a newline: another reader reads them again (from a
    /// copytruncated file's copy), or they are gone with the content cut away.
    pub fn drop_pending(&mut self) {
        self.unterminated = 0;
    }

    /// The bytes after the last newline, read again from the file, when it is finished
    /// with (it ends without a newline). `None` when nothing is pending.
    pub fn take_unterminated(&mut self) -> io::Result<Option<Lines>> {
        if self.unterminated == 0 {
            return Ok(None);
        }
        let data = self.after_unterminated(Vec::new())?;
        Ok(Some(self.take(data, LineEnd::EndOfFile)))
    }

    /// `rest` preceded by the unterminated bytes at `offset`, read again from the file.
    fn after_unterminated(&mut self, rest: Vec<u8>) -> io::Result<Vec<u8>> {
        if self.unterminated == 0 {
            return Ok(rest);
        }
        let known = usize::try_from(self.unterminated).unwrap_or(usize::MAX);
        let mut data = vec![0; known];
        self.file.read_exact_at(&mut data, self.offset)?;
        data.extend_from_slice(&rest);
        self.unterminated = 0;
        Ok(data)
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

/// Appends up to `limit` bytes of `file` from `offset` to `buf`; true when it got all
/// `limit` (false: the end of the file came first). A seek and a plain read rather than
/// `read_at`, which would need the buffer zeroed first.
fn read_at_most(file: &File, offset: u64, limit: usize, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut file = file;
    file.seek(SeekFrom::Start(offset))?;
    let read = file.take(limit as u64).read_to_end(buf)?;
    Ok(read == limit)
}

#[cfg(test)]
mod tests;
