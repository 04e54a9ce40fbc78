//! End to end: SIGHUP reloads the config file. A good one takes over with nothing lost or
//! repeated; a bad one is refused, reported, and the running config stays.

mod util;

use std::time::Duration;

use util::{Node, Running, append, numbered, numbered_line, wait_until};

fn seqs(records: &[serde_json::Value]) -> Vec<usize> {
    numbered(records).into_iter().map(|(_, seq)| seq).collect()
}

#[test]
fn sighup_switches_to_a_new_config_without_losing_or_repeating_a_line() {
    let node = Node::new();
    let lines =
        |range: std::ops::Range<usize>| range.map(|seq| numbered_line(0, seq)).collect::<String>();
    let path = node.container_log("shop", "web-1", "app", lines(0..100).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 100
    });

    // The new config sends records to another file.
    node.config(&[fast, ("sinks.out", "path = \"after-reload.jsonl\"")]);
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the reload", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reloading")
    });
    append(&path, &lines(100..200));
    wait_until(
        Duration::from_secs(20),
        "lines under the new config",
        || node.records_in("after-reload.jsonl").len() >= 100,
    );

    // A broken config is refused; the running one goes on.
    std::fs::write(&config, b"[tail]\nnot_a_key = 1\n").expect("write");
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the refusal", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reload refused")
    });
    append(&path, &lines(200..250));
    wait_until(Duration::from_secs(20), "lines after the refusal", || {
        node.records_in("after-reload.jsonl").len() >= 150
    });
    assert!(shiplog.stop().success());

    assert_eq!(seqs(&node.records()), (0..100).collect::<Vec<_>>());
    assert_eq!(
        seqs(&node.records_in("after-reload.jsonl")),
        (100..250).collect::<Vec<_>>()
    );
    let text = std::fs::read_to_string(&log).expect("log");
    let refusal = text
        .lines()
        .find(|l| l.contains("reload refused"))
        .expect("logged");
    assert!(
        refusal.contains("not_a_key"),
        "the refusal says why: {refusal}"
    );
}

#[test]
fn editing_the_config_file_reloads_it_without_a_signal() {
    let node = Node::new();
    let lines =
        |range: std::ops::Range<usize>| range.map(|seq| numbered_line(0, seq)).collect::<String>();
    let path = node.container_log("shop", "web-1", "app", lines(0..50).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 50
    });

    node.config(&[fast, ("sinks.out", "path = \"edited.jsonl\"")]);
    wait_until(Duration::from_secs(20), "the reload", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("reloading")
    });
    append(&path, &lines(50..80));
    wait_until(
        Duration::from_secs(20),
        "lines under the edited config",
        || node.records_in("edited.jsonl").len() >= 30,
    );
    assert!(shiplog.stop().success());
    assert_eq!(seqs(&node.records()), (0..50).collect::<Vec<_>>());
    assert_eq!(
        seqs(&node.records_in("edited.jsonl")),
        (50..80).collect::<Vec<_>>()
    );
}

#[test]
fn the_config_sets_shiplogs_own_log_level_and_a_reload_changes_it() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", numbered_line(0, 0).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast, ("log", "level = \"warn\"\nformat = \"json\"")]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start_with_env(&config, &log, &[("RUST_LOG", "")]);
    wait_until(Duration::from_secs(20), "the first line", || {
        node.records().len() == 1
    });

    node.config(&[fast, ("log", "level = \"info\"\nformat = \"json\"")]);
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the new level", || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("log level changed")
    });
    append(&path, &numbered_line(0, 1));
    wait_until(Duration::from_secs(20), "the second line", || {
        node.records().len() == 2
    });
    assert!(shiplog.stop().success());

    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let changed = lines
        .iter()
        .position(|line| line["fields"]["message"] == "log level changed")
        .expect("the change is logged");
    let info = |line: &serde_json::Value| line["level"] == "INFO";
    assert!(
        !lines[..changed].iter().any(info),
        "nothing under warn before the reload: {text}"
    );
    assert!(
        lines[changed + 1..].iter().any(|line| info(line)
            && line["fields"]["message"] == "stopping: draining in-flight records"),
        "info lines after it: {text}"
    );
}

