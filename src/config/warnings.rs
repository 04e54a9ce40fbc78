//! Warnings about a valid config: where it lets whoever creates a pod choose where that
//! pod's records go (a template filled from `{label.KEY}` or `{annotation.KEY}`, or
//! `route.topic_overrides = "any"`). `shiplog check` prints them; a run logs them at start.

use super::{Config, SinkKind};
use crate::route::Template;
use crate::route::allow::{AllowList, TopicOverrides};

impl Config {
    /// One sentence per way pods can choose their records' destination, naming the key,
    /// the placeholders and what restricts them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let overrides = &self.route.topic_overrides;
        if *overrides == TopicOverrides::Any {
            warnings.push(
                "route.topic_overrides = \"any\": a pod's shiplog.io/topic annotation sends its records to any topic, another team's included".to_owned(),
            );
        }
        if let Ok(topic) = Template::compile(&self.route.topic) {
            let restriction = match overrides {
                TopicOverrides::Only(list) => format!("route.topic_overrides {list} applies"),
                TopicOverrides::Any | TopicOverrides::Off => {
                    format!("route.topic_overrides {overrides} leaves it unrestricted")
                }
            };
            push(
                &mut warnings,
                "route.topic",
                &topic,
                "the routing tag (topic)",
                &restriction,
            );
        }
        for sink in &self.sinks {
            let key = |field: &str| format!("sinks.{}.{field}", sink.name);
            match &sink.kind {
                SinkKind::Kafka(kafka) => {
                    let restriction =
                        allowed(&kafka.allowed_destinations, &key("allowed_destinations"));
                    push(
                        &mut warnings,
                        &key("topic"),
                        &kafka.topic,
                        "their Kafka topic",
                        &restriction,
                    );
                    if let Some(template) = &kafka.key {
                        let note = "it picks a partition, not a topic";
                        push(
                            &mut warnings,
                            &key("key"),
                            template,
                            "their message key",
                            note,
                        );
                    }
                }
                SinkKind::Cloudwatch(cloudwatch) => {
                    let restriction = allowed(
                        &cloudwatch.allowed_destinations,
                        &key("allowed_destinations"),
                    );
                    push(
                        &mut warnings,
                        &key("log_group"),
                        &cloudwatch.log_group,
                        "their log group",
                        &restriction,
                    );
                    let note = "stream names are not restricted: a stream lives in its group";
                    push(
                        &mut warnings,
                        &key("log_stream"),
                        &cloudwatch.log_stream,
                        "their log stream",
                        note,
                    );
                }
                SinkKind::Stdout | SinkKind::File { .. } | SinkKind::Null => {}
            }
        }
        warnings
    }
}

/// What a sink's `allowed_destinations` (at `key`) does to pod-chosen values.
fn allowed(list: &Option<AllowList>, key: &str) -> String {
    match list {
        Some(list) => format!("{key} {list} applies"),
        None => format!("{key} is not set: any value goes"),
    }
}

/// Adds a warning when `template` (at `key`) is filled from the pod's labels or
/// annotations.
fn push(warnings: &mut Vec<String>, key: &str, template: &Template, what: &str, restriction: &str) {
    let chosen = template.pod_chosen();
    if chosen.is_empty() {
        return;
    }
    warnings.push(format!(
        "{key} = {:?} uses {}: whoever creates a pod chooses {what} through its labels or annotations; {restriction}",
        template.to_string(),
        chosen.join(", ")
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("shiplog.toml");
        std::fs::write(&path, text).expect("write");
        Config::load_with_env(&path, &|_| None).expect("a valid config")
    }

    #[test]
    fn templates_filled_from_pod_metadata_are_named_with_what_restricts_them() {
        let config = config(
            "[kubernetes]\nmetadata = \"off\"\n\
             [route]\ntopic = \"{namespace}-{label.team}\"\n\
             [sinks.bus]\ntype = \"kafka\"\nbrokers = \"h:9092\"\nkey = \"{annotation.shard}\"\n\
             [sinks.cw]\ntype = \"cloudwatch\"\nlog_group = \"/k8s/{annotation.team}\"\n\
             allowed_destinations = [\"/k8s/{namespace}*\"]\n",
        );
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 3, "{warnings:#?}");
        assert!(
            warnings[0].starts_with("route.topic = \"{namespace}-{label.team}\" uses {label.team}")
        );
        assert!(
            warnings[0]
                .ends_with(r#"route.topic_overrides ["{namespace}", "{namespace}-*"] applies"#)
        );
        assert!(warnings[1].starts_with("sinks.bus.key"), "{}", warnings[1]);
        assert!(warnings[2].starts_with("sinks.cw.log_group = \"/k8s/{annotation.team}\""));
        assert!(
            warnings[2].ends_with(r#"sinks.cw.allowed_destinations ["/k8s/{namespace}*"] applies"#)
        );
    }

    #[test]
    fn free_topic_overrides_are_warned_about_and_plain_templates_are_not() {
        let config = config(
            "[kubernetes]\nmetadata = \"off\"\n[route]\ntopic_overrides = \"any\"\n\
             [sinks.bus]\ntype = \"kafka\"\nbrokers = \"h:9092\"\n",
        );
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].starts_with("route.topic_overrides = \"any\""));
    }
}
