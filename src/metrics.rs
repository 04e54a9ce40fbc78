//! Every metric of CONTRACT.md, registered in one place, and the health state the server
//! reports. I/O modules update these; pure modules return counts that their caller adds
//! here (per chunk or per batch, never per line).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::liveness::Liveness;

/// The `sink` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    /// The sink's name, as in `[sinks.<name>]`.
    pub sink: String,
}

/// The `namespace` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabel {
    /// A Kubernetes namespace.
    pub namespace: String,
}

/// The `path` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    /// A file's path.
    pub path: String,
}

/// The process's metrics and health. Cheap to share (`Arc`); every handle is atomic.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `shiplog_input_lines_total`: lines read from files.
    pub input_lines: Counter,
    /// `shiplog_input_bytes_total`: bytes read from files.
    pub input_bytes: Counter,
    /// `shiplog_files_open`: files being followed.
    pub files_open: Gauge,
    /// `shiplog_records_sent_total{sink}`: records a sink delivered.
    pub records_sent: Family<SinkLabel, Counter>,
    /// `shiplog_records_failed_total{sink}`: records of batches a sink gave up on for good.
    pub records_failed: Family<SinkLabel, Counter>,
    /// `shiplog_sink_retries_total{sink}`: failed attempts that were retried.
    pub sink_retries: Family<SinkLabel, Counter>,
    /// `shiplog_inflight_bytes`: bytes rendered and not yet delivered by every sink.
    pub inflight_bytes: Gauge,
    /// `shiplog_kube_cache_hits_total`: files whose pod metadata was known.
    pub kube_cache_hits: Counter,
    /// `shiplog_kube_cache_misses_total`: files whose pod metadata was not.
    pub kube_cache_misses: Counter,
    /// `shiplog_excluded_records_total`: records not shipped because of an annotation.
    pub excluded_records: Counter,
    /// `shiplog_decode_errors_total`: lines shipped raw because they could not be decoded.
    pub decode_errors: Counter,
    /// `shiplog_records_without_metadata_total`: records shipped without their pod's
    /// metadata (pod unknown, API down, file name off the kubelet's naming).
    pub records_without_metadata: Counter,
    /// `shiplog_unrouted_records_total`: records no sink's `match` took (acknowledged at
    /// once, as delivered).
    pub unrouted_records: Counter,
    /// `shiplog_redactions_total`: matches a `redact` transform replaced.
    pub redactions: Counter,
    /// `shiplog_throttled_records_total{namespace}`: records a `throttle` transform dropped.
    pub throttled_records: Family<NamespaceLabel, Counter>,
    /// `shiplog_topic_overrides_refused_total{namespace}`: records whose pod's topic choice
    /// `route.topic_overrides` refused (they kept their default topic).
    pub topic_overrides_refused: Family<NamespaceLabel, Counter>,
    /// `shiplog_destinations_refused_total{sink}` (beyond CONTRACT): records whose
    /// destination, filled from their pod's labels or annotations, the sink's
    /// `allowed_destinations` refused (they went to its default).
    pub destinations_refused: Family<SinkLabel, Counter>,
    /// `shiplog_parser_unmatched_total` (beyond CONTRACT): lines a selected parser did not
    /// match, shipped with `log` only.
    pub parser_unmatched: Counter,
    /// `shiplog_illegal_topics_total` (beyond CONTRACT): files whose pod asked for a topic
    /// that is not a legal name.
    pub illegal_topics: Counter,
    /// `shiplog_checkpoint_commit_failures_total` (beyond CONTRACT): offset commits that
    /// failed and will be retried.
    pub checkpoint_commit_failures: Counter,
    /// `shiplog_kafka_rerouted_records_total{sink}` (beyond CONTRACT): records a Kafka
    /// sink sent to its `default_topic` because their own topic does not exist.
    pub kafka_rerouted_records: Family<SinkLabel, Counter>,
    /// `shiplog_tls_cert_expiry_timestamp_seconds{path}` (beyond CONTRACT): the notAfter of
    /// each client certificate and CA file a sink uses, in Unix seconds.
    pub tls_cert_expiry: Family<PathLabel, Gauge>,
    /// `shiplog_cloudwatch_requests_total{sink}` (beyond CONTRACT): PutLogEvents calls
    /// CloudWatch accepted.
    pub cloudwatch_requests: Family<SinkLabel, Counter>,
    /// `shiplog_cloudwatch_split_records_total{sink}` (beyond CONTRACT): records longer than
    /// one CloudWatch event, shipped cut into consecutive events.
    pub cloudwatch_split_records: Family<SinkLabel, Counter>,
    /// `shiplog_files_lag_bytes` (beyond CONTRACT): bytes written to followed files and not
    /// yet read, summed over the files.
    pub files_lag_bytes: Gauge,
    /// `shiplog_files_lag_max_bytes` (beyond CONTRACT): the largest lag of any one file.
    pub files_lag_max_bytes: Gauge,
    /// `shiplog_pending_lines_cut_total` (beyond CONTRACT): lines still waiting for their
    /// end shipped early, as pieces flagged `truncated`, to keep within `memory_limit`.
    pub pending_lines_cut: Counter,
    /// `shiplog_events_leader` (beyond CONTRACT): 1 while this shiplog holds the events
    /// Lease and ships Kubernetes events.
    pub events_leader: Gauge,
    /// `shiplog_events_shipped_total` (beyond CONTRACT): Kubernetes events sent to the sinks.
    pub events_shipped: Counter,
    /// `shiplog_sink_last_delivery_timestamp_seconds{sink}`: when the sink last delivered a
    /// batch, in Unix seconds; until its first delivery, when it started.
    pub sink_last_delivery: Family<SinkLabel, Gauge>,
    /// `shiplog_config_reloads_total` (beyond CONTRACT): reloads whose new config runs.
    pub config_reloads: Counter,
    /// `shiplog_config_reload_failures_total` (beyond CONTRACT): reloads refused (the config
    /// failed the checks) or whose config could not start (the previous one ran again).
    pub config_reload_failures: Counter,
    /// `process_resident_memory_bytes`, `process_cpu_seconds_total`, `process_open_fds`
    /// (the usual process metrics), read from `/proc/self` at each scrape.
    process: ProcessGauges,
    ready: AtomicBool,
    /// Whether any stage is wedged, for `/healthz`.
    pub liveness: Liveness,
}

