//! The one batcher: rendered chunks gathered until a batch is full by events, bytes or age.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::route::RouteValues;

/// Records rendered from one chunk of one file: the unit of acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Who to tell when this chunk is delivered; opaque to sinks.
    pub ack: AckId,
    /// What sinks' templates are filled from, the routing tag of every record here
    /// included (one file, one pod, so one set of values per chunk).
    pub route: Arc<RouteValues>,
    /// The records, each a JSON object followed by `\n`.
    pub json: Vec<u8>,
    /// Where each record's `\n` is in `json`: record `i` is `json[ends[i-1]+1 .. ends[i]]`.
    pub ends: Vec<usize>,
}

/// Identifies a chunk for acknowledgement: its file and its place in that file's sequence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct AckId {
    /// The file, as numbered by the pipeline.
    pub file: u64,
    /// The chunk's sequence number within its file: 0, 1, 2, ... with no gaps.
    pub seq: u64,
    /// The file offset where reading resumes once this chunk is delivered: the chunk's
    /// end, or the start of a line still being reassembled.
    pub end_offset: u64,
    /// Memory the chunk holds from the in-flight budget until every sink delivered it.
    pub bytes: u64,
    /// The sinks the chunk went to (by their place in the config's list): each of them
    /// acknowledges it once. Empty for a chunk routed to no sink, which the pipeline
    /// acknowledges itself, at once.
    pub sinks: SinkSet,
}

/// A set of sinks, by their place in the config's list (at most 64, which the config
/// checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SinkSet(u64);

impl SinkSet {
    /// No sink.
    pub const NONE: SinkSet = SinkSet(0);

    /// The first `count` sinks.
    pub fn all(count: usize) -> SinkSet {
        match count {
            64.. => SinkSet(u64::MAX),
            n => SinkSet((1u64 << n) - 1),
        }
    }

    /// This set and sink `index`.
    #[must_use]
    pub fn with(self, index: usize) -> SinkSet {
        SinkSet(self.0 | 1u64.checked_shl(index as u32).unwrap_or(0))
    }

    /// Whether sink `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        self.0 & 1u64.checked_shl(index as u32).unwrap_or(0) != 0
    }

    /// How many sinks are in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set holds no sink.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl Rendered {
    /// The records, each without its trailing newline.
    pub fn records(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|end| end + 1));
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.json[start..end])
    }
}

/// When a batch is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Close the batch once it holds this many records.
    pub max_events: usize,
    /// Close the batch once it holds this many bytes.
    pub max_bytes: usize,
    /// Close the batch once its first chunk has waited this long.
    pub timeout: Duration,
}

/// Chunks waiting to be sent together. A chunk is never split between batches, so the
/// limits are reached, not exact: a batch closes as soon as it meets either one.
#[derive(Debug, Default)]
pub struct Batch {
    chunks: Vec<Arc<Rendered>>,
    events: usize,
    bytes: usize,
    opened: Option<Instant>,
}

impl Batch {
    /// Adds a chunk; `now` starts the age clock of an empty batch.
    pub fn push(&mut self, chunk: Arc<Rendered>, now: Instant) {
        self.opened.get_or_insert(now);
        self.events += chunk.ends.len();
        self.bytes += chunk.json.len();
        self.chunks.push(chunk);
    }

    /// True when `limits` say it must be sent now (by size; age is [`Batch::deadline`]).
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.events >= limits.max_events || self.bytes >= limits.max_bytes
    }

    /// When the batch must be sent however small it is; `None` when empty.
    pub fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.opened.map(|opened| opened + limits.timeout)
    }

    /// When the oldest chunk arrived; `None` when empty.
    pub fn oldest(&self) -> Option<Instant> {
        self.opened
    }

    /// The chunks, in arrival order.
    pub fn chunks(&self) -> &[Arc<Rendered>] {
        &self.chunks
    }

    /// How many records the batch holds.
    pub fn events(&self) -> usize {
        self.events
    }

    /// True when no chunk is waiting.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Empties the batch, returning its chunks.
    pub fn take(&mut self) -> Vec<Arc<Rendered>> {
        let chunks = std::mem::take(&mut self.chunks);
        *self = Batch::default();
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(records: &[&str]) -> Arc<Rendered> {
        let mut json = Vec::new();
        let mut ends = Vec::new();
        for record in records {
            json.extend_from_slice(record.as_bytes());
            ends.push(json.len());
            json.push(b'\n');
        }
        Arc::new(Rendered {
            ack: AckId {
                file: 0,
                seq: 0,
                end_offset: 0,
                bytes: 0,
                sinks: SinkSet::all(1),
            },
            route: Arc::default(),
            json,
            ends,
        })
    }

    const LIMITS: BatchLimits = BatchLimits {
        max_events: 3,
        max_bytes: 100,
        timeout: Duration::from_secs(1),
    };

    #[test]
    fn records_are_cut_at_their_newlines() {
        let chunk = chunk(&["{\"a\":1}", "{}", "{\"b\":2}"]);
        let records: Vec<_> = chunk.records().collect();
        assert_eq!(records, [&b"{\"a\":1}"[..], b"{}", b"{\"b\":2}"]);
    }

    #[test]
    fn a_batch_is_full_by_events_or_bytes_and_due_by_age() {
        let now = Instant::now();
        let mut batch = Batch::default();
        assert_eq!(batch.deadline(&LIMITS), None);
        batch.push(chunk(&["{}", "{}"]), now);
        assert!(!batch.is_full(&LIMITS));
        assert_eq!(batch.deadline(&LIMITS), Some(now + LIMITS.timeout));
        batch.push(chunk(&["{}"]), now + Duration::from_millis(500));
        assert!(batch.is_full(&LIMITS), "three events");
        assert_eq!(
            batch.deadline(&LIMITS),
            Some(now + LIMITS.timeout),
            "age counts from the first"
        );
        assert_eq!(batch.take().len(), 2);
        assert!(batch.is_empty() && batch.events() == 0);

        batch.push(chunk(&[&"x".repeat(120)]), now);
        assert!(batch.is_full(&LIMITS), "over the byte limit");
    }
}
