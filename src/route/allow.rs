//! Allow-lists of destinations a pod's own metadata may choose: `route.topic_overrides`
//! (what `shiplog.io/topic` may pick) and a sink's `allowed_destinations` (what a template
//! filled from `{label.KEY}` or `{annotation.KEY}` may fill in).
//!
//! Pure. A pattern is text with `{namespace}`, the record's namespace (from its file's
//! path, never from the pod or the line), and `*`, any run of characters (none included):
//! `{namespace}-*` lets a pod of `dev` pick `dev-audit`, never `payments`. Patterns are
//! compiled once at start-up; checking one is a walk over the value, done once per file
//! (a topic) or once per chunk (a sink's destination), never per line.

use std::fmt;

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Namespace,
    Star,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pieces: Vec<Piece>,
    text: String,
}

/// Why a pattern cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An empty pattern, which would allow nothing.
    #[error("a pattern must not be empty")]
    Empty,
    /// A `{` that does not open `{namespace}`.
    #[error("unknown placeholder in {0:?} (patterns know {{namespace}} and *)")]
    Placeholder(String),
    /// An empty list, which would allow nothing at all.
    #[error("an empty list allows nothing; leave the key out to allow anything")]
    EmptyList,
}

impl Pattern {
    /// Compiles `text`.
    pub fn compile(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let (piece, len) = if let Some(after) = rest.strip_prefix("{namespace}") {
                (Some(Piece::Namespace), rest.len() - after.len())
            } else if c == '*' {
                (Some(Piece::Star), 1)
            } else if c == '{' || c == '}' {
                return Err(PatternError::Placeholder(text.to_owned()));
            } else {
                literal.push(c);
                (None, c.len_utf8())
            };
            if let Some(piece) = piece {
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(piece);
            }
            rest = &rest[len..];
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(Pattern {
            pieces,
            text: text.to_owned(),
        })
    }

    /// Whether `value`, chosen by a pod of `namespace`, matches.
    pub fn matches(&self, value: &str, namespace: &str) -> bool {
        // The pattern as bytes with the namespace filled in; `None` stands for `*`.
        let mut want: Vec<Option<u8>> = Vec::with_capacity(self.text.len() + namespace.len());
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => want.extend(text.bytes().map(Some)),
                Piece::Namespace => want.extend(namespace.bytes().map(Some)),
                Piece::Star => want.push(None),
            }
        }
        wildcard_match(&want, value.as_bytes())
    }
}

/// Matches `value` against `pattern` (bytes, `None` for `*`): the usual linear walk that
/// backtracks only to the last star. Byte-wise is exact for UTF-8: a literal that is valid
/// UTF-8 only ever matches whole characters.
fn wildcard_match(pattern: &[Option<u8>], value: &[u8]) -> bool {
    let (mut p, mut v) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(Some(byte)) if *byte == value[v] => {
                p += 1;
                v += 1;
            }
            Some(None) => {
                last_star = Some((p, v));
                p += 1;
            }
            _ => match last_star {
                // The star takes one more byte; try the rest again from there.
                Some((star, taken)) => {
                    last_star = Some((star, taken + 1));
                    p = star + 1;
                    v = taken + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(Option::is_none)
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// Patterns, any of which allows a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    patterns: Vec<Pattern>,
}

impl AllowList {
    /// Compiles `texts`; an error names the index of the pattern at fault.
    pub fn compile(texts: &[String]) -> Result<AllowList, (Option<usize>, PatternError)> {
        if texts.is_empty() {
            return Err((None, PatternError::EmptyList));
        }
        let patterns = texts
            .iter()
            .enumerate()
            .map(|(index, text)| Pattern::compile(text).map_err(|e| (Some(index), e)))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { patterns })
    }

    /// Whether a pod of `namespace` may choose `value`.
    pub fn allows(&self, value: &str, namespace: &str) -> bool {
        self.patterns
            .iter()
            .any(|pattern| pattern.matches(value, namespace))
    }
}

impl fmt::Display for AllowList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, pattern) in self.patterns.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{pattern}")?;
        }
        f.write_str("]")
    }
}

/// `route.topic_overrides`: what a pod's `shiplog.io/topic` annotation (and a `route.topic`
/// template filled from the pod's labels or annotations) may choose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOverrides {
    /// `"any"`: every topic (shiplog before this setting existed).
    Any,
    /// `"off"`: the annotation is ignored.
    Off,
    /// The topics these patterns allow.
    Only(AllowList),
}

impl TopicOverrides {
    /// The default: a pod may specialise its own namespace's topic, not reach another's.
    pub fn default_patterns() -> Vec<String> {
        vec!["{namespace}".to_owned(), "{namespace}-*".to_owned()]
    }

