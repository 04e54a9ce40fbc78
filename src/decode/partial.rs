//! Reassembly of split lines for one file: CRI `P`…`F` pieces and docker's 16 KiB entries,
//! capped by `max_line_bytes`.
//!
//! Owns the pending pieces of one file, per stream (a container's stdout and stderr lines
//! interleave in its file), and the cutting of over-long lines into flagged pieces. Knows
//! nothing of files, offsets or clocks: the pipeline keeps one [`Reassembler`] per file,
//! pushes its decoded lines in file order, and decides when a pending line has waited long
//! enough to [`Reassembler::flush`].
//!
//! Nothing is dropped or altered: concatenating the bytes of the messages a line becomes
//! gives the line back exactly. (Vector's `partial_events_merger` drops over-long merged
//! lines by default; we cut them into pieces flagged `truncated` instead.)

use std::borrow::Cow;

use super::{Decoded, Stream};

/// One container line, whole again (or a flagged piece of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The time of the line's first piece.
    pub time: Cow<'a, str>,
    /// The stream the line was written to.
    pub stream: Stream,
    /// The line's bytes, without a trailing newline. At most `max_line_bytes` long.
    pub bytes: Cow<'a, [u8]>,
    /// This is one of several pieces of a line longer than `max_line_bytes`. Every piece of
    /// such a line is flagged, the last one included.
    pub truncated: bool,
    /// The runtime had not written the end of this line when it was flushed.
    pub partial: bool,
}

/// How far past `max_line_bytes` a cut may need to see: the rest of a UTF-8 character that
/// starts at most 3 bytes before the cut.
const CUT_LOOKAHEAD: usize = 3;

/// A pending buffer whose capacity exceeds this is freed when its line ends, so that one
/// long line does not pin `max_line_bytes` per stream for the life of the file.
const RETAINED_CAPACITY: usize = 64 * 1024;

/// Joins partial lines back together, per stream, for one file.
///
/// Memory per stream stays below `max_line_bytes` + 3 bytes however long a line is: as soon
/// as a line is known to be longer than the limit, full pieces are emitted. The cut of a
/// line depends only on its bytes, not on how the runtime split it.
#[derive(Debug)]
pub struct Reassembler {
    /// The longest message emitted; at least 1, so that cutting always makes progress.
    max_line_bytes: usize,
    /// The line in progress on stdout.
    stdout: PendingLine,
    /// The line in progress on stderr.
    stderr: PendingLine,
}

/// What a stream has seen of a line it has not seen the end of, and not emitted yet.
#[derive(Debug, Default)]
struct PendingLine {
    /// A partial piece started a line whose end has not come yet. When false, `time` and
    /// `bytes` are empty and kept only for their capacity.
    open: bool,
    /// The time of the line's first piece.
    time: String,
    /// The line's bytes not emitted yet. Between calls, `bytes.len() < max_line_bytes +
    /// CUT_LOOKAHEAD`.
    bytes: Vec<u8>,
    /// Pieces of this line were emitted already, so every further piece is `truncated` too.
    cut: bool,
}

impl Reassembler {
    /// A reassembler that cuts lines longer than `max_line_bytes` into flagged pieces. A
    /// limit of 0 is taken as 1.
    pub fn new(max_line_bytes: usize) -> Self {
        Reassembler {
            max_line_bytes: max_line_bytes.max(1),
            stdout: PendingLine::default(),
            stderr: PendingLine::default(),
        }
    }

    /// Takes the next decoded line of the file and emits every message it completes.
    ///
    /// A whole line with nothing pending on its stream is emitted as it came, without a
    /// copy. Pieces of a split line are buffered until the piece that ends it, except that
    /// a line over the limit goes out in flagged pieces as soon as each is full.
    pub fn push(&mut self, line: Decoded<'_>, emit: &mut dyn FnMut(Message<'_>)) {
        let max = self.max_line_bytes;
        let pending = match line.stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        if !pending.open {
            if !line.partial {
                emit_whole(line, max, emit);
                return;
            }
            pending.start(&line.time);
        }
        pending.append(&line.message, line.stream, max, emit);
        if !line.partial {
            pending.finish(line.stream, max, false, emit);
        }
    }

    /// Emits every pending line, its last message flagged `partial`; used at the end of a
    /// `--once` run and when a pending line has waited too long. What comes later on the
    /// stream is taken as the start of a new line.
    pub fn flush(&mut self, emit: &mut dyn FnMut(Message<'_>)) {
        let max = self.max_line_bytes;
        for (stream, pending) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            if pending.open {
                pending.finish(stream, max, true, emit);
            }
        }
    }

    /// True when no stream has a line waiting for the rest of its pieces.
    pub fn is_empty(&self) -> bool {
        !self.stdout.open && !self.stderr.open
    }
}

impl PendingLine {
    /// Opens a line whose first piece has `time`.
    fn start(&mut self, time: &str) {
        self.open = true;
        self.cut = false;
        self.time.clear();
        self.time.push_str(time);
        self.bytes.clear();
    }

