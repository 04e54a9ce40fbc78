//! The running collector: the only module that knows everyone. Owns the tasks, the
//! channels between them, and acknowledgements.
//!
//! ```text
//! reader thread ─(TailEvent)→ processor thread ─(Arc<Rendered>, one channel per sink)→
//!   sink task × N ─(delivered chunks)→ this task: AckTracker → committed offsets
//! ```
//!
//! Every channel is bounded, so a slow sink slows reading instead of growing memory. The
//! end of a run is known the mini-redis way: each stage ends when its input channel closes,
//! and drops its outputs as it returns.

mod acks;
mod process;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::{Config, ConfigError, MetadataSource};
use crate::enrich::{EnrichSettings, Enricher};
use crate::kube::{FragmentOptions, Metadata, PodIndex};
use crate::route::Template;
use crate::sink::task::{SinkFailed, SinkStats, SinkTask};
use crate::sink::{BatchLimits, Rendered, Sink};
use crate::tail::{self, FileSet, TailEvent};

pub use acks::AckTracker;
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
    /// A stage of the pipeline died (exit code 2).
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a `--once` run did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// What was read and rendered.
    pub processed: ProcessStats,
    /// What each sink delivered.
    pub sinks: Vec<SinkStats>,
    /// Each file's offset up to which every sink has delivered, by path as found.
    pub delivered: BTreeMap<PathBuf, u64>,
}

/// Reads what the matched files hold now, delivers it to every sink, and returns when
/// all of it is delivered.
pub async fn run_once(config: &Config) -> Result<Summary, RunError> {
    let metadata = metadata(config)?;
    let enricher = enricher(config)?;
    let files = FileSet::new(&config.tail.include, &config.tail.exclude)
        .map_err(|e| ConfigError::new(&config.source, "tail", e.to_string()))?;
    let mut sinks = Vec::new();
    for sink in &config.sinks {
        let opened = Sink::open(sink)
            .map_err(|e| ConfigError::new(&config.source, format!("sinks.{}", e.name), e.reason))?;
        sinks.push((sink.name.clone(), opened));
    }

    let max_pending = config
        .tail
        .max_line_bytes
        .saturating_add(LINE_FRAMING_SLACK);
    let (events_tx, events_rx) = mpsc::channel(CHANNEL_CHUNKS);
    let reader = tokio::task::spawn_blocking(move || {
        tail::read_once(&files, max_pending, &events_tx);
    });

    let limits = BatchLimits {
        max_events: config.pipeline.batch_max_events,
        max_bytes: usize::try_from(config.pipeline.batch_max_bytes).unwrap_or(usize::MAX),
        timeout: config.pipeline.batch_timeout,
    };
    let (delivered_tx, mut delivered_rx) = mpsc::channel(CHANNEL_CHUNKS);
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

    let processor = Processor::new(enricher, metadata, config.tail.max_line_bytes);
    let processing =
        tokio::task::spawn_blocking(move || process(processor, events_rx, sink_inputs));

    let mut tracker = AckTracker::new(sink_tasks.len());
    let mut committed: BTreeMap<u64, u64> = BTreeMap::new();
    while let Some(chunks) = delivered_rx.recv().await {
        for chunk in chunks {
            if let Some(offset) = tracker.ack(chunk.ack) {
                committed.insert(chunk.ack.file, offset);
            }
        }
    }

    let mut summary = Summary::default();
    for task in sink_tasks {
        summary.sinks.push(task.await.map_err(internal)??);
    }
    let (processed, paths) = processing.await.map_err(internal)?;
    reader.await.map_err(internal)?;
    summary.processed = processed;
    summary.delivered = committed
        .into_iter()
        .filter_map(|(file, offset)| Some((paths.get(&file)?.clone(), offset)))
        .collect();
    Ok(summary)
}

/// The processor thread: events in, chunks out to every sink. Returns its stats and the
/// path of every file it saw, by number.
fn process(
    mut processor: Processor,
    mut events: mpsc::Receiver<TailEvent>,
    sinks: Vec<mpsc::Sender<Arc<Rendered>>>,
) -> (ProcessStats, BTreeMap<u64, PathBuf>) {
    let mut paths = BTreeMap::new();
    while let Some(event) = events.blocking_recv() {
        if let TailEvent::Opened { file, found } = &event {
            paths.insert(*file, found.path.clone());
        }
        let Some(chunk) = processor.handle(event) else {
            continue;
        };
        let chunk = Arc::new(chunk);
        for sink in &sinks {
            if sink.blocking_send(Arc::clone(&chunk)).is_err() {
                // The sink stopped; its task reports why. Reading on would deliver nothing.
                return (processor.stats(), paths);
            }
        }
    }
    (processor.stats(), paths)
}

fn metadata(config: &Config) -> Result<Metadata, ConfigError> {
    let key = "kubernetes.metadata";
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
        MetadataSource::Api => Err(ConfigError::new(
            &config.source,
            key,
            "\"api\" is not available in this build yet; use \"file\" or \"off\"",
        )),
    }
}

fn enricher(config: &Config) -> Result<Enricher, ConfigError> {
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
    }))
}

fn internal(error: tokio::task::JoinError) -> RunError {
    RunError::Internal(error.to_string())
}
