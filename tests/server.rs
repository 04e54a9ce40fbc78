//! End to end: `/healthz`, `/readyz` and `/metrics` of a running shiplog, over real HTTP.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::{Node, Running, append, numbered_line, wait_until};

/// `GET path` on `address`; the status code and the body.
fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: shiplog\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample named exactly `name` (labels included) in Prometheus text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

#[test]
fn the_endpoints_report_health_readiness_and_counters_that_move_with_the_lines() {
    let node = Node::new();
    let lines: String = (0..100).map(|seq| numbered_line(0, seq)).collect();
    let path = node.container_log("shop", "web-1", "app", lines.as_bytes());
    let config = node.config(&[
        ("server", "listen = \"127.0.0.1:0\""),
        ("pipeline", "batch_timeout = \"50ms\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let mut address = String::new();
    wait_until(
        Duration::from_secs(20),
        "the server's address in the log",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let found = text
                .split("\"address\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next());
            address = found.unwrap_or_default().to_owned();
            !address.is_empty()
        },
    );
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 100
    });

    assert_eq!(get(&address, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(&address, "/readyz"), (200, "ready\n".to_owned()));
    let (status, metrics) = get(&address, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&metrics, "shiplog_input_lines_total"),
        Some(100.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "shiplog_records_sent_total{sink=\"out\"}"),
        Some(100.0)
    );
    assert_eq!(sample(&metrics, "shiplog_files_open"), Some(1.0));
    assert_eq!(
        sample(&metrics, "shiplog_kube_cache_misses_total"),
        Some(1.0),
        "metadata is off"
    );

    append(
        &path,
        &(100..150)
            .map(|seq| numbered_line(0, seq))
            .collect::<String>(),
    );
    wait_until(Duration::from_secs(20), "the counters to move", || {
        let (_, metrics) = get(&address, "/metrics");
        sample(&metrics, "shiplog_records_sent_total{sink=\"out\"}") == Some(150.0)
    });
    let (_, metrics) = get(&address, "/metrics");
    assert_eq!(sample(&metrics, "shiplog_input_lines_total"), Some(150.0));
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
