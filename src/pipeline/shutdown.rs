//! What ends or restarts a run: SIGTERM and SIGINT stop (drain, commit, exit 0); SIGHUP,
//! or a change to the config file, asks for a reload.
//!
//! Listened to once for the life of the process, not per run, so that no signal is lost
//! between two runs (SIGTERM during a reload's drain). [`Signals::next`] may be cancelled
//! and called again without losing one, and SIGTERM and SIGINT come before SIGHUP and
//! config changes when several are pending.

use std::path::Path;
use std::time::Duration;

use notify::Watcher;
use tokio::signal::unix::{Signal as Stream, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// The process's signal streams, listened to for the whole process.
#[derive(Debug)]
pub struct Signals {
    streams: Option<(Stream, Stream, Stream)>,
    changes: mpsc::UnboundedReceiver<()>,
    /// A change was seen: it is reported once the burst has settled, at this time.
    settled_at: Option<Instant>,
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
            settled_at: None,
            _watcher: watcher,
        }
    }

    /// The next signal. Cancel-safe: a signal or change seen by a cancelled call is
    /// reported by the next one.
    pub async fn next(&mut self) -> Signal {
        loop {
            let settled_at = self.settled_at;
            let settled = async move {
                match settled_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let signal = async {
                match self.streams.as_mut() {
                    Some((term, int, hup)) => tokio::select! {
                        biased;
                        _ = term.recv() => Signal::Stop("SIGTERM"),
                        _ = int.recv() => Signal::Stop("SIGINT"),
                        _ = hup.recv() => Signal::Reload,
                    },
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                signal = signal => return signal,
                () = settled => {
                    self.settled_at = None;
                    while self.changes.try_recv().is_ok() {}
                    return Signal::ConfigChanged;
                }
                Some(()) = self.changes.recv() => {
                    self.settled_at.get_or_insert(Instant::now() + SETTLE);
                }
            }
        }
    }
}
