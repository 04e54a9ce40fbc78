//! Where a rendered chunk goes: the `[[transforms]]` applied, then each sink's `match`.
//!
//! With no transform and no sink `match` configured, a chunk goes to every sink as it is,
//! untouched (one `Arc` shared by all). Otherwise a chunk goes to each sink whose match
//! holds for its pod, with only the records of the streams the match names; its
//! [`AckId::sinks`](crate::sink::AckId) says which sinks got it, so its offset waits for
//! those and no other. A chunk no sink takes (or with no records left) goes nowhere and is
//! acknowledged by the pipeline at once; its records count as unrouted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::route::matcher::{Match, StreamName};
use crate::sink::{Rendered, SinkSet};
use crate::transform::{Transform, Transformer, records};

/// Where one chunk goes.
#[derive(Debug)]
pub enum Destinations {
    /// To these sinks (by their place in the config's list), each with its share.
    Sinks(Vec<(usize, Arc<Rendered>)>),
    /// To none: acknowledge at once.
    Nowhere(Arc<Rendered>),
}

/// What routing counted since the last [`Router::take_counts`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteCounts {
    /// Records no sink took.
    pub unrouted: u64,
    /// Matches replaced by `redact`.
    pub redactions: u64,
    /// Records dropped by `throttle`, by namespace.
    pub throttled: HashMap<String, u64>,
}

/// The transforms and the sinks' matches of one run.
#[derive(Debug)]
pub struct Router {
    transformer: Transformer,
    /// Each sink's `match`, in the config's order; `None`: everything.
    matches: Vec<Option<Match>>,
    /// Some sink has a `match`.
    matched: bool,
    counts: RouteCounts,
}

/// A copy of some records of a chunk: their JSON and where each ends.
type Part = (Vec<u8>, Vec<usize>);

/// Which records of a chunk one sink takes.
enum Share {
    All,
    Some(Vec<usize>),
}

impl Destinations {
    /// The acknowledgement id every chunk here carries.
    pub fn ack(&self) -> crate::sink::AckId {
        match self {
            // `route` never returns an empty list.
            Destinations::Sinks(list) => list.first().map(|(_, c)| c.ack).unwrap_or_default(),
            Destinations::Nowhere(chunk) => chunk.ack,
        }
    }
}

impl Router {
    /// The router of `transforms` and of sinks with `matches` (one per sink).
    pub fn new(transforms: Vec<Transform>, matches: Vec<Option<Match>>) -> Self {
        Router {
            transformer: Transformer::new(transforms),
            matched: matches.iter().any(Option::is_some),
            matches,
            counts: RouteCounts::default(),
        }
    }

    /// What was counted since the last call.
    pub fn take_counts(&mut self) -> RouteCounts {
        std::mem::take(&mut self.counts)
    }

    /// Transforms `chunk` and picks its sinks, at `now` (for throttles).
    pub fn route(&mut self, mut chunk: Rendered, now: Instant) -> Destinations {
        let streams_needed = self.matches.iter().flatten().any(Match::selects_streams);
        let mut streams: Vec<Option<StreamName>> = if streams_needed {
            records(&chunk.json, &chunk.ends)
                .map(StreamName::of_record)
                .collect()
        } else {
            Vec::new()
        };
        if !self.transformer.is_empty()
            && let Some(out) = self
                .transformer
                .apply(&chunk.route, &chunk.json, &chunk.ends, now)
        {
            let input = chunk.ack.bytes.saturating_sub(chunk.json.len() as u64);
            self.counts.redactions += out.redactions;
            if out.throttled > 0 {
                *self
                    .counts
                    .throttled
                    .entry(chunk.route.namespace.clone())
                    .or_default() += out.throttled;
            }
            if streams_needed {
                streams = out.kept.iter().map(|&r| streams[r]).collect();
            }
            chunk.json = out.json;
            chunk.ends = out.ends;
            chunk.ack.bytes = input + chunk.json.len() as u64;
        }
        if self.matches.is_empty() {
            return Destinations::Nowhere(Arc::new(chunk));
        }
        if !self.matched {
            chunk.ack.sinks = SinkSet::all(self.matches.len());
            let chunk = Arc::new(chunk);
            let all = (0..self.matches.len()).map(|i| (i, Arc::clone(&chunk)));
            return Destinations::Sinks(all.collect());
        }
        self.matched_sinks(chunk, &streams)
    }

    /// Picks the sinks whose match holds, each with the records of its streams.
    fn matched_sinks(
        &mut self,
        mut chunk: Rendered,
        streams: &[Option<StreamName>],
    ) -> Destinations {
        let count = chunk.ends.len();
        let mut taken = vec![false; count];
        let mut shares = Vec::new();
        for (sink, matcher) in self.matches.iter().enumerate() {
            let share = match matcher {
                _ if count == 0 => continue,
                None => Share::All,
                Some(m) if !m.holds_for(&chunk.route) => continue,
                Some(m) if !m.selects_streams() => Share::All,
                Some(m) => {
                    let picked: Vec<usize> = (0..count)
                        .filter(|&r| m.admits_stream(streams[r]))
                        .collect();
                    match picked.len() {
                        0 => continue,
                        n if n == count => Share::All,
                        _ => Share::Some(picked),
                    }
                }
            };
            match &share {
                Share::All => taken.iter_mut().for_each(|t| *t = true),
                Share::Some(picked) => picked.iter().for_each(|&r| taken[r] = true),
            }
            chunk.ack.sinks = chunk.ack.sinks.with(sink);
            shares.push((sink, share));
        }
        self.counts.unrouted += taken.iter().filter(|&&t| !t).count() as u64;
        if shares.is_empty() {
            chunk.ack.sinks = SinkSet::NONE;
            return Destinations::Nowhere(Arc::new(chunk));
        }
        // A sink's share of some records is a copy: its bytes are held from the memory
        // budget with the chunk's.
        let parts: Vec<(usize, Option<Part>)> = shares
            .into_iter()
            .map(|(sink, share)| match share {
                Share::All => (sink, None),
                Share::Some(picked) => (sink, Some(part(&chunk, &picked))),
            })
            .collect();
        let copied: usize = parts
            .iter()
            .flat_map(|(_, p)| p)
            .map(|(json, _)| json.len())
            .sum();
        chunk.ack.bytes += copied as u64;
        let whole = Arc::new(chunk);
        let out = parts
            .into_iter()
            .map(|(sink, part)| match part {
                None => (sink, Arc::clone(&whole)),
                Some((json, ends)) => {
                    let part = Rendered {
                        ack: whole.ack,
                        route: Arc::clone(&whole.route),
                        json,
                        ends,
                    };
                    (sink, Arc::new(part))
                }
            })
            .collect();
        Destinations::Sinks(out)
    }
}

