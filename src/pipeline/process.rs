//! The processing step: tail events in, rendered chunks out, one file's state at a time.
//!
//! Plain synchronous code on its own thread. Per file it keeps the detected format, the
//! reassembler of split lines and the [`FileContext`] worked out when the file was opened;
//! per chunk it decodes, reassembles, enriches and renders every line into one buffer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::decode::{self, DecodeError, Format, Message, Reassembler, Stream};
use crate::enrich::{Enricher, FileContext, Outcome};
use crate::kube::{LogFileInfo, Metadata, PodMeta};
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
    /// Records not shipped because their pod's annotations exclude them (counted as lines
    /// for files excluded whole, which are not decoded at all).
    pub excluded: u64,
    /// Records whose selected parser captured fields.
    pub parsed: u64,
    /// Records whose selected parser did not match: shipped with `log` only.
    pub unmatched: u64,
    /// Files whose pod asked for a topic that is not a legal name (they use `default_topic`).
    pub illegal_topics: u64,
    /// Files opened with their pod known to the metadata source.
    pub pods_known: u64,
    /// Files opened while their pod was unknown to the metadata source (`api` or `file`):
    /// their records carry what the file name says until the pod turns up.
    pub pods_unknown: u64,
    /// Of those, files whose pod turned up later: their next records carry it.
    pub pods_found_late: u64,
}

/// One open file's state.
#[derive(Debug)]
struct OpenFile {
    context: FileContext,
    /// A file of a pod not known when it was opened, and the metadata version then: its
    /// context is rebuilt once the pod turns up (at most once per version change, never
    /// per line).
    awaiting_pod: Option<(LogFileInfo, u64)>,
    format: Option<Format>,
    reassembler: Reassembler,
    /// Where the line each stream is still reassembling began (stdout, stderr): no offset
    /// may be acknowledged past it, or a crash would lose its first pieces.
    pending_start: [Option<u64>; 2],
    next_seq: u64,
    /// The offset just past what was processed.
    offset: u64,
    /// The size of the file's last rendered chunk, to size the next one's buffers.
    last_chunk: ChunkSize,
}

/// The most rendered bytes per input byte a chunk's buffer is sized for in advance.
const MAX_EXPANSION: usize = 8;

/// What one chunk took in and gave out: the next chunk of the same file is sized from it,
/// so its buffers are allocated once, about the right size, instead of doubling from
/// empty (each doubling a copy, and up to twice the memory needed).
#[derive(Debug, Clone, Copy)]
struct ChunkSize {
    input: usize,
    json: usize,
    records: usize,
}

impl ChunkSize {
    /// Before a file's first chunk: records are typically a few times their line, the pod's
    /// metadata being most of a record.
    const GUESS: ChunkSize = ChunkSize {
        input: 1,
        json: 4,
        records: 0,
    };

    /// Buffer capacities for a chunk of `input` bytes: the last chunk's ratio plus an eighth,
    /// at most [`MAX_EXPANSION`] times the input (a few short lines before a burst of long
    /// ones would otherwise ask for far too much; a buffer still grows when it must).
    fn capacities_for(self, input: usize) -> (usize, usize) {
        let scale = |n: usize| {
            let scaled = (n as u128 * input as u128 / self.input.max(1) as u128) as usize;
            scaled.saturating_add(scaled / 8)
        };
        let json = scale(self.json).min(input.saturating_mul(MAX_EXPANSION));
        // Every record comes from at least one byte of input.
        let records = scale(self.records).min(input);
        (json, records)
    }
}

impl OpenFile {
    /// Where reading must resume if everything processed so far is delivered.
    fn resume_offset(&self) -> u64 {
        self.pending_start
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(self.offset)
            .min(self.offset)
    }
}