    /// Whether a pod of `namespace` may choose the topic `value`. `Off` allows nothing
    /// (the annotation is not even read; a template is then unrestricted, as it is the
    /// operator's, see [`TopicOverrides::allows_template`]).
    pub fn allows(&self, value: &str, namespace: &str) -> bool {
        match self {
            TopicOverrides::Any => true,
            TopicOverrides::Off => false,
            TopicOverrides::Only(list) => list.allows(value, namespace),
        }
    }

    /// Whether a `route.topic` template filled from a pod's labels or annotations may give
    /// `value`: the list applies to it too; `"any"` and `"off"` leave it unrestricted.
    pub fn allows_template(&self, value: &str, namespace: &str) -> bool {
        match self {
            TopicOverrides::Any | TopicOverrides::Off => true,
            TopicOverrides::Only(list) => list.allows(value, namespace),
        }
    }
}

impl Default for TopicOverrides {
    fn default() -> Self {
        match AllowList::compile(&Self::default_patterns()) {
            Ok(list) => TopicOverrides::Only(list),
            // The default patterns compile (a test holds it); refusing everything is the
            // safe side should they ever not.
            Err(_) => TopicOverrides::Off,
        }
    }
}

impl fmt::Display for TopicOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicOverrides::Any => f.write_str("\"any\""),
            TopicOverrides::Off => f.write_str("\"off\""),
            TopicOverrides::Only(list) => write!(f, "{list}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(texts: &[&str]) -> AllowList {
        let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        AllowList::compile(&texts).expect("valid patterns")
    }

    #[test]
    fn patterns_match_the_pods_own_namespace_and_what_stars_allow() {
        let default = list(&["{namespace}", "{namespace}-*"]);
        let cases = [
            ("dev", "dev", true),
            ("dev-audit", "dev", true),
            ("dev-", "dev", true),
            ("payments", "dev", false),
            ("devil", "dev", false),
            ("prod-dev", "dev", false),
            ("dev", "payments", false),
            ("", "dev", false),
        ];
        for (value, namespace, allowed) in cases {
            assert_eq!(
                default.allows(value, namespace),
                allowed,
                "{value:?} from {namespace:?}"
            );
        }
        let mixed = list(&["security-audit", "logs.*.{namespace}", "*-raw"]);
        for (value, allowed) in [
            ("security-audit", true),
            ("security-audit2", false),
            ("logs.eu.dev", true),
            ("logs..dev", true),
            ("logs.eu.devx", false),
            ("x-raw", true),
            ("-raw", true),
            ("raw", false),
        ] {
            assert_eq!(mixed.allows(value, "dev"), allowed, "{value:?}");
        }
    }

    #[test]
    fn stars_backtrack_and_match_multibyte_text() {
        let pattern = Pattern::compile("*a*b").expect("valid");
        assert!(pattern.matches("xaab", "ns"));
        assert!(pattern.matches("ab", "ns"));
        assert!(!pattern.matches("aba", "ns"));
        let pattern = Pattern::compile("/k8s/ü*").expect("valid");
        assert!(pattern.matches("/k8s/über", "ns"));
        assert!(!pattern.matches("/k8s/u", "ns"));
        assert!(Pattern::compile("*").expect("valid").matches("", "ns"));
    }

    #[test]
    fn bad_patterns_are_refused_with_the_reason() {
        assert_eq!(Pattern::compile(""), Err(PatternError::Empty));
        assert!(matches!(
            Pattern::compile("{pod}-*"),
            Err(PatternError::Placeholder(_))
        ));
        assert!(matches!(
            Pattern::compile("{namespace"),
            Err(PatternError::Placeholder(_))
        ));
        assert_eq!(
            AllowList::compile(&[]),
            Err((None, PatternError::EmptyList))
        );
        let texts = ["ok".to_owned(), "{label.team}".to_owned()];
        assert!(matches!(AllowList::compile(&texts), Err((Some(1), _))));
    }

    #[test]
    fn the_default_lets_a_pod_specialise_its_namespaces_topic_only() {
        let overrides = TopicOverrides::default();
        assert!(overrides.allows("dev-audit", "dev"));
        assert!(!overrides.allows("payments", "dev"));
        assert_eq!(overrides.to_string(), r#"["{namespace}", "{namespace}-*"]"#);
        assert!(TopicOverrides::Any.allows("payments", "dev"));
        assert!(!TopicOverrides::Off.allows("dev", "dev"));
        assert!(TopicOverrides::Off.allows_template("payments", "dev"));
    }
}
