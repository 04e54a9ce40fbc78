//! `Config::load` end to end: real files in a temporary folder, a fake environment.

use std::error::Error;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::TempDir;

use super::*;
use crate::route::allow::{AllowList, TopicOverrides};

type TestResult = Result<(), Box<dyn Error>>;

/// The one sink most cases need.
const STDOUT_SINK: &str = "[sinks.out]\ntype = \"stdout\"\n";

fn env(name: &str) -> Option<String> {
    match name {
        "NODE_NAME" => Some("node-1".to_string()),
        "LOGDIR" => Some("/data/logs".to_string()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Writes `text` as `shiplog.toml` in `dir` and loads it with the fake environment.
fn load_in(dir: &Path, text: &str) -> Result<Result<Config, ConfigError>, std::io::Error> {
    let path = dir.join("shiplog.toml");
    std::fs::write(&path, text)?;
    Ok(Config::load_with_env(&path, &env))
}

/// Like [`load_in`], in a fresh temporary folder, returned so it lives as long as the test.
fn load(text: &str) -> Result<(TempDir, Result<Config, ConfigError>), std::io::Error> {
    let dir = tempfile::tempdir()?;
    let loaded = load_in(dir.path(), text)?;
    Ok((dir, loaded))
}

/// CONTRACT.md's defaults, with relative defaults resolved in `dir`.
fn default_config(dir: &Path) -> Config {
    Config {
        source: dir.join("shiplog.toml"),
        tail: TailConfig {
            include: vec!["/var/log/containers/*.log".to_string()],
            exclude: vec![],
            read_from: ReadFrom::Head,
            max_line_bytes: 256 * 1024,
            rescan_interval: Duration::from_secs(5),
            rotate_wait: Duration::from_secs(30),
            multiline_flush: Duration::from_secs(1),
            multiline_max_lines: 500,
        },
        state: StateConfig {
            path: PathBuf::from("/var/lib/shiplog/state.db"),
            commit_interval: Duration::from_secs(1),
        },
        pipeline: PipelineConfig {
            memory_limit: 64 * 1024 * 1024,
            batch_max_events: 1000,
            batch_max_bytes: 1024 * 1024,
            batch_timeout: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
        },
        kubernetes: KubernetesConfig {
            metadata: MetadataSource::Api,
            node_name: "node-1".to_string(),
            kubeconfig: None,
            pods_file: None,
            annotation_prefixes: vec!["shiplog.io".to_string(), "fluentbit.io".to_string()],
            include_labels: true,
            include_annotations: true,
            deleted_pod_grace: Duration::from_secs(300),
            cache_capacity: 4096,
            lookup_timeout: Duration::from_secs(1),
            namespace_labels: false,
            namespace_exclude: true,
            merge_log: true,
            merge_log_key: "data".to_string(),
            keep_log: true,
        },
        parsers: ParsersConfig {
            dirs: vec![dir.join("parsers")],
            missing_ok: true,
        },
        route: RouteConfig {
            topic: "{namespace}".to_string(),
            default_topic: "unknown".to_string(),
            topic_overrides: TopicOverrides::default(),
        },
        server: ServerConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 2020))),
        },
        log: LogConfig {
            level: "info".to_string(),
            format: LogFormat::Auto,
        },
        events: EventsConfig {
            enabled: false,
            namespaces: vec![],
            topic: "k8s-events".to_string(),
            lease_name: "shiplog-events".to_string(),
            lease_namespace: "shiplog".to_string(),
            identity: String::new(),
            lease: LeaseTimings {
                lease_duration: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry_period: Duration::from_secs(2),
            },
            tags: BTreeMap::new(),
        },
        sinks: vec![SinkConfig {
            name: "out".to_string(),
            kind: SinkKind::Stdout,
            matcher: None,
        }],
        transforms: Vec::new(),
    }
}

#[test]
fn a_file_with_one_stdout_sink_gets_every_default_of_the_contract() -> TestResult {
    let (dir, loaded) = load(STDOUT_SINK)?;
    assert_eq!(loaded?, default_config(dir.path()));
    Ok(())
}

/// CONTRACT.md's example, its sink made a stdout one: every value in it is the default.
const CONTRACT_EXAMPLE: &str = r#"
[tail]
include = ["/var/log/containers/*.log"]   # globs
exclude = []                              # globs
read_from = "head"          # "head" | "tail": start of a file with no checkpoint seen at first start
max_line_bytes = "256KiB"   # longer lines are cut into flagged pieces, never dropped
rescan_interval = "5s"
rotate_wait = "30s"         # how long a rotated or deleted file is kept open after its last read
multiline_flush = "1s"
multiline_max_lines = 500

[state]
path = "/var/lib/shiplog/state.db"       # SQLite
commit_interval = "1s"

[pipeline]
memory_limit = "64MiB"      # in-flight bytes; tailing pauses above it
batch_max_events = 1000
batch_max_bytes = "1MiB"
batch_timeout = "1s"
shutdown_timeout = "30s"

