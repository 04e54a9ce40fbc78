//! The configuration file of CONTRACT.md, turned into typed values once, at start-up.
//!
//! Runtime code never sees a raw string where a duration, a size or a path belongs: every
//! field here is already parsed and validated, and every error names the file, the key and
//! the reason. Relative paths and globs in the file are resolved against the folder that
//! holds the config file, so a config works whatever the current directory.
//!
//! Loading runs in four steps, each in its own file: the TOML text is parsed into a tree,
//! `${NAME}` references in its string values are substituted (`env.rs`), the tree is read
//! into the file's shape with durations and sizes parsed (`file.rs`, `units.rs`), and that
//! shape is resolved and checked into [`Config`] (`resolve.rs`). Errors are
//! [`ConfigError`]s naming the file, the dotted key and the reason (`error.rs`).

mod env;
mod error;
mod events;
mod file;
mod resolve;
mod sinks;
#[cfg(test)]
mod tests;
mod transforms;
mod units;
mod warnings;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use error::ConfigError;

use crate::route::Template;
use crate::route::allow::{AllowList, TopicOverrides};

use resolve::Origin;

/// The whole configuration.
///
/// Relative paths in the file (`state.path`, `kubernetes.kubeconfig`,
/// `kubernetes.pods_file`, `parsers.dirs`, a file sink's `path`) and relative
/// `tail.include` / `tail.exclude` globs are resolved against the folder that holds the
/// config file, not the current directory; here they are all absolute.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this configuration was read from, made absolute.
    pub source: PathBuf,
    /// `[tail]`: which files to follow and how.
    pub tail: TailConfig,
    /// `[state]`: where file offsets are kept.
    pub state: StateConfig,
    /// `[pipeline]`: memory and batching.
    pub pipeline: PipelineConfig,
    /// `[kubernetes]`: pod metadata and how records are shaped from it.
    pub kubernetes: KubernetesConfig,
    /// `[parsers]`: where parser definitions live.
    pub parsers: ParsersConfig,
    /// `[route]`: the topic tag of each record.
    pub route: RouteConfig,
    /// `[server]`: the health and metrics endpoint.
    pub server: ServerConfig,
    /// `[log]` (beyond CONTRACT): shiplog's own log lines.
    pub log: LogConfig,
    /// `[events]` (beyond CONTRACT): Kubernetes events, shipped by an elected leader.
    pub events: EventsConfig,
    /// `[sinks.<name>]`, in name order. At least one, at most [`MAX_SINKS`].
    pub sinks: Vec<SinkConfig>,
    /// `[[transforms]]`, in order: applied to every record before it is routed.
    pub transforms: Vec<crate::transform::Transform>,
}

/// Sinks a config may have: a chunk's acknowledgement id names the sinks it went to in a
/// 64-bit set.
pub const MAX_SINKS: usize = 64;

/// `[tail]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TailConfig {
    /// Globs of files to follow, absolute; at least one. Default
    /// `["/var/log/containers/*.log"]`.
    pub include: Vec<String>,
    /// Globs of files never to follow, absolute. Default empty.
    pub exclude: Vec<String>,
    /// Where a file with no checkpoint, present at first start, is read from. Default head.
    pub read_from: ReadFrom,
    /// Longer lines are cut into pieces flagged `truncated`. At least 1 KiB, and no more
    /// than `pipeline.memory_limit`. Default 256 KiB.
    pub max_line_bytes: usize,
    /// How often the include globs are evaluated again; never zero. Default 5 s.
    pub rescan_interval: Duration,
    /// How long a rotated or deleted file stays open after its last read. Default 30 s.
    pub rotate_wait: Duration,
    /// A multiline event held this long with no new bytes in its file is shipped as it
    /// stands; never zero. Default 1 s (Fluent Bit's `flush_timeout` is 4 s, and its timer
    /// can fire inside a group; ours counts from the file's last bytes).
    pub multiline_flush: Duration,
    /// A multiline event of more lines is cut into pieces flagged `truncated`; at least 1.
    /// Default 500.
    pub multiline_max_lines: usize,
}

