//! End to end: `/healthz`, `/readyz` and `/metrics` of a running shiplog, over real HTTP.

mod util;

use std::time::Duration;

use util::{Node, Running, append, http_get as get, metric as sample, numbered_line, wait_until};

#[test]
fn the_endpoints_report_health_readiness_and_counters_that_move_with_the_lines() {
    let node = Node::new();
    let lines: String = (0..100).map(|seq| numbered_line(0, seq)).collect();
    let path = node.container_log("shop", "web-1", "app", lines.as_bytes());
    // One file whose pod the PodList holds, one whose pod it does not: a hit and a miss.
    node.container_log("shop", "gone-1", "app", numbered_line(1, 0).as_bytes());
    let pods = r#"{"kind": "List", "apiVersion": "v1", "items": [{"metadata":
        {"name": "web-1", "namespace": "shop", "uid": "uid-web-1"}, "spec": {"nodeName": "n"}}]}"#;
    node.write("pods.json", pods.as_bytes());
    let config = node.config(&[
        ("server", "listen = \"127.0.0.1:0\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        (
            "kubernetes",
            "metadata = \"file\"\npods_file = \"pods.json\"",
        ),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 101
    });

    assert_eq!(get(&address, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(&address, "/readyz"), (200, "ready\n".to_owned()));
    let (status, metrics) = get(&address, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&metrics, "shiplog_input_lines_total"),
        Some(101.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "shiplog_records_sent_total{sink=\"out\"}"),
        Some(101.0)
    );
    assert_eq!(sample(&metrics, "shiplog_files_open"), Some(2.0));
    assert_eq!(
        sample(&metrics, "shiplog_kube_cache_hits_total"),
        Some(1.0),
        "web-1 is in the PodList"
    );
    assert_eq!(
        sample(&metrics, "shiplog_kube_cache_misses_total"),
        Some(1.0),
        "gone-1 is not"
    );

    append(
        &path,
        &(100..150)
            .map(|seq| numbered_line(0, seq))
            .collect::<String>(),
    );
    wait_until(Duration::from_secs(20), "the counters to move", || {
        let (_, metrics) = get(&address, "/metrics");
        sample(&metrics, "shiplog_records_sent_total{sink=\"out\"}") == Some(151.0)
    });
    let (_, metrics) = get(&address, "/metrics");
    assert_eq!(sample(&metrics, "shiplog_input_lines_total"), Some(151.0));
    assert_eq!(
        sample(&metrics, "shiplog_inflight_bytes"),
        Some(0.0),
        "everything delivered"
    );
    assert_eq!(
        sample(&metrics, "shiplog_files_lag_bytes"),
        Some(0.0),
        "read to the end"
    );
    assert!(sample(&metrics, "process_resident_memory_bytes").is_some_and(|rss| rss > 1e6));
    assert!(sample(&metrics, "process_open_fds").is_some_and(|fds| fds >= 3.0));
    assert_eq!(get(&address, "/nope").0, 404);
    assert!(shiplog.stop().success());
}

#[test]
fn an_address_already_taken_fails_at_start_up_naming_server_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address");
    let node = Node::new();
    let config = node.config(&[("server", &format!("listen = \"{address}\""))]);
    let output = util::shiplog(&["--config", config.to_str().expect("UTF-8"), "--once"]);
    assert_eq!(output.status.code(), Some(1));
    let message = util::stderr(&output);
    assert!(
        message.contains("server.listen") && message.contains(&address.to_string()),
        "{message}"
    );
}

