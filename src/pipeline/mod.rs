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

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;

use crate::checkpoint::Store;
use crate::config::{Config, ConfigError, MetadataSource};
use crate::enrich::{EnrichSettings, Enricher};
use crate::kube::{ApiSettings, FragmentOptions, Metadata, PodIndex};
use crate::parse::{ParserError, ParserSet};
use crate::route::Template;
use crate::sink::task::{SinkFailed, SinkStats, SinkTask};
use crate::sink::{BatchLimits, Rendered, Sink};
use crate::tail::{FileSet, Resume, TailEvent, TailSettings, Tailer, Wake};

pub use acks::{AckTracker, Acked, Committed};
pub use checkpoint::{Checkpointer, FileNote};
pub use memory::MemoryBudget;
pub use process::{ProcessStats, Processor};

/// Room a line may take beyond `max_line_bytes` before the reader cuts it raw: the runtime's
/// own framing (timestamp, JSON escapes) around a message of `max_line_bytes`.
const LINE_FRAMING_SLACK: usize = 64 * 1024;

/// Chunks in flight between two stages. Small: each is up to a few hundred KiB.
const CHANNEL_CHUNKS: usize = 16;

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

/// Runs the collector.
pub async fn run(config: &Config, mode: Mode) -> Result<Summary, RunError> {
    let metadata = metadata(config).await?;
    let enricher = enricher(config)?;
    let files = FileSet::new(&config.tail.include, &config.tail.exclude)
        .map_err(|e| ConfigError::new(&config.source, "tail", e.to_string()))?;
    let sinks = open_sinks(config)?;
    let (store, resume, first_start) = open_store(config)?;
    let budget = Arc::new(MemoryBudget::new(config.pipeline.memory_limit));
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
        wake_tx.clone(),
        wake_rx,
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
        let task = SinkTask {
            name,
            sink,
            limits,
            input,
            delivered: delivered_tx.clone(),
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
    };
    let processing = tokio::task::spawn_blocking(move || stage.run(events_rx));
    let checkpointer = Checkpointer::new(
        store,
        sink_tasks.len(),
        budget,
        config.state.commit_interval,
    );
    let checkpoints = tokio::spawn(checkpointer.run(notes_rx, delivered_rx));

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
    tokio::select! {
        result = &mut finish => return result,
        signal = shutdown_signal() => tracing::info!(signal, "stopping: draining in-flight records"),
    }
    stopping.store(true, Ordering::Relaxed);
    if wake_tx.send(Wake::Stop).is_err() {
        tracing::debug!("the tail engine had already stopped");
    }
    match tokio::time::timeout(config.pipeline.shutdown_timeout, finish).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(
                "shutdown_timeout passed before every sink delivered; undelivered lines will be read again at the next start"
            );
            Ok(Summary::default())
        }
    }
}

/// Resolves on SIGTERM or SIGINT, naming it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for signals; stop with SIGKILL (offsets stay committed)");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The processor thread and its connections.
struct ProcessStage {
    processor: Processor,
    sinks: Vec<mpsc::Sender<Arc<Rendered>>>,
    notes: mpsc::UnboundedSender<FileNote>,
    budget: Arc<MemoryBudget>,
    stopping: Arc<AtomicBool>,
}

impl ProcessStage {
    /// Events in, chunks out to every sink, until the engine closes its channel.
    fn run(mut self, mut events: mpsc::Receiver<TailEvent>) -> ProcessStats {
        while let Some(event) = events.blocking_recv() {
            if !self.handle(event) {
                break;
            }
        }
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
        let Some(chunk) = self.processor.handle(event) else {
            return true;
        };
        let stopping = || self.stopping.load(Ordering::Relaxed);
        if !self.budget.acquire(chunk.ack.bytes, &stopping) {
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
        self.sinks
            .iter()
            .all(|sink| sink.blocking_send(Arc::clone(&chunk)).is_ok())
    }
}

fn open_sinks(config: &Config) -> Result<Vec<(String, Sink)>, ConfigError> {
    config
        .sinks
        .iter()
        .map(|sink| {
            let opened = Sink::open(sink).map_err(|e| {
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
    let (kept, gone): (Vec<_>, Vec<_>) = store
        .load()
        .map_err(error)?
        .into_iter()
        .partition(|c| c.path.parent().is_some_and(Path::exists));
    // A file whose folder is gone (the kubelet removes a deleted pod's folder) can never
    // be read again: its checkpoint goes. Files merely idle keep theirs, however old.
    let gone: Vec<_> = gone.iter().map(|c| c.id).collect();
    store.forget(&gone).map_err(error)?;
    let resume = kept
        .into_iter()
        .map(|c| Resume {
            id: c.id,
            fingerprint: c.fingerprint,
            path: c.path,
            offset: c.offset,
        })
        .collect();
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
    }))
}

fn internal(error: tokio::task::JoinError) -> RunError {
    RunError::Internal(error.to_string())
}
