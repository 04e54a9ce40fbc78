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

mod acks;
mod checkpoint;
mod memory;
mod process;
mod shutdown;

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use crate::checkpoint::Store;
use crate::config::{Config, ConfigError, MetadataSource};
use crate::enrich::{EnrichSettings, Enricher};
use crate::kube::{ApiSettings, FragmentOptions, Metadata, PodIndex};
use crate::liveness::Stage;
use crate::metrics::Metrics;
use crate::parse::{ParserError, ParserSet};
use crate::route::Template;
use crate::server;
use crate::sink::task::{SinkFailed, SinkStats, SinkTask};
use crate::sink::{BatchLimits, Rendered, Sink};
use crate::tail::{FileSet, Resume, TailEvent, TailSettings, Tailer, Wake};

pub use acks::{AckTracker, Acked, Committed};
pub use checkpoint::{Checkpointer, FileNote};
pub use memory::MemoryBudget;
pub use process::{ProcessStats, Processor};
pub use shutdown::{Signal, Signals};

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
    /// The run ended for a reload (SIGHUP): run again with this config.
    pub reload: Option<Box<Config>>,
}

/// How a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Read what the files hold now, deliver it, commit, return (`--once`).
    Once,
    /// Follow files until SIGTERM or SIGINT, then drain within `shutdown_timeout`.
    Follow,
}

