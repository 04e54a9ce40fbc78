//! The checkpoint task: acknowledgements in, committed offsets out to SQLite.
//!
//! It learns of each file from the processor ([`FileNote`]) before any of the file's
//! chunks can be delivered, counts every sink's acknowledgements with an [`AckTracker`],
//! gives delivered chunks' memory back to the budget, and every `commit_interval` writes
//! the offsets that moved in one transaction. A commit that fails keeps its offsets in
//! memory and is tried again at the next interval: offsets only ever lag, never skip.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::acks::AckTracker;
use super::memory::MemoryBudget;
use crate::checkpoint::{Checkpoint, Store};
use crate::metrics::Metrics;
use crate::sink::Delivered;
use crate::tail::FileId;

/// What the processor tells the checkpoint task about a file.
#[derive(Debug)]
pub enum FileNote {
    /// A file is being read; `checkpoint.offset` is where reading started.
    Opened {
        /// The file's number in this run.
        file: u64,
        /// Its identity, path and starting offset.
        checkpoint: Checkpoint,
    },
    /// The file's last chunk is `last_seq`; once it is delivered, the file is done.
    Closed {
        /// The file's number.
        file: u64,
        /// Its last chunk.
        last_seq: u64,
        /// It is gone from its path: forget its checkpoint once delivered.
        gone: bool,
    },
}

#[derive(Debug)]
struct Tracked {
    checkpoint: Checkpoint,
    delivered_seq: Option<u64>,
    closed: Option<(u64, bool)>,
}

impl Tracked {
    /// Closed, and its last chunk delivered.
    fn is_done(&self) -> bool {
        let delivered = self.delivered_seq;
        self.closed
            .is_some_and(|(last_seq, _)| delivered.is_some_and(|seq| seq >= last_seq))
    }
}

/// Owns the store and the acknowledgement bookkeeping.
#[derive(Debug)]
pub struct Checkpointer {
    store: Store,
    tracker: AckTracker,
    budget: Arc<MemoryBudget>,
    commit_interval: Duration,
    files: HashMap<u64, Tracked>,
    /// Which number reads each identity now (a truncated file gets a new one).
    current: HashMap<FileId, u64>,
    dirty: HashSet<u64>,
    forget: Vec<FileId>,
    /// Delivered offsets by path, for the run summary.
    delivered: BTreeMap<PathBuf, u64>,
    /// Liveness ticks (each commit tick) and commit failures go here.
    metrics: Arc<Metrics>,
}

impl Checkpointer {
    /// A task committing to `store`; each chunk's acknowledgement id says which sinks
    /// must deliver it.
    pub fn new(
        store: Store,
        budget: Arc<MemoryBudget>,
        commit_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Checkpointer {
            metrics,
            store,
            tracker: AckTracker::new(),
            budget,
            commit_interval,
            files: HashMap::new(),
            current: HashMap::new(),
            dirty: HashSet::new(),
            forget: Vec::new(),
            delivered: BTreeMap::new(),
        }
    }

    /// Runs until `delivered` closes (every sink has finished), then commits a last time.
    /// Returns each file's delivered offset, by path.
    pub async fn run(
        mut self,
        mut notes: mpsc::UnboundedReceiver<FileNote>,
        mut delivered: mpsc::Receiver<Delivered>,
    ) -> BTreeMap<PathBuf, u64> {
        let mut tick = tokio::time::interval(self.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Biased: a file's note was sent before any of its chunks, so taking notes
            // first means no acknowledgement ever arrives for an unknown file.
            tokio::select! {
                biased;
                Some(note) = notes.recv() => self.note(note),
                chunks = delivered.recv() => match chunks {
                    Some(chunks) => self.acknowledge(chunks),
                    None => break,
                },
                _ = tick.tick() => {
                    self.metrics.liveness.tick();
                    self.commit();
                }
            }
        }
        while let Ok(note) = notes.try_recv() {
            self.note(note);
        }
        self.commit();
        self.delivered
    }

