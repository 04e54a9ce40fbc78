//! End to end: the real binary ships to Kafka, here librdkafka's mock cluster (the real
//! Kafka protocol over 127.0.0.1 sockets, in this test process), and a real consumer
//! reads back what arrived.

mod util;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use util::kafka::{Received, cluster, consume};
use util::{Node, Running, append, numbered_line, run_once};

fn lines(file: usize, seqs: std::ops::Range<usize>) -> String {
    seqs.map(|seq| numbered_line(file, seq)).collect()
}

/// The `[sinks.bus]` table of a Kafka sink on `brokers`, with `extra` lines.
fn kafka_sink(brokers: &str, extra: &str) -> String {
    format!("type = \"kafka\"\nbrokers = \"{brokers}\"\n{extra}")
}

#[test]
fn records_of_three_namespaces_land_in_three_topics_each_pod_in_order_in_one_partition() {
    let cluster = cluster(&["shop", "payments", "audit"]);
    let brokers = cluster.bootstrap_servers();
    let node = Node::new();
    // (namespace, pod, lines): file numbers are the index.
    let pods = [
        ("shop", "web-1", 400),
        ("shop", "web-2", 300),
        ("payments", "api-1", 250),
        ("audit", "recorder-1", 50),
    ];
    for (file, (namespace, pod, count)) in pods.iter().enumerate() {
        node.container_log(namespace, pod, "app", lines(file, 0..*count).as_bytes());
    }
    let config = node.config(&[("sinks.bus", &kafka_sink(&brokers, "key = \"{pod}\""))]);
    let output = run_once(&config);
    assert!(output.status.success(), "{}", util::stderr(&output));

    let total = pods.iter().map(|(_, _, n)| n).sum();
    let received = consume(&brokers, &["shop", "payments", "audit"], total);
    let counts: BTreeMap<&str, usize> = received
        .iter()
        .map(|(topic, messages)| (topic.as_str(), messages.len()))
        .collect();
    assert_eq!(
        counts,
        BTreeMap::from([("audit", 50), ("payments", 250), ("shop", 700)])
    );
    for (file, (namespace, pod, count)) in pods.iter().enumerate() {
        let mine: Vec<&Received> = received[*namespace]
            .iter()
            .filter(|m| m.key.as_deref() == Some(*pod))
            .collect();
        let partitions: std::collections::BTreeSet<i32> =
            mine.iter().map(|m| m.partition).collect();
        assert_eq!(partitions.len(), 1, "{pod}: one key, one partition");
        let seqs: Vec<(usize, usize)> = mine.iter().map(|m| m.numbered()).collect();
        let expected: Vec<(usize, usize)> = (0..*count).map(|seq| (file, seq)).collect();
        assert_eq!(seqs, expected, "{pod}: every line once, in order");
        assert_eq!(mine[0].record["topic"], *namespace);
        assert_eq!(mine[0].record["kubernetes"]["pod_name"], *pod);
    }
    // The file sink beside it got the same records: both acknowledged before the commit.
    assert_eq!(node.records().len(), total);
}

