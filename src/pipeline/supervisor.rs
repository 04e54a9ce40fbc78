//! The process's life: one config run after another, for as long as the process lives.
//!
//! What belongs to the process, not to a run, is made once here and outlives every run:
//! the metrics (counters only grow, whatever the reloads), the HTTP server (moved only when
//! `server.listen` changes), the signal handlers, and the pod watch (kept while
//! `[kubernetes]` stays the same).
//!
//! A reload (SIGHUP, or a change of the config file) never ends the process:
//!
//! 1. the file is read and put through [`validate`], the checks `shiplog check` makes, and
//!    a new `server.listen` is bound; a failure is logged (ERROR) and the running config
//!    stays, untouched;
//! 2. the running pipeline is drained, within `pipeline.shutdown_timeout` (then stopped);
//!    SIGTERM or SIGINT meanwhile wins: shiplog exits once the drain ends;
//! 3. the new config starts; if it cannot (the state database is unusable, say), that is
//!    logged (ERROR) and the previous config starts again, retried every
//!    [`RESTORE_RETRY`] should it not start either.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, ConfigError, KubernetesConfig};
use crate::kube::{ApiSettings, Metadata};
use crate::metrics::Metrics;
use crate::server::Server;

use super::run::{Run, start};
use super::validate::{MetadataPlan, Validated, validate};
use super::{Mode, RunError, Signal, Signals, Summary};

/// How often the previous config is tried again while neither it nor the new one starts.
pub const RESTORE_RETRY: Duration = Duration::from_secs(5);

/// Runs `config` until it ends by itself (`--once`, or a failure) or a signal stops it,
/// taking over each reloaded config. `on_reload(old, new)` is called as a new config takes
/// over (and with the two swapped should it not start). Errors before the first run starts
/// are the config's (exit 1); later ones are the run's.
pub async fn supervise(
    config: Config,
    mode: Mode,
    on_reload: impl FnMut(&Config, &Config),
) -> Result<Summary, RunError> {
    // Signals first: a SIGTERM during the start (waiting for the first pod list) is kept.
    let signals = (mode == Mode::Follow).then(|| Signals::new(&config.source));
    let validated = validate(&config).await?;
    let metrics = Arc::new(Metrics::new());
    let server = match config.server.listen {
        Some(address) => {
            let listener = bind(&config, address).await?;
            let within = alive_within(&config);
            Some(Server::start(
                listener,
                address,
                Arc::clone(&metrics),
                within,
            ))
        }
        None => None,
    };
    let mut supervisor = Supervisor {
        config,
        parts: Parts {
            metrics,
            server,
            metadata: None,
        },
        pending: None,
        on_reload,
    };
    let mut run = supervisor
        .parts
        .start(&supervisor.config, mode, validated)
        .await?;
    let Some(signals) = signals else {
        let summary = run.ended().await;
        log_summary(&summary);
        if let Ok(summary) = &summary
            && summary.processed.lines == 0
            && summary.processed.bytes == 0
        {
            tracing::info!(
                "nothing new: every matched file was already read to its end (the state file \
                 `state.path` holds the offsets; delete it to read everything again)"
            );
        }
        return summary;
    };
    supervisor.follow(run, signals).await
}

/// The config running, and the process's own parts.
struct Supervisor<F> {
    /// The config of the run in progress, or of the last one that ran.
    config: Config,
    parts: Parts,
    /// A reload asked for while a drain was under way, handled once the next run is up.
    pending: Option<Signal>,
    on_reload: F,
}

/// What outlives runs.
struct Parts {
    metrics: Arc<Metrics>,
    server: Option<Server>,
    /// The API source, kept across runs while `[kubernetes]` stays the same: its watch
    /// and cache go on, and `/readyz` does not drop back to waiting for a first list.
    metadata: Option<(KubernetesConfig, Metadata)>,
}

/// A reloaded config that passed the checks, waiting for the running one to drain.
struct Next {
    config: Config,
    validated: Validated,
    server: ServerChange,
}

/// What a reload does to the HTTP server.
enum ServerChange {
    /// `server.listen` is the same: the server serves on.
    Keep,
    /// A new address, already bound: served once the new config runs.
    Move(TcpListener),
    /// `server.listen = ""`: the server stops once the new config runs.
    Stop,
}

/// What a reload came to.
enum Step {
    /// Go on with this run.
    Continue(Run),
    /// A stop signal came: end with what the last drain returned.
    Stop(Result<Summary, RunError>),
}