/// The records `picked` of `chunk`: their JSON and where each ends.
fn part(chunk: &Rendered, picked: &[usize]) -> Part {
    let all: Vec<&[u8]> = records(&chunk.json, &chunk.ends).collect();
    let mut json = Vec::with_capacity(chunk.json.len());
    let mut ends = Vec::with_capacity(picked.len());
    for &r in picked {
        json.extend_from_slice(all[r]);
        ends.push(json.len());
        json.push(b'\n');
    }
    (json, ends)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::RouteValues;
    use crate::sink::AckId;

    fn chunk(namespace: &str, records: &[&str]) -> Rendered {
        let mut json = Vec::new();
        let mut ends = Vec::new();
        for record in records {
            json.extend_from_slice(record.as_bytes());
            ends.push(json.len());
            json.push(b'\n');
        }
        Rendered {
            ack: AckId {
                file: 1,
                seq: 0,
                end_offset: 10,
                bytes: 100 + json.len() as u64,
                sinks: SinkSet::NONE,
            },
            route: Arc::new(RouteValues {
                topic: namespace.into(),
                namespace: namespace.to_owned(),
                ..RouteValues::default()
            }),
            json,
            ends,
        }
    }

    const OUT: &str = r#"{"time":"t","stream":"stdout","log":"a"}"#;
    const ERR: &str = r#"{"time":"t","stream":"stderr","log":"b"}"#;

    fn sinks_of(destinations: &Destinations) -> Vec<(usize, Vec<String>, SinkSet)> {
        let Destinations::Sinks(list) = destinations else {
            return Vec::new();
        };
        list.iter()
            .map(|(sink, chunk)| {
                let lines = chunk
                    .records()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .collect();
                (*sink, lines, chunk.ack.sinks)
            })
            .collect()
    }

    #[test]
    fn without_matches_every_sink_gets_the_same_chunk() {
        let mut router = Router::new(Vec::new(), vec![None, None]);
        let Destinations::Sinks(list) = router.route(chunk("a", &[OUT]), Instant::now()) else {
            panic!("routed nowhere");
        };
        assert_eq!(list.len(), 2);
        assert!(Arc::ptr_eq(&list[0].1, &list[1].1));
        assert_eq!(list[0].1.ack.sinks, SinkSet::all(2));
    }

    #[test]
    fn each_sink_gets_the_records_its_match_takes_and_the_ack_names_exactly_those_sinks() {
        let audit = Match {
            namespaces: vec!["audit".into()],
            ..Match::default()
        };
        let errors = Match {
            streams: vec![StreamName::Stderr],
            ..Match::default()
        };
        let mut router = Router::new(Vec::new(), vec![Some(audit), Some(errors), None]);
        let whole = chunk("shop", &[OUT, ERR]);
        let bytes = whole.ack.bytes;
        let shop = router.route(whole, Instant::now());
        assert_eq!(
            shop.ack().bytes,
            bytes + ERR.len() as u64 + 1,
            "the stderr share is a copy, held from the budget too"
        );
        let set = SinkSet::NONE.with(1).with(2);
        assert_eq!(
            sinks_of(&shop),
            [
                (1, vec![ERR.to_owned()], set),
                (2, vec![OUT.to_owned(), ERR.to_owned()], set)
            ]
        );
        let audit = router.route(chunk("audit", &[OUT]), Instant::now());
        let set = SinkSet::NONE.with(0).with(2);
        assert_eq!(
            sinks_of(&audit),
            [
                (0, vec![OUT.to_owned()], set),
                (2, vec![OUT.to_owned()], set)
            ]
        );
        assert_eq!(router.take_counts(), RouteCounts::default());
    }

    #[test]
    fn a_chunk_no_sink_takes_goes_nowhere_and_its_records_count_as_unrouted() {
        let audit = Match {
            namespaces: vec!["audit".into()],
            ..Match::default()
        };
        let errors = Match {
            streams: vec![StreamName::Stderr],
            ..Match::default()
        };
        let mut router = Router::new(Vec::new(), vec![Some(audit), Some(errors)]);
        let routed = router.route(chunk("shop", &[OUT, ERR, OUT]), Instant::now());
        assert_eq!(sinks_of(&routed).len(), 1);
        assert_eq!(router.take_counts().unrouted, 2);
        let Destinations::Nowhere(chunk) = router.route(chunk("shop", &[OUT]), Instant::now())
        else {
            panic!("a stdout record of shop matches no sink");
        };
        assert_eq!(chunk.ack.sinks, SinkSet::NONE);
        assert_eq!(router.take_counts().unrouted, 1);
    }
}