#[test]
fn a_cluster_down_for_20_s_holds_the_offsets_back_and_loses_nothing() {
    let cluster = cluster(&["shop"]);
    let brokers = cluster.bootstrap_servers();
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0, 0..500).as_bytes());
    let config = node.config(&[
        ("sinks.bus", &kafka_sink(&brokers, "")),
        ("tail", "rescan_interval = \"200ms\""),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let state = node.path("state.db");
    let before = std::fs::metadata(&path).expect("log file").len();
    util::wait_for_commit(&state, before, "the first lines committed");

    cluster.broker_down(-1).expect("brokers down");
    append(&path, &lines(0, 500..1000));
    util::assert_offsets_held_back(&state, before, Duration::from_secs(20));
    assert_eq!(
        util::http_get(&address, "/healthz"),
        (200, "ok\n".to_owned()),
        "a sink retrying for 20 s is alive: restarting would not bring Kafka back"
    );
    assert_eq!(
        node.records().len(),
        1000,
        "the file sink beside it has every line: only Kafka holds the offsets back"
    );
    cluster.broker_up(-1).expect("brokers up");

    let after = std::fs::metadata(&path).expect("log file").len();
    util::wait_for_commit(&state, after, "the rest committed");
    assert!(shiplog.stop().success());
    let received = consume(&brokers, &["shop"], 1000);
    let mut seqs: Vec<usize> = received["shop"].iter().map(|m| m.numbered().1).collect();
    assert_eq!(
        seqs.len(),
        1000,
        "each line once: the producer is idempotent"
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (0..1000).collect::<Vec<_>>());
}

#[test]
fn records_for_a_topic_that_does_not_exist_go_to_the_default_topic_unless_topics_may_be_created() {
    let cluster = cluster(&["shop", "unknown"]);
    let brokers = cluster.bootstrap_servers();
    let node = Node::new();
    node.container_log("shop", "web-1", "app", lines(0, 0..100).as_bytes());
    let ghost = node.container_log("ghost", "spook-1", "app", lines(1, 0..100).as_bytes());
    // librdkafka waits this long before believing a topic does not exist (30 s by default).
    let fast = "[sinks.bus.librdkafka]\n\"topic.metadata.propagation.max.ms\" = 500";
    let config = node.config(&[
        ("sinks.bus", &kafka_sink(&brokers, fast)),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let size = std::fs::metadata(&ghost).expect("log file").len();
    util::wait_for_commit(&node.path("state.db"), size, "ghost's lines delivered");
    let metrics = util::http_get(&address, "/metrics").1;
    let rerouted = "shiplog_kafka_rerouted_records_total{sink=\"bus\"}";
    assert_eq!(util::metric(&metrics, rerouted), Some(100.0), "{metrics}");
    assert!(shiplog.stop().success());
    let received = consume(&brokers, &["shop", "unknown"], 200);
    assert_eq!(received["shop"].len(), 100);
    let rerouted = &received["unknown"];
    assert_eq!(rerouted.len(), 100, "ghost's records, in the default topic");
    assert!(rerouted.iter().all(|m| m.record["topic"] == "ghost"));
    let log = std::fs::read_to_string(&log).expect("shiplog's log");
    assert!(log.contains("topic does not exist"), "{log}");

    // Allowed to create topics, the brokers make "ghost" for the next records.
    node.container_log("ghost", "spook-2", "app", lines(2, 0..100).as_bytes());
    let creating = format!("create_topics = true\n{fast}");
    let config = node.config(&[("sinks.bus", &kafka_sink(&brokers, &creating))]);
    let output = run_once(&config);
    assert!(output.status.success(), "{}", util::stderr(&output));
    let received = consume(&brokers, &["ghost"], 100);
    assert_eq!(received.get("ghost").map(Vec::len), Some(100));
}

#[test]
fn a_renewed_client_certificate_swaps_the_producer_without_losing_or_repeating_a_record() {
    // The mock cluster speaks plaintext, and librdkafka reads TLS files only for TLS
    // connections; the swap shows in the log and in the expiry gauge, and the records
    // around it show that nothing was lost or sent twice.
    let cluster = cluster(&["shop"]);
    let brokers = cluster.bootstrap_servers();
    let node = Node::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls");
    let cert = node.path("tls.crt");
    std::fs::copy(fixtures.join("client-1.crt"), &cert).expect("copy the certificate");
    let path = node.container_log("shop", "web-1", "app", lines(0, 0..300).as_bytes());
    let tls = format!(
        "[sinks.bus.librdkafka]\n\"ssl.certificate.location\" = \"{}\"",
        cert.display()
    );
    let config = node.config(&[
        ("sinks.bus", &kafka_sink(&brokers, &tls)),
        ("server", "listen = \"127.0.0.1:0\""),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("tail", "rescan_interval = \"200ms\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let gauge = format!(
        "shiplog_tls_cert_expiry_timestamp_seconds{{path=\"{}\"}}",
        cert.display()
    );
    let expiry = || util::metric(&util::http_get(&address, "/metrics").1, &gauge);
    let first = expiry().expect("the first certificate's expiry");
    let state = node.path("state.db");
    let size = |p: &Path| std::fs::metadata(p).expect("log file").len();
    let before = size(&path);
    util::wait_for_commit(&state, before, "the first lines committed");

    // cert-manager's renewal, as a Secret volume does it: a new file renamed over.
    let renewed = node.path("tls.crt.new");
    std::fs::copy(fixtures.join("client-2.crt"), &renewed).expect("copy");
    std::fs::rename(&renewed, &cert).expect("rename");
    append(&path, &lines(0, 300..600));
    let after = size(&path);
    util::wait_for_commit(&state, after, "the rest committed");
    assert_eq!(
        expiry().map(|second| second - first),
        Some(30.0 * 24.0 * 3600.0),
        "the gauge shows the renewed certificate"
    );
    let text = std::fs::read_to_string(&log).expect("log");
    assert_eq!(
        text.matches("TLS files changed; a new producer takes over")
            .count(),
        1,
        "{text}"
    );
    assert!(shiplog.stop().success());
    let received = consume(&brokers, &["shop"], 600);
    let seqs: Vec<usize> = received["shop"].iter().map(|m| m.numbered().1).collect();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..600).collect::<Vec<_>>(), "each line once");
}

#[test]
fn a_misspelt_librdkafka_property_fails_check_and_start_up_naming_the_sink_and_property() {
    let node = Node::new();
    let typo = "[sinks.bus.librdkafka]\n\"linger.msec\" = 5";
    let config = node.config(&[("sinks.bus", &kafka_sink("127.0.0.1:9", typo))]);
    let config_arg = config.to_str().expect("UTF-8");
    for args in [
        vec!["check", "--config", config_arg],
        vec!["--config", config_arg, "--once"],
    ] {
        let output = util::shiplog(&args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let message = util::stderr(&output);
        assert!(
            message.contains("sinks.bus") && message.contains("linger.msec"),
            "{args:?}: {message}"
        );
    }
}

/// A folder laid out as the kubelet lays out a Secret volume: the files live in a
/// timestamped folder, `..data` links to it and each name links through `..data`, so an
/// update swaps one link and every file changes at once.
struct SecretVolume {
    dir: std::path::PathBuf,
    version: usize,
}

impl SecretVolume {
    fn new(dir: std::path::PathBuf, files: &[(&str, &Path)]) -> SecretVolume {
        std::fs::create_dir_all(&dir).expect("secret folder");
        let mut volume = SecretVolume { dir, version: 0 };
        volume.update(files);
        for (name, _) in files {
            let link = volume.dir.join(name);
            std::os::unix::fs::symlink(format!("..data/{name}"), link).expect("link");
        }
        volume
    }

    /// The kubelet's atomic update: a new version folder, then `..data` renamed onto it.
    fn update(&mut self, files: &[(&str, &Path)]) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).expect("version folder");
        for (name, source) in files {
            std::fs::copy(source, self.dir.join(&version).join(name)).expect("copy");
        }
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).expect("link");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap");
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }
}

#[test]
fn a_certificate_renewed_after_the_brokers_refused_the_old_one_is_used_within_2_s() {
    let cluster = cluster(&["shop"]);
    let pki = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls/pki");
    let relay = util::relay::Relay::tls(&cluster.bootstrap_servers(), &pki);
    let node = Node::new();
    let (client_a, key_a) = (pki.join("client-a.crt"), pki.join("client-a.key"));
    let (client_b, key_b) = (pki.join("client-b.crt"), pki.join("client-b.key"));
    let mut secret = SecretVolume::new(
        node.path("secret"),
        &[("tls.crt", &client_a), ("tls.key", &key_a)],
    );
    let path = node.container_log("shop", "web-1", "app", lines(0, 0..100).as_bytes());
    let tls = format!(
        "key = \"{{pod}}\"\n[sinks.bus.librdkafka]\n\"security.protocol\" = \"ssl\"\n\
         \"ssl.ca.location\" = \"{}\"\n\"ssl.certificate.location\" = \"{}\"\n\
         \"ssl.key.location\" = \"{}\"",
        pki.join("ca.crt").display(),
        secret.path("tls.crt").display(),
        secret.path("tls.key").display(),
    );
    let config = node.config(&[
        ("sinks.bus", &kafka_sink(&relay.bootstrap, &tls)),
        ("server", "listen = \"127.0.0.1:0\""),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("tail", "rescan_interval = \"200ms\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let state = node.path("state.db");
    let size = |p: &Path| std::fs::metadata(p).expect("log file").len();
    let before = size(&path);
    util::wait_for_commit(&state, before, "the first lines delivered over TLS");
    assert!(relay.first_produce_with(&client_a).is_some());
    let metrics = util::http_get(&address, "/metrics").1;
    let ca_gauge = format!(
        "shiplog_tls_cert_expiry_timestamp_seconds{{path=\"{}\"}}",
        pki.join("ca.crt").display()
    );
    assert_eq!(
        util::metric(&metrics, &ca_gauge),
        Some(4_891_363_200.0),
        "the CA file's notAfter (2125-01-01): {metrics}"
    );

    // The brokers refuse the certificate (it expired, or was revoked) and close its
    // connections; lines keep coming.
    relay.refuse(&client_a);
    append(&path, &lines(0, 100..200));
    util::assert_offsets_held_back(&state, before, Duration::from_secs(2));
    // A renewal gone wrong first: the new certificate with the old key.
    secret.update(&[("tls.crt", &client_b), ("tls.key", &key_a)]);
    util::assert_offsets_held_back(&state, before, Duration::from_secs(2));
    append(&path, &lines(0, 200..250));
    // Then the right pair.
    secret.update(&[("tls.crt", &client_b), ("tls.key", &key_b)]);
    let swapped = std::time::Instant::now();
    let after = size(&path);
    util::wait_for_commit(&state, after, "the lines written meanwhile delivered");
    let first = relay
        .first_produce_with(&client_b)
        .expect("a delivery with the new certificate");
    assert!(
        first.duration_since(swapped) < Duration::from_secs(2),
        "the new certificate's first delivery came {:?} after the swap",
        first.duration_since(swapped)
    );
    assert!(shiplog.stop().success());

    let text = std::fs::read_to_string(&log).expect("log");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("TLS files changed but are not usable"))
        .collect();
    assert_eq!(warnings.len(), 1, "once per change of the files: {text}");
    let key = secret.path("tls.key").display().to_string();
    assert!(
        warnings[0].contains(&key) && warnings[0].contains("does not match the certificate"),
        "{}",
        warnings[0]
    );
    let received = consume(&cluster.bootstrap_servers(), &["shop"], 250);
    let seqs: Vec<usize> = received["shop"].iter().map(|m| m.numbered().1).collect();
    assert_eq!(
        seqs,
        (0..250).collect::<Vec<_>>(),
        "every line once, in order"
    );
}

#[test]
fn deliveries_timing_out_twice_on_one_producer_get_a_new_producer_losing_and_reordering_nothing() {
    let cluster = cluster(&["shop"]);
    let relay = util::relay::Relay::plain(&cluster.bootstrap_servers());
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0, 0..100).as_bytes());
    let fast = "key = \"{pod}\"\n[sinks.bus.librdkafka]\n\"message.timeout.ms\" = 1000";
    let config = node.config(&[
        ("sinks.bus", &kafka_sink(&relay.bootstrap, fast)),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("tail", "rescan_interval = \"200ms\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let state = node.path("state.db");
    let size = |p: &Path| std::fs::metadata(p).expect("log file").len();
    let before = size(&path);
    util::wait_for_commit(&state, before, "the first lines delivered");

    // The brokers take requests and answer none: every delivery times out.
    relay.stall(true);
    append(&path, &lines(0, 100..200));
    let replaced = "deliveries timed out in 2 attempts in a row on this producer";
    util::wait_until(Duration::from_secs(30), "a new producer", || {
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains(replaced))
    });
    relay.stall(false);
    util::wait_for_commit(&state, size(&path), "the rest delivered");
    assert!(shiplog.stop().success());
    let received = consume(&cluster.bootstrap_servers(), &["shop"], 200);
    let seqs: Vec<usize> = received["shop"].iter().map(|m| m.numbered().1).collect();
    assert_eq!(
        seqs,
        (0..200).collect::<Vec<_>>(),
        "every line once, in order"
    );
}