impl Metrics {
    /// Every metric, registered, at zero.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let metrics = Metrics {
            input_lines: Counter::default(),
            input_bytes: Counter::default(),
            files_open: Gauge::default(),
            records_sent: Family::default(),
            records_failed: Family::default(),
            sink_retries: Family::default(),
            inflight_bytes: Gauge::default(),
            kube_cache_hits: Counter::default(),
            kube_cache_misses: Counter::default(),
            excluded_records: Counter::default(),
            decode_errors: Counter::default(),
            records_without_metadata: Counter::default(),
            unrouted_records: Counter::default(),
            redactions: Counter::default(),
            throttled_records: Family::default(),
            topic_overrides_refused: Family::default(),
            destinations_refused: Family::default(),
            parser_unmatched: Counter::default(),
            illegal_topics: Counter::default(),
            checkpoint_commit_failures: Counter::default(),
            kafka_rerouted_records: Family::default(),
            tls_cert_expiry: Family::default(),
            cloudwatch_requests: Family::default(),
            cloudwatch_split_records: Family::default(),
            files_lag_bytes: Gauge::default(),
            files_lag_max_bytes: Gauge::default(),
            pending_lines_cut: Counter::default(),
            events_leader: Gauge::default(),
            events_shipped: Counter::default(),
            sink_last_delivery: Family::default(),
            config_reloads: Counter::default(),
            config_reload_failures: Counter::default(),
            process: ProcessGauges::default(),
            ready: AtomicBool::new(false),
            liveness: Liveness::new(),
            registry: Registry::default(),
        };
        let p = &metrics.process;
        root.register(
            "process_resident_memory_bytes",
            "Resident memory",
            p.resident_memory_bytes.clone(),
        );
        root.register(
            "process_cpu_seconds",
            "User and system CPU time",
            p.cpu_seconds.clone(),
        );
        root.register(
            "process_open_fds",
            "Open file descriptors",
            p.open_fds.clone(),
        );
        // Counters get their `_total` suffix from the registry.
        let r = root.sub_registry_with_prefix("shiplog");
        r.register(
            "input_lines",
            "Lines read from files",
            metrics.input_lines.clone(),
        );
        r.register(
            "input_bytes",
            "Bytes read from files",
            metrics.input_bytes.clone(),
        );
        r.register(
            "files_open",
            "Files being followed",
            metrics.files_open.clone(),
        );
        r.register(
            "records_sent",
            "Records a sink delivered",
            metrics.records_sent.clone(),
        );
        r.register(
            "records_failed",
            "Records a sink gave up on",
            metrics.records_failed.clone(),
        );
        r.register(
            "sink_retries",
            "Sink attempts retried",
            metrics.sink_retries.clone(),
        );
        r.register(
            "inflight_bytes",
            "Bytes not yet delivered by every sink",
            metrics.inflight_bytes.clone(),
        );
        r.register(
            "kube_cache_hits",
            "Files whose pod metadata was known",
            metrics.kube_cache_hits.clone(),
        );
        r.register(
            "kube_cache_misses",
            "Files whose pod metadata was not known",
            metrics.kube_cache_misses.clone(),
        );
        r.register(
            "excluded_records",
            "Records excluded by annotation",
            metrics.excluded_records.clone(),
        );
        r.register(
            "decode_errors",
            "Lines shipped raw, undecodable",
            metrics.decode_errors.clone(),
        );
        r.register(
            "records_without_metadata",
            "Records shipped without their pod's metadata",
            metrics.records_without_metadata.clone(),
        );
        r.register(
            "unrouted_records",
            "Records no sink's match took (counted as delivered)",
            metrics.unrouted_records.clone(),
        );
        r.register(
            "redactions",
            "Matches replaced by redact transforms",
            metrics.redactions.clone(),
        );
        r.register(
            "throttled_records",
            "Records dropped by throttle transforms",
            metrics.throttled_records.clone(),
        );
        r.register(
            "topic_overrides_refused",
            "Records whose pod's topic choice route.topic_overrides refused",
            metrics.topic_overrides_refused.clone(),
        );
        r.register(
            "destinations_refused",
            "Records whose pod-chosen destination a sink's allowed_destinations refused",
            metrics.destinations_refused.clone(),
        );
        r.register(
            "parser_unmatched",
            "Lines a selected parser did not match",
            metrics.parser_unmatched.clone(),
        );
        r.register(
            "illegal_topics",
            "Files routed to default_topic for an illegal topic name",
            metrics.illegal_topics.clone(),
        );
        r.register(
            "checkpoint_commit_failures",
            "Offset commits that failed and will be retried",
            metrics.checkpoint_commit_failures.clone(),
        );
        r.register(
            "kafka_rerouted_records",
            "Records a Kafka sink sent to its default_topic as their topic does not exist",
            metrics.kafka_rerouted_records.clone(),
        );
        r.register(
            "tls_cert_expiry_timestamp_seconds",
            "notAfter of each client certificate and CA file a sink uses, in Unix seconds",
            metrics.tls_cert_expiry.clone(),
        );
        r.register(
            "cloudwatch_requests",
            "PutLogEvents calls CloudWatch accepted",
            metrics.cloudwatch_requests.clone(),
        );
        r.register(
            "cloudwatch_split_records",
            "Records longer than one CloudWatch event, shipped cut into consecutive events",
            metrics.cloudwatch_split_records.clone(),
        );
        r.register(
            "files_lag_bytes",
            "Bytes written to followed files, not yet read",
            metrics.files_lag_bytes.clone(),
        );
        r.register(
            "files_lag_max_bytes",
            "The largest lag of one file",
            metrics.files_lag_max_bytes.clone(),
        );
        r.register(
            "pending_lines_cut",
            "Lines waiting for their end shipped early, flagged truncated, to keep within memory_limit",
            metrics.pending_lines_cut.clone(),
        );
        r.register(
            "events_leader",
            "1 while this shiplog holds the events Lease",
            metrics.events_leader.clone(),
        );
        r.register(
            "events_shipped",
            "Kubernetes events sent to the sinks",
            metrics.events_shipped.clone(),
        );
        r.register(
            "sink_last_delivery_timestamp_seconds",
            "When the sink last delivered, in Unix seconds (its start until then)",
            metrics.sink_last_delivery.clone(),
        );
        r.register(
            "config_reloads",
            "Reloads whose new config runs",
            metrics.config_reloads.clone(),
        );
        r.register(
            "config_reload_failures",
            "Reloads refused, or whose config could not start",
            metrics.config_reload_failures.clone(),
        );
        Metrics {
            registry: root,
            ..metrics
        }
    }

    /// Creates the series of sink `name` (every `{sink}` metric), at 0, so they exist from
    /// its start rather than from its first batch or retry. Its last delivery starts as now;
    /// a series it already has (a reload) keeps its value.
    pub fn register_sink(&self, name: &str) {
        let label = SinkLabel {
            sink: name.to_owned(),
        };
        drop(self.records_sent.get_or_create(&label));
        drop(self.records_failed.get_or_create(&label));
        drop(self.sink_retries.get_or_create(&label));
        let last_delivery = self.sink_last_delivery.get_or_create(&label);
        if last_delivery.get() == 0 {
            last_delivery.set(unix_seconds());
        }
    }

    /// The sink `label` delivered a batch now.
    pub fn sink_delivered(&self, label: &SinkLabel) {
        self.sink_last_delivery
            .get_or_create(label)
            .set(unix_seconds());
    }

    /// The OpenMetrics text exposition of every metric (the server also offers it in the
    /// Prometheus text format: [`crate::server::to_prometheus`]).
    pub fn encode(&self) -> String {
        self.process.refresh();
        let mut text = String::new();
        // Writing into a String cannot fail.
        encode(&mut text, &self.registry).ok();
        text
    }

    /// The pipeline is up: config loaded, files being read, metadata source ready.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Whether the pipeline said it is ready.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The process metrics, refreshed from `/proc/self` when read.