[kubernetes]
metadata = "api"            # "api" | "file" | "off"
node_name = "${NODE_NAME}"
kubeconfig = ""             # empty: in-cluster config, then KUBECONFIG / ~/.kube/config
pods_file = ""              # metadata = "file": a v1 PodList as JSON or YAML
annotation_prefixes = ["shiplog.io", "fluentbit.io"]
include_labels = true
include_annotations = true
deleted_pod_grace = "5m"
cache_capacity = 4096
lookup_timeout = "1s"
namespace_labels = false
namespace_exclude = true
merge_log = true
merge_log_key = "data"
keep_log = true

[parsers]
dirs = ["parsers"]          # every *.toml in these folders defines parsers

[route]
topic = "{namespace}"       # template: {namespace} {pod} {container} {label.KEY} {annotation.KEY}
default_topic = "unknown"   # when the template cannot be filled
topic_overrides = ["{namespace}", "{namespace}-*"]  # what shiplog.io/topic may pick: "any" | "off" | patterns

[server]
listen = "127.0.0.1:2020"   # /healthz /readyz /metrics ; "" disables

[sinks.out]
type = "stdout"
"#;

#[test]
fn the_contracts_example_file_spells_out_the_defaults() -> TestResult {
    let (dir, loaded) = load(CONTRACT_EXAMPLE)?;
    let mut expected = default_config(dir.path());
    // Naming the parsers folder, even the default one, makes it required.
    expected.parsers.missing_ok = false;
    assert_eq!(loaded?, expected);
    Ok(())
}

#[test]
fn every_section_can_be_overridden() -> TestResult {
    let text = r#"
        [tail]
        include = ["${LOGDIR}/*.log", "/var/log/pods/**/*.log"]
        exclude = ["${LOGDIR}/skip-*.log"]
        read_from = "tail"
        max_line_bytes = "64KiB"
        rescan_interval = "500ms"
        rotate_wait = "1m"

        [state]
        path = "/srv/state.db"
        commit_interval = "2s"

        [pipeline]
        memory_limit = "1GB"
        batch_max_events = 10
        batch_max_bytes = 65536
        batch_timeout = "250ms"
        shutdown_timeout = "1h"

        [kubernetes]
        metadata = "file"
        node_name = "${UNSET:-node-7}"
        kubeconfig = "/etc/kube/config"
        pods_file = "/srv/pods.yaml"
        annotation_prefixes = ["example.com"]
        include_labels = false
        include_annotations = false
        deleted_pod_grace = "0s"
        cache_capacity = 16
        lookup_timeout = "250ms"
        namespace_labels = true
        namespace_exclude = false
        merge_log = false
        merge_log_key = ""
        keep_log = false

        [parsers]
        dirs = ["/etc/shiplog/parsers", "/usr/share/shiplog/parsers"]

        [route]
        topic = "{namespace}.{label.app}"
        default_topic = "orphans"
        topic_overrides = ["{namespace}.*", "security-audit"]

        [server]
        listen = ""

        [log]
        level = "warn,shiplog::tail=debug"
        format = "json"

        [events]
        enabled = true
        namespaces = ["shop", "kube-system"]
        topic = "cluster-events"
        lease_name = "events-lock"
        lease_namespace = "logging"
        identity = "shiplog-abc12"
        lease_duration = "30s"
        renew_deadline = "20s"
        retry_period = "5s"
        tags = { cluster = "prod-eu" }

        [sinks.zz_null]
        type = "null"

        [sinks.archive]
        type = "file"
        path = "/srv/out.jsonl"

        [sinks.console]
        type = "stdout"
    "#;
    let (dir, loaded) = load(text)?;
    let want = Config {
        source: dir.path().join("shiplog.toml"),
        tail: TailConfig {
            include: vec!["/data/logs/*.log".into(), "/var/log/pods/**/*.log".into()],
            exclude: vec!["/data/logs/skip-*.log".into()],
            read_from: ReadFrom::Tail,
            max_line_bytes: 64 * 1024,
            rescan_interval: Duration::from_millis(500),
            rotate_wait: Duration::from_secs(60),
            multiline_flush: Duration::from_secs(1),
            multiline_max_lines: 500,
        },
        state: StateConfig {
            path: "/srv/state.db".into(),
            commit_interval: Duration::from_secs(2),
        },
        pipeline: PipelineConfig {
            memory_limit: 1_000_000_000,
            batch_max_events: 10,
            batch_max_bytes: 65536,
            batch_timeout: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(3600),
        },
        kubernetes: KubernetesConfig {
            metadata: MetadataSource::File,
            node_name: "node-7".into(),
            kubeconfig: Some("/etc/kube/config".into()),
            pods_file: Some("/srv/pods.yaml".into()),
            annotation_prefixes: vec!["example.com".into()],
            include_labels: false,
            include_annotations: false,
            deleted_pod_grace: Duration::ZERO,
            cache_capacity: 16,
            lookup_timeout: Duration::from_millis(250),
            namespace_labels: true,
            namespace_exclude: false,
            merge_log: false,
            merge_log_key: String::new(),
            keep_log: false,
        },
        parsers: ParsersConfig {
            dirs: vec![
                "/etc/shiplog/parsers".into(),
                "/usr/share/shiplog/parsers".into(),
            ],
            missing_ok: false,
        },
        route: RouteConfig {
            topic: "{namespace}.{label.app}".into(),
            default_topic: "orphans".into(),
            topic_overrides: TopicOverrides::Only(
                AllowList::compile(&["{namespace}.*".to_owned(), "security-audit".to_owned()])
                    .map_err(|(_, e)| e)?,
            ),
        },
        server: ServerConfig { listen: None },
        log: LogConfig {
            level: "warn,shiplog::tail=debug".to_string(),
            format: LogFormat::Json,
        },
        events: EventsConfig {
            enabled: true,
            namespaces: vec!["shop".to_string(), "kube-system".to_string()],
            topic: "cluster-events".to_string(),
            lease_name: "events-lock".to_string(),
            lease_namespace: "logging".to_string(),
            identity: "shiplog-abc12".to_string(),
            lease: LeaseTimings {
                lease_duration: Duration::from_secs(30),
                renew_deadline: Duration::from_secs(20),
                retry_period: Duration::from_secs(5),
            },
            tags: BTreeMap::from([("cluster".to_string(), "prod-eu".to_string())]),
        },
        sinks: vec![
            SinkConfig {
                name: "archive".into(),
                kind: SinkKind::File {
                    path: "/srv/out.jsonl".into(),
                },
                matcher: None,
            },
            SinkConfig {
                name: "console".into(),
                kind: SinkKind::Stdout,
                matcher: None,
            },
            SinkConfig {
                name: "zz_null".into(),
                kind: SinkKind::Null,
                matcher: None,
            },
        ],
        transforms: Vec::new(),
    };
    assert_eq!(loaded?, want);
    Ok(())
}