// ---------------------------------------------------------------------------------------
// A reload never takes the node's shiplog down (issue 18).

/// Lines `range` of file 0, as one string.
fn lines(range: std::ops::Range<usize>) -> String {
    range.map(|seq| numbered_line(0, seq)).collect()
}

/// The counter `name` on the `/metrics` of `address`, or `None` when nothing answers.
fn counter(address: &str, name: &str) -> Option<f64> {
    let response = util::http_request(address, "/metrics", None)?;
    util::metric(&response.body, name)
}

/// Polls `done` as [`wait_until`] does, failing at once, with shiplog's log, should
/// shiplog exit meanwhile.
fn wait_running(
    shiplog: &mut Running,
    log: &std::path::Path,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    wait_until(Duration::from_secs(30), what, || {
        if let Some(status) = shiplog.exited() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            panic!("shiplog exited ({status}) waiting for {what}:\n{text}");
        }
        done()
    });
}

/// The counters (`*_total` samples) of the `/metrics` of `address`; panics when nothing
/// answers.
fn counters(address: &str) -> std::collections::BTreeMap<String, f64> {
    let response = util::http_request(address, "/metrics", None)
        .unwrap_or_else(|| panic!("/metrics does not answer on {address}"));
    response
        .body
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(name, _)| {
            name.split('{')
                .next()
                .is_some_and(|name| name.ends_with("_total"))
        })
        .filter_map(|(name, value)| Some((name.to_owned(), value.parse().ok()?)))
        .collect()
}

/// Panics unless every counter of `before` is in `now`, at least as high.
fn assert_grown(
    before: &std::collections::BTreeMap<String, f64>,
    now: &std::collections::BTreeMap<String, f64>,
) {
    for (name, was) in before {
        let is = now.get(name).copied();
        assert!(
            is.is_some_and(|is| is >= *was),
            "{name} went from {was} to {is:?}"
        );
    }
}

/// Waits until shiplog has taken reload `n` over (its counter says so), checking at every
/// look that `/metrics` answers and that no counter went down since `before`, which it
/// then updates. Fails at once, with shiplog's log, should shiplog exit.
fn wait_for_reload(
    shiplog: &mut Running,
    log: &std::path::Path,
    address: &str,
    n: usize,
    before: &mut std::collections::BTreeMap<String, f64>,
) {
    wait_running(shiplog, log, &format!("reload {n}"), || {
        let now = counters(address);
        assert_grown(before, &now);
        let reloads = now.get("shiplog_config_reloads_total").copied();
        *before = now;
        reloads == Some(n as f64)
    });
}

#[test]
fn a_reload_keeps_the_server_on_its_port_and_never_ends_the_process() {
    // The port is fixed, as in deploy/: a reload that closed and bound it again raced its
    // own old server for it.
    let address = util::free_address();
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0..10).as_bytes());
    let config = node.config(&[
        ("pipeline", "batch_timeout = \"50ms\""),
        ("server", &format!("listen = \"{address}\"")),
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 10
    });
    for reload in 1..=10 {
        util::signal(shiplog.pid(), "HUP");
        wait_running(&mut shiplog, &log, "the reload", || {
            util::log_count(&log, "reloading: draining") == reload
        });
        // Lines written after the drain began are the next run's to read: once they are
        // delivered, the reload is complete.
        let (from, to) = (10 * reload, 10 * (reload + 1));
        append(&path, &lines(from..to));
        wait_running(&mut shiplog, &log, "the lines after a reload", || {
            node.records().len() >= to
        });
        let health = util::http_request(&address, "/healthz", None);
        assert_eq!(health.map(|response| response.status), Some(200));
    }
    assert!(shiplog.stop().success());
    assert_eq!(seqs(&node.records()), (0..110).collect::<Vec<_>>());
    assert_eq!(
        util::log_count(&log, "serving /healthz, /readyz and /metrics"),
        1,
        "bound once, at start"
    );
}