#[derive(Debug, Default)]
struct ProcessGauges {
    resident_memory_bytes: Gauge,
    cpu_seconds: Counter<f64, AtomicU64>,
    open_fds: Gauge,
}

impl ProcessGauges {
    /// Clock ticks per second of `/proc/PID/stat` times: 100 on Linux.
    const TICKS: f64 = 100.0;
    const PAGE: i64 = 4096;

    fn refresh(&self) {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        if let Some(pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<i64>().ok())
        {
            self.resident_memory_bytes.set(pages * Self::PAGE);
        }
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let seconds = cpu_ticks(&stat) as f64 / Self::TICKS;
        // A counter only goes up: add what passed since the last scrape.
        let grown = seconds - self.cpu_seconds.get();
        if grown > 0.0 {
            self.cpu_seconds.inc_by(grown);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds
                .set(i64::try_from(fds.count()).unwrap_or(i64::MAX));
        }
    }
}

/// Now, in whole Unix seconds.
fn unix_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

/// User plus system CPU time, in clock ticks, from the text of a `/proc/PID/stat` file
/// (fields 14 and 15, counted after the command name, which may hold spaces). 0 when the
/// text is not such a file.
pub fn cpu_ticks(stat: &str) -> u64 {
    let after_name = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_metric_is_exposed_by_name() {
        let metrics = Metrics::new();
        metrics
            .records_sent
            .get_or_create(&SinkLabel { sink: "out".into() })
            .inc_by(3);
        metrics.input_lines.inc_by(7);
        let text = metrics.encode();
        for name in [
            "shiplog_input_lines_total 7",
            "shiplog_input_bytes_total",
            "shiplog_files_open",
            "shiplog_records_sent_total{sink=\"out\"} 3",
            "shiplog_inflight_bytes",
            "shiplog_kube_cache_hits_total",
            "shiplog_kube_cache_misses_total",
            "shiplog_excluded_records_total",
            "shiplog_decode_errors_total",
            "shiplog_records_without_metadata_total",
            "shiplog_unrouted_records_total",
            "shiplog_redactions_total",
            "shiplog_files_lag_bytes",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_cpu_seconds_total",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn a_sinks_series_exist_at_zero_from_its_registration() {
        let metrics = Metrics::new();
        metrics.register_sink("out");
        let text = metrics.encode();
        for series in [
            "shiplog_records_sent_total{sink=\"out\"} 0",
            "shiplog_records_failed_total{sink=\"out\"} 0",
            "shiplog_sink_retries_total{sink=\"out\"} 0",
        ] {
            assert!(text.contains(series), "{series} missing from:\n{text}");
        }
        let started = metrics
            .sink_last_delivery
            .get_or_create(&SinkLabel { sink: "out".into() })
            .get();
        assert!(
            started > 1_700_000_000,
            "its start, in Unix seconds: {started}"
        );
    }

    #[test]
    fn cpu_ticks_are_read_after_a_command_name_with_spaces() {
        let stat = "42 (tokio rt) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 3 0";
        assert_eq!(cpu_ticks(stat), 12);
        assert_eq!(cpu_ticks("garbage"), 0);
    }
}
