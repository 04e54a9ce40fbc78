//! Kubernetes events, shipped by the one shiplog of the DaemonSet that holds a Lease.
//!
//! ```text
//! elector task ─(leading? + resume points)→ shipper task ─(Arc<Rendered>)→ sink task × N
//!      ↑ resume points of delivered events ←─────────────┘ ←─(delivered chunks)─┘
//! ```
//!
//! The elector renews the Lease every `retry_period` and writes into it where each event
//! stream resumes: after the last event every sink delivered. The shipper, while this
//! process leads, watches events from there and ships each as a record through its own
//! instances of the configured sinks. A new leader resumes where the last one's delivered
//! events end; what a dead leader delivered after its last renewal is shipped again (at
//! most `retry_period` of events). The sinks' delivery rules are the log pipeline's:
//! nothing counts before every sink acknowledged it.

mod campaign;
pub mod lease;
pub mod record;
mod scope;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::stream::SelectAll;
use futures::{StreamExt, stream};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::WatchEvent;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use self::campaign::{Campaign, Lead};
use self::lease::{Elector, ResumePoints};
use self::scope::{Scope, is_gone, until_error};
use crate::config::{Config, ConfigError, EventsConfig};
use crate::metrics::Metrics;
use crate::pipeline::AckTracker;
use crate::route::RouteValues;
use crate::sink::task::{SinkFailed, SinkStats, SinkTask};
use crate::sink::{AckId, BatchLimits, Delivered, Rendered, Sink, SinkSet};

/// Event chunks (one event each) sent and not yet delivered by every sink. Above it the
/// shipper stops reading; the channels hold this many, so sending never waits.
const MAX_IN_FLIGHT: usize = 1024;

/// The running events side: stop it to release the Lease and drain.
#[derive(Debug)]
pub struct EventsHandle {
    stop: watch::Sender<bool>,
    shipper: JoinHandle<()>,
    elector: JoinHandle<()>,
    sinks: Vec<JoinHandle<Result<SinkStats, SinkFailed>>>,
}

impl EventsHandle {
    /// Stops reading events, waits for what was sent to be delivered, writes the resume
    /// points and gives the Lease up.
    pub async fn stop(self) -> Result<(), SinkFailed> {
        self.stop.send_replace(true);
        drop(self.shipper.await);
        for sink in self.sinks {
            if let Ok(result) = sink.await {
                result?;
            }
        }
        drop(self.elector.await);
        Ok(())
    }

    /// Handles that end every task at once, for a drain that ran out of time: the Lease is
    /// then not given up, and another pod takes over once it expires.
    pub fn abort_handles(&self) -> Vec<tokio::task::AbortHandle> {
        let mut handles = vec![self.shipper.abort_handle(), self.elector.abort_handle()];
        handles.extend(self.sinks.iter().map(JoinHandle::abort_handle));
        handles
    }
}

/// Starts standing for election, and shipping events while elected.
pub async fn start(
    config: &Config,
    client: Client,
    metrics: &Arc<Metrics>,
) -> Result<EventsHandle, ConfigError> {
    let events = &config.events;
    let limits = BatchLimits {
        max_events: config.pipeline.batch_max_events,
        max_bytes: usize::try_from(config.pipeline.batch_max_bytes).unwrap_or(usize::MAX),
        timeout: config.pipeline.batch_timeout,
    };
    let (delivered_tx, delivered) = mpsc::channel(MAX_IN_FLIGHT);
    let mut inputs = Vec::new();
    let mut sinks = Vec::new();
    for sink in &config.sinks {
        let opened = Sink::open(sink, metrics)
            .map_err(|e| ConfigError::new(&config.source, format!("sinks.{}", e.name), e.reason))?;
        let (tx, input) = mpsc::channel(MAX_IN_FLIGHT);
        inputs.push(tx);
        let task = SinkTask {
            name: sink.name.clone(),
            sink: opened,
            limits,
            input,
            delivered: delivered_tx.clone(),
            metrics: Arc::clone(metrics),
        };
        sinks.push(tokio::spawn(task.run()));
    }
    drop(delivered_tx);

    let (stop, stopped) = watch::channel(false);
    let (leading_tx, leading) = watch::channel(None);
    let resume = Arc::new(Mutex::new(ResumePoints::new()));
    let (shipped_tx, shipped) = watch::channel(false);
    let leases = Api::<Lease>::namespaced(client.clone(), &events.lease_namespace);
    let elector = Elector::new(leases, &events.lease_name, &events.identity, events.lease);
    let campaign = Campaign {
        elector,
        retry_period: events.lease.retry_period,
        renew_deadline: events.lease.renew_deadline,
        resume: Arc::clone(&resume),
        leading: leading_tx,
        terms: 0,
        metrics: Arc::clone(metrics),
    };
    let elector = tokio::spawn(campaign.run(shipped));
    let shipper = Shipper {
        client,
        config: events.clone(),
        inputs,
        delivered,
        tracker: AckTracker::new(),
        resume,
        metrics: Arc::clone(metrics),
    };
    let shipper = tokio::spawn(async move {
        shipper.run(leading, stopped).await;
        shipped_tx.send_replace(true);
    });
    Ok(EventsHandle {
        stop,
        shipper,
        elector,
        sinks,
    })
}

