//! The processing step: tail events in, rendered chunks out, one file's state at a time.
//!
//! Plain synchronous code on its own thread. Per file it keeps the detected format, the
//! reassembler of split lines and the [`FileContext`] worked out from its pod and
//! namespace; per chunk it decodes, reassembles, enriches and renders every line into one
//! buffer. The context follows the cluster: before each chunk one load of the metadata's
//! version says whether anything changed since the file's context was worked out, and
//! only then is the pod looked up again (in the cache, never waiting) and the context
//! rebuilt if the pod or its namespace differ: an annotation added to a running pod
//! applies from the next chunk read after its watch event.
//!
//! The lines still being reassembled (CRI `P` pieces, docker 16 KiB splits) of all files
//! together hold at most a share of the memory budget: past it, the line pending longest
//! is shipped as it stands, flagged `truncated` ([`Processor::cut_oldest_pending`]; issue
//! 17: 500 files each waiting for its line's end took 218 MiB with a 16 MiB limit).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::joining::{FileJoiners, JoinSettings};

use crate::decode::{self, DecodeError, Decoded, Format, Message, Reassembler, Stream};
use crate::enrich::{Enricher, FileContext, Outcome};
use crate::kube::{LogFileInfo, Metadata, Missing, NamespaceMeta, PodMeta};
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
    /// Files whose context was worked out again because their pod or its namespace changed
    /// (an annotation or a label) while they were open.
    pub contexts_rebuilt: u64,
    /// Records that went out without their pod's metadata (the pod unknown to the source,
    /// the API down, a file name off the kubelet's naming); not counted with
    /// `metadata = "off"`, where no record has any.
    pub without_metadata: u64,
    /// Lines waiting for their end shipped early, flagged `truncated`, to keep the pending
    /// lines of all files within their share of the memory budget.
    pub pending_lines_cut: u64,
}

/// What a file's context was worked out from, to tell when it must be worked out again.
#[derive(Debug)]
struct Subject {
    /// What the file's path says; `None` off the kubelet's naming (nothing to follow).
    info: Option<LogFileInfo>,
    /// The metadata version when the pod and namespace were last looked up: while it
    /// stays the same, nothing is looked up (one atomic load per chunk).
    seen: u64,
    /// The pod, once known.
    pod: Option<Arc<PodMeta>>,
    /// The namespace, when namespaces are watched and it is known.
    namespace: Option<Arc<NamespaceMeta>>,
}

/// Whether `new` says something else than `old`: a different value, not merely another
/// copy of the same one (a pod's status changes often; its labels rarely).
fn differs<T: PartialEq>(old: Option<&Arc<T>>, new: Option<&Arc<T>>) -> bool {
    match (old, new) {
        (Some(old), Some(new)) => !Arc::ptr_eq(old, new) && **old != **new,
        (None, None) => false,
        _ => true,
    }
}

