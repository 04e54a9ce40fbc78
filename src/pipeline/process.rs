//! The processing step: tail events in, rendered chunks out, one file's state at a time.
//!
//! Plain synchronous code on its own thread. Per file it keeps the detected format, the
//! reassembler of split lines and the [`FileContext`] worked out when the file was opened;
//! per chunk it decodes, reassembles, enriches and renders every line into one buffer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::decode::{self, DecodeError, Format, Message, Reassembler};
use crate::enrich::{Enricher, FileContext};
use crate::kube::{LogFileInfo, Metadata};
use crate::sink::{AckId, Rendered};
use crate::tail::{FoundFile, LineEnd, Lines, TailEvent};

/// Counts of what was processed, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Files opened.
    pub files: u64,
    /// Lines read (including undecodable ones and pieces of cut lines).
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Records rendered.
    pub records: u64,
    /// Lines that could not be decoded and were shipped raw.
    pub decode_errors: u64,
}

/// One open file's state.
#[derive(Debug)]
struct OpenFile {
    context: FileContext,
    format: Option<Format>,
    reassembler: Reassembler,
    next_seq: u64,
    offset: u64,
}

/// Turns tail events into rendered chunks.
#[derive(Debug)]
pub struct Processor {
    enricher: Enricher,
    metadata: Metadata,
    max_line_bytes: usize,
    files: HashMap<u64, OpenFile>,
    stats: ProcessStats,
}

impl Processor {
    /// A processor that enriches with `metadata` and cuts lines at `max_line_bytes`.
    pub fn new(enricher: Enricher, metadata: Metadata, max_line_bytes: usize) -> Self {
        Processor {
            enricher,
            metadata,
            max_line_bytes,
            files: HashMap::new(),
            stats: ProcessStats::default(),
        }
    }

    /// What has been processed so far.
    pub fn stats(&self) -> ProcessStats {
        self.stats
    }

    /// Handles one event; returns the chunk to deliver, if the event produced one. Every
    /// `Lines` and `Closed` event produces a chunk, even an empty one, so that each file's
    /// chunk sequence has no gaps and its offsets can be acknowledged.
    pub fn handle(&mut self, event: TailEvent) -> Option<Rendered> {
        match event {
            TailEvent::Opened { file, found } => {
                self.open(file, &found);
                None
            }
            TailEvent::Lines { file, lines } => self.lines(file, &lines),
            TailEvent::Closed { file } => self.close(file),
        }
    }

    fn open(&mut self, file: u64, found: &FoundFile) {
        let info = LogFileInfo::from_paths(&found.path, &found.target);
        let pod = info.as_ref().and_then(|info| self.metadata.pod(info));
        let context = self.enricher.context(info.as_ref(), pod.as_deref());
        self.stats.files += 1;
        let state = OpenFile {
            context,
            format: None,
            reassembler: Reassembler::new(self.max_line_bytes),
            next_seq: 0,
            offset: 0,
        };
        self.files.insert(file, state);
    }

