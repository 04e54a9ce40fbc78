//! One run: one config's tasks and threads, started together and ended together.
//!
//! A run ends by itself only when a stage fails (a sink that can never deliver again), or,
//! with `--once`, when everything read is delivered. Otherwise it is drained: reading stops,
//! what was read is delivered and committed within `pipeline.shutdown_timeout`. Past that
//! deadline its sinks are stopped, so that nothing of an old run keeps retrying beside the
//! next one; what they had not delivered is read again from the committed offsets.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinError, JoinHandle};

use crate::config::Config;
use crate::enrich::Enricher;
use crate::events::EventsHandle;
use crate::kube::Metadata;
use crate::metrics::Metrics;
use crate::sink::BatchLimits;
use crate::sink::task::{SinkFailed, SinkStats, SinkTask};
use crate::tail::{FileSet, TailSettings, Tailer, Wake};

use super::{
    CHANNEL_CHUNKS, Checkpointer, LINE_FRAMING_SLACK, MemoryBudget, Mode, ProcessStage,
    ProcessStats, Processor, ROUTED_CHANNEL_CHUNKS, RunError, Summary, open_sinks, open_store,
    start_events,
};

/// How long a drain that ran out of time gives the stopped run's stages to end.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The run's stages, ending in its summary or its first failure.
type Finish = Pin<Box<dyn Future<Output = Result<Summary, RunError>> + Send>>;

/// A running pipeline.
pub struct Run {
    /// Resolves once every stage has ended.
    finish: Finish,
    /// Tells the processor to stop waiting for memory.
    stopping: Arc<AtomicBool>,
    /// Tells the tail engine to stop reading.
    wake: std_mpsc::Sender<Wake>,
    /// The Kubernetes events side, when enabled.
    events: Option<EventsHandle>,
    /// The sink tasks, stopped when a drain runs out of time.
    sinks: Vec<AbortHandle>,
    /// The checkpoint task, stopped when even the stopped stages do not end.
    checkpoints: AbortHandle,
    /// Keeps `/readyz` in step with the metadata source while the run lasts.
    readiness: AbortOnDrop,
}

/// Ends a task when dropped.
struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

/// Starts `config`, already validated: records made by `enricher` from the files `files`
/// match, pod metadata from `metadata`.
pub async fn start(
    config: &Config,
    enricher: Enricher,
    files: FileSet,
    metadata: Metadata,
    metrics: &Arc<Metrics>,
    mode: Mode,
) -> Result<Run, RunError> {
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let sinks = open_sinks(config, metrics)?;
    let (store, resume, first_start) = open_store(config)?;
    let events = start_events(config, mode, metrics).await?;
    // A run starts alive: the checkpoint task's first tick is a commit interval away.
    metrics.liveness.tick();
    let budget = Arc::new(MemoryBudget::new(
        config.pipeline.memory_limit,
        metrics.inflight_bytes.clone(),
    ));
    metrics.inflight_bytes.set(0);
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
        Arc::clone(metrics),
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
    let matched = config.sinks.iter().any(|sink| sink.matcher.is_some());
    let queue = if matched {
        ROUTED_CHANNEL_CHUNKS
    } else {
        CHANNEL_CHUNKS
    };
    for (name, sink) in sinks {
        let (tx, input) = mpsc::channel(queue);
        sink_inputs.push(tx);
        let task = SinkTask {
            name,
            sink,
            limits,
            input,
            delivered: delivered_tx.clone(),
            metrics: Arc::clone(metrics),
        };
        sink_tasks.push(tokio::spawn(task.run()));
    }
    let (notes_tx, notes_rx) = mpsc::unbounded_channel();
    let matches = config.sinks.iter().map(|s| s.matcher.clone()).collect();
    let stage = ProcessStage {
        processor: Processor::new(enricher, metadata.clone(), config.tail.max_line_bytes)
            .with_joining(config.tail.multiline_flush, config.tail.multiline_max_lines),
        router: super::routing::Router::new(config.transforms.clone(), matches),
        sinks: sink_inputs,
        acks: delivered_tx,
        notes: notes_tx,
        budget: Arc::clone(&budget),
        stopping: Arc::clone(&stopping),
        metrics: Arc::clone(metrics),
        published: ProcessStats::default(),
    };
    let processing = tokio::task::spawn_blocking(move || stage.run(events_rx));
    let checkpointer = Checkpointer::new(
        store,
        budget,
        config.state.commit_interval,
        Arc::clone(metrics),
    );
    let checkpoints = tokio::spawn(checkpointer.run(notes_rx, delivered_rx));
    let readiness = tokio::spawn(track_readiness(metadata, Arc::clone(metrics)));

    Ok(Run {
        sinks: sink_tasks.iter().map(JoinHandle::abort_handle).collect(),
        checkpoints: checkpoints.abort_handle(),
        readiness: AbortOnDrop(readiness.abort_handle()),
        finish: Box::pin(finish(sink_tasks, checkpoints, processing, reader)),
        stopping,
        wake: wake_tx,
        events,
    })
}