/// One open file's state.
#[derive(Debug)]
struct OpenFile {
    context: FileContext,
    subject: Subject,
    format: Option<Format>,
    reassembler: Reassembler,
    /// The CRI line the reader is cutting into pieces (no newline within its limit), from
    /// its first piece's prefix; `None` when there is none or its prefix could not be read.
    cut_line: Option<CutLine>,
    /// Where the line each stream is still reassembling began (stdout, stderr): no offset
    /// may be acknowledged past it, or a crash would lose its first pieces.
    pending_start: [Option<u64>; 2],
    next_seq: u64,
    /// The offset just past what was processed.
    offset: u64,
    /// The size of the file's last rendered chunk, to size the next one's buffers.
    last_chunk: ChunkSize,
    /// When (in the processor's count of events) the reassembler last went from holding
    /// nothing to holding a pending line: the smallest is the line pending longest.
    pending_since: Option<u64>,
    /// The multiline joiners its pod's annotations ask for (none for most files).
    joiners: FileJoiners,
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
    /// Where reading must resume if everything processed so far is delivered: never past
    /// the start of a line still being reassembled or of a multiline event still held.
    fn resume_offset(&self) -> u64 {
        self.pending_start
            .iter()
            .flatten()
            .copied()
            .chain(self.joiners.held_start())
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
    /// Records whose pod's topic choice was refused by `route.topic_overrides`, by
    /// namespace, since the last [`Processor::take_refused_topics`].
    refused_topics: HashMap<String, u64>,
    /// What every file's reassembler holds, in sum (kept equal to it).
    pending_bytes: usize,
    /// Events handled: the clock of `OpenFile::pending_since`.
    events: u64,
    /// `tail.multiline_*`.
    join: JoinSettings,
    /// The files whose joiners hold an event: the only ones the flush timer looks at.
    holding: HashSet<u64>,
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
            refused_topics: HashMap::new(),
            pending_bytes: 0,
            events: 0,
            join: JoinSettings::defaults(max_line_bytes),
            holding: HashSet::new(),
        }
    }

    /// The processor with `tail.multiline_flush` and `tail.multiline_max_lines` as given.
    pub fn with_joining(mut self, flush: std::time::Duration, max_lines: usize) -> Self {
        self.join.flush = flush;
        self.join.max_lines = max_lines;
        self
    }

    /// When the first held multiline event is due to be shipped as it stands (its file
    /// had no new bytes for `multiline_flush`); `None` when no event is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.holding
            .iter()
            .filter_map(|file| self.files.get(file)?.joiners.due(self.join.flush))
            .min()
    }

    /// Ships the held multiline events of every file that had no new bytes for
    /// `multiline_flush` by `now`, a chunk per file; its offset moves past them.
    pub fn flush_due(&mut self, now: Instant) -> Vec<Rendered> {
        let due: Vec<u64> = self
            .holding
            .iter()
            .copied()
            .filter(|file| {
                self.files
                    .get(file)
                    .and_then(|state| state.joiners.due(self.join.flush))
                    .is_some_and(|due| due <= now)
            })
            .collect();
        let mut chunks = Vec::new();
        for file in due {
            self.holding.remove(&file);
            let Some(state) = self.files.get_mut(&file) else {
                continue;
            };
            let lacks_metadata =
                state.subject.pod.is_none() && !matches!(self.metadata, Metadata::Off);
            let now = now_rfc3339();
            let mut out = ChunkWriter::new(&self.enricher, &state.context, &now, (0, 0));
            state.joiners.flush(&mut |message| out.message(&message));
            out.add_counts(&mut self.stats);
            if lacks_metadata {
                self.stats.without_metadata += out.ends.len() as u64;
            }
            count_refused(&mut self.refused_topics, &state.context, out.ends.len());
            let resume_offset = state.resume_offset();
            chunks.push(out.finish(file, &mut state.next_seq, resume_offset, 0));
        }
        chunks
    }

    /// Records whose topic choice was refused, by namespace, since the last call.
    pub fn take_refused_topics(&mut self) -> HashMap<String, u64> {
        std::mem::take(&mut self.refused_topics)
    }

    /// The memory lines still being reassembled hold, over all files.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// While the pending lines of all files hold more than `limit` bytes, ships the one
    /// pending longest as it stands, as pieces flagged `truncated` (its further pieces are
    /// flagged too); returns a chunk per file cut. Its offset still cannot pass the line's
    /// start until the line ends, so a crash repeats the pieces, never loses them.
    pub fn cut_oldest_pending(&mut self, limit: usize) -> Vec<Rendered> {
        let mut chunks = Vec::new();
        // Each file is cut at most once: a cut leaves it at most a character's bytes.
        for _ in 0..self.files.len() {
            if self.pending_bytes <= limit {
                break;
            }
            let oldest = self
                .files
                .iter()
                .filter(|(_, state)| state.reassembler.held_bytes() > 0)
                .filter_map(|(file, state)| Some((state.pending_since?, *file)))
                .min();
            let Some((_, file)) = oldest else { break };
            chunks.extend(self.cut_pending(file));
        }
        chunks
    }

    /// Ships what `file`'s pending lines hold as flagged pieces, in a chunk of its own.
    fn cut_pending(&mut self, file: u64) -> Option<Rendered> {
        let state = self.files.get_mut(&file)?;
        let now = now_rfc3339();
        let mut out = ChunkWriter::new(&self.enricher, &state.context, &now, (0, 0));
        let held = state.reassembler.held_bytes();
        let cut = state
            .reassembler
            .cut_pending(&mut |message| out.message(&message));
        self.stats.pending_lines_cut += cut as u64;
        self.pending_bytes = self.pending_bytes - held + state.reassembler.held_bytes();
        self.events += 1;
        state.pending_since = Some(self.events);
        out.add_counts(&mut self.stats);
        let resume_offset = state.resume_offset();
        Some(out.finish(file, &mut state.next_seq, resume_offset, 0))
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
        self.events += 1;
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
        // Read the version before the lookups: a change meanwhile then moves it.
        let version = self.metadata.version();
        let pod = match &info {
            Some(info) => self.metadata.pod(info),
            None => Err(Missing::NotKubeletPath),
        };
        let namespace = info
            .as_ref()
            .and_then(|info| self.metadata.namespace(&info.namespace));
        let context = self.context(info.as_ref(), pod.as_deref().ok(), namespace.as_deref());
        self.stats.files += 1;
        self.stats.illegal_topics += u64::from(context.illegal_topic);
        self.stats.pods_known += u64::from(pod.is_ok());
        match &pod {
            Err(Missing::Off) | Ok(_) => {}
            Err(missing) => {
                self.stats.pods_unknown += u64::from(info.is_some());
                tracing::info!(
                    path = %found.path.display(), reason = %missing,
                    "records of this file go out without their pod's metadata (what the file name says) until the pod is known"
                );
            }
        }
        let subject = Subject {
            info,
            seen: version,
            pod: pod.ok(),
            namespace,
        };
        let joiners = FileJoiners::new(&context, self.join);
        let state = OpenFile {
            joiners,
            context,
            subject,
            format: None,
            reassembler: Reassembler::new(self.max_line_bytes),
            cut_line: None,
            pending_start: [None, None],
            next_seq: 0,
            offset,
            last_chunk: ChunkSize::GUESS,
            pending_since: None,
        };
        self.files.insert(file, state);
    }

    /// The context of a file, its warnings logged once per pod.
    fn context(
        &mut self,
        info: Option<&LogFileInfo>,
        pod: Option<&PodMeta>,
        namespace: Option<&NamespaceMeta>,
    ) -> FileContext {
        let context = self.enricher.context_in(info, pod, namespace);
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

    /// Works the file's context out again if its pod or its namespace changed since it was
    /// last worked out: the pod turned up (a static pod's mirror pod, a pod the API did not
    /// know at first), or its labels or annotations changed. Costs one atomic load while
    /// nothing changed. A pod that left the cache (deleted past its grace, evicted) leaves
    /// the context as it was.
    fn follow(&mut self, file: u64) {
        let version = self.metadata.version();
        let Some(state) = self.files.get_mut(&file) else {
            return;
        };
        let subject = &mut state.subject;
        if subject.seen == version {
            return;
        }
        subject.seen = version;
        let Some(info) = &subject.info else {
            return;
        };
        let pod = self.metadata.cached(info);
        let namespace = self.metadata.namespace(&info.namespace);
        let pod_changed = pod.is_some() && differs(subject.pod.as_ref(), pod.as_ref());
        if !pod_changed && !differs(subject.namespace.as_ref(), namespace.as_ref()) {
            return;
        }
        let found_late = subject.pod.is_none() && pod.is_some();
        if pod.is_some() {
            subject.pod = pod;
        }
        subject.namespace = namespace;
        let (info, pod, namespace) = (info.clone(), subject.pod.clone(), subject.namespace.clone());
        let context = self.context(Some(&info), pod.as_deref(), namespace.as_deref());
        self.stats.contexts_rebuilt += 1;
        if found_late {
            self.stats.pods_found_late += 1;
            tracing::info!(namespace = %info.namespace, pod = %info.pod_name, container = %info.container_name,
                "the pod is known now: the file's next records carry its metadata");
        }
        if let Some(state) = self.files.get_mut(&file) {
            state.context = context;
        }
    }

    /// Whether records of `state` go out without pod metadata that the source could give.
    fn lacks_metadata(&self, state: &OpenFile) -> bool {
        state.subject.pod.is_none() && !matches!(self.metadata, Metadata::Off)
    }

    fn lines(&mut self, file: u64, lines: &Lines) -> Option<Rendered> {
        self.follow(file);
        let lacks_metadata = self.lacks_metadata(self.files.get(&file)?);
        let state = self.files.get_mut(&file)?;
        let now = now_rfc3339();
        self.stats.bytes += lines.data.len() as u64;
        if state.context.all_excluded() {
            let mut out = ChunkWriter::new(&self.enricher, &state.context, &now, (0, 0));
            // An event held before the file was excluded goes the way of its lines.
            state.joiners.flush(&mut |message| out.message(&message));
            self.holding.remove(&file);
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
        let held = state.reassembler.held_bytes();
        if !lines.data.is_empty() && !state.joiners.is_empty() {
            state.joiners.touched(Instant::now());
        }
        // The pod's multiline annotation may have changed with its context.
        state
            .joiners
            .follow(&state.context, self.join, &mut |message| {
                out.message(&message)
            });
        let mut decoder = LineDecoder {
            format: &mut state.format,
            reassembler: &mut state.reassembler,
            cut_line: &mut state.cut_line,
            pending_start: &mut state.pending_start,
            joiners: &mut state.joiners,
        };
        let mut lines_read = 0;
        match lines.end_kind {
            LineEnd::Newline => {
                let mut start = 0;
                for end in memchr::memchr_iter(b'\n', &lines.data) {
                    let line = &lines.data[start..end];
                    let offset = lines.start + start as u64;
                    if start == 0 && lines.continued {
                        decoder.cut_piece(line, true, false, &mut out);
                    } else {
                        decoder.decode(line, offset, false, &mut out);
                    }
                    start = end + 1;
                    lines_read += 1;
                }
            }
            LineEnd::Cut if lines.continued => {
                decoder.cut_piece(&lines.data, false, false, &mut out);
                lines_read += 1;
            }
            LineEnd::Cut => {
                decoder.cut_start(&lines.data, lines.start, &mut out);
                lines_read += 1;
            }
            LineEnd::EndOfFile if lines.continued => {
                decoder.cut_piece(&lines.data, true, true, &mut out);
                lines_read += 1;
            }
            LineEnd::EndOfFile => {
                decoder.decode(&lines.data, lines.start, true, &mut out);
                lines_read += 1;
            }
        }
        self.stats.lines += lines_read;
        out.add_counts(&mut self.stats);
        if lacks_metadata {
            self.stats.without_metadata += out.ends.len() as u64;
        }
        count_refused(&mut self.refused_topics, &state.context, out.ends.len());
        let now_held = state.reassembler.held_bytes();
        self.pending_bytes = self.pending_bytes - held + now_held;
        state.pending_since = match (state.pending_since, state.reassembler.is_empty()) {
            (_, true) => None,
            (None, false) => Some(self.events),
            (since, false) => since,
        };
        state.offset = lines.end;
        if state.joiners.held_start().is_some() {
            self.holding.insert(file);
        } else if !state.joiners.is_empty() {
            self.holding.remove(&file);
        }
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
        let lacks_metadata = self.lacks_metadata(&state);
        self.pending_bytes -= state.reassembler.held_bytes();
        let now = now_rfc3339();
        let mut out = ChunkWriter::new(&self.enricher, &state.context, &now, (0, 0));
        self.holding.remove(&file);
        let starts = state.pending_start;
        let joiners = &mut state.joiners;
        let offset = state.offset;
        state.reassembler.flush(&mut |message| {
            let start = starts[stream_index(message.stream)].unwrap_or(offset);
            joiners.route(message, start, &mut |message| out.message(&message));
        });
        joiners.flush(&mut |message| out.message(&message));
        out.add_counts(&mut self.stats);
        if lacks_metadata {
            self.stats.without_metadata += out.ends.len() as u64;
        }
        count_refused(&mut self.refused_topics, &state.context, out.ends.len());
        Some(out.finish(file, &mut state.next_seq, state.offset, 0))
    }
}

/// Adds `records` of a file whose topic choice was refused to its namespace's count.
fn count_refused(counts: &mut HashMap<String, u64>, context: &FileContext, records: usize) {
    if !context.topic_refused || records == 0 {
        return;
    }
    let namespace = &context.route.namespace;
    match counts.get_mut(namespace) {
        Some(count) => *count += records as u64,
        None => {
            counts.insert(namespace.clone(), records as u64);
        }
    }
}

/// A CRI line the reader cuts into pieces because no newline came within its limit: what
/// its first piece's prefix said, for the pieces after it, which have none.
#[derive(Debug)]
struct CutLine {
    /// The runtime's time, in the record's form.
    time: String,
    stream: Stream,
    /// The line's tag was `F`: its last piece ends the container's line.
    ends_line: bool,
}

/// Decodes a file's lines, keeping its format, its reassembler, the line being cut, and
/// where pending lines began, and hands whole lines to its multiline joiners.
struct LineDecoder<'a> {
    format: &'a mut Option<Format>,
    reassembler: &'a mut Reassembler,
    cut_line: &'a mut Option<CutLine>,
    pending_start: &'a mut [Option<u64>; 2],
    joiners: &'a mut FileJoiners,
}

