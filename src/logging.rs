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
        let from_env = std::env::var(EnvFilter::DEFAULT_ENV)
            .ok()
            .and_then(|directives| EnvFilter::try_new(quiet_kube_client(&directives)).ok());
        let ruled_by_env = from_env.is_some();
        // The config's level was checked when it was loaded.
        let filter = from_env.unwrap_or_else(|| EnvFilter::new(quiet_kube_client(&config.level)));
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
            match filter.reload(EnvFilter::new(quiet_kube_client(&new.level))) {
                Ok(()) => tracing::info!(level = %new.level, "log level changed"),
                Err(error) => tracing::warn!(%error, "log level unchanged"),
            }
        }
    }
}

/// `directives`, with the API client's own line per failed request left out unless they
/// name `kube_client` themselves: kube logs an ERROR for every failed call, which during an
/// API outage is one per retry, while the watches log the outage once (WARN) and its end
/// (INFO), and lookups fall back quietly.
fn quiet_kube_client(directives: &str) -> String {
    if directives.contains("kube_client") {
        directives.to_owned()
    } else {
        format!("{directives},kube_client::client::builder=off")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_clients_per_request_errors_are_off_unless_asked_for() {
        assert_eq!(
            quiet_kube_client("info"),
            "info,kube_client::client::builder=off"
        );
        assert_eq!(
            quiet_kube_client("warn,kube_client=debug"),
            "warn,kube_client=debug"
        );
        assert!(EnvFilter::try_new(quiet_kube_client("warn,shiplog::tail=debug")).is_ok());
    }
}