/// Runs the collector.
pub async fn run(config: &Config, mode: Mode) -> Result<Summary, RunError> {
    let metadata = metadata(config).await?;
    let readiness_source = metadata.clone();
    let enricher = enricher(config)?;
    let files = FileSet::new(&config.tail.include, &config.tail.exclude)
        .map_err(|e| ConfigError::new(&config.source, "tail", e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let sinks = open_sinks(config, &metrics)?;
    let (store, resume, first_start) = open_store(config)?;
    let _server = start_server(config, &metrics).await?;
    let events = start_events(config, mode, &metrics).await?;
    let budget = Arc::new(MemoryBudget::new(
        config.pipeline.memory_limit,
        metrics.inflight_bytes.clone(),
    ));
    let stopping = Arc::new(AtomicBool::new(false));

    let (events_tx, events_rx) = mpsc::channel(CHANNEL_CHUNKS);
    let (wake_tx, wake_rx) = std_mpsc::channel();
    let settings = TailSettings {
        read_from: config.tail.read_from,
        max_pending: config
            .tail
            .max_line_bytes
            .saturating_add(LINE_FRAMING_SLACK),
        rescan_interval: config.tail.rescan_interval,
        rotate_wait: config.tail.rotate_wait,
        once: mode == Mode::Once,
    };
    let tailer = Tailer::new(
        settings,
        files,
        resume,
        first_start,
        events_tx,
        (wake_tx.clone(), wake_rx),
        Arc::clone(&metrics),
    );
    let reader = tokio::task::spawn_blocking(move || tailer.run());

    let limits = BatchLimits {
        max_events: config.pipeline.batch_max_events,
        max_bytes: usize::try_from(config.pipeline.batch_max_bytes).unwrap_or(usize::MAX),
        timeout: config.pipeline.batch_timeout,
    };
    let (delivered_tx, delivered_rx) = mpsc::channel(CHANNEL_CHUNKS);
    let mut sink_inputs = Vec::new();
    let mut sink_tasks = Vec::new();
    for (name, sink) in sinks {
        let (tx, input) = mpsc::channel(CHANNEL_CHUNKS);
        sink_inputs.push(tx);
        let delivered = delivered_tx.clone();
        let metrics = Arc::clone(&metrics);
        let task = SinkTask {
            name,
            sink,
            limits,
            input,
            delivered,
            metrics,
        };
        sink_tasks.push(tokio::spawn(task.run()));
    }
    drop(delivered_tx);

    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let stage = ProcessStage {
        processor: Processor::new(enricher, metadata, config.tail.max_line_bytes),
        sinks: sink_inputs,
        notes: notes_tx,
        budget: Arc::clone(&budget),
        stopping: Arc::clone(&stopping),
        metrics: Arc::clone(&metrics),
        published: ProcessStats::default(),
    };
    let processing = tokio::task::spawn_blocking(move || stage.run(events_rx));
    let checkpointer = Checkpointer::new(
        store,
        sink_tasks.len(),
        budget,
        config.state.commit_interval,
        Arc::clone(&metrics),
    );
    let checkpoints = tokio::spawn(checkpointer.run(notes_rx, delivered_rx));
    let _readiness = AbortOnDrop(Some(tokio::spawn(track_readiness(
        readiness_source,
        Arc::clone(&metrics),
    ))));

    let finish = async {
        let mut summary = Summary::default();
        for task in sink_tasks {
            summary.sinks.push(task.await.map_err(internal)??);
        }
        summary.delivered = checkpoints.await.map_err(internal)?;
        summary.processed = processing.await.map_err(internal)?;
        reader.await.map_err(internal)?;
        Ok(summary)
    };
    if mode == Mode::Once {
        return finish.await;
    }
    tokio::pin!(finish);
    let mut signals = Signals::new(&config.source);
    let reload = loop {
        tokio::select! {
            result = &mut finish => return result,
            signal = signals.next() => match signal {
                Signal::Stop(name) => {
                    tracing::info!(signal = name, "stopping: draining in-flight records");
                    break None;
                }
                Signal::Reload | Signal::ConfigChanged => match reloaded(config).await {
                    Ok(new) if signal == Signal::ConfigChanged && new == *config => {
                        tracing::debug!("the config file's folder changed; the config did not");
                    }
                    Ok(new) => {
                        tracing::info!("reloading: draining in-flight records, then running the new config");
                        break Some(Box::new(new));
                    }
                    Err(error) => tracing::error!(%error, "reload refused; the running config stays"),
                },
            },
        }
    };
    stopping.store(true, Ordering::Relaxed);
    if wake_tx.send(Wake::Stop).is_err() {
        tracing::debug!("the tail engine had already stopped");
    }
    let drain = async {
        let events = match events {
            Some(events) => events.stop().await,
            None => Ok(()),
        };
        let summary = finish.await?;
        events?;
        Ok(summary)
    };
    match tokio::time::timeout(config.pipeline.shutdown_timeout, drain).await {
        Ok(result) => result.map(|summary| Summary { reload, ..summary }),
        Err(_) => {
            tracing::warn!(
                "shutdown_timeout passed before every sink delivered; undelivered lines will be read again at the next start"
            );
            Ok(Summary {
                reload,
                ..Summary::default()
            })
        }
    }
}

/// The config file read again and checked as far as a start would check it (keys, parsers,
/// templates, the pods file), without touching anything the running pipeline owns.
async fn reloaded(config: &Config) -> Result<Config, RunError> {
    let new = Config::load(&config.source)?;
    match new.kubernetes.metadata {
        // Building a client checks the kubeconfig without starting a second watch.
        MetadataSource::Api => {
            crate::kube::client(new.kubernetes.kubeconfig.as_deref())
                .await
                .map_err(|e| {
                    ConfigError::new(&new.source, "kubernetes.kubeconfig", e.to_string())
                })?;
        }
        MetadataSource::File | MetadataSource::Off => drop(metadata(&new).await?),
    }
    enricher(&new)?;
    FileSet::new(&new.tail.include, &new.tail.exclude)
        .map_err(|e| ConfigError::new(&new.source, "tail", e.to_string()))?;
    Ok(new)
}

/// Keeps `/readyz` in step with the metadata source: ready once the pipeline runs and the
/// source knows the node's pods (the API watch has listed them).
async fn track_readiness(metadata: Metadata, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        metrics.set_ready(metadata.synced());
    }
}

/// The processor thread and its connections.
struct ProcessStage {
    processor: Processor,
    sinks: Vec<mpsc::Sender<Arc<Rendered>>>,
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
        m.files_open
            .set(i64::try_from(self.processor.open_files()).unwrap_or(i64::MAX));
    }

    /// Events in, chunks out to every sink, until the engine closes its channel.
    fn run(mut self, mut events: mpsc::Receiver<TailEvent>) -> ProcessStats {
        let metrics = Arc::clone(&self.metrics);
        let liveness = &metrics.liveness;
        loop {
            let event = {
                let _waiting = liveness.wait(Stage::Process);
                events.blocking_recv()
            };
            let Some(event) = event else { break };
            if !self.handle(event) {
                break;
            }
        }
        liveness.end(Stage::Process);
        self.processor.stats()
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
        self.publish();
        let Some(chunk) = chunk else {
            return true;
        };
        let liveness = &self.metrics.liveness;
        let stopping = || self.stopping.load(Ordering::Relaxed);
        let acquired = {
            let _waiting = liveness.wait(Stage::Process);
            self.budget.acquire(chunk.ack.bytes, &stopping)
        };
        if !acquired {
            return false;
        }
        if let Some((file, gone)) = closed {
            drop(self.notes.send(FileNote::Closed {
                file,
                last_seq: chunk.ack.seq,
                gone,
            }));
        }
        let chunk = Arc::new(chunk);
        // A closed sink stopped for good; its task reports why. Reading on would deliver
        // nothing.
        let _waiting = liveness.wait(Stage::Process);
        self.sinks
            .iter()
            .all(|sink| sink.blocking_send(Arc::clone(&chunk)).is_ok())
    }
}