#[test]
fn a_reloaded_config_that_fails_the_checks_is_refused_and_the_running_one_goes_on() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("address").to_string();
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0..10).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast, ("server", "listen = \"127.0.0.1:0\"")]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 10
    });
    let listen_taken = format!("listen = \"{taken}\"");
    let kafka_typo = "type = \"kafka\"\nbrokers = \"127.0.0.1:9\"";
    // Each broken config, and what its refusal must name.
    let broken: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "linger.msec",
            vec![
                ("sinks.bus", kafka_typo),
                ("sinks.bus.librdkafka", "\"linger.msec\" = 5"),
            ],
        ),
        (
            "sinks.out",
            vec![("sinks.out", "path = \"missing/out.jsonl\"")],
        ),
        ("state.path", vec![("state", "path = \"missing/state.db\"")]),
        ("server.listen", vec![("server", &listen_taken)]),
    ];
    for (round, (key, tables)) in broken.iter().enumerate() {
        // Each keeps the running config's sink and state, but for what it breaks. The
        // edit alone makes shiplog read the file again; SIGHUP makes sure.
        let mut tables = tables.clone();
        tables.push(fast);
        node.config(&tables);
        util::signal(shiplog.pid(), "HUP");
        let refusals = || -> Vec<String> {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .filter(|line| line.contains("reload refused") && line.contains(key))
                .map(str::to_owned)
                .collect()
        };
        wait_running(&mut shiplog, &log, &format!("the refusal of {key}"), || {
            !refusals().is_empty()
        });
        for refusal in refusals() {
            assert!(refusal.contains("\"level\":\"ERROR\""), "{refusal}");
        }
        let (from, to) = (10 * (round + 1), 10 * (round + 2));
        append(&path, &lines(from..to));
        wait_running(&mut shiplog, &log, "lines under the running config", || {
            node.records().len() >= to
        });
    }
    let failures = counter(&address, "shiplog_config_reload_failures_total");
    assert!(failures.is_some_and(|n| n >= 4.0), "{failures:?}");
    assert_eq!(counter(&address, "shiplog_config_reloads_total"), Some(0.0));
    assert!(shiplog.stop().success());
    assert_eq!(seqs(&node.records()), (0..50).collect::<Vec<_>>());
}

#[test]
fn a_reloaded_config_that_cannot_start_gives_way_to_the_previous_one() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0..10).as_bytes());
    let fast = ("pipeline", "batch_timeout = \"50ms\"");
    let config = node.config(&[fast, ("server", "listen = \"127.0.0.1:0\"")]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        node.records().len() >= 10
    });

    // Its folder exists, so the checks pass; but it is no SQLite database, so the start
    // fails. Its records would go elsewhere: none must.
    node.write("not-a-db", b"this is a text file, not SQLite\n");
    node.config(&[
        fast,
        ("server", "listen = \"127.0.0.1:0\""),
        ("state", "path = \"not-a-db\""),
        ("sinks.out", "path = \"never.jsonl\""),
    ]);
    util::signal(shiplog.pid(), "HUP");
    wait_running(&mut shiplog, &log, "the reload", || {
        util::log_count(&log, "reloading: draining") == 1
    });
    append(&path, &lines(10..30));
    wait_running(
        &mut shiplog,
        &log,
        "lines under the previous config",
        || node.records().len() >= 30,
    );
    assert_eq!(util::log_count(&log, "the previous config runs again"), 1);
    let text = std::fs::read_to_string(&log).expect("log");
    let error = text
        .lines()
        .find(|line| line.contains("the new config cannot start"))
        .unwrap_or_else(|| panic!("not logged: {text}"));
    assert!(
        error.contains("\"level\":\"ERROR\"") && error.contains("not-a-db"),
        "an ERROR naming the reason: {error}"
    );
    assert_eq!(
        counter(&address, "shiplog_config_reload_failures_total"),
        Some(1.0)
    );
    assert!(shiplog.stop().success());
    assert_eq!(seqs(&node.records()), (0..30).collect::<Vec<_>>());
    assert!(node.records_in("never.jsonl").is_empty());
}

