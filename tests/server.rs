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
