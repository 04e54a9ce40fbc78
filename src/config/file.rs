//! The shape of the config file as serde reads it, with CONTRACT.md's defaults.
//!
//! These structs mirror the TOML one to one: strings stay strings where a path or an
//! address still has to be resolved or checked (that happens in `resolve.rs`), while
//! durations and sizes are parsed here by `units`, so their errors carry the key path.
//! Every section refuses unknown keys. Every key of a section is optional, hence
//! `#[serde(default)]` on each section struct, whose `Default` holds CONTRACT.md's values.
//! Sinks are kept as raw tables here: their keys depend on their `type`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::units::{deserialize_duration, deserialize_size};
use super::{LogConfig, LogFormat, MetadataSource, ReadFrom};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// The whole file. Sections may be left out; `[sinks.*]` needs at least one entry, which
/// `resolve.rs` checks so that the error can say so plainly.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub tail: TailFile,
    #[serde(default)]
    pub state: StateFile,
    #[serde(default)]
    pub pipeline: PipelineFile,
    #[serde(default)]
    pub kubernetes: KubernetesFile,
    #[serde(default)]
    pub parsers: ParsersFile,
    #[serde(default)]
    pub route: RouteFile,
    #[serde(default)]
    pub server: ServerFile,
    #[serde(default)]
    pub log: LogFile,
    #[serde(default)]
    pub events: super::events::EventsFile,
    #[serde(default)]
    pub sinks: BTreeMap<String, toml::Table>,
    /// `[[transforms]]`, kept raw: their keys depend on their `type`.
    #[serde(default)]
    pub transforms: Vec<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct TailFile {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub read_from: ReadFrom,
    #[serde(deserialize_with = "deserialize_size")]
    pub max_line_bytes: u64,
    #[serde(deserialize_with = "deserialize_duration")]
    pub rescan_interval: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    pub rotate_wait: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    pub multiline_flush: Duration,
    pub multiline_max_lines: usize,
}

impl Default for TailFile {
    fn default() -> Self {
        TailFile {
            include: vec!["/var/log/containers/*.log".to_string()],
            exclude: Vec::new(),
            read_from: ReadFrom::Head,
            max_line_bytes: 256 * KIB,
            rescan_interval: Duration::from_secs(5),
            rotate_wait: Duration::from_secs(30),
            multiline_flush: Duration::from_secs(1),
            multiline_max_lines: 500,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct StateFile {
    pub path: String,
    #[serde(deserialize_with = "deserialize_duration")]
    pub commit_interval: Duration,
}

impl Default for StateFile {
    fn default() -> Self {
        StateFile {
            path: "/var/lib/shiplog/state.db".to_string(),
            commit_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct PipelineFile {
    #[serde(deserialize_with = "deserialize_size")]
    pub memory_limit: u64,
    pub batch_max_events: usize,
    #[serde(deserialize_with = "deserialize_size")]
    pub batch_max_bytes: u64,
    #[serde(deserialize_with = "deserialize_duration")]
    pub batch_timeout: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    pub shutdown_timeout: Duration,
}

impl Default for PipelineFile {
    fn default() -> Self {
        PipelineFile {
            memory_limit: 64 * MIB,
            batch_max_events: 1000,
            batch_max_bytes: MIB,
            batch_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct KubernetesFile {
    pub metadata: MetadataSource,
    /// `None` when the key is absent: the default then comes from `NODE_NAME`.
    pub node_name: Option<String>,
    pub kubeconfig: String,
    pub pods_file: String,
    pub annotation_prefixes: Vec<String>,
    pub include_labels: bool,
    pub include_annotations: bool,
    #[serde(deserialize_with = "deserialize_duration")]
    pub deleted_pod_grace: Duration,
    pub cache_capacity: usize,
    #[serde(deserialize_with = "deserialize_duration")]
    pub lookup_timeout: Duration,
    pub namespace_labels: bool,
    pub namespace_exclude: bool,
    pub merge_log: bool,
    pub merge_log_key: String,
    pub keep_log: bool,
}

impl Default for KubernetesFile {
    fn default() -> Self {
        KubernetesFile {
            metadata: MetadataSource::Api,
            node_name: None,
            kubeconfig: String::new(),
            pods_file: String::new(),
            annotation_prefixes: vec!["shiplog.io".to_string(), "fluentbit.io".to_string()],
            include_labels: true,
            include_annotations: true,
            deleted_pod_grace: Duration::from_secs(5 * 60),
            cache_capacity: 4096,
            lookup_timeout: Duration::from_secs(1),
            namespace_labels: false,
            namespace_exclude: true,
            merge_log: true,
            merge_log_key: "data".to_string(),
            keep_log: true,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ParsersFile {
    /// `None` when the file does not set it: the default folder, which may be missing.
    pub dirs: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RouteFile {
    pub topic: String,
    pub default_topic: String,
    /// `"any"`, `"off"` or a list of patterns; checked in `resolve.rs`. `None`: the default
    /// list.
    pub topic_overrides: Option<toml::Value>,
}

impl Default for RouteFile {
    fn default() -> Self {
        RouteFile {
            topic: "{namespace}".to_string(),
            default_topic: "unknown".to_string(),
            topic_overrides: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ServerFile {
    pub listen: String,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            listen: "127.0.0.1:2020".to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LogFile {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogFile {
    fn default() -> Self {
        let defaults = LogConfig::default();
        LogFile {
            level: defaults.level,
            format: defaults.format,
        }
    }
}

/// `[sinks.<name>]` with `type = "file"`, the `type` key removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileSinkFile {
    pub path: String,
}

/// `[sinks.<name>]` with `type = "kafka"`, the `type` key removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KafkaSinkFile {
    pub brokers: String,
    #[serde(default = "KafkaSinkFile::default_topic_template")]
    pub topic: String,
    #[serde(default)]
    pub key: String,
    #[serde(default = "KafkaSinkFile::default_compression")]
    pub compression: String,
    #[serde(default = "KafkaSinkFile::default_acks")]
    pub acks: String,
    #[serde(default)]
    pub create_topics: bool,
    /// `None`: `route.default_topic`.
    #[serde(default)]
    pub default_topic: Option<String>,
    /// librdkafka properties passed through; values are strings, numbers or booleans.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, toml::Value>,
    /// Patterns the filled `topic` must match; `None`: any topic.
    #[serde(default)]
    pub allowed_destinations: Option<Vec<String>>,
}

impl KafkaSinkFile {
    fn default_topic_template() -> String {
        "{topic}".to_string()
    }

    fn default_compression() -> String {
        "zstd".to_string()
    }

    fn default_acks() -> String {
        "all".to_string()
    }
}

/// `[sinks.<name>]` with `type = "cloudwatch"`, the `type` key removed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CloudwatchSinkFile {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "CloudwatchSinkFile::default_log_group")]
    pub log_group: String,
    #[serde(default = "CloudwatchSinkFile::default_log_stream")]
    pub log_stream: String,
    #[serde(default = "CloudwatchSinkFile::default_auto_create_group")]
    pub auto_create_group: bool,
    #[serde(default)]
    pub retention_days: Option<i64>,
    /// Patterns the filled `log_group` must match; `None`: any group.
    #[serde(default)]
    pub allowed_destinations: Option<Vec<String>>,
}

impl CloudwatchSinkFile {
    fn default_log_group() -> String {
        "/k8s/{namespace}".to_string()
    }

    fn default_log_stream() -> String {
        "{pod}.{container}".to_string()
    }

    fn default_auto_create_group() -> bool {
        true
    }
}

/// `[sinks.<name>]` with `type = "stdout"` or `"null"`, which take no other keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NoOptions {}
