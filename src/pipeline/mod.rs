//! The running collector: the only module that knows everyone. Owns the tasks, the
//! channels between them, acknowledgements, backpressure and shutdown.
//!
//! ```text
//! tail thread ─(TailEvent)→ processor thread ─(Arc<Rendered>, one channel per sink)→
//!   sink task × N ─(delivered chunks)→ checkpoint task → SQLite
//!                  processor ─(FileNote)→ checkpoint task
//! ```
//!
//! Every channel is bounded and rendered chunks hold bytes of the memory budget until all
//! sinks deliver them, so a slow sink slows reading instead of growing memory. A run ends
//! the mini-redis way: each stage returns when its input closes, dropping its outputs.
//!
//! [`supervise`] is the process's life: one config's run ([`run`]) after another, each
//! config first put through [`validate`] (the checks `shiplog check` makes), with the
//! metrics, the HTTP server and the signal handlers made once and outliving every run.

mod acks;
mod checkpoint;
mod joining;
mod memory;
mod process;
mod routing;
mod run;
mod shutdown;
mod supervisor;
mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::checkpoint::Store;
use crate::config::{Config, ConfigError};
use crate::enrich::{EnrichSettings, Enricher};
use crate::kube::FragmentOptions;
use crate::liveness::Stage;
use crate::metrics::Metrics;
use crate::parse::{ParserError, ParserSet};
use crate::route::Template;
use crate::sink::task::{SinkFailed, SinkStats};
use crate::sink::{Rendered, Sink};
use crate::tail::{Resume, TailEvent};

pub use acks::{AckTracker, Acked, Committed};
pub use checkpoint::{Checkpointer, FileNote};
pub use memory::MemoryBudget;
pub use process::{ProcessStats, Processor};
pub use shutdown::{Signal, Signals};
pub use supervisor::{RESTORE_RETRY, supervise};
pub use validate::{MetadataPlan, Validated, survey, validate};

/// Room a line may take beyond `max_line_bytes` before the reader cuts it raw: the runtime's
/// own framing (timestamp, JSON escapes) around a message of `max_line_bytes`.
const LINE_FRAMING_SLACK: usize = 64 * 1024;

