//! The signals that end or restart a run: SIGTERM and SIGINT stop (drain, commit, exit 0),
//! SIGHUP asks for a reload.

use tokio::signal::unix::{Signal as Stream, SignalKind, signal};

/// What a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Stop reading, drain, commit, exit; names the signal.
    Stop(&'static str),
    /// Read the config file again and, if it is good, run with it.
    Reload,
}

/// The process's signal streams, listened to for the whole run.
#[derive(Debug)]
pub struct Signals {
    streams: Option<(Stream, Stream, Stream)>,
}

impl Signals {
    /// Listens for SIGTERM, SIGINT and SIGHUP. Without signals (not expected on Linux) the
    /// run can only end by itself or by SIGKILL; that is logged once.
    pub fn new() -> Signals {
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
        Signals { streams }
    }

    /// The next signal.
    pub async fn next(&mut self) -> Signal {
        let Some((term, int, hup)) = self.streams.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => Signal::Stop("SIGTERM"),
            _ = int.recv() => Signal::Stop("SIGINT"),
            _ = hup.recv() => Signal::Reload,
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Signals::new()
    }
}
