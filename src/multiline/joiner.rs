//! The [`Joiner`]: one stream's lines in, events out, an event being the lines joined with
//! `"\n"`, with the time and stream of its first line.
//!
//! Holds at most one event, bounded by `max_lines` lines and `max_bytes` bytes: an event
//! that would grow past either is cut, at a line boundary, into pieces flagged `truncated`
//! (every piece, the last one included), in order, nothing dropped. Knows nothing of
//! files or clocks; the caller passes each line's start offset, and the joiner tells which
//! offset its held event began at ([`Joiner::held_start`]) so that no offset past it is
//! committed before the event is delivered whole.

use std::borrow::Cow;
use std::sync::Arc;

use super::rules::{Rule, Step};
use crate::decode::{Message, Stream};

/// Joins the lines of one stream of one file into events.
#[derive(Debug)]
pub struct Joiner {
    rule: Arc<Rule>,
    max_lines: usize,
    max_bytes: usize,
    /// The event being joined, if any.
    held: Option<Held>,
    /// The buffers of the last event emitted, kept for their capacity.
    spare: (String, Vec<u8>),
}

/// An event not emitted yet.
#[derive(Debug)]
struct Held {
    /// The offset of the event's first line: where reading must resume until the event is
    /// delivered whole (kept across cuts, so a crash re-reads the whole event).
    start: u64,
    state: u8,
    time: String,
    stream: Stream,
    bytes: Vec<u8>,
    lines: usize,
    /// A piece was already emitted, so every further piece is `truncated` too.
    cut: bool,
    /// A line of the event was itself a piece of an over-long line.
    truncated: bool,
    /// A line of the event was never finished by the runtime.
    partial: bool,
}

impl Joiner {
    /// A joiner following `rule`, cutting events of more than `max_lines` lines (at least
    /// 1) or `max_bytes` bytes (at least 1).
    pub fn new(rule: Arc<Rule>, max_lines: usize, max_bytes: usize) -> Self {
        Joiner {
            rule,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(1),
            held: None,
            spare: (String::new(), Vec::new()),
        }
    }

    /// Takes the next whole line of the stream, which begins at offset `start`, and emits
    /// every event it completes (the held one it ends, and itself when it begins nothing).
    pub fn push(&mut self, line: Message<'_>, start: u64, emit: &mut dyn FnMut(Message<'_>)) {
        let state = self.held.as_ref().map(|held| held.state);
        match self.rule.step(state, &line.bytes) {
            Step::Continue(to) => self.append(line, to, emit),
            Step::Start(to) => {
                self.flush(emit);
                self.begin(&line, start, to, false);
            }
            Step::Alone => {
                self.flush(emit);
                emit(line);
            }
        }
    }

    /// Emits the held event, if any, as it stands: its file had no new bytes for
    /// `multiline_flush`, or is closing. What comes later begins anew.
    pub fn flush(&mut self, emit: &mut dyn FnMut(Message<'_>)) {
        if let Some(held) = self.held.take() {
            self.emit_held(held, emit);
        }
    }

    /// Whether this joiner follows `rule` (the very same one).
    pub fn follows(&self, rule: &Arc<Rule>) -> bool {
        Arc::ptr_eq(&self.rule, rule)
    }

    /// The offset of the held event's first line, if an event is held.
    pub fn held_start(&self) -> Option<u64> {
        self.held.as_ref().map(|held| held.start)
    }

    /// The memory the held event takes (its buffers' capacity), 0 when none is held.
    pub fn held_bytes(&self) -> usize {
        self.held
            .as_ref()
            .map_or(0, |held| held.bytes.capacity() + held.time.capacity())
    }

    fn begin(&mut self, line: &Message<'_>, start: u64, state: u8, cut: bool) {
        let (mut time, mut bytes) = std::mem::take(&mut self.spare);
        time.clear();
        time.push_str(&line.time);
        bytes.clear();
        bytes.extend_from_slice(&line.bytes);
        self.held = Some(Held {
            start,
            state,
            time,
            stream: line.stream,
            bytes,
            lines: 1,
            cut,
            truncated: line.truncated,
            partial: line.partial,
        });
    }

    fn append(&mut self, line: Message<'_>, state: u8, emit: &mut dyn FnMut(Message<'_>)) {
        let Some(held) = self.held.as_mut() else {
            return emit(line);
        };
        let too_long = held.lines >= self.max_lines
            || held.bytes.len() + 1 + line.bytes.len() > self.max_bytes;
        if too_long {
            // Cut here: what is held goes out as a piece, and this line begins the next
            // piece of the same event (same start offset, same state).
            let start = held.start;
            held.cut = true;
            if let Some(piece) = self.held.take() {
                self.emit_held(piece, emit);
            }
            return self.begin(&line, start, state, true);
        }
        held.bytes.push(b'\n');
        held.bytes.extend_from_slice(&line.bytes);
        held.lines += 1;
        held.state = state;
        held.truncated |= line.truncated;
        held.partial |= line.partial;
    }

    fn emit_held(&mut self, held: Held, emit: &mut dyn FnMut(Message<'_>)) {
        emit(Message {
            time: Cow::Borrowed(&held.time),
            stream: held.stream,
            bytes: Cow::Borrowed(&held.bytes),
            truncated: held.cut || held.truncated,
            partial: held.partial,
        });
        self.spare = (held.time, held.bytes);
    }
}
