//! From the file's shape to [`Config`]: paths resolved, strings checked, rules that cross
//! fields enforced, sinks read according to their `type`.
//!
//! Every check that could fail later at run time fails here instead, with the key and the
//! reason: globs compile, intervals used as timer periods are non-zero, the longest line
//! fits in the memory budget, and each metadata source has what it needs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::env::Lookup;
use super::file::{
    ConfigFile, KubernetesFile, LogFile, ParsersFile, PipelineFile, RouteFile, ServerFile,
    StateFile, TailFile,
};
use super::{
    Config, ConfigError, KubernetesConfig, LogConfig, MetadataSource, ParsersConfig,
    PipelineConfig, RouteConfig, ServerConfig, StateConfig, TailConfig,
};
use crate::route::allow::{AllowList, TopicOverrides};
use crate::route::{Placeholder, Template};

/// The keys a record sets itself (`record.rs`): the merged payload may not take one, or a
/// line could carry a second `kubernetes` (a forged namespace) or `topic` beside shiplog's.
const RECORD_KEYS: [&str; 9] = [
    "time",
    "stream",
    "log",
    "kubernetes",
    "topic",
    "truncated",
    "partial",
    "invalid_utf8",
    "shiplog_error",
];

/// The smallest `tail.max_line_bytes`: below it, ordinary lines would be cut.
const MIN_LINE_BYTES: u64 = 1 << 10;

/// Where the config came from: what errors name, what relative paths are resolved
/// against, and the environment (for the `NODE_NAME` default).
pub(super) struct Origin<'a> {
    /// The config file as the user named it; errors name it so.
    pub(super) file: &'a Path,
    /// The config file, absolute.
    source: PathBuf,
    /// The folder holding the config file, absolute.
    dir: PathBuf,
    /// The environment.
    env: Lookup<'a>,
}

impl<'a> Origin<'a> {
    /// The origin of a config read from `file`.
    pub fn new(file: &'a Path, env: Lookup<'a>) -> Self {
        let source = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let dir = source
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Origin {
            file,
            source,
            dir,
            env,
        }
    }

    /// The environment variable `name`.
    pub(super) fn env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    pub(super) fn error(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, key, reason)
    }

    /// Takes the `type` string out of the table at dotted `key` (a sink, a transform);
    /// `types` lists the accepted ones for the error.
    pub(super) fn take_type(
        &self,
        key: &str,
        table: &mut toml::Table,
        types: &str,
    ) -> Result<String, ConfigError> {
        match table.remove("type") {
            Some(toml::Value::String(kind)) => Ok(kind),
            Some(_) => Err(self.error(
                format!("{key}.type"),
                format!("expected a string, one of: {types}"),
            )),
            None => Err(self.error(
                key,
                format!("missing key \"type\" (expected one of: {types})"),
            )),
        }
    }

    /// `text` as a path, relative ones taken from the config file's folder. Empty is an error.
    pub(super) fn path(&self, key: &str, text: &str) -> Result<PathBuf, ConfigError> {
        if text.is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        Ok(self.dir.join(text).components().collect())
    }

    /// Like [`Origin::path`], but empty means `None`.
    fn optional_path(&self, key: &str, text: &str) -> Result<Option<PathBuf>, ConfigError> {
        match text {
            "" => Ok(None),
            text => self.path(key, text).map(Some),
        }
    }

    /// A glob, checked, relative ones prefixed with the config file's folder (its glob
    /// metacharacters escaped, so a folder named `logs[1]` matches itself).
    fn glob(&self, key: &str, text: &str) -> Result<String, ConfigError> {
        if text.is_empty() {
            return Err(self.error(key, "must not be empty"));
        }
        if let Err(error) = glob::Pattern::new(text) {
            let reason = format!(
                "invalid glob {text:?}: {} at character {}",
                error.msg, error.pos
            );
            return Err(self.error(key, reason));
        }
        if Path::new(text).is_absolute() {
            return Ok(text.to_string());
        }
        let Some(dir) = self.dir.to_str() else {
            let reason = "the config file's folder is not valid UTF-8, so a relative glob cannot be resolved; use an absolute one";
            return Err(self.error(key, reason));
        };
        let relative = text.trim_start_matches("./");
        Ok(format!(
            "{}/{relative}",
            glob::Pattern::escape(dir.trim_end_matches('/'))
        ))
    }

    fn globs(&self, key: &str, texts: &[String]) -> Result<Vec<String>, ConfigError> {
        let key_of = |index| format!("{key}[{index}]");
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| self.glob(&key_of(i), text))
            .collect()
    }
}

/// Turns the parsed file into a [`Config`], or names the first key that is wrong.
pub(super) fn resolve(file: ConfigFile, origin: &Origin<'_>) -> Result<Config, ConfigError> {
    let tail = tail(file.tail, origin)?;
    let pipeline = pipeline(file.pipeline, &tail, origin)?;
    let route = route(file.route, origin)?;
    let sinks = super::sinks::sinks(file.sinks, &route, origin)?;
    let kubernetes = kubernetes(file.kubernetes, origin)?;
    let mut own_keys = RECORD_KEYS.to_vec();
    own_keys.push(&kubernetes.merge_log_key);
    let transforms = super::transforms::transforms(file.transforms, &own_keys, origin)?;
    Ok(Config {
        source: origin.source.clone(),
        tail,
        state: state(file.state, origin)?,
        pipeline,
        kubernetes,
        parsers: parsers(file.parsers, origin)?,
        route,
        server: server(file.server, origin)?,
        log: log(file.log, origin)?,
        events: super::events::events(file.events, origin)?,
        sinks,
        transforms,
    })
}

