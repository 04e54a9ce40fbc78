//! shiplog's own log lines: where they go, which are kept, how they look, and the level
//! a reload changes. Set up once per process, by the command line.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};

/// shiplog's own log lines go to stderr (stdout is for records). `RUST_LOG`, when set,
/// chooses which, else `log.level`; `SHIPLOG_LOG_FORMAT=json|text`, when set, chooses how,
/// else `log.format`, whose `auto` is one JSON object per line when stderr is not a
/// terminal (in a container, for log pipelines) and readable text on a terminal.
pub struct Logging {
    /// Swaps the filter when a reload brings a new `log.level`; `None` when `RUST_LOG` rules.
    filter: Option<reload::Handle<EnvFilter, Registry>>,
}

impl Logging {
    /// Installs the process's logger.
    pub fn start(config: &LogConfig) -> Logging {
        let from_env = EnvFilter::try_from_default_env().ok();
        let ruled_by_env = from_env.is_some();
        // The config's level was checked when it was loaded.
        let filter = from_env.unwrap_or_else(|| EnvFilter::new(&config.level));
        let (filter, handle) = reload::Layer::new(filter);
        let terminal = std::io::stderr().is_terminal();
        let json = match std::env::var("SHIPLOG_LOG_FORMAT").as_deref() {
            Ok("json") => true,
            Ok("text") => false,
            _ => match config.format {
                LogFormat::Json => true,
                LogFormat::Text => false,
                LogFormat::Auto => !terminal,
            },
        };
        let logs = tracing_subscriber::registry().with(filter);
        let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        if json {
            logs.with(layer.json()).init();
        } else {
            logs.with(layer.with_ansi(terminal)).init();
        }
        Logging {
            filter: (!ruled_by_env).then_some(handle),
        }
    }

    /// A reload's `[log]`: the new level applies now; a new format at the next start.
    pub fn reload(&self, old: &LogConfig, new: &LogConfig) {
        if new.format != old.format {
            tracing::warn!(format = ?new.format, "log.format changes at the next start");
        }
        let Some(filter) = &self.filter else {
            if new.level != old.level {
                tracing::warn!("RUST_LOG is set: it keeps choosing the log level over log.level");
            }
            return;
        };
        if new.level != old.level {
            match filter.reload(EnvFilter::new(&new.level)) {
                Ok(()) => tracing::info!(level = %new.level, "log level changed"),
                Err(error) => tracing::warn!(%error, "log level unchanged"),
            }
        }
    }
}
