//! serde's error messages reworded for people editing TOML files: "unknown variant" becomes
//! "unknown value", "missing field" "missing key", Rust type names plain words.
//!
//! Pure and shared by the two places that read user TOML ([`crate::config`] and
//! [`crate::parse`]); it knows nothing of either.

/// Rewords `message`: unknown values and missing keys in the file's terms, then each
/// `(serde, ours)` of `wording` replaced.
pub fn reword(message: &str, wording: &[(&str, &str)]) -> String {
    if let Some((value, expected)) = message
        .strip_prefix("unknown variant `")
        .and_then(split_quoted)
    {
        return format!(
            "unknown value {value:?} (expected one of: {})",
            expected.join(", ")
        );
    }
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return format!("missing key {name:?}");
    }
    wording
        .iter()
        .fold(message.to_string(), |text, (serde, ours)| {
            text.replace(serde, ours)
        })
}

/// Splits "NAME`, expected one of `a`, `b`" into `NAME` and `[a, b]`. The name is what the
/// user wrote and may hold anything; the expected names are ours and hold no backquote.
pub fn split_quoted(rest: &str) -> Option<(&str, Vec<&str>)> {
    let end = rest
        .rfind("`, expected ")
        .or_else(|| rest.rfind("`, there are no "))?;
    let expected = rest[end..].split('`').skip(2).step_by(2).collect();
    Some((&rest[..end], expected))
}