#[test]
fn every_sinks_contract_series_exist_at_zero_from_the_start() {
    let node = Node::new();
    let config = node.config(&[
        ("server", "listen = \"127.0.0.1:0\""),
        ("sinks.quiet", "type = \"null\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let mut metrics = String::new();
    wait_until(Duration::from_secs(20), "the sinks' series", || {
        metrics = get(&address, "/metrics").1;
        sample(&metrics, "shiplog_records_sent_total{sink=\"quiet\"}").is_some()
    });
    for sink in ["out", "quiet"] {
        for name in [
            "shiplog_records_sent_total",
            "shiplog_records_failed_total",
            "shiplog_sink_retries_total",
        ] {
            let series = format!("{name}{{sink=\"{sink}\"}}");
            assert_eq!(sample(&metrics, &series), Some(0.0), "{series}:\n{metrics}");
        }
        let started = sample(
            &metrics,
            &format!("shiplog_sink_last_delivery_timestamp_seconds{{sink=\"{sink}\"}}"),
        );
        assert!(
            started.is_some_and(|seconds| seconds > 1.7e9),
            "its start, until it delivers: {metrics}"
        );
    }
    assert!(shiplog.stop().success());
}

#[test]
fn metrics_come_in_the_text_format_the_scraper_asks_for() {
    let node = Node::new();
    node.container_log("shop", "web-1", "app", numbered_line(0, 0).as_bytes());
    let config = node.config(&[
        ("server", "listen = \"127.0.0.1:0\""),
        ("pipeline", "batch_timeout = \"50ms\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    wait_until(Duration::from_secs(20), "the line", || {
        !node.records().is_empty()
    });

    // Prometheus asks for OpenMetrics first; older scrapers for the 0.0.4 text format, or
    // for nothing in particular.
    let prometheus = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,\
        text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let openmetrics = util::http_request(&address, "/metrics", Some(prometheus)).expect("up");
    assert_eq!(
        openmetrics.content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(openmetrics.body.ends_with("# EOF\n"));
    assert!(
        openmetrics
            .body
            .contains("# TYPE shiplog_input_lines counter\nshiplog_input_lines_total 1\n"),
        "{}",
        openmetrics.body
    );
    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let text = util::http_request(&address, "/metrics", accept).expect("up");
        assert_eq!(
            text.content_type, "text/plain; version=0.0.4; charset=utf-8",
            "{accept:?}"
        );
        assert!(
            text.body.contains(
                "# TYPE shiplog_input_lines_total counter\nshiplog_input_lines_total 1\n"
            ),
            "a counter's type names its samples: {}",
            text.body
        );
        assert!(!text.body.contains("# EOF"), "{accept:?}");
        // Every sample's family has its # TYPE line, as older parsers expect.
        let typed: Vec<&str> = text
            .body
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .filter_map(|rest| rest.split(' ').next())
            .collect();
        for line in text.body.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            assert!(typed.contains(&name), "{name} untyped in:\n{}", text.body);
        }
    }
    assert!(shiplog.stop().success());
}

#[test]
fn a_sink_that_delivers_nothing_shows_its_last_delivery_falling_behind() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", numbered_line(0, 0).as_bytes());
    let config = node.config(&[
        ("server", "listen = \"127.0.0.1:0\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("sinks.stuck", "type = \"file\"\npath = \"/dev/full\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let last_delivery = |sink: &str| {
        let (_, metrics) = get(&address, "/metrics");
        let name = format!("shiplog_sink_last_delivery_timestamp_seconds{{sink=\"{sink}\"}}");
        sample(&metrics, &name)
    };
    wait_until(Duration::from_secs(20), "the stuck sink to retry", || {
        util::log_count(&log, "writing /dev/full") > 0
    });
    let stuck_since = last_delivery("stuck").expect("the stuck sink's series");
    // The working sink's deliveries move its timestamp past the stuck one's start. The
    // gauge counts whole seconds: let one pass first, before the lines held for the stuck
    // sink can fill the pipeline (under load, all of them may fall in the stuck one's second).
    std::thread::sleep(Duration::from_millis(1100));
    let mut seq = 0;
    wait_until(
        Duration::from_secs(20),
        "the working sink to deliver later",
        || {
            seq += 1;
            append(&path, &numbered_line(0, seq));
            std::thread::sleep(Duration::from_millis(100));
            last_delivery("out").is_some_and(|out| out > stuck_since)
        },
    );
    assert_eq!(last_delivery("stuck"), Some(stuck_since), "never delivered");
    drop(shiplog);
}

#[test]
fn a_stalled_sink_warns_once_a_minute_with_the_records_waiting_and_their_age() {
    // Over a minute by definition: with the long tests only.
    let long = std::env::var_os("SHIPLOG_LONG_TESTS").is_some_and(|v| v == "1");
    if !long {
        eprintln!("skipped: set SHIPLOG_LONG_TESTS=1 (takes over a minute)");
        return;
    }
    let node = Node::new();
    let lines: String = (0..7).map(|seq| numbered_line(0, seq)).collect();
    node.container_log("shop", "web-1", "app", lines.as_bytes());
    let config = node.config(&[
        ("pipeline", "batch_timeout = \"50ms\""),
        ("sinks.out", "path = \"/dev/full\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(90), "the stall warning", || {
        util::log_count(&log, "records wait undelivered") > 0
    });
    let text = std::fs::read_to_string(&log).expect("log");
    let warning = text
        .lines()
        .find(|line| line.contains("records wait undelivered"))
        .expect("found");
    let warning: serde_json::Value = serde_json::from_str(warning).expect("JSON");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["sink"], "out");
    assert_eq!(warning["fields"]["waiting"], 7);
    let oldest = warning["fields"]["oldest"].as_str().expect("an age");
    let seconds: u64 = oldest.trim_end_matches('s').parse().expect("seconds");
    assert!((60..80).contains(&seconds), "{oldest}");
    drop(shiplog);
}
