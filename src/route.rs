//! Templates: `{namespace}`, `{pod}`, `{container}`, `{label.KEY}`, `{annotation.KEY}`, and
//! in sinks' templates `{topic}`, the routing tag.
//!
//! Pure. A template is compiled once at start-up (an unknown placeholder is a config error)
//! and filled once per file (the routing tag) or once per chunk (a sink's topic, key, log
//! group or stream), never per line. [`RouteValues`] are what a file's templates are filled
//! from: the enricher works them out when the file is opened and every chunk shares them.
//! What a pod's own metadata may choose through them is limited by allow-lists ([`allow`]).

pub mod allow;
pub mod matcher;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// A value a template can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{namespace}`
    Namespace,
    /// `{pod}`
    Pod,
    /// `{container}`
    Container,
    /// `{label.KEY}`
    Label(String),
    /// `{annotation.KEY}`
    Annotation(String),
    /// `{topic}`: the record's routing tag (`route.topic`, filled), for sinks' templates.
    Topic,
}

/// What one file's templates are filled from: its pod and the routing tag of its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteValues {
    /// The routing tag: the record's `topic` field.
    pub topic: Arc<str>,
    /// The pod's namespace; empty for a file off the kubelet's naming.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The pod's labels (empty when its metadata is unknown).
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations (empty when its metadata is unknown).
    pub annotations: BTreeMap<String, String>,
}

impl RouteValues {
    /// The value of `placeholder`; `None` (like an empty value) leaves a template unfilled.
    pub fn get(&self, placeholder: &Placeholder) -> Option<&str> {
        match placeholder {
            Placeholder::Namespace => Some(&self.namespace),
            Placeholder::Pod => Some(&self.pod),
            Placeholder::Container => Some(&self.container),
            Placeholder::Label(key) => self.labels.get(key).map(String::as_str),
            Placeholder::Annotation(key) => self.annotations.get(key).map(String::as_str),
            Placeholder::Topic => Some(&self.topic),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Value(Placeholder),
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// Why a template cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`.
    #[error("unclosed '{{' at byte {0}")]
    Unclosed(usize),
    /// A placeholder this template language does not have.
    #[error(
        "unknown placeholder {{{0}}} (use {{namespace}}, {{pod}}, {{container}}, {{label.KEY}}, {{annotation.KEY}}, {{topic}})"
    )]
    Unknown(String),
}

impl Template {
    /// Compiles `text`; text outside braces is copied as is.
    pub fn compile(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or(TemplateError::Unclosed(text.len() - rest.len() + open))?;
            parts.push(Part::Value(Placeholder::parse(&after[..close])?));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// Whether the template asks for `placeholder`.
    pub fn uses(&self, placeholder: &Placeholder) -> bool {
        self.parts
            .iter()
            .any(|part| matches!(part, Part::Value(p) if p == placeholder))
    }

    /// The placeholders filled from the pod's own metadata (`{label.KEY}`,
    /// `{annotation.KEY}`), as written: whoever can create a pod sets their values, so a
    /// template using them lets pods choose where their records go.
    pub fn pod_chosen(&self) -> Vec<String> {
        self.parts
            .iter()
            .filter_map(|part| match part {
                Part::Value(Placeholder::Label(key)) => Some(format!("{{label.{key}}}")),
                Part::Value(Placeholder::Annotation(key)) => Some(format!("{{annotation.{key}}}")),
                _ => None,
            })
            .collect()
    }

    /// Fills the template from `values`; `None` when a placeholder has no value.
    pub fn render(&self, values: &RouteValues) -> Option<String> {
        self.fill(|placeholder| values.get(placeholder))
    }

    /// Fills the template; `None` when a placeholder has no value (or an empty one).
    pub fn fill<'a>(&self, value: impl Fn(&Placeholder) -> Option<&'a str>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Value(placeholder) => {
                    out.push_str(value(placeholder).filter(|v| !v.is_empty())?);
                }
            }
        }
        Some(out)
    }
}

/// Whether `name` is a legal Kafka topic name: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.`
/// or `..` (Kafka's `Topic.validate`). Topics are checked whatever the sink, so a record's
/// `topic` field means the same everywhere.
pub fn is_valid_topic(name: &str) -> bool {
    let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
    (1..=249).contains(&name.len()) && name != "." && name != ".." && name.bytes().all(legal)
}