/// `tail.read_from`: `"head"` or `"tail"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte.
    Head,
    /// From the end as it is when the file is first seen.
    Tail,
}

/// `[state]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StateConfig {
    /// The SQLite checkpoint database. Default `/var/lib/shiplog/state.db`.
    pub path: PathBuf,
    /// How often acknowledged offsets are committed; never zero. Default 1 s.
    pub commit_interval: Duration,
}

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    /// In-flight bytes above which reading pauses; at least `tail.max_line_bytes`, so the
    /// longest line always fits. Default 64 MiB.
    pub memory_limit: u64,
    /// A batch is sent when it holds this many records; at least 1. Default 1000.
    pub batch_max_events: usize,
    /// A batch is sent when it holds this many bytes; at least 1. Default 1 MiB.
    pub batch_max_bytes: u64,
    /// A batch is sent when its oldest record has waited this long; never zero. Default 1 s.
    pub batch_timeout: Duration,
    /// How long shutdown may take to drain in-flight batches. Default 30 s.
    pub shutdown_timeout: Duration,
}

/// `[kubernetes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesConfig {
    /// Where pod metadata comes from. Default api.
    pub metadata: MetadataSource,
    /// This node's name (`spec.nodeName` of the pods to watch); not empty when `metadata`
    /// is api. Default: the `NODE_NAME` environment variable, empty when it is unset.
    pub node_name: String,
    /// A kubeconfig file; `None` (`""` in the file) means in-cluster config, then
    /// `KUBECONFIG`, then `~/.kube/config`. Default `None`.
    pub kubeconfig: Option<PathBuf>,
    /// The PodList (JSON or YAML) read when `metadata = "file"`. Required then; `None`
    /// (`""` in the file) otherwise by default.
    pub pods_file: Option<PathBuf>,
    /// Annotation prefixes that steer shiplog. Default `["shiplog.io", "fluentbit.io"]`.
    pub annotation_prefixes: Vec<String>,
    /// Copy the pod's labels into records. Default true.
    pub include_labels: bool,
    /// Copy the pod's annotations into records. Default true.
    pub include_annotations: bool,
    /// How long a deleted pod's metadata stays cached. Default 5 min.
    pub deleted_pod_grace: Duration,
    /// How many pods' metadata the cache holds; at least 1. Default 4096.
    pub cache_capacity: usize,
    /// How long a file's first lines may wait for one GET of a pod the cache does not
    /// hold yet; after that they ship with what the file name carries, and the file picks
    /// the pod up when its watch event arrives. Zero: never wait. Default 1 s.
    pub lookup_timeout: Duration,
    /// With `metadata = "api"`: watch namespaces too, and add each pod's namespace's
    /// labels to its records as `kubernetes.namespace_labels`. Default false (one more
    /// watch, on every namespace of the cluster).
    pub namespace_labels: bool,
    /// With `metadata = "api"`: watch namespaces too, and ship nothing of the pods of a
    /// namespace annotated `<prefix>/exclude: "true"`. Default true (the same one watch as
    /// `namespace_labels`, on every namespace of the cluster).
    pub namespace_exclude: bool,
    /// Merge a JSON object payload into the record under `merge_log_key`. Default true.
    pub merge_log: bool,
    /// The key merged fields go under; not empty when `merge_log`. Default `data`.
    pub merge_log_key: String,
    /// Keep the original line in `log` when it was merged or parsed. Default true.
    pub keep_log: bool,
}

/// `kubernetes.metadata`: `"api"`, `"file"` or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetadataSource {
    /// A watch on the Kubernetes API.
    Api,
    /// A PodList file (`pods_file`): tests, benchmarks, the demo.
    File,
    /// No metadata beyond what the log file's name carries.
    Off,
}

