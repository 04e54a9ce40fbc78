//! `[sinks.<name>]` tables, read according to their `type`: each type's keys, its
//! defaults, and the checks that would otherwise fail at run time.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use super::file::{CloudwatchSinkFile, FileSinkFile, KafkaSinkFile, NoOptions};
use super::resolve::Origin;
use super::{
    Acks, CLOUDWATCH_RETENTION_DAYS, CloudwatchConfig, ConfigError, KafkaConfig, RouteConfig,
    SinkConfig, SinkKind,
};
use crate::route::allow::AllowList;
use crate::route::{Template, is_valid_topic};

/// The sink types this build reads, as listed in error messages.
const SINK_TYPES: &str = "stdout, file, null, kafka, cloudwatch";

/// Compression codecs librdkafka builds with here.
const KAFKA_CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// librdkafka properties a Kafka sink sets from its own keys, so the passthrough table
/// may not set them too: (our key, the properties it sets).
const KAFKA_OWN_PROPERTIES: [(&str, &[&str]); 4] = [
    ("brokers", &["bootstrap.servers", "metadata.broker.list"]),
    ("compression", &["compression.codec", "compression.type"]),
    (
        "acks",
        &["acks", "request.required.acks", "enable.idempotence"],
    ),
    ("create_topics", &["allow.auto.create.topics"]),
];

/// Reads every `[sinks.<name>]` table, in name order; at least one.
pub(super) fn sinks(
    tables: BTreeMap<String, toml::Table>,
    route: &RouteConfig,
    origin: &Origin<'_>,
) -> Result<Vec<SinkConfig>, ConfigError> {
    if tables.is_empty() {
        let reason =
            "at least one sink is required (add a [sinks.NAME] table, e.g. with type = \"stdout\")";
        return Err(origin.error("sinks", reason));
    }
    if tables.len() > super::MAX_SINKS {
        let reason = format!("at most {} sinks, got {}", super::MAX_SINKS, tables.len());
        return Err(origin.error("sinks", reason));
    }
    let mut sinks: Vec<SinkConfig> = Vec::with_capacity(tables.len());
    for (name, mut table) in tables {
        if name.is_empty() {
            return Err(origin.error("sinks", "a sink name must not be empty"));
        }
        let matcher = table
            .remove("match")
            .map(|value| {
                super::transforms::match_table(&format!("sinks.{name}.match"), value, origin)
            })
            .transpose()?;
        let kind = sink_kind(&format!("sinks.{name}"), table, route, origin)?;
        if let SinkKind::File { path } = &kind
            && let Some(other) = sinks
                .iter()
                .find(|s| matches!(&s.kind, SinkKind::File { path: p } if p == path))
        {
            let reason = format!(
                "the same file as sink {:?}; two sinks cannot append to one file",
                other.name
            );
            return Err(origin.error(format!("sinks.{name}.path"), reason));
        }
        sinks.push(SinkConfig {
            name,
            kind,
            matcher,
        });
    }
    Ok(sinks)
}

/// Reads one `[sinks.<name>]` table (at dotted `key`) according to its `type`.
fn sink_kind(
    key: &str,
    mut table: toml::Table,
    route: &RouteConfig,
    origin: &Origin<'_>,
) -> Result<SinkKind, ConfigError> {
    let kind = origin.take_type(key, &mut table, SINK_TYPES)?;
    match kind.as_str() {
        "stdout" => options::<NoOptions>(key, table, origin).map(|_| SinkKind::Stdout),
        "null" => options::<NoOptions>(key, table, origin).map(|_| SinkKind::Null),
        "file" => {
            let file: FileSinkFile = options(key, table, origin)?;
            let path = origin.path(&format!("{key}.path"), &file.path)?;
            Ok(SinkKind::File { path })
        }
        "kafka" => kafka(key, options(key, table, origin)?, route, origin).map(SinkKind::Kafka),
        "cloudwatch" => {
            cloudwatch(key, options(key, table, origin)?, route, origin).map(SinkKind::Cloudwatch)
        }
        other => {
            let reason = format!("unknown sink type {other:?} (expected one of: {SINK_TYPES})");
            Err(origin.error(format!("{key}.type"), reason))
        }
    }
}