fn tail(file: TailFile, origin: &Origin<'_>) -> Result<TailConfig, ConfigError> {
    if file.include.is_empty() {
        return Err(origin.error("tail.include", "at least one glob is required"));
    }
    if file.max_line_bytes < MIN_LINE_BYTES {
        let reason = format!(
            "must be at least 1KiB ({MIN_LINE_BYTES} bytes), got {} bytes",
            file.max_line_bytes
        );
        return Err(origin.error("tail.max_line_bytes", reason));
    }
    let max_line_bytes = usize::try_from(file.max_line_bytes)
        .map_err(|_| origin.error("tail.max_line_bytes", "too large for this machine"))?;
    Ok(TailConfig {
        include: origin.globs("tail.include", &file.include)?,
        exclude: origin.globs("tail.exclude", &file.exclude)?,
        read_from: file.read_from,
        max_line_bytes,
        rescan_interval: non_zero(file.rescan_interval, "tail.rescan_interval", origin)?,
        rotate_wait: file.rotate_wait,
        multiline_flush: non_zero(file.multiline_flush, "tail.multiline_flush", origin)?,
        multiline_max_lines: match file.multiline_max_lines {
            0 => return Err(origin.error("tail.multiline_max_lines", "must be at least 1")),
            lines => lines,
        },
    })
}

fn state(file: StateFile, origin: &Origin<'_>) -> Result<StateConfig, ConfigError> {
    Ok(StateConfig {
        path: origin.path("state.path", &file.path)?,
        commit_interval: non_zero(file.commit_interval, "state.commit_interval", origin)?,
    })
}

fn pipeline(
    file: PipelineFile,
    tail: &TailConfig,
    origin: &Origin<'_>,
) -> Result<PipelineConfig, ConfigError> {
    if file.memory_limit < tail.max_line_bytes as u64 {
        let reason = format!(
            "must be at least tail.max_line_bytes ({} bytes), or the longest line could never be read",
            tail.max_line_bytes
        );
        return Err(origin.error("pipeline.memory_limit", reason));
    }
    if file.batch_max_events == 0 {
        return Err(origin.error("pipeline.batch_max_events", "must be at least 1"));
    }
    if file.batch_max_bytes == 0 {
        return Err(origin.error("pipeline.batch_max_bytes", "must be at least 1 byte"));
    }
    Ok(PipelineConfig {
        memory_limit: file.memory_limit,
        batch_max_events: file.batch_max_events,
        batch_max_bytes: file.batch_max_bytes,
        batch_timeout: non_zero(file.batch_timeout, "pipeline.batch_timeout", origin)?,
        shutdown_timeout: file.shutdown_timeout,
    })
}

fn kubernetes(file: KubernetesFile, origin: &Origin<'_>) -> Result<KubernetesConfig, ConfigError> {
    // The contract's default is `${NODE_NAME}`, the downward-API variable of the daemonset.
    let node_name = file
        .node_name
        .unwrap_or_else(|| (origin.env)("NODE_NAME").unwrap_or_default());
    let pods_file = origin.optional_path("kubernetes.pods_file", &file.pods_file)?;
    match file.metadata {
        MetadataSource::Api if node_name.is_empty() => {
            let reason = "metadata = \"api\" requires this node's name: set NODE_NAME or kubernetes.node_name, or use metadata = \"off\"";
            return Err(origin.error("kubernetes.node_name", reason));
        }
        MetadataSource::File if pods_file.is_none() => {
            let reason = "metadata = \"file\" requires pods_file, a PodList as JSON or YAML";
            return Err(origin.error("kubernetes.pods_file", reason));
        }
        MetadataSource::Api | MetadataSource::File | MetadataSource::Off => {}
    }
    if file.cache_capacity == 0 {
        return Err(origin.error("kubernetes.cache_capacity", "must be at least 1"));
    }
    if file.merge_log && file.merge_log_key.is_empty() {
        return Err(origin.error(
            "kubernetes.merge_log_key",
            "must not be empty when merge_log = true",
        ));
    }
    if file.merge_log && RECORD_KEYS.contains(&file.merge_log_key.as_str()) {
        let reason = format!(
            "{:?} is one of the record's own keys ({}): a line's JSON would shadow it",
            file.merge_log_key,
            RECORD_KEYS.join(", ")
        );
        return Err(origin.error("kubernetes.merge_log_key", reason));
    }
    Ok(KubernetesConfig {
        metadata: file.metadata,
        node_name,
        kubeconfig: origin.optional_path("kubernetes.kubeconfig", &file.kubeconfig)?,
        pods_file,
        annotation_prefixes: file.annotation_prefixes,
        include_labels: file.include_labels,
        include_annotations: file.include_annotations,
        deleted_pod_grace: file.deleted_pod_grace,
        cache_capacity: file.cache_capacity,
        lookup_timeout: file.lookup_timeout,
        namespace_labels: file.namespace_labels,
        namespace_exclude: file.namespace_exclude,
        merge_log: file.merge_log,
        merge_log_key: file.merge_log_key,
        keep_log: file.keep_log,
    })
}