/// Aborts a helper task (the server, the readiness probe) when the run ends.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Binds `server.listen` (a taken or unusable address is a start-up error) and serves
/// `/healthz`, `/readyz` and `/metrics` for the rest of the run.
async fn start_server(config: &Config, metrics: &Arc<Metrics>) -> Result<AbortOnDrop, ConfigError> {
    let Some(address) = config.server.listen else {
        return Ok(AbortOnDrop(None));
    };
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|error| {
            ConfigError::new(
                &config.source,
                "server.listen",
                format!("cannot listen on {address}: {error}"),
            )
        })?;
    let bound = listener.local_addr().map_or(address, |bound| bound);
    tracing::info!(address = %bound, "serving /healthz, /readyz and /metrics");
    // A piece of work, or the gap between checkpoint ticks, may last a few commit
    // intervals, and never less than 10 s.
    let alive_within = (config.state.commit_interval * 5).max(std::time::Duration::from_secs(10));
    let task = tokio::spawn(server::serve(listener, Arc::clone(metrics), alive_within));
    Ok(AbortOnDrop(Some(task)))
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

async fn metadata(config: &Config) -> Result<Metadata, ConfigError> {
    let kube = &config.kubernetes;
    match config.kubernetes.metadata {
        MetadataSource::Off => Ok(Metadata::Off),
        MetadataSource::File => {
            let path = config.kubernetes.pods_file.as_deref().ok_or_else(|| {
                ConfigError::new(
                    &config.source,
                    "kubernetes.pods_file",
                    "required when metadata = \"file\"",
                )
            })?;
            PodIndex::load(path).map(Metadata::File).map_err(|e| {
                ConfigError::new(&config.source, "kubernetes.pods_file", e.to_string())
            })
        }
        MetadataSource::Api => {
            let client = crate::kube::client(kube.kubeconfig.as_deref())
                .await
                .map_err(|e| {
                    ConfigError::new(&config.source, "kubernetes.kubeconfig", e.to_string())
                })?;
            let settings = ApiSettings {
                node_name: kube.node_name.clone(),
                capacity: NonZeroUsize::new(kube.cache_capacity).unwrap_or(NonZeroUsize::MIN),
                deleted_pod_grace: kube.deleted_pod_grace,
                lookup_timeout: kube.lookup_timeout,
                namespace_labels: kube.namespace_labels,
            };
            Ok(Metadata::Api(crate::kube::start(client, &settings).await))
        }
    }
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

fn enricher(config: &Config) -> Result<Enricher, RunError> {
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
        parsers: parsers(config)?,
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

fn internal(error: tokio::task::JoinError) -> RunError {
    RunError::Internal(error.to_string())
}