#[test]
fn relative_paths_and_globs_are_resolved_against_the_config_files_folder() -> TestResult {
    let text = r#"
        [tail]
        include = ["logs/*.log", "./more/*.log", "/abs/*.log"]
        exclude = ["logs/skip-*.log"]
        [state]
        path = "state/./state.db"
        [kubernetes]
        metadata = "file"
        kubeconfig = "kube/config"
        pods_file = "./fixtures/pods.yaml"
        [parsers]
        dirs = ["parsers", "../shared/parsers", "/etc/shiplog/parsers"]
        [sinks.out]
        type = "file"
        path = "out/records.jsonl"
    "#;
    let (dir, loaded) = load(text)?;
    let config = loaded?;
    let base = dir.path();
    let glob_base = base.to_str().ok_or("temporary folder is not UTF-8")?;
    assert_eq!(config.base_dir(), base);
    let include = [
        format!("{glob_base}/logs/*.log"),
        format!("{glob_base}/more/*.log"),
        "/abs/*.log".into(),
    ];
    assert_eq!(config.tail.include, include);
    assert_eq!(
        config.tail.exclude,
        [format!("{glob_base}/logs/skip-*.log")]
    );
    assert_eq!(config.state.path, base.join("state/state.db"));
    assert_eq!(config.kubernetes.kubeconfig, Some(base.join("kube/config")));
    assert_eq!(
        config.kubernetes.pods_file,
        Some(base.join("fixtures/pods.yaml"))
    );
    let parsers = [
        base.join("parsers"),
        base.join("../shared/parsers"),
        "/etc/shiplog/parsers".into(),
    ];
    assert_eq!(config.parsers.dirs, parsers);
    let out = SinkKind::File {
        path: base.join("out/records.jsonl"),
    };
    assert_eq!(config.sinks[0].kind, out);
    Ok(())
}

#[test]
fn a_relative_glob_matches_a_config_folder_whose_name_has_glob_characters() -> TestResult {
    let dir = tempfile::tempdir()?;
    let odd = dir.path().join("conf[1]*");
    std::fs::create_dir(&odd)?;
    let text = format!("[tail]\ninclude = [\"*.log\"]\n{STDOUT_SINK}");
    let config = load_in(&odd, &text)??;
    let pattern = glob::Pattern::new(&config.tail.include[0])?;
    assert!(pattern.matches_path(&odd.join("app.log")), "{pattern}");
    assert!(
        !pattern.matches_path(&dir.path().join("conf1x/app.log")),
        "{pattern}"
    );
    Ok(())
}

#[test]
fn environment_variables_are_substituted_with_their_value_or_default() -> TestResult {
    let cases = [
        ("route.default_topic = \"${NODE_NAME}-logs\"", "node-1-logs"),
        ("route.default_topic = \"${UNSET:-fallback}\"", "fallback"),
        ("route.default_topic = \"${EMPTY:-fallback}\"", "fallback"),
        ("route.default_topic = \"$${NODE_NAME}\"", "${NODE_NAME}"),
        (
            "route.default_topic = \"say \\\"${NODE_NAME}\\\"\"",
            "say \"node-1\"",
        ),
    ];
    for (line, want) in cases {
        let (_dir, loaded) = load(&format!("{line}\n{STDOUT_SINK}"))?;
        assert_eq!(loaded?.route.default_topic, want, "{line}");
    }
    Ok(())
}