#[test]
fn sigterm_during_a_reloads_drain_stops_shiplog_once_the_drain_ends() {
    let node = Node::new();
    node.container_log("shop", "web-1", "app", lines(0..10).as_bytes());
    // A sink that can never deliver: the drain lasts all of shutdown_timeout.
    let config = node.config(&[
        (
            "pipeline",
            "batch_timeout = \"50ms\"\nshutdown_timeout = \"3s\"",
        ),
        ("sinks.out", "path = \"/dev/full\""),
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the sink to fail", || {
        util::log_count(&log, "send failed, retrying") > 0
    });
    util::signal(shiplog.pid(), "HUP");
    wait_until(Duration::from_secs(20), "the reload's drain", || {
        util::log_count(&log, "reloading: draining") == 1
    });
    util::signal(shiplog.pid(), "TERM");
    let status = shiplog.wait_for_exit(Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(status.success(), "{status}: {text}");
    assert!(
        !text.contains("the new config runs"),
        "SIGTERM wins over the reload: {text}"
    );
}

#[test]
fn sigterm_two_milliseconds_after_sighup_is_honoured() {
    let node = Node::new();
    node.container_log("shop", "web-1", "app", lines(0..10).as_bytes());
    let config = node.config(&[
        (
            "pipeline",
            "batch_timeout = \"50ms\"\nshutdown_timeout = \"3s\"",
        ),
        ("sinks.out", "path = \"/dev/full\""),
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the sink to fail", || {
        util::log_count(&log, "send failed, retrying") > 0
    });
    util::signal(shiplog.pid(), "HUP");
    std::thread::sleep(Duration::from_millis(2));
    util::signal(shiplog.pid(), "TERM");
    let status = shiplog.wait_for_exit(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

#[test]
fn a_reload_whose_drain_timed_out_leaves_no_sink_of_the_old_run_retrying() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0..10).as_bytes());
    let pipeline = (
        "pipeline",
        "batch_timeout = \"50ms\"\nshutdown_timeout = \"2s\"",
    );
    let config = node.config(&[pipeline, ("sinks.out", "path = \"/dev/full\"")]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    wait_until(Duration::from_secs(20), "the sink to fail", || {
        util::log_count(&log, "writing /dev/full") > 0
    });

    // The new config's sink works; the old one's drain cannot finish in 2 s.
    node.config(&[pipeline]);
    util::signal(shiplog.pid(), "HUP");
    wait_until(
        Duration::from_secs(20),
        "the lines the old run held",
        || node.records().len() >= 10,
    );
    append(&path, &lines(10..20));
    wait_until(
        Duration::from_secs(20),
        "lines under the new config",
        || node.records().len() >= 20,
    );
    // The old sink had retried for about 2 s: were it still alive, its next attempt would
    // come within about 4 s (backoff doubling from 100 ms).
    let failures = util::log_count(&log, "writing /dev/full");
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        util::log_count(&log, "writing /dev/full"),
        failures,
        "the old run's sink stopped retrying"
    );
    assert!(shiplog.stop().success());
    assert_eq!(seqs(&node.records()), (0..20).collect::<Vec<_>>());
}