    fn note(&mut self, note: FileNote) {
        match note {
            FileNote::Opened { file, checkpoint } => {
                self.current.insert(checkpoint.id, file);
                let tracked = Tracked {
                    checkpoint,
                    delivered_seq: None,
                    closed: None,
                };
                self.files.insert(file, tracked);
                // Where reading starts is a checkpoint too: a file started at its end
                // (`read_from = "tail"`) must not be read from 0 after a restart, even if
                // nothing was delivered from it yet.
                self.dirty.insert(file);
            }
            FileNote::Closed {
                file,
                last_seq,
                gone,
            } => {
                if let Some(tracked) = self.files.get_mut(&file) {
                    tracked.closed = Some((last_seq, gone));
                }
                self.finish_if_done(file);
            }
        }
    }

    fn acknowledge(&mut self, chunks: Delivered) {
        for chunk in chunks {
            let acked = self.tracker.ack(chunk.ack);
            if acked.complete {
                self.budget.release(chunk.ack.bytes);
            }
            let Some(committed) = acked.committed else {
                continue;
            };
            let Some(tracked) = self.files.get_mut(&chunk.ack.file) else {
                continue;
            };
            tracked.delivered_seq = Some(committed.seq);
            if tracked.checkpoint.offset != committed.offset {
                tracked.checkpoint.offset = committed.offset;
                self.dirty.insert(chunk.ack.file);
            }
            self.delivered
                .insert(tracked.checkpoint.path.clone(), committed.offset);
            self.finish_if_done(chunk.ack.file);
        }
    }

    /// A closed file whose last chunk is delivered needs no more tracking; a gone one's
    /// checkpoint is forgotten (unless the identity is being read again under a new number).
    fn finish_if_done(&mut self, file: u64) {
        let Some(tracked) = self.files.get(&file) else {
            return;
        };
        let Some((_, gone)) = tracked.closed.filter(|_| tracked.is_done()) else {
            return;
        };
        let id = tracked.checkpoint.id;
        let still_current = self.current.get(&id) == Some(&file);
        if gone && still_current {
            self.forget.push(id);
            self.dirty.remove(&file);
            self.current.remove(&id);
            self.files.remove(&file);
        } else if !self.dirty.contains(&file) {
            self.files.remove(&file);
        }
        self.tracker.remove(file);
    }

    /// Writes every moved offset (of the number that reads each identity now) in one
    /// transaction. On failure the offsets stay pending for the next interval.
    ///
    /// A file cut by copytruncate is read again from its start under a new number while
    /// lines read before the cut may still be undelivered. Until they are delivered, the
    /// identity's row holds the old content's checkpoint (the oldest such number's): after
    /// a crash, the next start finds the copy by that checkpoint's fingerprint and reads
    /// them from it. The new number's offsets wait, still pending.
    fn commit(&mut self) {
        let mut behind: HashMap<FileId, u64> = HashMap::new();
        for (file, tracked) in &self.files {
            let id = tracked.checkpoint.id;
            if self.current.get(&id) != Some(file) && !tracked.is_done() {
                let oldest = behind.entry(id).or_insert(*file);
                *oldest = (*oldest).min(*file);
            }
        }
        let mut held = Vec::new();
        let mut rows = Vec::new();
        for file in &self.dirty {
            let Some(tracked) = self.files.get(file) else {
                continue;
            };
            let id = tracked.checkpoint.id;
            let current = self.current.get(&id) == Some(file);
            match behind.get(&id) {
                Some(oldest) if oldest == file => rows.push(tracked.checkpoint.clone()),
                Some(_) if current => held.push(*file),
                None if current => rows.push(tracked.checkpoint.clone()),
                _ => {}
            }
        }
        if rows.is_empty() && self.forget.is_empty() {
            self.dirty.clear();
            self.dirty.extend(held);
            return;
        }
        let result = tokio::task::block_in_place(|| {
            self.store.commit(&rows, SystemTime::now())?;
            self.store.forget(&self.forget)
        });
        match result {
            Ok(_) => {
                let dirty = std::mem::take(&mut self.dirty);
                self.dirty.extend(held.iter().copied());
                self.forget.clear();
                for file in dirty {
                    if self.files.get(&file).is_some_and(Tracked::is_done) {
                        self.files.remove(&file);
                    }
                }
            }
            Err(error) => {
                self.metrics.checkpoint_commit_failures.inc();
                tracing::warn!(%error, "committing offsets failed; will retry");
            }
        }
    }
}