#[test]
fn node_name_defaults_to_the_node_name_variable_and_to_empty_without_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("shiplog.toml");
    std::fs::write(
        &path,
        format!("[kubernetes]\nmetadata = \"off\"\n{STDOUT_SINK}"),
    )?;
    assert_eq!(
        Config::load_with_env(&path, &env)?.kubernetes.node_name,
        "node-1"
    );
    assert_eq!(
        Config::load_with_env(&path, &no_env)?.kubernetes.node_name,
        ""
    );
    Ok(())
}

/// A config that must be refused: what it says, the key and the reason expected.
struct Refused {
    text: &'static str,
    key: &'static str,
    reason: &'static str,
}

const fn refused(text: &'static str, key: &'static str, reason: &'static str) -> Refused {
    Refused { text, key, reason }
}

/// Each case is a whole file; cases that are not about sinks add [`STDOUT_SINK`] themselves.
const REFUSED: &[Refused] = &[
    // Allow-lists of what pods may choose.
    refused(
        "[kubernetes]\nmetadata = \"off\"\nmerge_log_key = \"kubernetes\"\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.merge_log_key",
        "\"kubernetes\" is one of the record's own keys (time, stream, log, kubernetes, topic, truncated, partial, invalid_utf8, shiplog_error): a line's JSON would shadow it",
    ),
    refused(
        "[route]\ntopic_overrides = \"some\"\n[sinks.out]\ntype = \"stdout\"",
        "route.topic_overrides",
        "\"some\": expected \"any\", \"off\" or a list of patterns such as [\"{namespace}\", \"{namespace}-*\"]",
    ),
    refused(
        "[route]\ntopic_overrides = [\"{namespace}\", \"{pod}-*\"]\n[sinks.out]\ntype = \"stdout\"",
        "route.topic_overrides[1]",
        "unknown placeholder in \"{pod}-*\" (patterns know {namespace} and *)",
    ),
    refused(
        "[route]\ntopic_overrides = []\n[sinks.out]\ntype = \"stdout\"",
        "route.topic_overrides",
        "an empty list allows nothing; leave the key out to allow anything",
    ),
    refused(
        "[sinks.cw]\ntype = \"cloudwatch\"\nallowed_destinations = [\"\"]",
        "sinks.cw.allowed_destinations[0]",
        "a pattern must not be empty",
    ),
    // Routing and transforms.
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[sinks.out.match]\nnamespace = [\"a\"]",
        "sinks.out.match",
        "unknown key \"namespace\" (expected one of: namespaces, exclude_namespaces, labels, streams, topics)",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\nmatch = { streams = [\"stdin\"] }",
        "sinks.out.match.streams[0]",
        "\"stdin\" is not a stream (expected \"stdout\" or \"stderr\")",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\ntype = \"lua\"",
        "transforms[0].type",
        "unknown transform type \"lua\" (expected one of: add_fields, remove_fields, rename_fields, redact, throttle)",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\ntype = \"remove_fields\"\nfields = [\"a\"]\n[[transforms]]\ntype = \"redact\"\nfields = [\"log\"]\npattern = \"(\"",
        "transforms[1].pattern",
        "invalid regex: regex parse error:     (     ^ error: unclosed group",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\ntype = \"throttle\"\nrate = 10\n[transforms.match]\npods = [\"a\"]",
        "transforms[0].match",
        "unknown key \"pods\" (expected one of: namespaces, exclude_namespaces, labels, streams, topics)",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\ntype = \"throttle\"\nrate = 10\nper = \"node\"",
        "transforms[0].per",
        "expected \"pod\" or \"namespace\"",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\ntype = \"add_fields\"\nfields = { topic = \"x\" }",
        "transforms[0].fields.topic",
        "\"topic\" is one of the record's own keys (time, stream, log, kubernetes, topic, truncated, partial, invalid_utf8, shiplog_error, data); shiplog sets it",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\ntype = \"rename_fields\"\nfields = { \"data.msg\" = \"a..b\" }",
        "transforms[0].fields.data.msg",
        "\"a..b\" is not a dotted field path (e.g. \"data.password\")",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\n[[transforms]]\nfields = [\"a\"]",
        "transforms[0]",
        "missing key \"type\" (expected one of: add_fields, remove_fields, rename_fields, redact, throttle)",
    ),
    // Unknown keys, at each level.
    refused(
        "tial = 1\n[sinks.out]\ntype = \"stdout\"",
        "",
        "unknown key \"tial\" (expected one of: tail, state, pipeline, kubernetes, parsers, route, server, log, events, sinks, transforms)",
    ),
    refused(
        "[tail]\ninclde = []\n[sinks.out]\ntype = \"stdout\"",
        "tail",
        "unknown key \"inclde\" (expected one of: include, exclude, read_from, max_line_bytes, rescan_interval, rotate_wait, multiline_flush, multiline_max_lines)",
    ),
    refused(
        "[sinks.out]\ntype = \"file\"\npath = \"o\"\nformat = \"json\"",
        "sinks.out",
        "unknown key \"format\" (expected one of: path)",
    ),
    refused(
        "[sinks.out]\ntype = \"stdout\"\npath = \"o\"",
        "sinks.out",
        "unknown key \"path\" (this table takes no other keys)",
    ),
    // Units and types.
    refused(
        "[tail]\nrescan_interval = \"5 parsecs\"\n[sinks.out]\ntype = \"stdout\"",
        "tail.rescan_interval",
        "invalid duration \"5 parsecs\": unknown unit \"parsecs\" (use ms, s, m, h)",
    ),
    refused(
        "[state]\ncommit_interval = 1\n[sinks.out]\ntype = \"stdout\"",
        "state.commit_interval",
        "invalid type: integer `1`, expected a duration string such as \"500ms\", \"5s\", \"5m\" or \"1h\"",
    ),
    refused(
        "[pipeline]\nmemory_limit = \"64 megs\"\n[sinks.out]\ntype = \"stdout\"",
        "pipeline.memory_limit",
        "invalid size \"64 megs\": unknown unit \"megs\" (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB for powers of 1000)",
    ),
    refused(
        "[pipeline]\nbatch_max_events = \"many\"\n[sinks.out]\ntype = \"stdout\"",
        "pipeline.batch_max_events",
        "invalid type: string \"many\", expected a non-negative integer",
    ),
    refused(
        "[tail]\ninclude = [\"/a\", 1]\n[sinks.out]\ntype = \"stdout\"",
        "tail.include[1]",
        "invalid type: integer `1`, expected a string",
    ),
    refused(
        "[tail]\nread_from = \"middle\"\n[sinks.out]\ntype = \"stdout\"",
        "tail.read_from",
        "unknown value \"middle\" (expected one of: head, tail)",
    ),
    refused(
        "[kubernetes]\nmetadata = \"kubelet\"\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.metadata",
        "unknown value \"kubelet\" (expected one of: api, file, off)",
    ),
    refused(
        "[kubernetes]\ninclude_labels = \"yes\"\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.include_labels",
        "invalid type: string \"yes\", expected true or false",
    ),
    // Environment.
    refused(
        "[sinks.out]\ntype = \"file\"\npath = \"${OUTDIR}/out.jsonl\"",
        "sinks.out.path",
        "environment variable OUTDIR is not set and has no default",
    ),
    refused(
        "[sinks.out]\ntype = \"file\"\npath = \"${OUTDIR\"",
        "sinks.out.path",
        "unterminated \"${\" in \"${OUTDIR\": add the closing \"}\", or write \"$${\" for a literal \"${\"",
    ),
    // Sinks.
    refused(
        "[tail]\nrotate_wait = \"1s\"",
        "sinks",
        "at least one sink is required (add a [sinks.NAME] table, e.g. with type = \"stdout\")",
    ),
    refused(
        "[sinks]",
        "sinks",
        "at least one sink is required (add a [sinks.NAME] table, e.g. with type = \"stdout\")",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"",
        "sinks.bus",
        "missing key \"brokers\"",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \" \"",
        "sinks.bus.brokers",
        "must name at least one broker",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\ncompression = \"brotli\"",
        "sinks.bus.compression",
        "expected one of: none, gzip, snappy, lz4, zstd",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\nacks = \"2\"",
        "sinks.bus.acks",
        "expected \"all\", \"1\" or \"0\"",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\nkey = \"{node}\"",
        "sinks.bus.key",
        "unknown placeholder {node} (use {namespace}, {pod}, {container}, {label.KEY}, {annotation.KEY}, {topic})",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\ndefault_topic = \"lost and found\"",
        "sinks.bus.default_topic",
        "\"lost and found\" is not a legal topic name (1 to 249 of a-z A-Z 0-9 . _ -)",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\n[sinks.bus.librdkafka]\n\"bootstrap.servers\" = \"h2:9092\"",
        "sinks.bus.librdkafka.bootstrap.servers",
        "set by this sink's own key \"brokers\"; set that instead",
    ),
    refused(
        "[sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\n[sinks.bus.librdkafka]\n\"ssl\" = { ca = \"x\" }",
        "sinks.bus.librdkafka.ssl",
        "expected a string, a number or a boolean",
    ),
    refused(
        "[sinks.cw]\ntype = \"cloudwatch\"\nretention_days = 10",
        "sinks.cw.retention_days",
        "10 is not a retention CloudWatch accepts (one of: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)",
    ),
    refused(
        "[sinks.cw]\ntype = \"cloudwatch\"\nlog_group = \"/k8s/{node}\"",
        "sinks.cw.log_group",
        "unknown placeholder {node} (use {namespace}, {pod}, {container}, {label.KEY}, {annotation.KEY}, {topic})",
    ),
    refused(
        "[sinks.cw]\ntype = \"cloudwatch\"\nlog_stream = \"{pod\"",
        "sinks.cw.log_stream",
        "unclosed '{' at byte 0",
    ),
    refused(
        "[sinks.cw]\ntype = \"cloudwatch\"\nendpoint = \"localhost:4566\"",
        "sinks.cw.endpoint",
        "\"localhost:4566\" is not a URL (expected http://HOST[:PORT] or https://...)",
    ),
    refused(
        "[sinks.cw]\ntype = \"cloudwatch\"\nlog_groups = \"x\"",
        "sinks.cw",
        "unknown key \"log_groups\" (expected one of: region, endpoint, log_group, log_stream, auto_create_group, retention_days, allowed_destinations)",
    ),
    refused(
        "[sinks.out]\ntype = \"syslog\"",
        "sinks.out.type",
        "unknown sink type \"syslog\" (expected one of: stdout, file, null, kafka, cloudwatch)",
    ),
    refused(
        "[sinks.out]\ntype = 1",
        "sinks.out.type",
        "expected a string, one of: stdout, file, null, kafka, cloudwatch",
    ),
    refused(
        "[sinks.out]\npath = \"o\"",
        "sinks.out",
        "missing key \"type\" (expected one of: stdout, file, null, kafka, cloudwatch)",
    ),
    refused(
        "[sinks.out]\ntype = \"file\"",
        "sinks.out",
        "missing key \"path\"",
    ),
    refused(
        "[sinks.out]\ntype = \"file\"\npath = \"\"",
        "sinks.out.path",
        "must not be empty",
    ),
    refused(
        "[sinks]\nout = 3",
        "sinks.out",
        "invalid type: integer `3`, expected a table",
    ),
    refused(
        "[sinks.a]\ntype = \"file\"\npath = \"o.jsonl\"\n[sinks.b]\ntype = \"file\"\npath = \"./o.jsonl\"",
        "sinks.b.path",
        "the same file as sink \"a\"; two sinks cannot append to one file",
    ),
    // Rules across fields, and bounds.
    refused(
        "[kubernetes]\nmetadata = \"file\"\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.pods_file",
        "metadata = \"file\" requires pods_file, a PodList as JSON or YAML",
    ),
    refused(
        "[kubernetes]\nnode_name = \"\"\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.node_name",
        "metadata = \"api\" requires this node's name: set NODE_NAME or kubernetes.node_name, or use metadata = \"off\"",
    ),
    refused(
        "[pipeline]\nbatch_max_events = 0\n[sinks.out]\ntype = \"stdout\"",
        "pipeline.batch_max_events",
        "must be at least 1",
    ),
    refused(
        "[pipeline]\nbatch_max_bytes = \"0B\"\n[sinks.out]\ntype = \"stdout\"",
        "pipeline.batch_max_bytes",
        "must be at least 1 byte",
    ),
    refused(
        "[pipeline]\nmemory_limit = \"128KiB\"\n[sinks.out]\ntype = \"stdout\"",
        "pipeline.memory_limit",
        "must be at least tail.max_line_bytes (262144 bytes), or the longest line could never be read",
    ),
    refused(
        "[tail]\nmax_line_bytes = \"512B\"\n[sinks.out]\ntype = \"stdout\"",
        "tail.max_line_bytes",
        "must be at least 1KiB (1024 bytes), got 512 bytes",
    ),
    refused(
        "[tail]\nrescan_interval = \"0s\"\n[sinks.out]\ntype = \"stdout\"",
        "tail.rescan_interval",
        "must be longer than 0s",
    ),
    refused(
        "[state]\ncommit_interval = \"0ms\"\n[sinks.out]\ntype = \"stdout\"",
        "state.commit_interval",
        "must be longer than 0s",
    ),
    refused(
        "[tail]\ninclude = []\n[sinks.out]\ntype = \"stdout\"",
        "tail.include",
        "at least one glob is required",
    ),
    refused(
        "[tail]\nexclude = [\"/var/log/[ab.log\"]\n[sinks.out]\ntype = \"stdout\"",
        "tail.exclude[0]",
        "invalid glob \"/var/log/[ab.log\": invalid range pattern at character 9",
    ),
    refused(
        "[state]\npath = \"\"\n[sinks.out]\ntype = \"stdout\"",
        "state.path",
        "must not be empty",
    ),
    refused(
        "[kubernetes]\ncache_capacity = 0\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.cache_capacity",
        "must be at least 1",
    ),
    refused(
        "[kubernetes]\nmerge_log_key = \"\"\n[sinks.out]\ntype = \"stdout\"",
        "kubernetes.merge_log_key",
        "must not be empty when merge_log = true",
    ),
    refused(
        "[route]\ntopic = \"{topic}-x\"\n[sinks.out]\ntype = \"stdout\"",
        "route.topic",
        "{topic} is what this template makes; it cannot use itself",
    ),
    refused(
        "[route]\ntopic = \"{nope}\"\n[sinks.out]\ntype = \"stdout\"",
        "route.topic",
        "unknown placeholder {nope} (use {namespace}, {pod}, {container}, {label.KEY}, {annotation.KEY}, {topic})",
    ),
    refused(
        "[route]\ndefault_topic = \"\"\n[sinks.out]\ntype = \"stdout\"",
        "route.default_topic",
        "must not be empty",
    ),
    refused(
        "[server]\nlisten = \"localhost:2020\"\n[sinks.out]\ntype = \"stdout\"",
        "server.listen",
        "invalid socket address \"localhost:2020\" (use IP:PORT such as 127.0.0.1:2020, or \"\" to disable)",
    ),
    refused(
        "[events]\nenabled = true\n[sinks.out]\ntype = \"stdout\"",
        "events.identity",
        "the leader's identity is required: set POD_NAME or events.identity",
    ),
    refused(
        "[events]\nrenew_deadline = \"15s\"\n[sinks.out]\ntype = \"stdout\"",
        "events.lease_duration",
        "must be more than renew_deadline (15s)",
    ),
    refused(
        "[events]\nretry_period = \"9s\"\n[sinks.out]\ntype = \"stdout\"",
        "events.renew_deadline",
        "must be more than 1.2 × retry_period (9s)",
    ),
    refused(
        "[events]\ntags = { log = \"x\" }\n[sinks.out]\ntype = \"stdout\"",
        "events.tags.log",
        "\"log\" is a field events records have already (time, log, event, topic)",
    ),
    refused(
        "[events]\ntopic = \"a b\"\n[sinks.out]\ntype = \"stdout\"",
        "events.topic",
        "\"a b\" is not a legal topic name (1 to 249 of a-z A-Z 0-9 . _ -)",
    ),
    refused(
        "[log]\nlevel = \"debgu\"\n[sinks.out]\ntype = \"stdout\"",
        "log.level",
        "\"debgu\" is not a level: use a level (trace, debug, info, warn, error, off) or directives such as \"warn,shiplog::tail=debug\"",
    ),
    refused(
        "[log]\nlevel = \"shiplog=loud\"\n[sinks.out]\ntype = \"stdout\"",
        "log.level",
        "invalid filter \"shiplog=loud\": error parsing level filter: expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5: use a level (trace, debug, info, warn, error, off) or directives such as \"warn,shiplog::tail=debug\"",
    ),
];

#[test]
fn a_kafka_sink_takes_the_contracts_defaults_and_passes_librdkafka_properties_through() -> TestResult
{
    let text = "[route]\ndefault_topic = \"orphans\"\n\
                [sinks.bus]\ntype = \"kafka\"\nbrokers = \"h1:9092,h2:9092\"\n\
                [sinks.bus.librdkafka]\n\"security.protocol\" = \"ssl\"\n\"linger.ms\" = 20\n\
                [sinks.keyed]\ntype = \"kafka\"\nbrokers = \"h1:9092\"\ntopic = \"logs.{topic}\"\n\
                key = \"{pod}\"\ncompression = \"lz4\"\nacks = \"1\"\ncreate_topics = true\n\
                default_topic = \"logs.unknown\"\n\
                allowed_destinations = [\"logs.{namespace}*\"]\n";
    let (_dir, loaded) = load(text)?;
    let config = loaded?;
    let defaults = KafkaConfig {
        brokers: "h1:9092,h2:9092".into(),
        topic: Template::compile("{topic}")?,
        key: None,
        compression: "zstd".into(),
        acks: Acks::All,
        create_topics: false,
        default_topic: "orphans".into(),
        librdkafka: [("linger.ms", "20"), ("security.protocol", "ssl")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
        allowed_destinations: None,
    };
    assert_eq!(config.sinks[0].kind, SinkKind::Kafka(defaults));
    let keyed = KafkaConfig {
        brokers: "h1:9092".into(),
        topic: Template::compile("logs.{topic}")?,
        key: Some(Template::compile("{pod}")?),
        compression: "lz4".into(),
        acks: Acks::Leader,
        create_topics: true,
        default_topic: "logs.unknown".into(),
        librdkafka: BTreeMap::new(),
        allowed_destinations: Some(
            AllowList::compile(&["logs.{namespace}*".to_owned()]).map_err(|(_, e)| e)?,
        ),
    };
    assert_eq!(config.sinks[1].kind, SinkKind::Kafka(keyed));
    Ok(())
}

#[test]
fn a_cloudwatch_sink_takes_the_contracts_defaults_and_checks_its_retention() -> TestResult {
    let text = "[route]\ndefault_topic = \"orphans\"\n\
                [sinks.cw]\ntype = \"cloudwatch\"\n\
                [sinks.set]\ntype = \"cloudwatch\"\nregion = \"eu-west-1\"\n\
                endpoint = \"http://127.0.0.1:4566\"\nlog_group = \"/logs/{topic}\"\n\
                log_stream = \"{namespace}/{pod}\"\nauto_create_group = false\nretention_days = 14\n\
                allowed_destinations = [\"/logs/{namespace}\"]\n";
    let (_dir, loaded) = load(text)?;
    let config = loaded?;
    let defaults = CloudwatchConfig {
        region: None,
        endpoint: None,
        log_group: Template::compile("/k8s/{namespace}")?,
        log_stream: Template::compile("{pod}.{container}")?,
        auto_create_group: true,
        retention_days: None,
        fallback: "orphans".into(),
        allowed_destinations: None,
    };
    assert_eq!(config.sinks[0].kind, SinkKind::Cloudwatch(defaults));
    let set = CloudwatchConfig {
        region: Some("eu-west-1".into()),
        endpoint: Some("http://127.0.0.1:4566".into()),
        log_group: Template::compile("/logs/{topic}")?,
        log_stream: Template::compile("{namespace}/{pod}")?,
        auto_create_group: false,
        retention_days: Some(14),
        fallback: "orphans".into(),
        allowed_destinations: Some(
            AllowList::compile(&["/logs/{namespace}".to_owned()]).map_err(|(_, e)| e)?,
        ),
    };
    assert_eq!(config.sinks[1].kind, SinkKind::Cloudwatch(set));
    Ok(())
}

#[test]
fn a_bad_config_is_refused_naming_the_file_the_key_and_the_reason() -> TestResult {
    for case in REFUSED {
        let (dir, loaded) = load(case.text)?;
        let want = ConfigError::new(&dir.path().join("shiplog.toml"), case.key, case.reason);
        assert_eq!(loaded.err(), Some(want), "{}", case.text);
    }
    Ok(())
}

#[test]
fn a_syntax_error_is_refused_naming_the_line_and_column() -> TestResult {
    // The parser's own wording may change between toml versions; the position must not.
    let cases = [
        ("[tail\n", "invalid TOML at line 1, column 6: "),
        ("a = 1\nb = \n", "invalid TOML at line 2, column 5: "),
        ("[tail]\n[tail]\n", "invalid TOML at line 2, column 2: "),
    ];
    for (text, prefix) in cases {
        let (_dir, loaded) = load(text)?;
        let error = loaded.err().ok_or("a syntax error was accepted")?;
        assert_eq!(error.key, "", "{text:?}");
        assert!(
            error.reason.starts_with(prefix),
            "{text:?}: {}",
            error.reason
        );
    }
    Ok(())
}

#[test]
fn an_error_reads_as_file_key_reason() -> TestResult {
    let (dir, loaded) = load("[tail]\nrescan_interval = \"5 parsecs\"\n")?;
    let file = dir.path().join("shiplog.toml");
    let want = format!(
        "{}: tail.rescan_interval: invalid duration \"5 parsecs\": unknown unit \"parsecs\" (use ms, s, m, h)",
        file.display()
    );
    assert_eq!(loaded.err().map(|e| e.to_string()), Some(want));
    Ok(())
}

#[test]
fn an_unreadable_file_is_refused_naming_the_path_and_the_os_reason() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.toml");
    let want = ConfigError::new(
        &missing,
        "",
        "cannot read the config file: No such file or directory (os error 2)",
    );
    assert_eq!(Config::load(&missing).err(), Some(want));
    Ok(())
}

#[test]
fn sink_matches_and_transforms_are_read_in_order_with_their_matches() -> TestResult {
    use crate::route::matcher::{Match, StreamName};
    use crate::transform::{Edit, Limit, Per};
    let text = r#"
[sinks.audit]
type = "stdout"
[sinks.audit.match]
namespaces = ["audit"]
labels = { app = "api" }
streams = ["stderr"]
[sinks.all]
type = "null"
[[transforms]]
type = "add_fields"
fields = { cluster = "${CLUSTER:-eu-1}", replicas = 3 }
[[transforms]]
type = "throttle"
per = "namespace"
rate = 100
[transforms.match]
exclude_namespaces = ["kube-system"]
"#;
    let (_dir, loaded) = load(text)?;
    let config = loaded?;
    assert_eq!(config.sinks[0].name, "all");
    assert_eq!(config.sinks[0].matcher, None);
    let audit = Match {
        namespaces: vec!["audit".into()],
        labels: [("app".to_owned(), "api".to_owned())].into(),
        streams: vec![StreamName::Stderr],
        ..Match::default()
    };
    assert_eq!(config.sinks[1].matcher, Some(audit));
    assert_eq!(config.transforms.len(), 2);
    assert_eq!(
        config.transforms[0].edit,
        Edit::AddFields(vec![
            ("cluster".into(), r#""eu-1""#.into()),
            ("replicas".into(), "3".into())
        ])
    );
    assert_eq!(
        config.transforms[1].edit,
        Edit::Throttle(Limit {
            per: Per::Namespace,
            rate: 100.0,
            burst: 100.0
        })
    );
    assert_eq!(
        config.transforms[1].matcher,
        Some(Match {
            exclude_namespaces: vec!["kube-system".into()],
            ..Match::default()
        })
    );
    Ok(())
}