impl<F: FnMut(&Config, &Config)> Supervisor<F> {
    /// Waits for signals and the run's end; each reload swaps the run.
    async fn follow(mut self, mut run: Run, mut signals: Signals) -> Result<Summary, RunError> {
        loop {
            let signal = match self.pending.take() {
                Some(signal) => signal,
                None => tokio::select! {
                    biased;
                    signal = signals.next() => signal,
                    ended = run.ended() => {
                        log_summary(&ended);
                        return ended;
                    }
                },
            };
            let step = match signal {
                Signal::Stop(name) => {
                    tracing::info!(signal = name, "stopping: draining in-flight records");
                    let drained = run.drain(self.config.pipeline.shutdown_timeout).await;
                    log_summary(&drained);
                    Step::Stop(drained)
                }
                Signal::Reload | Signal::ConfigChanged => {
                    self.reload(run, signal, &mut signals).await
                }
            };
            match step {
                Step::Continue(next) => run = next,
                Step::Stop(drained) => return drained,
            }
        }
    }

    /// Reads the config file again and, if it passes the checks, drains the running
    /// pipeline and starts the new config, or the previous one again if the new one
    /// cannot start.
    async fn reload(&mut self, run: Run, signal: Signal, signals: &mut Signals) -> Step {
        let next = match self.prepare(signal).await {
            Ok(Some(next)) => next,
            Ok(None) => return Step::Continue(run),
            Err(error) => {
                self.parts.metrics.config_reload_failures.inc();
                tracing::error!(%error, "reload refused; the running config stays");
                return Step::Continue(run);
            }
        };
        tracing::info!("reloading: draining in-flight records, then running the new config");
        let (drained, stop) = self.drain_watching(run, signals).await;
        log_summary(&drained);
        if let Some(name) = stop {
            tracing::info!(
                signal = name,
                "stopping: the reload's drain is done; the new config does not start"
            );
            return Step::Stop(drained);
        }
        match self.take_over(next).await {
            Ok(run) => Step::Continue(run),
            Err(error) => {
                self.parts.metrics.config_reload_failures.inc();
                tracing::error!(%error, "the new config cannot start; the previous one starts again");
                self.restore(signals).await
            }
        }
    }

    /// The reloaded config, checked, with its server address bound if it moved; `None`
    /// when a change of the config file's folder left the config as it was.
    async fn prepare(&self, signal: Signal) -> Result<Option<Next>, RunError> {
        let config = Config::load(&self.config.source)?;
        if signal == Signal::ConfigChanged && config == self.config {
            tracing::debug!("the config file's folder changed; the config did not");
            return Ok(None);
        }
        let validated = validate(&config).await?;
        let server = match (config.server.listen, &self.parts.server) {
            (None, None) => ServerChange::Keep,
            (None, Some(_)) => ServerChange::Stop,
            (Some(address), Some(server)) if server.configured() == address => ServerChange::Keep,
            (Some(address), _) => ServerChange::Move(bind(&config, address).await?),
        };
        Ok(Some(Next {
            config,
            validated,
            server,
        }))
    }

    /// Drains `run` while listening for signals: a stop signal is returned (the drain goes
    /// on to its end, within `shutdown_timeout`), a reload kept for after the next start.
    async fn drain_watching(
        &mut self,
        run: Run,
        signals: &mut Signals,
    ) -> (Result<Summary, RunError>, Option<&'static str>) {
        let drain = run.drain(self.config.pipeline.shutdown_timeout);
        tokio::pin!(drain);
        let mut stop = None;
        loop {
            tokio::select! {
                biased;
                signal = signals.next() => match signal {
                    Signal::Stop(name) => {
                        if stop.is_none() {
                            tracing::info!(signal = name, "stopping once the reload's drain ends");
                        }
                        stop = Some(name);
                    }
                    Signal::Reload | Signal::ConfigChanged => {
                        if self.pending != Some(Signal::Reload) {
                            self.pending = Some(signal);
                        }
                    }
                },
                drained = &mut drain => return (drained, stop),
            }
        }
    }

    /// Starts `next`; once it runs, it is the config, and the server follows its `listen`.
    async fn take_over(&mut self, next: Next) -> Result<Run, RunError> {
        (self.on_reload)(&self.config, &next.config);
        let started = self
            .parts
            .start(&next.config, Mode::Follow, next.validated)
            .await;
        match started {
            Ok(run) => {
                self.config = next.config;
                self.parts.move_server(next.server, &self.config).await;
                self.parts.metrics.config_reloads.inc();
                tracing::info!("the new config runs");
                Ok(run)
            }
            Err(error) => {
                (self.on_reload)(&next.config, &self.config);
                Err(error)
            }
        }
    }