impl Run {
    /// Waits until the run ends by itself: with `--once` when all is delivered, otherwise
    /// only when a stage failed. Not to be called again once it returned.
    pub async fn ended(&mut self) -> Result<Summary, RunError> {
        (&mut self.finish).await
    }

    /// Stops reading and waits, at most `within`, for what was read to be delivered and
    /// committed. Past that, the sinks (and the events side) are stopped, what they
    /// delivered is committed, and the rest will be read again by the next run.
    pub async fn drain(self, within: Duration) -> Result<Summary, RunError> {
        let Run {
            finish,
            stopping,
            wake,
            events,
            mut sinks,
            checkpoints,
            readiness,
        } = self;
        drop(readiness);
        stopping.store(true, Ordering::Relaxed);
        if wake.send(Wake::Stop).is_err() {
            tracing::debug!("the tail engine had already stopped");
        }
        if let Some(events) = &events {
            sinks.extend(events.abort_handles());
        }
        let drain = async move {
            let events = match events {
                Some(events) => events.stop().await,
                None => Ok(()),
            };
            let summary = finish.await?;
            events?;
            Ok(summary)
        };
        tokio::pin!(drain);
        let drained = match tokio::time::timeout(within, &mut drain).await {
            Ok(drained) => drained,
            Err(_) => {
                tracing::warn!(
                    "shutdown_timeout passed before every sink delivered: the sinks stop; undelivered lines will be read again from the committed offsets"
                );
                sinks.iter().for_each(AbortHandle::abort);
                match tokio::time::timeout(STOP_GRACE, &mut drain).await {
                    Ok(drained) => drained,
                    Err(_) => {
                        tracing::warn!("the stopped run's stages did not end within 5 s");
                        Ok(Summary::default())
                    }
                }
            }
        };
        // A failed stage ends the run early: nothing of it may go on beside the next one.
        sinks.iter().for_each(AbortHandle::abort);
        checkpoints.abort();
        drained
    }
}

/// Waits for every stage to end, in the order they finish in a drain: the sinks (a sink
/// stopped by [`Run::drain`] counts as ended), the checkpoint task's last commit, the
/// processor, the tail engine.
async fn finish(
    sink_tasks: Vec<JoinHandle<Result<SinkStats, SinkFailed>>>,
    checkpoints: JoinHandle<std::collections::BTreeMap<std::path::PathBuf, u64>>,
    processing: JoinHandle<ProcessStats>,
    reader: JoinHandle<()>,
) -> Result<Summary, RunError> {
    let mut summary = Summary::default();
    for task in sink_tasks {
        match task.await {
            Ok(stats) => summary.sinks.push(stats?),
            Err(error) if error.is_cancelled() => {}
            Err(error) => return Err(internal(error)),
        }
    }
    summary.delivered = checkpoints.await.map_err(internal)?;
    summary.processed = processing.await.map_err(internal)?;
    reader.await.map_err(internal)?;
    Ok(summary)
}

/// Keeps `/readyz` in step with the metadata source: ready once the pipeline runs and the
/// source knows the node's pods (the API watch has listed them).
async fn track_readiness(metadata: Metadata, metrics: Arc<Metrics>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        metrics.set_ready(metadata.synced());
    }
}

fn internal(error: JoinError) -> RunError {
    RunError::Internal(error.to_string())
}
