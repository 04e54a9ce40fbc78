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
//! gives the line back exactly. What the pending lines hold is known
//! ([`Reassembler::held_bytes`]) so the pipeline can bound it across files: a pending line
//! can be [`Reassembler::cut_pending`] into a flagged piece early, as a long line is. (Vector's `partial_events_merger` drops over-long merged
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

    /// The longest message it emits.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
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

    /// The memory the pending lines hold: their buffers' capacity. A buffer is freed when
    /// its line ends, so this is 0 when no line is pending.
    pub fn held_bytes(&self) -> usize {
        self.stdout.bytes.capacity() + self.stderr.bytes.capacity()
    }

    /// Emits what every pending line holds as a piece flagged `truncated`, as if the line
    /// had reached `max_line_bytes` there, and frees its buffer; the line stays open, and
    /// its further pieces are flagged `truncated` too. Up to 3 bytes of a UTF-8 character
    /// cut short stay pending, to go out whole with the rest. For bounding the memory all
    /// files' pending lines take together. Returns how many lines were cut.
    pub fn cut_pending(&mut self, emit: &mut dyn FnMut(Message<'_>)) -> usize {
        let max = self.max_line_bytes;
        let mut cut = 0;
        for (stream, pending) in [
            (Stream::Stdout, &mut self.stdout),
            (Stream::Stderr, &mut self.stderr),
        ] {
            if pending.open && !pending.bytes.is_empty() {
                pending.cut_all(stream, max, emit);
                cut += 1;
            }
        }
        cut
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

    /// Emits the line's bytes, but an incomplete UTF-8 character at their end, as flagged
    /// pieces of at most `max` bytes; keeps that character in a buffer just its size.
    fn cut_all(&mut self, stream: Stream, max: usize, emit: &mut dyn FnMut(Message<'_>)) {
        let mut from = 0;
        loop {
            let rest = &self.bytes[from..];
            let len = match rest.len() > max {
                true => cut_point(rest, max),
                false => complete_utf8_prefix(rest),
            };
            if len == 0 {
                break;
            }
            emit(Message {
                time: Cow::Borrowed(&self.time),
                stream,
                bytes: Cow::Borrowed(&rest[..len]),
                truncated: true,
                partial: false,
            });
            self.cut = true;
            from += len;
        }
        self.bytes = self.bytes[from..].to_vec();
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
        // A line cut early to its last byte has nothing left to say when its end comes.
        let said = self.cut && self.bytes.is_empty() && !partial;
        if !said {
            emit_end(
                &self.time,
                stream,
                &self.bytes,
                max,
                self.cut,
                partial,
                emit,
            );
        }
        self.open = false;
        self.cut = false;
        self.time.clear();
        // Freed, not kept for the next split line: memory held by files with no pending
        // line would be outside any bound (issue 17). One allocation per split line.
        self.bytes = Vec::new();
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

/// How much of `bytes` to emit so as not to split a UTF-8 character at its end: all of it,
/// or up to 3 bytes less when they are the start of a valid character cut short. Bytes
/// that are not UTF-8 there do not hold anything back. Never 0 unless `bytes` is that
/// short start alone.
fn complete_utf8_prefix(bytes: &[u8]) -> usize {
    let len = bytes.len();
    let Some(start) = (1..=CUT_LOOKAHEAD)
        .filter_map(|back| len.checked_sub(back))
        .find(|&start| !is_continuation(bytes[start]))
    else {
        return len;
    };
    let needed = match bytes[start] {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return len,
    };
    let have = len - start;
    let valid_so_far = bytes[start + 1..].iter().all(|&b| is_continuation(b));
    if have < needed && valid_so_far {
        start
    } else {
        len
    }
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