impl Placeholder {
    fn parse(name: &str) -> Result<Placeholder, TemplateError> {
        let unknown = || TemplateError::Unknown(name.to_owned());
        match name {
            "namespace" => Ok(Placeholder::Namespace),
            "pod" => Ok(Placeholder::Pod),
            "container" => Ok(Placeholder::Container),
            "topic" => Ok(Placeholder::Topic),
            _ => match name.split_once('.') {
                Some(("label", key)) if !key.is_empty() => Ok(Placeholder::Label(key.to_owned())),
                Some(("annotation", key)) if !key.is_empty() => {
                    Ok(Placeholder::Annotation(key.to_owned()))
                }
                _ => Err(unknown()),
            },
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Value(Placeholder::Namespace) => f.write_str("{namespace}")?,
                Part::Value(Placeholder::Pod) => f.write_str("{pod}")?,
                Part::Value(Placeholder::Container) => f.write_str("{container}")?,
                Part::Value(Placeholder::Topic) => f.write_str("{topic}")?,
                Part::Value(Placeholder::Label(key)) => write!(f, "{{label.{key}}}")?,
                Part::Value(Placeholder::Annotation(key)) => write!(f, "{{annotation.{key}}}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(placeholder: &Placeholder) -> Option<&'static str> {
        match placeholder {
            Placeholder::Namespace => Some("shop"),
            Placeholder::Pod => Some("web-1"),
            Placeholder::Container => Some("nginx"),
            Placeholder::Label(key) if key == "team" => Some("payments"),
            Placeholder::Annotation(key) if key == "empty" => Some(""),
            Placeholder::Label(_) | Placeholder::Annotation(_) => None,
            Placeholder::Topic => Some("shop-logs"),
        }
    }

    #[test]
    fn templates_fill_from_the_pod() {
        let cases = [
            ("{namespace}", Some("shop")),
            ("logs.{namespace}.{container}", Some("logs.shop.nginx")),
            ("{pod}", Some("web-1")),
            ("team-{label.team}", Some("team-payments")),
            ("fixed", Some("fixed")),
            ("{topic}.{pod}", Some("shop-logs.web-1")),
            ("{label.missing}", None),
            ("x-{annotation.empty}", None),
        ];
        for (text, expected) in cases {
            let template = Template::compile(text).expect(text);
            assert_eq!(template.fill(values).as_deref(), expected, "{text}");
            assert_eq!(template.to_string(), text);
        }
    }

    #[test]
    fn a_template_says_which_placeholders_it_uses() {
        let template = Template::compile("logs.{topic}.{label.team}").expect("valid");
        assert!(template.uses(&Placeholder::Topic));
        assert!(template.uses(&Placeholder::Label("team".into())));
        assert!(!template.uses(&Placeholder::Namespace));
        assert_eq!(template.pod_chosen(), ["{label.team}"]);
        let fixed = Template::compile("{namespace}.{pod}").expect("valid");
        assert!(fixed.pod_chosen().is_empty());
        let values = RouteValues {
            topic: Arc::from("shop"),
            labels: [("team".to_owned(), "payments".to_owned())].into(),
            ..RouteValues::default()
        };
        assert_eq!(
            template.render(&values).as_deref(),
            Some("logs.shop.payments")
        );
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        let long = "t".repeat(250);
        for (name, valid) in [
            ("shop", true),
            ("logs.shop_v2-eu", true),
            ("", false),
            (".", false),
            ("..", false),
            ("has space", false),
            ("slash/no", false),
            ("ünïcode", false),
            (&long[..249], true),
            (long.as_str(), false),
        ] {
            assert_eq!(is_valid_topic(name), valid, "{name:?}");
        }
    }

    #[test]
    fn bad_templates_are_rejected_with_the_reason() {
        let cases = [
            ("{namespace", "unclosed '{' at byte 0"),
            ("a{nodename}", "unknown placeholder {nodename}"),
            ("{label.}", "unknown placeholder {label.}"),
        ];
        for (text, reason) in cases {
            let error = Template::compile(text).expect_err(text).to_string();
            assert!(error.starts_with(reason), "{text}: {error}");
        }
    }
}