/// Turns tail events into rendered chunks.
#[derive(Debug)]
pub struct Processor {
    enricher: Enricher,
    metadata: Metadata,
    max_line_bytes: usize,
    files: HashMap<u64, OpenFile>,
    stats: ProcessStats,
    /// Warnings already logged, by pod (namespace, name): once per pod is enough.
    warned: std::collections::HashSet<(String, String, String)>,
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
            warned: Default::default(),
        }
    }

    /// How many files are open now.
    pub fn open_files(&self) -> usize {
        self.files.len()
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
            TailEvent::Opened {
                file,
                found,
                offset,
                ..
            } => {
                self.open(file, &found, offset);
                None
            }
            TailEvent::Lines { file, lines } => self.lines(file, &lines),
            TailEvent::Closed { file, .. } => self.close(file),
        }
    }

    fn open(&mut self, file: u64, found: &FoundFile, offset: u64) {
        let info = LogFileInfo::from_paths(&found.path, &found.target);
        // Read the version before the lookup: a pod learnt meanwhile then moves it.
        let version = self.metadata.version();
        let pod = info.as_ref().and_then(|info| self.metadata.pod(info));
        let context = self.context(info.as_ref(), pod.as_deref());
        self.stats.files += 1;
        self.stats.illegal_topics += u64::from(context.illegal_topic);
        self.stats.pods_known += u64::from(pod.is_some());
        let awaiting_pod = match (info, &pod) {
            (Some(info), None) if !matches!(self.metadata, Metadata::Off) => {
                self.stats.pods_unknown += 1;
                Some((info, version))
            }
            _ => None,
        };
        let state = OpenFile {
            context,
            awaiting_pod,
            format: None,
            reassembler: Reassembler::new(self.max_line_bytes),
            pending_start: [None, None],
            next_seq: 0,
            offset,
            last_chunk: ChunkSize::GUESS,
        };
        self.files.insert(file, state);
    }

    /// The context of a file, its warnings logged once per pod.
    fn context(&mut self, info: Option<&LogFileInfo>, pod: Option<&PodMeta>) -> FileContext {
        let context = self.enricher.context(info, pod);
        if let Some(info) = info {
            for warning in &context.warnings {
                let key = (
                    info.namespace.clone(),
                    info.pod_name.clone(),
                    warning.clone(),
                );
                if self.warned.insert(key) {
                    tracing::warn!(namespace = %info.namespace, pod = %info.pod_name, "{warning}");
                }
            }
        }
        context
    }

    /// Rebuilds the context of a file opened without its pod, if the pod is known now.
    fn refresh(&mut self, file: u64) {
        let version = self.metadata.version();
        let Some(state) = self.files.get_mut(&file) else {
            return;
        };
        let Some((info, seen)) = &mut state.awaiting_pod else {
            return;
        };
        if *seen == version {
            return;
        }
        *seen = version;
        let Some(pod) = self.metadata.cached(info) else {
            return;
        };
        let Some((info, _)) = state.awaiting_pod.take() else {
            return;
        };
        let context = self.context(Some(&info), Some(&pod));
        self.stats.pods_found_late += 1;
        if let Some(state) = self.files.get_mut(&file) {
            state.context = context;
        }
    }

    fn lines(&mut self, file: u64, lines: &Lines) -> Option<Rendered> {
        self.refresh(file);
        let state = self.files.get_mut(&file)?;
        let now = now_rfc3339();
        self.stats.bytes += lines.data.len() as u64;
        if state.context.all_excluded() {
            let out = ChunkWriter::new(&self.enricher, &state.context, &now, (0, 0));
            // Nothing of this file ships: count its lines without decoding them; the empty
            // chunk still carries its offset to the checkpoint.
            let count = match lines.end_kind {
                LineEnd::Newline => memchr::memchr_iter(b'\n', &lines.data).count() as u64,
                LineEnd::Cut | LineEnd::EndOfFile => 1,
            };
            self.stats.lines += count;
            self.stats.excluded += count;
            state.offset = lines.end;
            return Some(out.finish(
                file,
                &mut state.next_seq,
                lines.end,
                lines.data.len() as u64,
            ));
        }
        let capacities = state.last_chunk.capacities_for(lines.data.len());
        let mut out = ChunkWriter::new(&self.enricher, &state.context, &now, capacities);
        let mut decoder = LineDecoder {
            format: &mut state.format,
            reassembler: &mut state.reassembler,
            pending_start: &mut state.pending_start,
        };
        let mut lines_read = 0;
        match lines.end_kind {
            LineEnd::Newline => {
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', &lines.data) {
                    let line = &lines.data[start..end];
                    let offset = lines.start + start as u64;
                    if start == 0 && lines.continued {
                        out.raw_piece(line, false);
                    } else {
                        decoder.decode(line, offset, false, &mut out);
                    }
                    start = end + 1;
                    lines_read += 1;
                }
            }
            LineEnd::Cut => {
                out.raw_piece(&lines.data, false);
                lines_read += 1;
            }
            LineEnd::EndOfFile if lines.continued => {
                out.raw_piece(&lines.data, true);
                lines_read += 1;
            }
            LineEnd::EndOfFile => {
                decoder.decode(&lines.data, lines.start, true, &mut out);
                lines_read += 1;
            }
        }
        self.stats.lines += lines_read;
        out.add_counts(&mut self.stats);
        state.offset = lines.end;
        let input_bytes = lines.data.len();
        state.last_chunk = ChunkSize {
            input: input_bytes,
            json: out.json.len(),
            records: out.ends.len(),
        };
        let resume_offset = state.resume_offset();
        Some(out.finish(file, &mut state.next_seq, resume_offset, input_bytes as u64))
    }

    fn close(&mut self, file: u64) -> Option<Rendered> {
        let mut state = self.files.remove(&file)?;
        let now = now_rfc3339();
        let mut out = ChunkWriter::new(&self.enricher, &state.context, &now, (0, 0));
        state
            .reassembler
            .flush(&mut |message| out.message(&message));
        out.add_counts(&mut self.stats);
        Some(out.finish(file, &mut state.next_seq, state.offset, 0))
    }
}

