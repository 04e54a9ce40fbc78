//! `${NAME}` and `${NAME:-default}` substitution in the string values of a parsed config.
//!
//! Pure: the environment is passed in as a lookup function, never read here. Substitution
//! walks the parsed TOML tree rather than the raw text, so a variable holding quotes or
//! newlines cannot change the file's structure, and keys are never substituted.
//!
//! Rules, close to the shell's:
//! - `${NAME}` is the variable's value; unset is an error naming the key.
//! - `${NAME:-default}` is the value, or `default` when the variable is unset or empty.
//!   The default runs to the first `}` and may not itself contain `${`.
//! - `$${` is a literal `${`; a `$` not followed by `{` is kept as is.
//! - Substituted text is not scanned again.

use std::borrow::Cow;

use toml::{Table, Value};

/// Looks up an environment variable; `None` when it is not set.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A string value whose substitution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SubstitutionError {
    /// The dotted key of the value, e.g. `sinks.out.path` or `tail.include[1]`.
    pub key: String,
    /// Why, e.g. `environment variable OUTDIR is not set and has no default`.
    pub reason: String,
}

/// Substitutes variables in every string value of `table`, in place.
pub(crate) fn substitute_table(
    table: &mut Table,
    env: Lookup<'_>,
) -> Result<(), SubstitutionError> {
    substitute_entries(table, "", env)
}

fn substitute_entries(
    table: &mut Table,
    path: &str,
    env: Lookup<'_>,
) -> Result<(), SubstitutionError> {
    for (key, value) in table.iter_mut() {
        let key_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        substitute_value(value, &key_path, env)?;
    }
    Ok(())
}

fn substitute_value(
    value: &mut Value,
    path: &str,
    env: Lookup<'_>,
) -> Result<(), SubstitutionError> {
    match value {
        Value::String(text) => {
            let substituted = substitute(text, env).map_err(|reason| SubstitutionError {
                key: path.to_string(),
                reason,
            })?;
            if let Cow::Owned(new_text) = substituted {
                *text = new_text;
            }
            Ok(())
        }
        Value::Array(items) => items
            .iter_mut()
            .enumerate()
            .try_for_each(|(index, item)| substitute_value(item, &format!("{path}[{index}]"), env)),
        Value::Table(table) => substitute_entries(table, path, env),
        Value::Integer(_) | Value::Float(_) | Value::Boolean(_) | Value::Datetime(_) => Ok(()),
    }
}

/// Substitutes variables in one string. Borrows when there is nothing to substitute.
pub(crate) fn substitute<'a>(text: &'a str, env: Lookup<'_>) -> Result<Cow<'a, str>, String> {
    if !text.contains('$') {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(escaped) = after.strip_prefix("${") {
            out.push_str("${");
            rest = escaped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| {
                format!("unterminated \"${{\" in {text:?}: add the closing \"}}\", or write \"$${{\" for a literal \"${{\"")
            })?;
            out.push_str(&expand(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Expands the inside of one `${...}`: `NAME` or `NAME:-default`.
fn expand(expression: &str, env: Lookup<'_>) -> Result<String, String> {
    let (name, default) = match expression.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (expression, None),
    };
    if !is_variable_name(name) {
        return Err(format!(
            "invalid environment variable name {name:?} in \"${{{expression}}}\" (use letters, digits and _, not starting with a digit)"
        ));
    }
    if default.is_some_and(|d| d.contains("${")) {
        return Err(format!(
            "nested \"${{\" in the default of \"${{{expression}}}\" is not supported"
        ));
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(format!(
            "environment variable {name} is not set and has no default"
        )),
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the portable shell variable name.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/ship".to_string()),
            "EMPTY" => Some(String::new()),
            "QUOTED" => Some("a \"quoted\"\nvalue".to_string()),
            "DOLLAR" => Some("${HOME}".to_string()),
            _ => None,
        }
    }

    #[test]
    fn variables_are_replaced_by_their_value_or_default() {
        let cases = [
            ("plain text", "plain text"),
            ("${HOME}/logs", "/home/ship/logs"),
            ("${HOME}${HOME}", "/home/ship/home/ship"),
            ("${UNSET:-/tmp}", "/tmp"),
            ("${UNSET:-}", ""),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY}", ""),
            ("${HOME:-unused}", "/home/ship"),
            ("${UNSET:-a:-b}", "a:-b"),
            ("${QUOTED}", "a \"quoted\"\nvalue"),
            ("${DOLLAR}", "${HOME}"),
            ("$${HOME}", "${HOME}"),
            ("cost: $5, $", "cost: $5, $"),
            ("$$HOME", "$$HOME"),
        ];
        for (text, want) in cases {
            assert_eq!(substitute(text, &env).as_deref(), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn bad_references_are_refused_with_a_reason() {
        let cases = [
            (
                "${OUTDIR}/x",
                "environment variable OUTDIR is not set and has no default",
            ),
            (
                "${HOME",
                "unterminated \"${\" in \"${HOME\": add the closing \"}\", or write \"$${\" for a literal \"${\"",
            ),
            (
                "${}",
                "invalid environment variable name \"\" in \"${}\" (use letters, digits and _, not starting with a digit)",
            ),
            (
                "${1X}",
                "invalid environment variable name \"1X\" in \"${1X}\" (use letters, digits and _, not starting with a digit)",
            ),
            (
                "${A B}",
                "invalid environment variable name \"A B\" in \"${A B}\" (use letters, digits and _, not starting with a digit)",
            ),
            (
                "${A:-${B}}",
                "nested \"${\" in the default of \"${A:-${B}\" is not supported",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(substitute(text, &env), Err(want.to_string()), "{text:?}");
        }
    }

    #[test]
    fn only_string_values_are_substituted_throughout_the_tree() -> Result<(), toml::de::Error> {
        let mut table: Table = toml::from_str(
            r#"
            top = "${HOME}"
            number = 3
            [section]
            list = ["a", "${UNSET:-b}"]
            [section.nested]
            "${HOME}" = "${HOME}/x"
            "#,
        )?;
        assert_eq!(substitute_table(&mut table, &env), Ok(()));
        let want: Table = toml::from_str(
            r#"
            top = "/home/ship"
            number = 3
            [section]
            list = ["a", "b"]
            [section.nested]
            "${HOME}" = "/home/ship/x"
            "#,
        )?;
        assert_eq!(table, want);
        Ok(())
    }

    #[test]
    fn a_failed_substitution_names_the_dotted_key() -> Result<(), toml::de::Error> {
        let cases = [
            ("[sinks.out]\npath = \"${OUTDIR}/a\"", "sinks.out.path"),
            (
                "[tail]\ninclude = [\"/a\", \"${OUTDIR}\"]",
                "tail.include[1]",
            ),
            ("x = [[\"${OUTDIR}\"]]", "x[0][0]"),
            ("a = \"${OUTDIR}\"", "a"),
        ];
        for (text, key) in cases {
            let mut table: Table = toml::from_str(text)?;
            let want = SubstitutionError {
                key: key.to_string(),
                reason: "environment variable OUTDIR is not set and has no default".to_string(),
            };
            assert_eq!(substitute_table(&mut table, &env), Err(want), "{text:?}");
        }
        Ok(())
    }
}
