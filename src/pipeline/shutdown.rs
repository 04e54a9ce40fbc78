//! What ends or restarts a run: SIGTERM and SIGINT stop (drain, commit, exit 0); SIGHUP,
//! or a change to the config file, asks for a reload.

use std::path::Path;
use std::time::Duration;

use notify::Watcher;
use tokio::signal::unix::{Signal as Stream, SignalKind, signal};
use tokio::sync::mpsc;

/// Edits come in bursts (an editor's write, a ConfigMap's symlink swap): one look after the
/// burst is enough.
const SETTLE: Duration = Duration::from_millis(500);

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop reading, drain, commit, exit; names the signal.
    Stop(&'static str),
    /// SIGHUP: read the config file again and, if it is good, run with it.
    Reload,
    /// The config file's folder changed: reload if the config is good and differs.
    ConfigChanged,
}

/// The process's signal streams, listened to for the whole run.
#[derive(Debug)]
pub struct Signals {
    streams: Option<(Stream, Stream, Stream)>,
    changes: mpsc::UnboundedReceiver<()>,
    /// Kept alive for as long as changes are wanted.
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Signals {
    /// Listens for SIGTERM, SIGINT and SIGHUP, and watches the folder of `config` (not the
    /// file: a Kubernetes ConfigMap is updated by swapping a symlink beside it). Without
    /// signals (not expected on Linux) the run can only end by itself or by SIGKILL; that
    /// is logged once.
    pub fn new(config: &Path) -> Signals {
        let streams = (|| {
            Some((
                signal(SignalKind::terminate()).ok()?,
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::hangup()).ok()?,
            ))
        })();
        if streams.is_none() {
            tracing::warn!("cannot listen for signals; stop with SIGKILL (offsets stay committed)");
        }
        let (tx, changes) = mpsc::unbounded_channel();
        let name = config.file_name().map(|name| name.to_os_string());
        let watcher = config.parent().and_then(|dir| {
            // The config file itself, or a ConfigMap's `..data` / `..<timestamp>` entries;
            // not the other files that may share the folder (a sink's output, the state DB).
            let concerns_config = move |path: &Path| {
                path.file_name().is_some_and(|file| {
                    Some(file) == name.as_deref() || file.to_string_lossy().starts_with("..")
                })
            };
            let handler = move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                let relevant = !matches!(event.kind, notify::EventKind::Access(_))
                    && event.paths.iter().any(|path| concerns_config(path));
                if relevant {
                    tx.send(()).ok();
                }
            };
            let mut watcher = notify::recommended_watcher(handler).ok()?;
            watcher
                .watch(dir, notify::RecursiveMode::NonRecursive)
                .ok()?;
            Some(watcher)
        });
        if watcher.is_none() {
            tracing::info!("not watching the config file; send SIGHUP to reload");
        }
        Signals {
            streams,
            changes,
            _watcher: watcher,
        }
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        let signal = async {
            match self.streams.as_mut() {
                Some((term, int, hup)) => tokio::select! {
                    _ = term.recv() => Signal::Stop("SIGTERM"),
                    _ = int.recv() => Signal::Stop("SIGINT"),
                    _ = hup.recv() => Signal::Reload,
                },
                None => std::future::pending().await,
            }
        };
        let changed = async {
            match self.changes.recv().await {
                Some(()) => {
                    tokio::time::sleep(SETTLE).await;
                    Signal::ConfigChanged
                }
                None => std::future::pending().await,
            }
        };
        let signal = tokio::select! {
            signal = signal => signal,
            changed = changed => changed,
        };
        while self.changes.try_recv().is_ok() {}
        signal
    }
}