    fn lines(&mut self, file: u64, lines: &Lines) -> Option<Rendered> {
        let OpenFile {
            context,
            format,
            reassembler,
            next_seq,
            offset,
        } = self.files.get_mut(&file)?;
        let now = now_rfc3339();
        let mut out = ChunkWriter::new(&self.enricher, context, &now);
        self.stats.bytes += lines.data.len() as u64;
        let before = (out.ends.len(), out.errors);
        match lines.end_kind {
            LineEnd::Newline => {
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', &lines.data) {
                    let line = &lines.data[start..end];
                    if start == 0 && lines.continued {
                        out.raw_piece(line, false);
                    } else {
                        decode_line(format, reassembler, line, false, &mut out);
                    }
                    start = end + 1;
                    self.stats.lines += 1;
                }
            }
            LineEnd::Cut => {
                out.raw_piece(&lines.data, false);
                self.stats.lines += 1;
            }
            LineEnd::EndOfFile if lines.continued => {
                out.raw_piece(&lines.data, true);
                self.stats.lines += 1;
            }
            LineEnd::EndOfFile => {
                decode_line(format, reassembler, &lines.data, true, &mut out);
                self.stats.lines += 1;
            }
        }
        self.stats.records += (out.ends.len() - before.0) as u64;
        self.stats.decode_errors += out.errors - before.1;
        // TODO(tail engine): a piece pending in the reassembler lies before `lines.end`;
        // before offsets are persisted, the acknowledged offset must stop at its start.
        *offset = lines.end;
        Some(out.finish(file, next_seq, *offset))
    }

    fn close(&mut self, file: u64) -> Option<Rendered> {
        let mut state = self.files.remove(&file)?;
        let now = now_rfc3339();
        let mut out = ChunkWriter::new(&self.enricher, &state.context, &now);
        state
            .reassembler
            .flush(&mut |message| out.message(&message));
        self.stats.records += out.ends.len() as u64;
        Some(out.finish(file, &mut state.next_seq, state.offset))
    }
}

/// Decodes one line into `out`. `at_end`: the line is what followed the file's last newline,
/// so its runtime never finished it; it is shipped flagged `partial`.
fn decode_line(
    format: &mut Option<Format>,
    reassembler: &mut Reassembler,
    line: &[u8],
    at_end: bool,
    out: &mut ChunkWriter<'_>,
) {
    if format.is_none() {
        *format = decode::detect(line);
    }
    let decoded = match *format {
        Some(format) => format.decode(line),
        None => Err(DecodeError::UnknownFormat),
    };
    match decoded {
        Ok(mut decoded) => {
            decoded.partial |= at_end;
            reassembler.push(decoded, &mut |message| out.message(&message));
            if at_end {
                reassembler.flush(&mut |message| out.message(&message));
            }
        }
        Err(error) => out.undecodable(line, error, at_end),
    }
}

/// Renders records of one file into one chunk's buffer.
struct ChunkWriter<'a> {
    enricher: &'a Enricher,
    context: &'a FileContext,
    now: &'a str,
    json: Vec<u8>,
    ends: Vec<usize>,
    errors: u64,
}

impl<'a> ChunkWriter<'a> {
    fn new(enricher: &'a Enricher, context: &'a FileContext, now: &'a str) -> Self {
        ChunkWriter {
            enricher,
            context,
            now,
            json: Vec::new(),
            ends: Vec::new(),
            errors: 0,
        }
    }

    fn message(&mut self, message: &Message<'_>) {
        self.enricher.render(self.context, message, &mut self.json);
        self.end_record();
    }

    fn undecodable(&mut self, line: &[u8], error: DecodeError, partial: bool) {
        self.enricher.render_undecodable(
            self.context,
            line,
            error,
            self.now,
            partial,
            &mut self.json,
        );
        self.errors += 1;
        self.end_record();
    }

    /// A piece of a line too long to hold whole (no newline within the reader's limit):
    /// shipped raw, flagged `truncated`, never decoded on its own.
    fn raw_piece(&mut self, piece: &[u8], partial: bool) {
        self.enricher
            .render_raw_piece(self.context, piece, self.now, partial, &mut self.json);
        self.errors += 1;
        self.end_record();
    }

    fn end_record(&mut self) {
        self.ends.push(self.json.len());
        self.json.push(b'\n');
    }

    fn finish(self, file: u64, next_seq: &mut u64, end_offset: u64) -> Rendered {
        let ack = AckId {
            file,
            seq: *next_seq,
            end_offset,
        };
        *next_seq += 1;
        Rendered {
            ack,
            topic: Arc::clone(&self.context.topic),
            json: self.json,
            ends: self.ends,
        }
    }
}

/// The current time in RFC 3339 with nanoseconds: the time of records whose line carries
/// none it could be read from.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}
