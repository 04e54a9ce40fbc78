//! End to end: rotation under load never stalls the new file (issue 17). A path's new
//! file is read as soon as the old one is drained, not `rotate_wait` later, so a busy
//! container's lines arrive promptly however often it rotates, and a kubelet that deletes
//! old rotated files finds them read already.

mod util;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::{Node, Running, SinkReader, append, numbered_line};

const FAST_COMMITS: (&str, &str) = ("state", "commit_interval = \"100ms\"");
const FAST_BATCHES: (&str, &str) = ("pipeline", "batch_timeout = \"50ms\"");
const LISTEN: (&str, &str) = ("server", "listen = \"127.0.0.1:0\"");

/// One test of this file at a time: each loads the machine, and a latency measured beside
/// another test's load would measure that load.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Renames `path` aside the way the kubelet does (`0.log.<time>`) and starts a new file
/// there; returns the rotated file's path.
fn rotate(path: &Path, generation: usize) -> PathBuf {
    let aside = PathBuf::from(format!("{}.20261125-09{generation:04}", path.display()));
    fs::rename(path, &aside).expect("rename");
    fs::write(path, b"").expect("create the new file");
    aside
}

#[test]
fn every_line_arrives_within_2_s_while_its_file_is_renamed_every_1000_lines() {
    const LINES: usize = 10_000;
    const ROTATE_EVERY: usize = 1000;
    const WITHIN: Duration = Duration::from_secs(2);
    let _alone = one_at_a_time();
    let node = Node::in_memory();
    let path = node.container_log("shop", "web-1", "app", b"");
    let config = node.config(&[
        ("tail", "rescan_interval = \"1s\"\nrotate_wait = \"30s\""),
        FAST_COMMITS,
        FAST_BATCHES,
        LISTEN,
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    util::wait_for_open_files(&util::server_address(&log), 1);

    // About 2,000 lines a second; each line's write time kept for the comparison.
    let written = Arc::new(Mutex::new(Vec::with_capacity(LINES)));
    let writer = {
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            let start = Instant::now();
            for seq in 0..LINES {
                if seq > 0 && seq % ROTATE_EVERY == 0 {
                    rotate(&path, seq / ROTATE_EVERY);
                }
                append(&path, &numbered_line(0, seq));
                written.lock().expect("lock").push(Instant::now());
                let due = start + Duration::from_micros(500 * seq as u64);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
        })
    };
    let mut sink = SinkReader::new(node.path("out.jsonl"));
    let mut arrived: BTreeMap<usize, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while arrived.len() < LINES && Instant::now() < deadline {
        for log in sink.new_logs() {
            let seq = log.split_once(':').and_then(|(_, seq)| seq.parse().ok());
            arrived
                .entry(seq.expect("numbered"))
                .or_insert_with(Instant::now);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().expect("writer finished");
    assert!(shiplog.stop().success());

    let written = written.lock().expect("lock");
    let late: Vec<(usize, Duration)> = (0..LINES)
        .filter_map(|seq| {
            let latency = arrived.get(&seq).map(|at| at.duration_since(written[seq]));
            match latency {
                Some(latency) if latency < WITHIN => None,
                other => Some((seq, other.unwrap_or(Duration::MAX))),
            }
        })
        .collect();
    let worst = late.iter().map(|(_, latency)| *latency).max();
    let slowest = (0..LINES)
        .filter_map(|seq| Some(arrived.get(&seq)?.duration_since(written[seq])))
        .max();
    eprintln!("the slowest line took {slowest:?}");
    assert!(
        late.is_empty(),
        "{} of {LINES} lines took {WITHIN:?} or more (or never came), the worst {worst:?}; first: {:?}",
        late.len(),
        &late[..late.len().min(5)]
    );
}

/// What the kubelet-shaped writers write: `<container>:<seq>:<padding>` in CRI lines of
/// about 250 bytes.
fn kubelet_line(container: usize, seq: usize) -> String {
    format!(
        "2026-11-25T09:00:00.{:09}Z stdout F {container}:{seq}:{}\n",
        seq % 1_000_000_000,
        "x".repeat(180)
    )
}

/// 20 containers writing 3.4 MB/s in total (4 busy ones at 600 kB/s, rotating every 1.7 s,
/// and 16 at 60 kB/s), their files rotated at 1 MiB by rename, at most 5 files kept per
/// container (the current one and 4 rotated): the oldest rotated file is deleted at each
/// rotation, read or not, as the kubelet does with `containerLogMaxSize: 1Mi` and
/// `containerLogMaxFiles: 5`. Runs for `seconds`, calling `meanwhile` once a second with
/// the seconds elapsed; returns how many lines each container wrote.
fn kubelet_load(node: &Node, seconds: u64, mut meanwhile: impl FnMut(u64)) -> Vec<usize> {
    const CONTAINERS: usize = 20;
    const MAX_SIZE: usize = 1024 * 1024;
    const MAX_FILES: usize = 5;
    const BATCH: usize = 30;
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..CONTAINERS)
        .map(|container| {
            let path = node.container_log("load", &format!("writer-{container}"), "app", b"");
            let stop = Arc::clone(&stop);
            let bytes_per_second = if container % 5 == 0 { 600_000 } else { 60_000 };
            std::thread::spawn(move || {
                let line_len = kubelet_line(container, 0).len();
                let interval =
                    Duration::from_secs_f64((BATCH * line_len) as f64 / bytes_per_second as f64);
                let start = Instant::now();
                let (mut seq, mut size, mut generation) = (0, 0, 0);
                let mut rotated = std::collections::VecDeque::new();
                while !stop.load(Ordering::Relaxed) {
                    // The runtime writes whole lines; the kubelet rotates between writes.
                    if size >= MAX_SIZE {
                        generation += 1;
                        rotated.push_back(rotate(&path, generation));
                        size = 0;
                        if rotated.len() > MAX_FILES - 1 {
                            let oldest = rotated.pop_front().expect("a rotated file");
                            fs::remove_file(oldest).expect("delete the oldest");
                        }
                    }
                    let batch: String = (seq..seq + BATCH)
                        .map(|s| kubelet_line(container, s))
                        .collect();
                    append(&path, &batch);
                    size += batch.len();
                    seq += BATCH;
                    let due = start + interval.mul_f64((seq / BATCH) as f64);
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                seq
            })
        })
        .collect();
    let start = Instant::now();
    for second in 1..=seconds {
        std::thread::sleep(
            (start + Duration::from_secs(second)).saturating_duration_since(Instant::now()),
        );
        meanwhile(second);
    }
    stop.store(true, Ordering::Relaxed);
    writers
        .into_iter()
        .map(|writer| writer.join().expect("writer finished"))
        .collect()
}

/// Reads the sink until every line written has arrived or `timeout` passes; returns how
/// often each (container, seq) arrived.
fn collect_arrivals(
    sink: &mut SinkReader,
    counts: &mut BTreeMap<(usize, usize), usize>,
    written: &[usize],
    timeout: Duration,
) {
    let total: usize = written.iter().sum();
    let deadline = Instant::now() + timeout;
    loop {
        for log in sink.new_logs() {
            let mut fields = log.split(':');
            let container = fields.next().and_then(|f| f.parse().ok());
            let seq = fields.next().and_then(|f| f.parse().ok());
            if let (Some(container), Some(seq)) = (container, seq) {
                *counts.entry((container, seq)).or_insert(0) += 1;
            }
        }
        if counts.len() >= total || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The lines written and never arrived, per container: (how many, the first few).
fn lost(
    counts: &BTreeMap<(usize, usize), usize>,
    written: &[usize],
) -> BTreeMap<usize, (usize, Vec<usize>)> {
    let mut lost = BTreeMap::new();
    for (container, &lines) in written.iter().enumerate() {
        let missing: Vec<usize> = (0..lines)
            .filter(|seq| !counts.contains_key(&(container, *seq)))
            .collect();
        if !missing.is_empty() {
            let first = missing[..missing.len().min(3)].to_vec();
            lost.insert(container, (missing.len(), first));
        }
    }
    lost
}

#[test]
fn kubelet_rotation_at_3_mb_s_deleting_old_files_read_or_not_loses_nothing() {
    let _alone = one_at_a_time();
    let node = Node::new();
    let config = node.config(&[("tail", "rescan_interval = \"1s\""), FAST_BATCHES, LISTEN]);
    let log = node.path("shiplog.log");
    // Writers start with shiplog, so their first lines are read from the files' start.
    let shiplog = Running::start(&config, &log);
    let mut sink = SinkReader::new(node.path("out.jsonl"));
    let mut counts = BTreeMap::new();
    let written = kubelet_load(&node, 20, |_| {
        collect_arrivals(&mut sink, &mut counts, &[], Duration::ZERO);
    });
    collect_arrivals(&mut sink, &mut counts, &written, Duration::from_secs(120));
    assert!(shiplog.stop().success());

    let total: usize = written.iter().sum();
    let lost = lost(&counts, &written);
    assert!(
        lost.is_empty(),
        "of {total} lines, lost (container: count, first): {lost:?}"
    );
    let repeated = counts.values().filter(|&&n| n > 1).count();
    assert_eq!(repeated, 0, "without a crash nothing is repeated");
}

#[test]
fn kubelet_rotation_at_3_mb_s_with_five_kill_9s_loses_nothing() {
    let _alone = one_at_a_time();
    let node = Node::new();
    let config = node.config(&[
        ("tail", "rescan_interval = \"1s\""),
        FAST_COMMITS,
        FAST_BATCHES,
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Some(Running::start(&config, &log));
    let mut sink = SinkReader::new(node.path("out.jsonl"));
    let mut counts = BTreeMap::new();
    let written = kubelet_load(&node, 25, |second| {
        collect_arrivals(&mut sink, &mut counts, &[], Duration::ZERO);
        // A kill -9 every 4 s from the 4th on, and a start right after, as a restarting
        // DaemonSet pod does.
        if second % 4 == 0 && second <= 20 {
            if let Some(killed) = shiplog.take() {
                killed.kill();
            }
            shiplog = Some(Running::start(&config, &log));
        }
    });
    collect_arrivals(&mut sink, &mut counts, &written, Duration::from_secs(120));
    assert!(shiplog.take().expect("running").stop().success());

    let total: usize = written.iter().sum();
    let lost = lost(&counts, &written);
    let repeated: usize = counts.values().map(|n| n - 1).sum();
    eprintln!("{total} lines written, {repeated} repeats after 5 kills");
    assert!(
        lost.is_empty(),
        "of {total} lines, lost (container: count, first): {lost:?}"
    );
}