/// A watch item, tagged with its scope and the scope's generation; `None` when that
/// watch ended.
type Tagged = (usize, u64, Option<Result<WatchEvent<Event>, kube::Error>>);

/// The shipper's loop and its connections.
struct Shipper {
    client: Client,
    config: EventsConfig,
    inputs: Vec<mpsc::Sender<Arc<Rendered>>>,
    delivered: mpsc::Receiver<Delivered>,
    tracker: AckTracker,
    resume: Arc<Mutex<ResumePoints>>,
    metrics: Arc<Metrics>,
}

impl Shipper {
    async fn run(
        mut self,
        mut leading: watch::Receiver<Option<Lead>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut last = 0;
        loop {
            let start = tokio::select! {
                start = term_starts(&mut leading, last) => start,
                () = stopped(&mut stop) => None,
            };
            let Some(lead) = start else { break };
            last = lead.term;
            let mut term = Term::new(&self, &lead);
            let stopped = self.lead(&mut term, &mut leading, &mut stop).await;
            if stopped {
                self.drain(&mut term).await;
                break;
            }
        }
    }

    /// Ships events until the lease is lost (false) or the run stops (true).
    async fn lead(
        &mut self,
        term: &mut Term,
        leading: &mut watch::Receiver<Option<Lead>>,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        for index in 0..term.scopes.len() {
            self.open(term, index).await;
        }
        let mut retry = tokio::time::interval(self.config.lease.retry_period);
        loop {
            let room = term.in_flight < MAX_IN_FLIGHT;
            tokio::select! {
                () = stopped(stop) => return true,
                () = term_ends(leading, term.number) => {
                    tracing::info!("no longer leading: events stop here");
                    return false;
                }
                Some(chunks) = self.delivered.recv() => self.acknowledge(term, &chunks),
                Some((index, generation, item)) = term.watches.next(), if room => {
                    if generation == term.generations[index] {
                        self.handle(term, index, item).await;
                    }
                }
                _ = retry.tick(), if !term.closed.is_empty() => {
                    for index in std::mem::take(&mut term.closed) {
                        self.open(term, index).await;
                    }
                }
            }
        }
    }

    /// Waits for what was sent to be delivered (the pipeline's shutdown timeout bounds it).
    async fn drain(&mut self, term: &mut Term) {
        while term.in_flight > 0 {
            match self.delivered.recv().await {
                Some(chunks) => self.acknowledge(term, &chunks),
                None => break,
            }
        }
        self.inputs.clear();
    }

    /// (Re)starts scope `index`: a watch from where it stands, or a list first.
    async fn open(&mut self, term: &mut Term, index: usize) {
        term.generations[index] += 1;
        let generation = term.generations[index];
        let watch = match term.scopes[index].watch().await {
            Some(watch) => watch,
            None => match term.scopes[index].relist().await {
                Ok((events, version)) => {
                    for event in &events {
                        self.ship(term, index, event, true).await;
                    }
                    if let Some(version) = version {
                        term.scopes[index].reached(version);
                    }
                    let watch = term.scopes[index].watch().await;
                    watch.unwrap_or_else(|| Ok(stream::empty().boxed()))
                }
                Err(error) => Err(error),
            },
        };
        match watch {
            Ok(watch) => {
                let tagged = until_error(watch)
                    .map(move |item| (index, generation, Some(item)))
                    .chain(stream::once(async move { (index, generation, None) }));
                term.watches.push(tagged.boxed());
            }
            Err(error) => {
                let scope = &term.scopes[index].name;
                tracing::warn!(%error, scope, "cannot watch events; trying again");
                term.closed.push(index);
            }
        }
    }

