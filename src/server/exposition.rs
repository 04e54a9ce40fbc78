//! Which text format `/metrics` answers in, chosen from the scraper's `Accept` header, and
//! the Prometheus text format 0.0.4 made from the OpenMetrics text the registry writes.
//!
//! prometheus-client writes OpenMetrics 1.0.0 only. Served as `text/plain; version=0.0.4`,
//! that text misleads older parsers: a counter's family is `x` in OpenMetrics (`# TYPE x
//! counter`, sample `x_total`) but `x_total` in the 0.0.4 format, so they read every counter
//! as untyped. Prometheus itself asks for OpenMetrics first and gets it as it is; a scraper
//! that asks for `text/plain` (or for nothing in particular) gets 0.0.4, with each counter's
//! `# HELP`/`# TYPE` naming its `_total` samples and without OpenMetrics' `# UNIT` and
//! `# EOF` lines. Pure: no I/O.

/// A text format of `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0 (`application/openmetrics-text`).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (`text/plain`).
    Prometheus,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// The format to answer `accept` (an `Accept` header's value) with: the one of the two the
/// header gives the higher quality to, the Prometheus text format on a tie, without a
/// header, and when the header accepts neither (a body in some format beats a 406 for a
/// scraper).
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Prometheus;
    };
    let openmetrics = quality(accept, "application", "openmetrics-text");
    let text = quality(accept, "text", "plain");
    if openmetrics > text {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// The quality `accept` gives to `kind/subtype`, in thousandths, from its most specific
/// matching range (`kind/subtype`, then `kind/*`, then `*/*`); 0 when none matches.
fn quality(accept: &str, kind: &str, subtype: &str) -> u32 {
    let mut best: Option<(u8, u32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let Some((range_kind, range_subtype)) = media.split_once('/') else {
            continue;
        };
        let specificity = match (range_kind, range_subtype) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(subtype) => 2,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
            ("*", "*") => 0,
            _ => continue,
        };
        let q = parts
            .filter_map(|param| param.split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, value)| thousandths(value.trim()));
        if best.is_none_or(|(seen, _)| specificity > seen) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// A quality value (`0`, `0.5`, `1.000`) in thousandths; an unreadable one counts as 0.
fn thousandths(value: &str) -> u32 {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    let whole: u32 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return 0,
    };
    let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
    digits
        .parse::<u32>()
        .map_or(0, |fraction| (whole + fraction).min(1000))
}

/// The Prometheus text format 0.0.4 of `openmetrics`, an exposition as prometheus-client
/// writes it: counters' `# HELP` and `# TYPE` name the `_total` family, `info` becomes
/// `gauge` and `unknown` `untyped`, `# UNIT`, `# EOF` and counters' `_created` samples go.
/// Samples are otherwise the same in both formats.
pub fn to_prometheus(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let is_counter = |name: &str| counters.contains(&name);
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        let converted = match line.strip_prefix("# ") {
            Some(comment) => comment_line(comment, &is_counter),
            None if created_sample(line, &is_counter) => None,
            None => Some(line.to_owned()),
        };
        if let Some(converted) = converted {
            text.push_str(&converted);
            text.push('\n');
        }
    }
    text
}

/// A `# ...` line (without its `# `) in the 0.0.4 format, or `None` to leave it out.
fn comment_line(comment: &str, is_counter: &dyn Fn(&str) -> bool) -> Option<String> {
    let (keyword, rest) = comment.split_once(' ').unwrap_or((comment, ""));
    let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let family = if is_counter(name) {
        format!("{name}_total")
    } else {
        name.to_owned()
    };
    match keyword {
        "HELP" => Some(format!("# HELP {family} {tail}")),
        "TYPE" => {
            let kind = match tail {
                "info" => "gauge",
                "unknown" => "untyped",
                other => other,
            };
            Some(format!("# TYPE {family} {kind}"))
        }
        // `# UNIT`, `# EOF` and anything else OpenMetrics-only.
        _ => None,
    }
}