/// The index of `stream` in per-stream arrays (stdout, stderr).
fn stream_index(stream: Stream) -> usize {
    usize::from(stream == Stream::Stderr)
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
        let stream = stream_index(decoded.stream);
        // Where each stream's next message began: its pending line's first piece, or this
        // line for the stream of this line.
        let mut starts = *self.pending_start;
        starts[stream].get_or_insert(offset);
        let pending = &mut self.pending_start[stream];
        if decoded.partial {
            pending.get_or_insert(offset);
        } else {
            *pending = None;
        }
        let joiners = &mut *self.joiners;
        let mut route = |message: Message<'_>| {
            let start = starts[stream_index(message.stream)].unwrap_or(offset);
            joiners.route(message, start, &mut |message| out.message(&message));
        };
        self.reassembler.push(decoded, &mut route);
        if at_end {
            self.reassembler.flush(&mut route);
            *self.pending_start = [None, None];
        }
    }

    /// The first piece of a line the reader cut (no newline within its limit), at `offset`.
    /// A CRI piece is decoded as far as it goes: its message starts a line of its stream in
    /// the reassembler, which ships it in `max_line_bytes` pieces flagged `truncated`, with
    /// its stream and time. Anything else (a docker entry cannot be decoded without its
    /// end) is shipped raw in pieces of at most `max_line_bytes`.
    fn cut_start(&mut self, piece: &[u8], offset: u64, out: &mut ChunkWriter<'_>) {
        if self.format.is_none() {
            *self.format = decode::detect(piece);
        }
        let decoded = match *self.format {
            Some(Format::Cri) => Format::Cri.decode(piece).ok(),
            Some(Format::Docker) | None => None,
        };
        let Some(decoded) = decoded else {
            *self.cut_line = None;
            return out.raw_pieces(piece, false, self.reassembler.max_line_bytes());
        };
        *self.cut_line = Some(CutLine {
            time: decoded.time.to_string(),
            stream: decoded.stream,
            ends_line: !decoded.partial,
        });
        self.pending_start[usize::from(decoded.stream == Stream::Stderr)].get_or_insert(offset);
        let decoded = Decoded {
            partial: true,
            ..decoded
        };
        self.reassembler
            .push(decoded, &mut |message| out.message(&message));
    }

    /// A later piece of a line the reader cut: `last` when it is the line's end (a newline
    /// followed it), `at_end` when the file ended before the line did.
    fn cut_piece(&mut self, piece: &[u8], last: bool, at_end: bool, out: &mut ChunkWriter<'_>) {
        let Some(cut) = self.cut_line.as_ref() else {
            return out.raw_pieces(piece, at_end, self.reassembler.max_line_bytes());
        };
        let stream = cut.stream;
        let partial = !(last && cut.ends_line) || at_end;
        let decoded = Decoded {
            time: Cow::Borrowed(cut.time.as_str()),
            stream,
            message: Cow::Borrowed(piece),
            partial,
        };
        self.reassembler
            .push(decoded, &mut |message| out.message(&message));
        if last {
            *self.cut_line = None;
        }
        if at_end {
            self.reassembler.flush(&mut |message| out.message(&message));
            *self.pending_start = [None, None];
        } else if !partial {
            self.pending_start[usize::from(stream == Stream::Stderr)] = None;
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

    /// A piece of a line too long to hold whole (no newline within the reader's limit)
    /// whose runtime framing could not be read: shipped raw in records of at most `max`
    /// bytes (cut between UTF-8 characters where it can be), flagged `truncated`. `partial`
    /// flags the last one.
    fn raw_pieces(&mut self, piece: &[u8], partial: bool, max: usize) {
        if self.context.all_excluded() {
            self.excluded += 1;
            return;
        }
        let mut rest = piece;
        loop {
            let cut = utf8_cut(rest, max);
            let (head, tail) = rest.split_at(cut);
            let last = tail.is_empty();
            self.enricher.render_raw_piece(
                self.context,
                head,
                self.now,
                partial && last,
                &mut self.json,
            );
            self.errors += 1;
            self.end_record();
            if last {
                return;
            }
            rest = tail;
        }
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
            // The pipeline routes the chunk and says which sinks get it.
            sinks: crate::sink::SinkSet::NONE,
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

/// Where to cut `bytes` for a piece of at most `max` bytes (at least 1): before the UTF-8
/// character that `max` would split, unless that leaves nothing.
fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let max = max.max(1);
    if bytes.len() <= max {
        return bytes.len();
    }
    let starts_char = |at: usize| bytes.get(at).is_some_and(|&b| b & 0xc0 != 0x80);
    (max.saturating_sub(3)..=max)
        .rev()
        .find(|&at| at > 0 && starts_char(at))
        .unwrap_or(max)
}

/// The current time in RFC 3339 with nanoseconds: the time of records whose line carries
/// none it could be read from.
fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}