    async fn handle(
        &mut self,
        term: &mut Term,
        index: usize,
        item: Option<Result<WatchEvent<Event>, kube::Error>>,
    ) {
        match item {
            Some(Ok(WatchEvent::Added(event) | WatchEvent::Modified(event))) => {
                self.ship(term, index, &event, false).await;
            }
            Some(Ok(WatchEvent::Deleted(event))) => {
                if let Some(version) = event.metadata.resource_version {
                    term.scopes[index].reached(version);
                }
            }
            Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                term.scopes[index].reached(bookmark.metadata.resource_version);
            }
            Some(Ok(WatchEvent::Error(status))) if is_gone(&status) => {
                tracing::info!(scope = %term.scopes[index].name, "events watch expired (410 Gone); relisting");
                term.scopes[index].forget_position();
                term.closed.push(index);
            }
            Some(Ok(WatchEvent::Error(status))) => {
                tracing::warn!(message = %status.message, "events watch failed; watching again");
                term.closed.push(index);
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "events watch failed; watching again");
                term.closed.push(index);
            }
            None => term.closed.push(index),
        }
    }

    /// Sends `event` to every sink as one chunk; `listed` when it came from a list, not a
    /// watch. With `MAX_IN_FLIGHT` chunks undelivered it first waits for deliveries (a
    /// long list), so the channels never fill.
    async fn ship(&mut self, term: &mut Term, index: usize, event: &Event, listed: bool) {
        while term.in_flight >= MAX_IN_FLIGHT {
            match self.delivered.recv().await {
                Some(chunks) => self.acknowledge(term, &chunks),
                None => break,
            }
        }
        let mut json = record::render(event, &self.config.topic, &self.config.tags);
        let end = json.len();
        json.push(b'\n');
        let scope = &mut term.scopes[index];
        let seq = term.next_seq[index];
        term.next_seq[index] += 1;
        scope.sent(seq, event, listed);
        let route = RouteValues {
            topic: Arc::from(self.config.topic.as_str()),
            namespace: event.metadata.namespace.clone().unwrap_or_default(),
            pod: String::new(),
            container: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        };
        let chunk = Arc::new(Rendered {
            ack: AckId {
                file: term.file(index),
                seq,
                end_offset: seq,
                bytes: json.len() as u64,
                sinks: SinkSet::all(self.inputs.len()),
            },
            route: Arc::new(route),
            json,
            ends: vec![end],
        });
        term.in_flight += 1;
        self.metrics.events_shipped.inc();
        for input in &self.inputs {
            // A closed input is a sink that stopped for good; its task says why.
            drop(input.send(Arc::clone(&chunk)).await);
        }
    }

    fn acknowledge(&mut self, term: &mut Term, chunks: &Delivered) {
        for chunk in chunks {
            let acked = self.tracker.ack(chunk.ack);
            let Some(index) = term.index_of(chunk.ack.file) else {
                continue; // a chunk of an earlier term
            };
            if acked.complete {
                term.in_flight = term.in_flight.saturating_sub(1);
            }
            let Some(committed) = acked.committed else {
                continue;
            };
            let scope = &mut term.scopes[index];
            if scope.delivered(committed.seq) {
                self.resume
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(scope.name.clone(), scope.resume.clone());
            }
        }
    }
}

/// Waits until `flag` is set (or its sender is gone).
pub(super) async fn stopped(flag: &mut watch::Receiver<bool>) {
    drop(flag.wait_for(|set| *set).await);
}

/// Waits for a term after term `last`; `None` when the elector is gone.
async fn term_starts(leading: &mut watch::Receiver<Option<Lead>>, last: u64) -> Option<Lead> {
    let starts = |lead: &Option<Lead>| lead.as_ref().is_some_and(|lead| lead.term > last);
    leading
        .wait_for(starts)
        .await
        .ok()
        .and_then(|lead| lead.clone())
}

/// Waits until term `term` ends: leadership lost, or a new term (or the elector gone).
async fn term_ends(leading: &mut watch::Receiver<Option<Lead>>, term: u64) {
    let ended = |lead: &Option<Lead>| lead.as_ref().is_none_or(|lead| lead.term != term);
    drop(leading.wait_for(ended).await);
}

/// One term of leadership: its scopes and their watches.
struct Term {
    number: u64,
    scopes: Vec<Scope>,
    next_seq: Vec<u64>,
    generations: Vec<u64>,
    watches: SelectAll<futures::stream::BoxStream<'static, Tagged>>,
    /// Scopes whose watch ended, to open again.
    closed: Vec<usize>,
    in_flight: usize,
}

impl Term {
    fn new(shipper: &Shipper, lead: &Lead) -> Term {
        let names: Vec<String> = if shipper.config.namespaces.is_empty() {
            vec![String::new()]
        } else {
            shipper.config.namespaces.clone()
        };
        let scopes: Vec<Scope> = names
            .iter()
            .map(|name| {
                let api = if name.is_empty() {
                    Api::all(shipper.client.clone())
                } else {
                    Api::namespaced(shipper.client.clone(), name)
                };
                let point = lead.resume.get(name).cloned().unwrap_or_default();
                Scope::new(name, api, point)
            })
            .collect();
        let count = scopes.len();
        Term {
            number: lead.term,
            scopes,
            next_seq: vec![0; count],
            generations: vec![0; count],
            watches: SelectAll::new(),
            closed: Vec::new(),
            in_flight: 0,
        }
    }

    /// The acknowledgement "file" of scope `index` in this term.
    fn file(&self, index: usize) -> u64 {
        (self.number << 16) | index as u64
    }

    fn index_of(&self, file: u64) -> Option<usize> {
        let index = usize::try_from(file & 0xffff).ok()?;
        (file >> 16 == self.number && index < self.scopes.len()).then_some(index)
    }
}

/// The client events are read with: the same as the pod watch's.
pub async fn client(config: &Config) -> Result<Client, ConfigError> {
    crate::kube::client(config.kubernetes.kubeconfig.as_deref())
        .await
        .map_err(|e| ConfigError::new(&config.source, "kubernetes.kubeconfig", e.to_string()))
}