/// Whether `line` is a `<counter>_created` sample, which the 0.0.4 format does not have.
fn created_sample(line: &str, is_counter: &dyn Fn(&str) -> bool) -> bool {
    let name = line.split(['{', ' ']).next().unwrap_or_default();
    name.strip_suffix("_created").is_some_and(is_counter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_the_scrapers_accept_header() {
        let prometheus_server = "application/openmetrics-text;version=1.0.0,\
            application/openmetrics-text;version=0.0.1;q=0.75,\
            text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let cases = [
            (None, Format::Prometheus),
            (Some(prometheus_server), Format::OpenMetrics),
            (Some("text/plain;version=0.0.4"), Format::Prometheus),
            (Some("text/plain"), Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (Some("application/*"), Format::OpenMetrics),
            (
                Some("text/plain;q=0.2, application/openmetrics-text;q=0.9"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;q=0.3, text/*;q=0.4"),
                Format::Prometheus,
            ),
            (
                Some("application/openmetrics-text;q=0, */*"),
                Format::Prometheus,
            ),
            (Some("application/json"), Format::Prometheus),
            (Some("garbage"), Format::Prometheus),
        ];
        for (accept, expected) in cases {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }

    #[test]
    fn quality_values_are_read_in_thousandths() {
        for (value, expected) in [
            ("1", 1000),
            ("1.0", 1000),
            ("0.5", 500),
            ("0.125", 125),
            ("0.1234", 123),
            ("0", 0),
            ("2", 0),
            ("x", 0),
        ] {
            assert_eq!(thousandths(value), expected, "{value}");
        }
    }

    #[test]
    fn counters_are_typed_by_their_total_name_and_openmetrics_only_lines_go() {
        let openmetrics = "\
# HELP shiplog_input_lines Lines read from files.
# TYPE shiplog_input_lines counter
shiplog_input_lines_total 7
shiplog_input_lines_created 1700000000.0
# HELP shiplog_records_sent Records a sink delivered.
# TYPE shiplog_records_sent counter
shiplog_records_sent_total{sink=\"out\"} 3
# HELP shiplog_files_open Files being followed.
# TYPE shiplog_files_open gauge
shiplog_files_open 2
# HELP shiplog_build Build.
# TYPE shiplog_build info
shiplog_build_info{version=\"1\"} 1
# HELP shiplog_latency_seconds Latency.
# TYPE shiplog_latency_seconds histogram
# UNIT shiplog_latency_seconds seconds
shiplog_latency_seconds_bucket{le=\"+Inf\"} 1
shiplog_latency_seconds_sum 0.5
shiplog_latency_seconds_count 1
# EOF
";
        let expected = "\
# HELP shiplog_input_lines_total Lines read from files.
# TYPE shiplog_input_lines_total counter
shiplog_input_lines_total 7
# HELP shiplog_records_sent_total Records a sink delivered.
# TYPE shiplog_records_sent_total counter
shiplog_records_sent_total{sink=\"out\"} 3
# HELP shiplog_files_open Files being followed.
# TYPE shiplog_files_open gauge
shiplog_files_open 2
# HELP shiplog_build Build.
# TYPE shiplog_build gauge
shiplog_build_info{version=\"1\"} 1
# HELP shiplog_latency_seconds Latency.
# TYPE shiplog_latency_seconds histogram
shiplog_latency_seconds_bucket{le=\"+Inf\"} 1
shiplog_latency_seconds_sum 0.5
shiplog_latency_seconds_count 1
";
        assert_eq!(to_prometheus(openmetrics), expected);
    }

    #[test]
    fn every_sample_of_the_real_registry_has_its_type_in_the_prometheus_format() {
        let metrics = crate::metrics::Metrics::new();
        metrics.register_sink("out");
        let text = to_prometheus(&metrics.encode());
        let typed: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split(' ').next())
            .collect();
        for sample in text.lines().filter(|line| !line.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap_or_default();
            let family_typed = typed.contains(&name)
                || ["_bucket", "_sum", "_count", "_info"].iter().any(|suffix| {
                    name.strip_suffix(suffix)
                        .is_some_and(|family| typed.contains(&family))
                });
            assert!(family_typed, "{name} has no # TYPE line in:\n{text}");
        }
        assert!(!text.contains("# EOF"));
    }
}