    /// Adds the next piece of the line, emitting full pieces while the line is longer than
    /// `max` and enough is buffered to choose where to cut.
    fn append(
        &mut self,
        mut piece: &[u8],
        stream: Stream,
        max: usize,
        emit: &mut dyn FnMut(Message<'_>),
    ) {
        let full = max.saturating_add(CUT_LOOKAHEAD);
        loop {
            let room = full.saturating_sub(self.bytes.len()).min(piece.len());
            let (head, rest) = piece.split_at(room);
            self.reserve(head.len(), full);
            self.bytes.extend_from_slice(head);
            piece = rest;
            if self.bytes.len() < full {
                // Not full, so all of `piece` fitted.
                return;
            }
            let cut = cut_point(&self.bytes, max);
            let (head, _) = self.bytes.split_at(cut);
            emit(Message {
                time: Cow::Borrowed(&self.time),
                stream,
                bytes: Cow::Borrowed(head),
                truncated: true,
                partial: false,
            });
            self.bytes.drain(..cut);
            self.cut = true;
        }
    }

    /// Makes room for `additional` bytes, growing as `Vec` does but never past `full`, so
    /// that capacity too stays within the limit.
    fn reserve(&mut self, additional: usize, full: usize) {
        let needed = self.bytes.len().saturating_add(additional);
        if needed > self.bytes.capacity() {
            let target = needed
                .max(self.bytes.capacity().saturating_mul(2))
                .min(full);
            self.bytes
                .reserve_exact(target.saturating_sub(self.bytes.len()));
        }
    }

    /// Emits the rest of the line and closes it; `partial` when its end never came.
    fn finish(
        &mut self,
        stream: Stream,
        max: usize,
        partial: bool,
        emit: &mut dyn FnMut(Message<'_>),
    ) {
        emit_end(
            &self.time,
            stream,
            &self.bytes,
            max,
            self.cut,
            partial,
            emit,
        );
        self.open = false;
        self.cut = false;
        self.time.clear();
        if self.bytes.capacity() > RETAINED_CAPACITY {
            self.bytes = Vec::new();
        } else {
            self.bytes.clear();
        }
    }
}

/// Emits a line that came in one piece: as it is when it fits, or cut into flagged pieces
/// borrowed from it.
fn emit_whole(line: Decoded<'_>, max: usize, emit: &mut dyn FnMut(Message<'_>)) {
    if line.message.len() <= max {
        emit(Message {
            time: line.time,
            stream: line.stream,
            bytes: line.message,
            truncated: false,
            partial: false,
        });
    } else {
        emit_end(
            &line.time,
            line.stream,
            &line.message,
            max,
            false,
            false,
            emit,
        );
    }
}

/// Emits the end of a line as messages of at most `max` bytes. They are all flagged
/// `truncated` when the line is cut anywhere (`cut`: it was already); only the last one
/// carries `partial`.
fn emit_end(
    time: &str,
    stream: Stream,
    mut bytes: &[u8],
    max: usize,
    mut cut: bool,
    partial: bool,
    emit: &mut dyn FnMut(Message<'_>),
) {
    loop {
        let (head, rest) = bytes.split_at(cut_point(bytes, max));
        let last = rest.is_empty();
        cut |= !last;
        emit(Message {
            time: Cow::Borrowed(time),
            stream,
            bytes: Cow::Borrowed(head),
            truncated: cut,
            partial: partial && last,
        });
        if last {
            return;
        }
        bytes = rest;
    }
}

/// The length of the next piece of `bytes`: all of it if it fits in `max`, else `max`, or up
/// to 3 bytes less so as not to split a valid UTF-8 character. Where the bytes around the
/// cut are not valid UTF-8, the cut is made at `max` exactly. Never 0 unless `bytes` is
/// empty, never more than `bytes.len()`.
///
/// Looks at most [`CUT_LOOKAHEAD`] bytes past `max`, so a cut made while a line is still
/// arriving falls where it would had the whole line been there.
fn cut_point(bytes: &[u8], max: usize) -> usize {
    let Some(&first_left_out) = bytes.get(max) else {
        return bytes.len();
    };
    if !is_continuation(first_left_out) {
        return max;
    }
    (1..=CUT_LOOKAHEAD)
        .filter_map(|back| max.checked_sub(back))
        .take_while(|&start| start > 0)
        .find(|&start| bytes.get(start).is_some_and(|&b| !is_continuation(b)))
        .filter(|&start| char_len(bytes, start).is_some_and(|len| start + len > max))
        .unwrap_or(max)
}

/// True for the bytes that continue a UTF-8 character (`0b10xx_xxxx`).
fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// The length of the valid UTF-8 character starting at `start`, if there is one.
fn char_len(bytes: &[u8], start: usize) -> Option<usize> {
    let len = match bytes.get(start)? {
        0x00..=0x7f => 1,
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let char = bytes.get(start..start.checked_add(len)?)?;
    std::str::from_utf8(char).ok().map(|_| len)
}

#[cfg(test)]
mod tests;
