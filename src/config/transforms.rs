//! `[[transforms]]` tables, read according to their `type`, and the `match` tables of
//! sinks and transforms: every key checked (an unknown one, a bad regex, an unknown type or
//! stream) and turned into the pure [`crate::transform`] and [`crate::route::matcher`]
//! values the pipeline runs.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ConfigError;
use super::resolve::Origin;
use crate::route::matcher::{MATCH_KEYS, Match, StreamName};
use crate::transform::{Edit, FieldPath, Limit, Pattern, Per, Transform};

/// The transform types, as listed in error messages.
const TRANSFORM_TYPES: &str = "add_fields, remove_fields, rename_fields, redact, throttle";

/// `[sinks.NAME.match]` or `[transforms.match]`, as serde reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchFile {
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    exclude_namespaces: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    streams: Vec<String>,
    #[serde(default)]
    topics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddFieldsFile {
    fields: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveFieldsFile {
    fields: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameFieldsFile {
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedactFile {
    pattern: String,
    fields: Vec<String>,
    #[serde(default = "RedactFile::default_replacement")]
    replacement: String,
}

impl RedactFile {
    fn default_replacement() -> String {
        "[REDACTED]".to_owned()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThrottleFile {
    #[serde(default = "ThrottleFile::default_per")]
    per: String,
    rate: u64,
    /// `None`: `rate`.
    #[serde(default)]
    burst: Option<u64>,
}

impl ThrottleFile {
    fn default_per() -> String {
        "pod".to_owned()
    }
}

/// A `match` table at dotted `key`.
pub(super) fn match_table(
    key: &str,
    value: toml::Value,
    origin: &Origin<'_>,
) -> Result<Match, ConfigError> {
    let toml::Value::Table(table) = value else {
        let reason = format!("expected a table with any of: {MATCH_KEYS}");
        return Err(origin.error(key, reason));
    };
    let file: MatchFile = options(key, table, origin)?;
    let streams = file
        .streams
        .iter()
        .enumerate()
        .map(|(i, name)| {
            StreamName::parse(name).ok_or_else(|| {
                let reason =
                    format!("{name:?} is not a stream (expected \"stdout\" or \"stderr\")");
                origin.error(format!("{key}.streams[{i}]"), reason)
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Match {
        namespaces: file.namespaces,
        exclude_namespaces: file.exclude_namespaces,
        labels: file.labels,
        streams,
        topics: file.topics,
    })
}

/// Reads every `[[transforms]]` table, in order. `own_keys`: the record's own top-level
/// keys, which `add_fields` may not set.
pub(super) fn transforms(
    tables: Vec<toml::Table>,
    own_keys: &[&str],
    origin: &Origin<'_>,
) -> Result<Vec<Transform>, ConfigError> {
    tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| transform(&format!("transforms[{i}]"), table, own_keys, origin))
        .collect()
}

/// Reads one `[[transforms]]` table at dotted `key`.
fn transform(
    key: &str,
    mut table: toml::Table,
    own_keys: &[&str],
    origin: &Origin<'_>,
) -> Result<Transform, ConfigError> {
    let kind = origin.take_type(key, &mut table, TRANSFORM_TYPES)?;
    let matcher = table
        .remove("match")
        .map(|value| match_table(&format!("{key}.match"), value, origin))
        .transpose()?;
    let error = |field: &str, reason: String| origin.error(format!("{key}.{field}"), reason);
    let edit = match kind.as_str() {
        "add_fields" => {
            let file: AddFieldsFile = options(key, table, origin)?;
            let mut fields = Vec::with_capacity(file.fields.len());
            for (name, value) in file.fields {
                let at = format!("fields.{name}");
                if name.is_empty() {
                    return Err(error("fields", "a field name must not be empty".into()));
                }
                if own_keys.contains(&name.as_str()) {
                    let reason = format!(
                        "{name:?} is one of the record's own keys ({}); shiplog sets it",
                        own_keys.join(", ")
                    );
                    return Err(error(&at, reason));
                }
                fields.push((name, json_value(&value).map_err(|r| error(&at, r))?));
            }
            Edit::AddFields(fields)
        }
        "remove_fields" => {
            let file: RemoveFieldsFile = options(key, table, origin)?;
            Edit::RemoveFields(paths(&format!("{key}.fields"), &file.fields, origin)?)
        }
        "rename_fields" => {
            let file: RenameFieldsFile = options(key, table, origin)?;
            let mut moves = Vec::with_capacity(file.fields.len());
            for (from, to) in file.fields {
                let at = format!("{key}.fields.{from}");
                moves.push((
                    field_path(&at, &from, origin)?,
                    field_path(&at, &to, origin)?,
                ));
            }
            Edit::RenameFields(moves)
        }
        "redact" => {
            let file: RedactFile = options(key, table, origin)?;
            let pattern = regex::Regex::new(&file.pattern).map_err(|e| {
                let reason = format!("invalid regex: {}", e.to_string().replace('\n', " "));
                error("pattern", reason)
            })?;
            if file.fields.is_empty() {
                return Err(error(
                    "fields",
                    "name at least one field, e.g. [\"log\"]".into(),
                ));
            }
            Edit::Redact {
                pattern: Pattern(pattern),
                fields: paths(&format!("{key}.fields"), &file.fields, origin)?,
                replacement: file.replacement,
            }
        }
        "throttle" => {
            let file: ThrottleFile = options(key, table, origin)?;
            let per = match file.per.as_str() {
                "pod" => Per::Pod,
                "namespace" => Per::Namespace,
                _ => return Err(error("per", "expected \"pod\" or \"namespace\"".into())),
            };
            if file.rate == 0 {
                return Err(error(
                    "rate",
                    "must be at least 1 (lines per second)".into(),
                ));
            }
            let burst = file.burst.unwrap_or(file.rate);
            if burst == 0 {
                return Err(error("burst", "must be at least 1".into()));
            }
            Edit::Throttle(Limit {
                per,
                rate: file.rate as f64,
                burst: burst as f64,
            })
        }
        other => {
            let reason =
                format!("unknown transform type {other:?} (expected one of: {TRANSFORM_TYPES})");
            return Err(error("type", reason));
        }
    };
    Ok(Transform { edit, matcher })
}

/// A TOML value as JSON text: strings, numbers and booleans.
fn json_value(value: &toml::Value) -> Result<String, String> {
    let json = match value {
        toml::Value::String(text) => serde_json::Value::from(text.as_str()),
        toml::Value::Integer(n) => serde_json::Value::from(*n),
        toml::Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(serde_json::Value::Number)
            .ok_or_else(|| "not a finite number".to_owned())?,
        toml::Value::Boolean(b) => serde_json::Value::from(*b),
        _ => return Err("expected a string, a number or a boolean".to_owned()),
    };
    Ok(json.to_string())
}

fn paths(key: &str, texts: &[String], origin: &Origin<'_>) -> Result<Vec<FieldPath>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| field_path(&format!("{key}[{i}]"), text, origin))
        .collect()
}

/// A dotted path, `kubernetes.annotations`; no part may be empty.
fn field_path(key: &str, text: &str, origin: &Origin<'_>) -> Result<FieldPath, ConfigError> {
    let parts: FieldPath = text.split('.').map(str::to_owned).collect();
    if parts.iter().any(String::is_empty) {
        let reason = format!("{text:?} is not a dotted field path (e.g. \"data.password\")");
        return Err(origin.error(key, reason));
    }
    Ok(parts)
}

/// Deserializes a table (without `type` and `match`) into its options.
fn options<T: DeserializeOwned>(
    key: &str,
    table: toml::Table,
    origin: &Origin<'_>,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(table)
        .map_err(|e| ConfigError::from_serde(origin.file, key, &e))
}