#[test]
fn counters_only_grow_across_reloads_and_the_endpoints_answer_between_runs() {
    let node = Node::new();
    let path = node.container_log("shop", "web-1", "app", lines(0..20).as_bytes());
    let config = node.config(&[
        ("pipeline", "batch_timeout = \"50ms\""),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    wait_until(Duration::from_secs(20), "the first lines", || {
        counter(&address, "shiplog_records_sent_total{sink=\"out\"}") == Some(20.0)
    });

    // Meanwhile, a prober asks every endpoint, as the kubelet and Prometheus do.
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prober = {
        let (address, probing) = (address.clone(), std::sync::Arc::clone(&probing));
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            let mut probes = 0;
            while probing.load(std::sync::atomic::Ordering::Relaxed) {
                for endpoint in ["/healthz", "/readyz", "/metrics"] {
                    probes += 1;
                    match util::http_request(&address, endpoint, None) {
                        Some(response) if response.status == 200 => {}
                        Some(response) => failures.push(format!("{endpoint}: {}", response.status)),
                        None => failures.push(format!("{endpoint}: no answer")),
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (probes, failures)
        })
    };
    let mut before = counters(&address);
    for reload in 1..=5 {
        util::signal(shiplog.pid(), "HUP");
        wait_for_reload(&mut shiplog, &log, &address, reload, &mut before);
        let (from, to) = (20 * reload, 20 * (reload + 1));
        append(&path, &lines(from..to));
        wait_until(Duration::from_secs(20), "the counters to move on", || {
            let now = counters(&address);
            assert_grown(&before, &now);
            let sent = now.get("shiplog_records_sent_total{sink=\"out\"}").copied();
            before = now;
            sent == Some(to as f64)
        });
        assert_eq!(
            before.get("shiplog_input_lines_total").copied(),
            Some(to as f64),
            "every line read since the process started"
        );
    }
    probing.store(false, std::sync::atomic::Ordering::Relaxed);
    let (probes, failures) = prober.join().expect("the prober");
    assert!(probes > 0);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(shiplog.stop().success());
}

#[test]
fn two_hundred_sighups_with_lines_flowing_lose_nothing_and_counters_only_grow() {
    let address = util::free_address();
    let node = Node::new();
    let files: Vec<_> = (0..2)
        .map(|i| node.container_log("shop", &format!("web-{i}"), "app", b""))
        .collect();
    let config = node.config(&[
        ("pipeline", "batch_timeout = \"20ms\""),
        ("server", &format!("listen = \"{address}\"")),
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    util::server_address(&log);
    util::wait_for_open_files(&address, 2);

    // A writer appends to both files all along.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (files, writing) = (files.clone(), std::sync::Arc::clone(&writing));
        std::thread::spawn(move || {
            let mut written = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                for (i, file) in files.iter().enumerate() {
                    let text: String = (written..written + 5)
                        .map(|seq| numbered_line(i, seq))
                        .collect();
                    append(file, &text);
                }
                written += 5;
                std::thread::sleep(Duration::from_millis(5));
            }
            written
        })
    };
    let mut before = counters(&address);
    for reload in 1..=200 {
        util::signal(shiplog.pid(), "HUP");
        wait_for_reload(&mut shiplog, &log, &address, reload, &mut before);
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let written = writer.join().expect("the writer");
    assert!(written >= 500, "lines flowed all along: {written} per file");
    wait_until(Duration::from_secs(60), "every line delivered", || {
        node.records().len() >= 2 * written
    });
    assert!(shiplog.exited().is_none(), "the same process all along");
    assert!(shiplog.stop().success());
    let records = node.records();
    for file in 0..2 {
        let seqs: Vec<usize> = numbered(&records)
            .into_iter()
            .filter(|(f, _)| *f == file)
            .map(|(_, seq)| seq)
            .collect();
        assert_eq!(
            seqs,
            (0..written).collect::<Vec<_>>(),
            "file {file}: each line once, in order"
        );
    }
    assert_eq!(util::log_count(&log, "serving /healthz"), 1);
}