    /// Starts the previous config again after a new one failed to; while it cannot start
    /// either, tries again every [`RESTORE_RETRY`], or a config reloaded meanwhile. A stop
    /// signal ends the process (nothing runs, so nothing is to drain).
    async fn restore(&mut self, signals: &mut Signals) -> Step {
        loop {
            let attempt = match validate(&self.config).await {
                Ok(validated) => {
                    let config = &self.config;
                    self.parts.start(config, Mode::Follow, validated).await
                }
                Err(error) => Err(error),
            };
            match attempt {
                Ok(run) => {
                    tracing::info!("the previous config runs again");
                    return Step::Continue(run);
                }
                Err(error) => tracing::error!(
                    %error, retry_in = ?RESTORE_RETRY,
                    "the previous config cannot start either; nothing runs"
                ),
            }
            let signal = tokio::select! {
                biased;
                signal = signals.next() => signal,
                () = tokio::time::sleep(RESTORE_RETRY) => continue,
            };
            if let Signal::Stop(name) = signal {
                tracing::info!(signal = name, "stopping");
                return Step::Stop(Ok(Summary::default()));
            }
            match self.prepare(signal).await {
                Ok(Some(next)) => match self.take_over(next).await {
                    Ok(run) => return Step::Continue(run),
                    Err(error) => tracing::error!(%error, "the reloaded config cannot start"),
                },
                Ok(None) => {}
                Err(error) => tracing::error!(%error, "reload refused"),
            }
        }
    }
}

impl Parts {
    /// Starts a run of `config`, which `validated` checked.
    async fn start(
        &mut self,
        config: &Config,
        mode: Mode,
        validated: Validated,
    ) -> Result<Run, RunError> {
        let Validated {
            enricher,
            files,
            metadata,
            ..
        } = validated;
        let metadata = self.metadata(config, metadata).await;
        let run = start(config, enricher, files, metadata, &self.metrics, mode).await?;
        if let Some(server) = &self.server {
            server.set_alive_within(alive_within(config));
        }
        Ok(run)
    }

    /// The metadata source `plan` describes: the running API watch when `[kubernetes]` is
    /// the same as when it started, else a new one (which waits for its first list at
    /// most `lookup_timeout`).
    async fn metadata(&mut self, config: &Config, plan: MetadataPlan) -> Metadata {
        let kube = &config.kubernetes;
        let client = match plan {
            MetadataPlan::Off => return Metadata::Off,
            MetadataPlan::File(index) => return Metadata::File(index),
            MetadataPlan::Api(client) => client,
        };
        if let Some((watched, metadata)) = &self.metadata
            && watched == kube
        {
            return metadata.clone();
        }
        let settings = ApiSettings {
            node_name: kube.node_name.clone(),
            capacity: NonZeroUsize::new(kube.cache_capacity).unwrap_or(NonZeroUsize::MIN),
            deleted_pod_grace: kube.deleted_pod_grace,
            lookup_timeout: kube.lookup_timeout,
            namespace_labels: kube.namespace_labels,
            namespace_exclude: kube.namespace_exclude,
            annotation_prefixes: kube.annotation_prefixes.clone(),
        };
        let metadata = Metadata::Api(crate::kube::start(client, &settings).await);
        self.metadata = Some((kube.clone(), metadata.clone()));
        metadata
    }

    /// Makes the server follow `config`'s `server.listen`, as `change` prepared.
    async fn move_server(&mut self, change: ServerChange, config: &Config) {
        let listener = match change {
            ServerChange::Keep => return,
            ServerChange::Stop => None,
            ServerChange::Move(listener) => Some(listener),
        };
        if let Some(old) = self.server.take() {
            old.stop().await;
        }
        if let (Some(listener), Some(address)) = (listener, config.server.listen) {
            let within = alive_within(config);
            let metrics = Arc::clone(&self.metrics);
            self.server = Some(Server::start(listener, address, metrics, within));
        }
    }
}

/// Binds `server.listen`; a taken or unusable address is the config's fault.
async fn bind(config: &Config, address: SocketAddr) -> Result<TcpListener, ConfigError> {
    Server::bind(address).await.map_err(|error| {
        ConfigError::new(
            &config.source,
            "server.listen",
            format!("cannot listen on {address}: {error}"),
        )
    })
}

/// How long a piece of work, or the gap between checkpoint ticks, may last before
/// `/healthz` calls the pipeline wedged: a few commit intervals, never less than 10 s.
fn alive_within(config: &Config) -> Duration {
    (config.state.commit_interval * 5).max(Duration::from_secs(10))
}

/// One log line saying what a run did (or why it failed, for the caller to report).
fn log_summary(summary: &Result<Summary, RunError>) {
    let Ok(summary) = summary else { return };
    let p = summary.processed;
    let delivered: Vec<String> = summary
        .sinks
        .iter()
        .map(|s| format!("{} to {}", s.records, s.name))
        .collect();
    tracing::info!(
        files = p.files,
        lines = p.lines,
        bytes = p.bytes,
        decode_errors = p.decode_errors,
        excluded = p.excluded,
        parsed = p.parsed,
        unmatched = p.unmatched,
        illegal_topics = p.illegal_topics,
        pods_unknown = p.pods_unknown,
        pods_found_late = p.pods_found_late,
        contexts_rebuilt = p.contexts_rebuilt,
        without_metadata = p.without_metadata,
        delivered = %delivered.join(", "),
        "done"
    );
}