fn parsers(file: ParsersFile, origin: &Origin<'_>) -> Result<ParsersConfig, ConfigError> {
    let missing_ok = file.dirs.is_none();
    let given = file.dirs.unwrap_or_else(|| vec!["parsers".to_string()]);
    let dirs = given.iter().enumerate();
    let dirs = dirs.map(|(i, dir)| origin.path(&format!("parsers.dirs[{i}]"), dir));
    Ok(ParsersConfig {
        dirs: dirs.collect::<Result<_, _>>()?,
        missing_ok,
    })
}

fn route(file: RouteFile, origin: &Origin<'_>) -> Result<RouteConfig, ConfigError> {
    if file.default_topic.is_empty() {
        return Err(origin.error("route.default_topic", "must not be empty"));
    }
    let topic = Template::compile(&file.topic)
        .map_err(|error| origin.error("route.topic", error.to_string()))?;
    if topic.uses(&Placeholder::Topic) {
        let reason = "{topic} is what this template makes; it cannot use itself";
        return Err(origin.error("route.topic", reason));
    }
    let topic_overrides = match file.topic_overrides {
        None => TopicOverrides::default(),
        Some(value) => topic_overrides(value, origin)?,
    };
    Ok(RouteConfig {
        topic: file.topic,
        default_topic: file.default_topic,
        topic_overrides,
    })
}

/// `route.topic_overrides`: `"any"`, `"off"`, or a list of patterns.
fn topic_overrides(value: toml::Value, origin: &Origin<'_>) -> Result<TopicOverrides, ConfigError> {
    const KEY: &str = "route.topic_overrides";
    let expected = "expected \"any\", \"off\" or a list of patterns such as [\"{namespace}\", \"{namespace}-*\"]";
    match value {
        toml::Value::String(word) => match word.as_str() {
            "any" => Ok(TopicOverrides::Any),
            "off" => Ok(TopicOverrides::Off),
            other => Err(origin.error(KEY, format!("{other:?}: {expected}"))),
        },
        toml::Value::Array(items) => {
            let texts = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    toml::Value::String(text) => Ok(text),
                    _ => Err(origin.error(format!("{KEY}[{i}]"), "expected a string")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            allow_list(KEY, &texts, origin).map(TopicOverrides::Only)
        }
        _ => Err(origin.error(KEY, expected)),
    }
}

/// A list of destination patterns at `key`, compiled; an error names the pattern at fault.
pub(super) fn allow_list(
    key: &str,
    texts: &[String],
    origin: &Origin<'_>,
) -> Result<AllowList, ConfigError> {
    AllowList::compile(texts).map_err(|(index, error)| {
        let key = match index {
            Some(i) => format!("{key}[{i}]"),
            None => key.to_owned(),
        };
        origin.error(key, error.to_string())
    })
}

fn server(file: ServerFile, origin: &Origin<'_>) -> Result<ServerConfig, ConfigError> {
    let listen = match file.listen.as_str() {
        "" => None,
        text => Some(text.parse::<SocketAddr>().map_err(|_| {
            let reason = format!(
                "invalid socket address {text:?} (use IP:PORT such as 127.0.0.1:2020, or \"\" to disable)"
            );
            origin.error("server.listen", reason)
        })?),
    };
    Ok(ServerConfig { listen })
}

/// The levels a bare word of `log.level` may name. `RUST_LOG` would take any other bare
/// word as a target to log at every level; in a config file it is far likelier a typo.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

fn log(file: LogFile, origin: &Origin<'_>) -> Result<LogConfig, ConfigError> {
    let hint = "use a level (trace, debug, info, warn, error, off) or directives such as \"warn,shiplog::tail=debug\"";
    let not_a_level =
        file.level.split(',').map(str::trim).find(|word| {
            !word.contains('=') && !LEVELS.contains(&word.to_ascii_lowercase().as_str())
        });
    if let Some(word) = not_a_level {
        let reason = format!("{word:?} is not a level: {hint}");
        return Err(origin.error("log.level", reason));
    }
    if let Err(error) = tracing_subscriber::EnvFilter::builder().parse(&file.level) {
        let reason = format!("invalid filter {:?}: {error}: {hint}", file.level);
        return Err(origin.error("log.level", reason));
    }
    Ok(LogConfig {
        level: file.level,
        format: file.format,
    })
}

/// Refuses a zero duration where it is used as a timer period.
fn non_zero(value: Duration, key: &str, origin: &Origin<'_>) -> Result<Duration, ConfigError> {
    if value.is_zero() {
        return Err(origin.error(key, "must be longer than 0s"));
    }
    Ok(value)
}
