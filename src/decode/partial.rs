//! Reassembly of split lines for one file: CRI `P`…`F` pieces and docker's 16 KiB entries.
//! TODO(helper): implement.

use std::borrow::Cow;

use super::{Decoded, Stream};

/// One container line, whole again (or a flagged piece of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The time of the line's first piece.
    pub time: Cow<'a, str>,
    /// The stream the line was written to.
    pub stream: Stream,
    /// The line's bytes, without a trailing newline.
    pub bytes: Cow<'a, [u8]>,
    /// This is one of several pieces of a line longer than `max_line_bytes`.
    pub truncated: bool,
    /// The runtime had not written the end of this line when it was flushed.
    pub partial: bool,
}

/// Joins partial lines back together, per stream, for one file.
#[derive(Debug)]
pub struct Reassembler {
    max_line_bytes: usize,
}

impl Reassembler {
    /// A reassembler that cuts lines longer than `max_line_bytes` into flagged pieces.
    pub fn new(max_line_bytes: usize) -> Self {
        Reassembler { max_line_bytes }
    }

    /// Takes the next decoded line of the file and emits every message it completes.
    pub fn push(&mut self, line: Decoded<'_>, emit: &mut dyn FnMut(Message<'_>)) {
        let _ = self.max_line_bytes;
        emit(Message {
            time: line.time,
            stream: line.stream,
            bytes: line.message,
            truncated: false,
            partial: line.partial,
        });
    }

    /// Emits every pending piece as a message flagged `partial`; used at the end of a
    /// `--once` run and when a pending line has waited too long.
    pub fn flush(&mut self, _emit: &mut dyn FnMut(Message<'_>)) {}

    /// True when no piece is waiting for the rest of its line.
    pub fn is_empty(&self) -> bool {
        true
    }
}