/// Decodes a file's lines, keeping its format, its reassembler and where pending lines
/// began.
struct LineDecoder<'a> {
    format: &'a mut Option<Format>,
    reassembler: &'a mut Reassembler,
    pending_start: &'a mut [Option<u64>; 2],
}

impl LineDecoder<'_> {
    /// Decodes the line at `offset` into `out`. `at_end`: the line is what followed the
    /// file's last newline, so its runtime never finished it; it is shipped flagged
    /// `partial`.
    fn decode(&mut self, line: &[u8], offset: u64, at_end: bool, out: &mut ChunkWriter<'_>) {
        if self.format.is_none() {
            *self.format = decode::detect(line);
        }
        let decoded = match *self.format {
            Some(format) => format.decode(line),
            None => Err(DecodeError::UnknownFormat),
        };
        let mut decoded = match decoded {
            Ok(decoded) => decoded,
            Err(error) => return out.undecodable(line, error, at_end),
        };
        decoded.partial |= at_end;
        let stream = usize::from(decoded.stream == Stream::Stderr);
        let pending = &mut self.pending_start[stream];
        if decoded.partial {
            pending.get_or_insert(offset);
        } else {
            *pending = None;
        }
        self.reassembler
            .push(decoded, &mut |message| out.message(&message));
        if at_end {
            self.reassembler.flush(&mut |message| out.message(&message));
            *self.pending_start = [None, None];
        }
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
    excluded: u64,
    parsed: u64,
    unmatched: u64,
}

impl<'a> ChunkWriter<'a> {
    /// A writer whose buffers start with `(json, records)` capacity.
    fn new(
        enricher: &'a Enricher,
        context: &'a FileContext,
        now: &'a str,
        (json, records): (usize, usize),
    ) -> Self {
        ChunkWriter {
            enricher,
            context,
            now,
            json: Vec::with_capacity(json),
            ends: Vec::with_capacity(records),
            errors: 0,
            excluded: 0,
            parsed: 0,
            unmatched: 0,
        }
    }

    /// Renders `message`, unless its stream is excluded: then it is only counted (and its
    /// offset still advances with its chunk).
    fn message(&mut self, message: &Message<'_>) {
        if self.context.stream(message.stream).excluded {
            self.excluded += 1;
            return;
        }
        match self.enricher.render(self.context, message, &mut self.json) {
            Outcome::Parsed => self.parsed += 1,
            Outcome::Unmatched => self.unmatched += 1,
            Outcome::Merged | Outcome::Plain => {}
        }
        self.end_record();
    }

    fn undecodable(&mut self, line: &[u8], error: DecodeError, partial: bool) {
        if self.context.all_excluded() {
            self.excluded += 1;
            return;
        }
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
        if self.context.all_excluded() {
            self.excluded += 1;
            return;
        }
        self.enricher
            .render_raw_piece(self.context, piece, self.now, partial, &mut self.json);
        self.errors += 1;
        self.end_record();
    }

    fn add_counts(&self, stats: &mut ProcessStats) {
        stats.records += self.ends.len() as u64;
        stats.decode_errors += self.errors;
        stats.excluded += self.excluded;
        stats.parsed += self.parsed;
        stats.unmatched += self.unmatched;
    }

    fn end_record(&mut self) {
        self.ends.push(self.json.len());
        self.json.push(b'\n');
    }

    fn finish(self, file: u64, next_seq: &mut u64, end_offset: u64, input_bytes: u64) -> Rendered {
        let bytes = input_bytes + self.json.len() as u64;
        let ack = AckId {
            file,
            seq: *next_seq,
            end_offset,
            bytes,
        };
        *next_seq += 1;
        Rendered {
            ack,
            route: Arc::clone(&self.context.route),
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