/// Chunks queued between two stages. A read is up to 256 KiB and its rendered chunk several
/// times that (about 1 MiB on the benchmark workload), so the queues are short: four keep
/// the next stage fed, while sixteen cost 20 MiB of peak RSS behind a file sink's
/// `fdatasync` and made no stage faster (see the README's performance section).
const CHANNEL_CHUNKS: usize = 4;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config asks for something that cannot be set up (exit code 1).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A sink stopped for good (exit code 2).
    #[error(transparent)]
    Sink(#[from] SinkFailed),
    /// A parser definition is wrong (exit code 1).
    #[error(transparent)]
    Parsers(#[from] ParserError),
    /// A stage of the pipeline died (exit code 2).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// What was read and rendered.
    pub processed: ProcessStats,
    /// What each sink delivered.
    pub sinks: Vec<SinkStats>,
    /// Each file's offset up to which every sink has delivered, by resolved path.
    pub delivered: BTreeMap<PathBuf, u64>,
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read what the files hold now, deliver it, commit, return (`--once`).
    Once,
    /// Follow files until SIGTERM or SIGINT, then drain within `shutdown_timeout`.
    Follow,
}

/// What the processor thread waits for.
enum Next {
    /// A tail event.
    Event(TailEvent),
    /// The tail engine closed its channel.
    Closed,
    /// A held multiline event is due.
    Due,
}

/// Chunks queued for each sink when sinks have `match` tables: a sink that is down must
/// not stop the chunks of other sinks, so its queue holds what it has not taken up to the
/// memory budget (which bounds the bytes; this only bounds the count).
const ROUTED_CHANNEL_CHUNKS: usize = 1 << 16;

/// The processor thread and its connections.
struct ProcessStage {
    processor: Processor,
    /// The transforms and each sink's `match`.
    router: routing::Router,
    sinks: Vec<mpsc::Sender<Arc<Rendered>>>,
    /// Where chunks routed to no sink are acknowledged at once.
    acks: mpsc::Sender<crate::sink::Delivered>,
    notes: mpsc::UnboundedSender<FileNote>,
    budget: Arc<MemoryBudget>,
    stopping: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// The processor's counts already added to `metrics`.
    published: ProcessStats,
}

impl ProcessStage {
    /// Adds what the processor counted since the last call to the metrics: once per
    /// event (a chunk of lines), never per line.
    fn publish(&mut self) {
        let now = self.processor.stats();
        let was = std::mem::replace(&mut self.published, now);
        let m = &self.metrics;
        m.input_lines.inc_by(now.lines - was.lines);
        m.input_bytes.inc_by(now.bytes - was.bytes);
        m.decode_errors
            .inc_by(now.decode_errors - was.decode_errors);
        m.excluded_records.inc_by(now.excluded - was.excluded);
        m.parser_unmatched.inc_by(now.unmatched - was.unmatched);
        m.illegal_topics
            .inc_by(now.illegal_topics - was.illegal_topics);
        m.kube_cache_hits.inc_by(now.pods_known - was.pods_known);
        m.kube_cache_misses
            .inc_by(now.pods_unknown - was.pods_unknown);
        m.records_without_metadata
            .inc_by(now.without_metadata - was.without_metadata);
        for (namespace, records) in self.processor.take_refused_topics() {
            let label = crate::metrics::NamespaceLabel { namespace };
            m.topic_overrides_refused
                .get_or_create(&label)
                .inc_by(records);
        }
        m.pending_lines_cut
            .inc_by(now.pending_lines_cut - was.pending_lines_cut);
        m.files_open
            .set(i64::try_from(self.processor.open_files()).unwrap_or(i64::MAX));
    }

    /// Adds what routing counted since the last call to the metrics: after each delivery,
    /// as chunks are routed when delivered.
    fn publish_routing(&mut self) {
        let routed = self.router.take_counts();
        let m = &self.metrics;
        m.unrouted_records.inc_by(routed.unrouted);
        m.redactions.inc_by(routed.redactions);
        for (namespace, records) in routed.throttled {
            let label = crate::metrics::NamespaceLabel { namespace };
            m.throttled_records.get_or_create(&label).inc_by(records);
        }
    }

    /// Events in, chunks out to every sink, until the engine closes its channel. While a
    /// multiline event is held, the wait for the next event ends when it is due.
    fn run(mut self, mut events: mpsc::Receiver<TailEvent>) -> ProcessStats {
        let metrics = Arc::clone(&self.metrics);
        let liveness = &metrics.liveness;
        loop {
            let event = {
                let _waiting = liveness.wait(Stage::Process);
                self.next_event(&mut events)
            };
            let handled = match event {
                Next::Event(event) => self.handle(event),
                Next::Closed => break,
                Next::Due => true,
            };
            // Held events are shipped only while nothing more is queued: a queued read of
            // their file may hold their next lines (the wait may have been downstream's).
            if !handled || (events.is_empty() && !self.flush_due()) {
                break;
            }
        }
        liveness.end(Stage::Process);
        self.processor.stats()
    }

    /// The next event, or `Due` when a held multiline event's time came first.
    fn next_event(&self, events: &mut mpsc::Receiver<TailEvent>) -> Next {
        let due = self.processor.next_due();
        let handle = tokio::runtime::Handle::try_current();
        let event = match (due, handle) {
            (Some(due), Ok(handle)) => {
                let wait = tokio::time::timeout_at(due.into(), events.recv());
                match handle.block_on(wait) {
                    Ok(event) => event,
                    Err(_elapsed) => return Next::Due,
                }
            }
            _ => events.blocking_recv(),
        };
        event.map_or(Next::Closed, Next::Event)
    }

    /// Ships the held multiline events that are due; false when the pipeline downstream
    /// is gone.
    fn flush_due(&mut self) -> bool {
        let chunks = self.processor.flush_due(std::time::Instant::now());
        if chunks.is_empty() {
            return true;
        }
        self.publish();
        chunks.into_iter().all(|chunk| self.deliver(chunk, None))
    }

    /// Handles one event; false when the pipeline downstream is gone.
    fn handle(&mut self, event: TailEvent) -> bool {
        let closed = match &event {
            TailEvent::Opened {
                file,
                found,
                id,
                fingerprint,
                offset,
            } => {
                let checkpoint = crate::checkpoint::Checkpoint {
                    id: *id,
                    fingerprint: *fingerprint,
                    path: found.target.clone(),
                    offset: *offset,
                    found_at: Some(found.path.clone()),
                };
                // The checkpoint task outlives this thread; a failed send means it died,
                // and the sinks' failures will say why.
                drop(self.notes.send(FileNote::Opened {
                    file: *file,
                    checkpoint,
                }));
                None
            }
            TailEvent::Closed { file, gone } => Some((*file, *gone)),
            TailEvent::Lines { .. } => None,
        };
        let chunk = self.processor.handle(event);
        // Past their share of the budget, the lines pending longest go out as they stand.
        let limit = usize::try_from(self.budget.pending_limit()).unwrap_or(usize::MAX);
        let cut = self.processor.cut_oldest_pending(limit);
        self.budget
            .set_pending(self.processor.pending_bytes() as u64);
        self.publish();
        let delivered = chunk.is_none_or(|chunk| self.deliver(chunk, closed));
        let delivered = delivered && cut.into_iter().all(|chunk| self.deliver(chunk, None));
        self.publish_routing();
        delivered
    }

    /// Takes `chunk`'s bytes from the budget and sends it to every sink; false when the
    /// pipeline downstream is gone. `closed`: the chunk is its file's last.
    fn deliver(&mut self, chunk: Rendered, closed: Option<(u64, bool)>) -> bool {
        let liveness = &self.metrics.liveness;
        let stopping = || self.stopping.load(Ordering::Relaxed);
        let routed = self.router.route(chunk, std::time::Instant::now());
        let ack = routed.ack();
        let acquired = {
            let _waiting = liveness.wait(Stage::Process);
            self.budget.acquire(ack.bytes, &stopping)
        };
        if !acquired {
            return false;
        }
        if let Some((file, gone)) = closed {
            drop(self.notes.send(FileNote::Closed {
                file,
                last_seq: ack.seq,
                gone,
            }));
        }
        // A closed sink stopped for good; its task reports why. Reading on would deliver
        // nothing.
        let _waiting = liveness.wait(Stage::Process);
        match routed {
            routing::Destinations::Sinks(list) => list.into_iter().all(|(sink, chunk)| {
                self.sinks
                    .get(sink)
                    .is_some_and(|input| input.blocking_send(chunk).is_ok())
            }),
            routing::Destinations::Nowhere(chunk) => self.acks.blocking_send(vec![chunk]).is_ok(),
        }
    }
}

/// With `[events] enabled`, stands for election and ships Kubernetes events while elected
/// (not with `--once`: a run that ends is no leader).
async fn start_events(
    config: &Config,
    mode: Mode,
    metrics: &Arc<Metrics>,
) -> Result<Option<crate::events::EventsHandle>, ConfigError> {
    if !config.events.enabled {
        return Ok(None);
    }
    if mode == Mode::Once {
        tracing::info!("--once: Kubernetes events are not shipped");
        return Ok(None);
    }
    let client = crate::events::client(config).await?;
    crate::events::start(config, client, metrics)
        .await
        .map(Some)
}

fn open_sinks(config: &Config, metrics: &Arc<Metrics>) -> Result<Vec<(String, Sink)>, ConfigError> {
    config
        .sinks
        .iter()
        .map(|sink| {
            let opened = Sink::open(sink, metrics).map_err(|e| {
                ConfigError::new(&config.source, format!("sinks.{}", e.name), e.reason)
            })?;
            Ok((sink.name.clone(), opened))
        })
        .collect()
}

/// Opens the checkpoint store; returns it, what it holds, and whether this is the first
/// start (no store existed).
fn open_store(config: &Config) -> Result<(Store, Vec<Resume>, bool), ConfigError> {
    let path = &config.state.path;
    let first_start = !path.exists();
    let error = |e: crate::checkpoint::StoreError| {
        ConfigError::new(&config.source, "state.path", e.to_string())
    };
    let mut store = Store::open(path).map_err(error)?;
    let (resume, gone): (Vec<_>, Vec<_>) = store
        .load()
        .map_err(error)?
        .into_iter()
        .map(|c| Resume {
            id: c.id,
            fingerprint: c.fingerprint,
            path: c.path,
            offset: c.offset,
            found_at: c.found_at,
        })
        .partition(|resume| !crate::tail::is_gone(resume));
    // A file deleted while shiplog was down (its pod's folder removed by the kubelet, or a
    // rotated file it compressed away) can never be read again: its checkpoint goes. Files
    // merely idle keep theirs, however old.
    let gone: Vec<_> = gone.iter().map(|resume| resume.id).collect();
    let forgotten = store.forget(&gone).map_err(error)?;
    if forgotten > 0 {
        tracing::info!(
            forgotten,
            "checkpoints of files deleted while shiplog was down removed"
        );
    }
    Ok((store, resume, first_start))
}

/// The built-in parsers plus those of `[parsers] dirs`, checked (examples included).
pub fn parsers(config: &Config) -> Result<ParserSet, ParserError> {
    let mut parsers = ParserSet::builtin();
    let dirs: Vec<PathBuf> = config
        .parsers
        .dirs
        .iter()
        .filter(|dir| !config.parsers.missing_ok || dir.exists())
        .cloned()
        .collect();
    parsers.load_dirs(&dirs)?;
    Ok(parsers)
}

/// The enricher of `config`, selecting among `parsers`.
fn enricher(config: &Config, parsers: ParserSet) -> Result<Enricher, RunError> {
    let kube = &config.kubernetes;
    // Checked when the config was loaded.
    let topic = Template::compile(&config.route.topic)
        .map_err(|e| ConfigError::new(&config.source, "route.topic", e.to_string()))?;
    Ok(Enricher::new(EnrichSettings {
        merge_log: kube.merge_log,
        merge_log_key: kube.merge_log_key.clone(),
        keep_log: kube.keep_log,
        fragment: FragmentOptions {
            labels: kube.include_labels,
            annotations: kube.include_annotations,
        },
        topic,
        default_topic: config.route.default_topic.clone(),
        topic_overrides: config.route.topic_overrides.clone(),
        parsers,
        annotation_prefixes: kube.annotation_prefixes.clone(),
        own_pod: own_pod(),
    }))
}

/// shiplog's own pod, from the downward API's `POD_NAMESPACE` and `POD_NAME` (deploy/ sets
/// them); `None` off-cluster.
fn own_pod() -> Option<(String, String)> {
    let namespace = std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|v| !v.is_empty())?;
    let name = std::env::var("POD_NAME").ok().filter(|v| !v.is_empty())?;
    Some((namespace, name))
}