/// `[parsers]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsersConfig {
    /// Folders whose `*.toml` files define parsers, besides the built-in ones. Default
    /// `["parsers"]`.
    pub dirs: Vec<PathBuf>,
    /// The folders are the default, which may be missing (the built-in parsers need none);
    /// a folder the file names must exist.
    pub missing_ok: bool,
}

/// `[route]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// The topic template. Default `{namespace}`.
    pub topic: String,
    /// The topic when the template cannot be filled; not empty. Default `unknown`.
    pub default_topic: String,
    /// What a pod's `shiplog.io/topic` annotation (and a `topic` template filled from its
    /// labels or annotations) may choose. Default `["{namespace}", "{namespace}-*"]`: a
    /// pod may specialise its own namespace's topic, never reach another's (issue 25).
    pub topic_overrides: TopicOverrides,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None` (`""`) disables it.
    /// Default `127.0.0.1:2020`.
    pub listen: Option<SocketAddr>,
}

/// `[events]` (beyond CONTRACT): Kubernetes events, shipped by the one shiplog of the
/// DaemonSet that holds a Lease.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsConfig {
    /// Whether this shiplog stands for election and ships events. Default false.
    pub enabled: bool,
    /// The namespaces whose events are shipped; empty (the default) for all.
    pub namespaces: Vec<String>,
    /// The records' routing tag (`topic`). Default `k8s-events`.
    pub topic: String,
    /// The Lease elected over. Default `shiplog-events`.
    pub lease_name: String,
    /// Its namespace. Default `POD_NAMESPACE`, else `shiplog`.
    pub lease_namespace: String,
    /// This shiplog's name as the Lease's holder. Default `POD_NAME`, else `HOSTNAME`.
    pub identity: String,
    /// How long a lease lasts and is renewed.
    pub lease: LeaseTimings,
    /// Fields added to every events record (`cluster = "prod-eu"`).
    pub tags: BTreeMap<String, String>,
}

/// client-go's leader election timings; defaults 15 s, 10 s, 2 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimings {
    /// How long a holder's claim lasts from its last renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps leading while its renewals fail.
    pub renew_deadline: Duration,
    /// How often a leader renews, and others try to take over.
    pub retry_period: Duration,
}

/// `[log]` (beyond CONTRACT): shiplog's own log lines, on stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Which lines: a `RUST_LOG`-style filter (`"info"`, `"warn,shiplog::tail=debug"`),
    /// checked at load. `RUST_LOG`, when set, wins. Default `info`. A reload applies it.
    pub level: String,
    /// How they are written. `SHIPLOG_LOG_FORMAT`, when set, wins. Default `auto`. Read
    /// at start only.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Auto,
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (in a container), text on a terminal.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// `[sinks.<name>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkConfig {
    /// The table's name, unique and not empty.
    pub name: String,
    /// The destination and its settings.
    pub kind: SinkKind,
    /// `[sinks.<name>.match]`: the records this sink gets; `None`: all.
    pub matcher: Option<crate::route::matcher::Match>,
}

/// The sink types this build supports.
#[derive(Debug, Clone, PartialEq)]
pub enum SinkKind {
    /// One JSON record per line on standard output.
    Stdout,
    /// One JSON record per line appended to `path`.
    File {
        /// The file, created if missing; no two file sinks share one.
        path: PathBuf,
    },
    /// Discards records, acknowledging at once (benchmarks).
    Null,
    /// Each record one message to a Kafka topic.
    Kafka(KafkaConfig),
    /// Each record one log event of a CloudWatch Logs stream.
    Cloudwatch(CloudwatchConfig),
}

/// `[sinks.<name>]` with `type = "kafka"`.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    /// `brokers`: the bootstrap servers, `host:port,host:port`; required, not empty.
    pub brokers: String,
    /// `topic`: the topic of each record's message. Default `{topic}`, the routing tag.
    pub topic: Template,
    /// `key`: the message key (`{pod}` keeps a pod's records in one partition, in order);
    /// `None` (`""`, the default): no key.
    pub key: Option<Template>,
    /// `compression`: `none`, `gzip`, `snappy`, `lz4` or `zstd` (the default).
    pub compression: String,
    /// `acks`: `all` (the default, with idempotence on), `1` or `0`.
    pub acks: Acks,
    /// `create_topics`: let the brokers create a topic the first time a record goes to
    /// it (librdkafka's `allow.auto.create.topics`; the brokers must allow it too).
    /// Default false: topics must exist.
    pub create_topics: bool,
    /// `default_topic`: where records go whose topic does not exist (or whose template
    /// cannot be filled); a legal topic name. Default `route.default_topic`.
    pub default_topic: String,
    /// `[sinks.<name>.librdkafka]`: librdkafka properties passed through as they are (TLS,
    /// SASL, batching), none of them one the keys above set.
    pub librdkafka: BTreeMap<String, String>,
    /// `allowed_destinations`: topics the filled `topic` template may name (patterns with
    /// `{namespace}` and `*`); another goes to `default_topic`, counted. Default `None`:
    /// any topic.
    pub allowed_destinations: Option<AllowList>,
}