/// Checks a Kafka sink's keys: templates compile, the codec and acks are known, the
/// default topic is a legal name, and the passthrough neither nests nor overrides a key.
fn kafka(
    key: &str,
    file: KafkaSinkFile,
    route: &RouteConfig,
    origin: &Origin<'_>,
) -> Result<KafkaConfig, ConfigError> {
    let error = |field: &str, reason: String| origin.error(format!("{key}.{field}"), reason);
    if file.brokers.trim().is_empty() {
        return Err(error("brokers", "must name at least one broker".into()));
    }
    let template =
        |field: &str, text: &str| Template::compile(text).map_err(|e| error(field, e.to_string()));
    let topic = template("topic", &file.topic)?;
    let key_template = match file.key.as_str() {
        "" => None,
        text => Some(template("key", text)?),
    };
    if !KAFKA_CODECS.contains(&file.compression.as_str()) {
        let reason = format!("expected one of: {}", KAFKA_CODECS.join(", "));
        return Err(error("compression", reason));
    }
    let acks = match file.acks.as_str() {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        "0" => Acks::None,
        _ => return Err(error("acks", "expected \"all\", \"1\" or \"0\"".into())),
    };
    let default_topic = file
        .default_topic
        .unwrap_or_else(|| route.default_topic.clone());
    if !is_valid_topic(&default_topic) {
        let reason =
            format!("{default_topic:?} is not a legal topic name (1 to 249 of a-z A-Z 0-9 . _ -)");
        return Err(error("default_topic", reason));
    }
    let mut librdkafka = BTreeMap::new();
    for (property, value) in file.librdkafka {
        let at = format!("librdkafka.{property}");
        if let Some((ours, _)) = KAFKA_OWN_PROPERTIES
            .iter()
            .find(|(_, set)| set.contains(&property.as_str()))
        {
            let reason = format!("set by this sink's own key {ours:?}; set that instead");
            return Err(error(&at, reason));
        }
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(error(
                    &at,
                    "expected a string, a number or a boolean".into(),
                ));
            }
        };
        librdkafka.insert(property, text);
    }
    Ok(KafkaConfig {
        brokers: file.brokers,
        topic,
        key: key_template,
        compression: file.compression,
        acks,
        create_topics: file.create_topics,
        default_topic,
        librdkafka,
        allowed_destinations: allowed_destinations(key, file.allowed_destinations, origin)?,
    })
}

/// Checks a CloudWatch sink's keys: templates compile, the endpoint is a URL, the
/// retention is one CloudWatch accepts.
fn cloudwatch(
    key: &str,
    file: CloudwatchSinkFile,
    route: &RouteConfig,
    origin: &Origin<'_>,
) -> Result<CloudwatchConfig, ConfigError> {
    let error = |field: &str, reason: String| origin.error(format!("{key}.{field}"), reason);
    let template =
        |field: &str, text: &str| Template::compile(text).map_err(|e| error(field, e.to_string()));
    let log_group = template("log_group", &file.log_group)?;
    let log_stream = template("log_stream", &file.log_stream)?;
    let region = file.region.filter(|region| !region.trim().is_empty());
    let endpoint = file.endpoint.filter(|endpoint| !endpoint.trim().is_empty());
    if let Some(endpoint) = &endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        let reason =
            format!("{endpoint:?} is not a URL (expected http://HOST[:PORT] or https://...)");
        return Err(error("endpoint", reason));
    }
    let retention_days = match file.retention_days {
        None => None,
        Some(days) => match CLOUDWATCH_RETENTION_DAYS
            .iter()
            .find(|&&d| i64::from(d) == days)
        {
            Some(&days) => Some(days),
            None => {
                let allowed: Vec<String> = CLOUDWATCH_RETENTION_DAYS
                    .iter()
                    .map(i32::to_string)
                    .collect();
                let reason = format!(
                    "{days} is not a retention CloudWatch accepts (one of: {})",
                    allowed.join(", ")
                );
                return Err(error("retention_days", reason));
            }
        },
    };
    Ok(CloudwatchConfig {
        region,
        endpoint,
        log_group,
        log_stream,
        auto_create_group: file.auto_create_group,
        retention_days,
        fallback: route.default_topic.clone(),
        allowed_destinations: allowed_destinations(key, file.allowed_destinations, origin)?,
    })
}

/// A sink's `allowed_destinations`, compiled; `None` when not set.
fn allowed_destinations(
    key: &str,
    texts: Option<Vec<String>>,
    origin: &Origin<'_>,
) -> Result<Option<AllowList>, ConfigError> {
    let key = format!("{key}.allowed_destinations");
    texts
        .map(|texts| super::resolve::allow_list(&key, &texts, origin))
        .transpose()
}

/// Deserializes a sink's table (without `type`) into its type's options.
fn options<T: DeserializeOwned>(
    key: &str,
    table: toml::Table,
    origin: &Origin<'_>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(table)
        .map_err(|e| ConfigError::from_serde(origin.file, key, &e))
}
