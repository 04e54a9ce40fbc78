//! Acknowledgement bookkeeping: which prefix of each file every sink has delivered.
//!
//! Pure. Chunks of a file are numbered 0, 1, 2, ... by the pipeline; each sink a chunk was
//! routed to ([`AckId::sinks`]) acknowledges it once, in any order across sinks and
//! batches. A file's committed offset moves to the end of chunk N only when chunks 0..=N
//! are acknowledged by every sink they went to: the contiguous prefix, so a crash never
//! skips an undelivered line. A chunk routed to no sink needs one acknowledgement, which
//! the pipeline gives at once.

use std::collections::HashMap;

use crate::sink::AckId;
#[cfg(test)]
use crate::sink::SinkSet;

/// What one acknowledgement changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// Every sink has now delivered this chunk: its memory can be given back.
    pub complete: bool,
    /// The file's contiguous delivered prefix grew to here.
    pub committed: Option<Committed>,
}

/// The end of a file's delivered prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The last chunk of the prefix.
    pub seq: u64,
    /// The offset just past it: where reading resumes.
    pub offset: u64,
}

/// Tracks acknowledgements of every file's chunks by the sinks each went to.
#[derive(Debug, Default)]
pub struct AckTracker {
    files: HashMap<u64, FileAcks>,
}

#[derive(Debug, Default)]
struct FileAcks {
    /// The lowest chunk not yet acknowledged by every sink.
    next: u64,
    /// Chunks at or after `next` with some acknowledgements: (acknowledgements still
    /// missing, end offset).
    partial: HashMap<u64, (usize, u64)>,
}

impl AckTracker {
    /// A tracker with nothing acknowledged yet.
    pub fn new() -> Self {
        AckTracker::default()
    }

    /// Records one sink's acknowledgement of `chunk`.
    pub fn ack(&mut self, chunk: AckId) -> Acked {
        let file = self.files.entry(chunk.file).or_default();
        if chunk.seq < file.next {
            return Acked {
                complete: false,
                committed: None,
            };
        }
        let entry = file
            .partial
            .entry(chunk.seq)
            .or_insert((chunk.sinks.len().max(1), chunk.end_offset));
        entry.0 = entry.0.saturating_sub(1);
        let complete = entry.0 == 0;
        let mut committed = None;
        while let Some(&(missing, end)) = file.partial.get(&file.next) {
            if missing > 0 {
                break;
            }
            file.partial.remove(&file.next);
            committed = Some(Committed {
                seq: file.next,
                offset: end,
            });
            file.next += 1;
        }
        Acked {
            complete,
            committed,
        }
    }

    /// Forgets a file whose chunks are all acknowledged.
    pub fn remove(&mut self, file: u64) {
        self.files.remove(&file);
    }

    /// Chunks acknowledged by some sinks but not all, or waiting on an earlier chunk.
    pub fn outstanding(&self) -> usize {
        self.files.values().map(|file| file.partial.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(file: u64, seq: u64) -> AckId {
        AckId {
            file,
            seq,
            end_offset: (seq + 1) * 100,
            bytes: 10,
            sinks: SinkSet::all(2),
        }
    }

    fn offset(acked: Acked) -> Option<u64> {
        acked.committed.map(|c| c.offset)
    }

    #[test]
    fn the_offset_waits_for_every_sink_and_every_earlier_chunk() {
        let mut tracker = AckTracker::new();
        assert_eq!(
            offset(tracker.ack(id(7, 1))),
            None,
            "sink A, chunk 1: chunk 0 still open"
        );
        assert_eq!(
            offset(tracker.ack(id(7, 0))),
            None,
            "sink A, chunk 0: sink B has it not"
        );
        let both = tracker.ack(id(7, 0));
        let first = Committed {
            seq: 0,
            offset: 100,
        };
        assert_eq!(
            both,
            Acked {
                complete: true,
                committed: Some(first)
            },
            "sink B, chunk 0"
        );
        assert_eq!(offset(tracker.ack(id(7, 1))), Some(200), "sink B, chunk 1");
        assert_eq!(
            offset(tracker.ack(id(8, 0))),
            None,
            "other files are separate"
        );
        assert_eq!(tracker.outstanding(), 1);
    }

    #[test]
    fn a_chunk_waits_only_for_the_sinks_it_went_to_and_one_routed_nowhere_needs_one_ack() {
        let mut tracker = AckTracker::new();
        let only_second = AckId {
            sinks: SinkSet::NONE.with(1),
            ..id(3, 0)
        };
        assert_eq!(offset(tracker.ack(only_second)), Some(100), "its one sink");
        let nowhere = AckId {
            sinks: SinkSet::NONE,
            ..id(3, 1)
        };
        let acked = tracker.ack(nowhere);
        assert!(acked.complete);
        assert_eq!(
            offset(acked),
            Some(200),
            "acknowledged by the pipeline at once"
        );
        assert_eq!(
            offset(tracker.ack(id(3, 2))),
            None,
            "both sinks: one is not enough"
        );
        assert_eq!(offset(tracker.ack(id(3, 2))), Some(300));
        assert_eq!(tracker.outstanding(), 0);
    }

    proptest! {
        #[test]
        fn any_order_commits_exactly_the_fully_acknowledged_prefix(
            sinks in 1usize..4,
            chunks in 1u64..20,
            order in Just(()).prop_perturb(|(), mut rng| rng.random::<u64>()),
        ) {
            let mut acks: Vec<AckId> = (0..chunks)
                .flat_map(|seq| std::iter::repeat_n(AckId { sinks: SinkSet::all(sinks), ..id(0, seq) }, sinks))
                .collect();
            // A deterministic shuffle from the generated seed.
            let mut state = order | 1;
            for i in (1..acks.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                acks.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let mut tracker = AckTracker::new();
            let mut counts = vec![0usize; chunks as usize];
            let mut committed = 0;
            for ack in acks {
                counts[ack.seq as usize] += 1;
                if let Some(offset) = offset(tracker.ack(ack)) {
                    prop_assert!(offset > committed);
                    committed = offset;
                }
                let prefix = counts.iter().take_while(|&&count| count == sinks).count() as u64;
                prop_assert_eq!(committed, prefix * 100);
            }
            prop_assert_eq!(committed, chunks * 100);
            prop_assert_eq!(tracker.outstanding(), 0);
        }
    }
}