/// `[sinks.<name>]` with `type = "cloudwatch"`.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudwatchConfig {
    /// `region`: the AWS region; `None`: from the environment chain (`AWS_REGION`, the
    /// profile, IMDS).
    pub region: Option<String>,
    /// `endpoint`: a URL that replaces CloudWatch Logs' own (a VPC endpoint, a mock).
    pub endpoint: Option<String>,
    /// `log_group`: the log group of a file's records. Default `/k8s/{namespace}`.
    pub log_group: Template,
    /// `log_stream`: the log stream of a file's records. Default `{pod}.{container}`.
    pub log_stream: Template,
    /// `auto_create_group`: create a missing log group (default true); streams are always
    /// created when missing.
    pub auto_create_group: bool,
    /// `retention_days`: the retention set on log groups this sink creates; one of
    /// CloudWatch's allowed values ([`CLOUDWATCH_RETENTION_DAYS`]). `None`: never expire.
    pub retention_days: Option<i32>,
    /// What a template placeholder with no value is filled with: `route.default_topic`.
    pub fallback: String,
    /// `allowed_destinations`: log groups the filled `log_group` template may name
    /// (patterns with `{namespace}` and `*`); another is replaced by the template filled
    /// with `fallback` for every pod-chosen placeholder, counted. Stream names are not
    /// restricted (a stream lives in its group). Default `None`: any group.
    pub allowed_destinations: Option<AllowList>,
}

/// The retention periods CloudWatch Logs accepts, in days.
pub const CLOUDWATCH_RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// `acks` of a Kafka sink: how many replicas must have a message before it counts as
/// delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Every in-sync replica (`all`); the producer is idempotent, so its own retries
    /// neither duplicate nor reorder messages.
    All,
    /// The partition leader only (`1`).
    Leader,
    /// None (`0`): delivered as soon as it is sent.
    None,
}

impl Config {
    /// Reads, substitutes, parses and validates the config file at `path`, taking
    /// `${NAME}` values from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`Config::load`] with the environment given as a lookup (`None`: not set).
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(path, "", format!("cannot read the config file: {error}"))
        })?;
        Config::from_toml(&text, path, env)
    }

    /// Parses config `text` as if read from the file at `path`: errors name `path`, and
    /// relative paths are resolved against its folder. The file itself is not read.
    pub fn from_toml(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::from_syntax(path, text, &e))?;
        env::substitute_table(&mut tree, env)
            .map_err(|e| ConfigError::new(path, e.key, e.reason))?;
        let shape: file::ConfigFile = serde_path_to_error::deserialize(tree)
            .map_err(|e| ConfigError::from_serde(path, "", &e))?;
        resolve::resolve(shape, &Origin::new(path, env))
    }

    /// The folder relative paths in the config file are resolved against.
    pub fn base_dir(&self) -> &Path {
        self.source.parent().unwrap_or(Path::new("."))
    }
}
