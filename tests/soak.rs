//! The torture suite: the real binary against real peers (librdkafka's mock cluster, the
//! fake API server) while writers append to many files, files rotate every way, shiplog is
//! killed with SIGKILL and restarted, Kafka and the API server go down and come back, and
//! the disk holding the state database fills up. At the end every line is accounted for.
//!
//! CI runs a short form. `SHIPLOG_SOAK=long cargo test --test soak -- --nocapture` runs
//! the long one (300 files, twice the lines, four times the kills and outages).

mod kube_server;
mod util;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kube_server::KubeServer;
use util::kafka::{Received, cluster, consume_until};
use util::{Node, Running, append, numbered_line, wait_until};

/// The run's size: the short form, or the long one with `SHIPLOG_SOAK=long`.
struct Size {
    files: usize,
    lines: usize,
    /// Rounds of chaos: each kills shiplog once, and takes Kafka or the API server down.
    rounds: usize,
}

fn size() -> Size {
    match std::env::var("SHIPLOG_SOAK").as_deref() {
        Ok("long") => Size {
            files: 300,
            lines: 3_000,
            rounds: 12,
        },
        _ => Size {
            files: 60,
            lines: 1_500,
            rounds: 3,
        },
    }
}

/// How each writer's file is rotated, by file number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rotation {
    /// The kubelet's: renamed aside, a new file created.
    Rename,
    /// logrotate's copytruncate: copied aside, cut to nothing.
    CopyTruncate,
    /// Deleted, and a new file created (an app that recreates its log).
    Delete,
}

impl Rotation {
    fn of(file: usize) -> Rotation {
        match file % 3 {
            0 => Rotation::Rename,
            1 => Rotation::CopyTruncate,
            _ => Rotation::Delete,
        }
    }
}

/// Lines that may be lost by design: written into copytruncate's window, between the
/// copy and the cut.
type MayBeLost = Arc<Mutex<BTreeSet<(usize, usize)>>>;

/// Held for reading by a writer around a delete and until the deleted file's last line has
/// arrived in Kafka; for writing by the test while shiplog is dead (and a second after its
/// restart) and while Kafka is down (and five seconds after it is back). A deleted file's
/// lines exist only in shiplog's memory until delivered: when a crash comes before
/// delivery, they are gone for any collector (RELIABILITY.md). Waiting for the arrival, not
/// a fixed time, keeps that true when shiplog is far behind (the long form's 300 files).
/// Renames and copytruncates are not held back: after a crash shiplog finds a renamed file
/// by identity, and a cut file's copies by their first bytes and names.
type Alive = Arc<RwLock<()>>;

/// Every `(file, seq)` that has arrived in Kafka so far (checked about once a second).
type Arrived = Arc<Mutex<HashSet<(usize, usize)>>>;

/// Appends `lines` numbered lines to `path` at about 100 a second, rotating every 500.
fn write(
    file: usize,
    path: &Path,
    lines: usize,
    may_be_lost: &MayBeLost,
    (alive, arrived): (&Alive, &Arrived),
) {
    let rotation = Rotation::of(file);
    for seq in 0..lines {
        if seq > 0 && seq % 500 == 0 {
            let aside = PathBuf::from(format!("{}.{seq:06}", path.display()));
            match rotation {
                Rotation::Rename => {
                    fs::rename(path, &aside).expect("rename");
                    fs::write(path, b"").expect("create");
                }
                Rotation::CopyTruncate => {
                    fs::copy(path, &aside).expect("copy");
                    // One line in the window, as a busy writer would leave.
                    append(path, &numbered_line(file, seq));
                    may_be_lost.lock().expect("lock").insert((file, seq));
                    OpenOptions::new()
                        .write(true)
                        .open(path)
                        .expect("open")
                        .set_len(0)
                        .expect("truncate");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
                Rotation::Delete => {
                    let _alive = alive.read().expect("lock");
                    fs::remove_file(path).expect("delete");
                    append(path, &numbered_line(file, seq));
                    let last = (file, seq - 1);
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !arrived.lock().expect("lock").contains(&last)
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        append(path, &numbered_line(file, seq));
        if seq % 10 == 9 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A tiny xorshift: the same chaos on every run.
struct Chaos(u64);

impl Chaos {
    fn between(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(low_ms + self.0 % (high_ms - low_ms))
    }
}

/// The lines not yet arrived, once the writers are done and it is known which to expect.
type Missing = Arc<Mutex<Option<BTreeSet<(usize, usize)>>>>;

/// How often each `(file, seq)` arrived.
type Counts = BTreeMap<(usize, usize), usize>;

/// Every `(file, seq)` that arrived, with how often, and each file's arrivals in order.
fn account(received: &[Received]) -> (Counts, BTreeMap<usize, Vec<usize>>) {
    let mut counts = BTreeMap::new();
    let mut order: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for message in received {
        let (file, seq) = message.numbered();
        *counts.entry((file, seq)).or_insert(0) += 1;
        order.entry(file).or_default().push(seq);
    }
    (counts, order)
}

#[test]
fn every_line_survives_kills_rotations_and_peer_outages() {
    let Size {
        files,
        lines,
        rounds,
    } = size();
    let kafka = cluster(&["soak"]);
    let brokers = kafka.bootstrap_servers();
    let api = KubeServer::start();
    let node = Node::new();
    api.kubeconfig(&node.path("kubeconfig"));
    let paths: Vec<PathBuf> = (0..files)
        .map(|file| {
            let pod = format!("writer-{file}");
            api.apply(kube_server::pod("soak", &pod, "node-a"));
            node.container_log("soak", &pod, "app", b"")
        })
        .collect();
    let sink = format!("type = \"kafka\"\nbrokers = \"{brokers}\"\nkey = \"{{pod}}\"");
    let config = node.config(&[
        ("tail", "rescan_interval = \"200ms\"\nrotate_wait = \"2s\""),
        ("state", "commit_interval = \"100ms\""),
        ("pipeline", "batch_timeout = \"50ms\""),
        (
            "kubernetes",
            "metadata = \"api\"\nnode_name = \"node-a\"\nkubeconfig = \"kubeconfig\"\n\
             lookup_timeout = \"100ms\"",
        ),
        ("sinks.bus", &sink),
    ]);
    let log = node.path("shiplog.log");
    let mut shiplog = Running::start(&config, &log);
    // Lines rotated away before shiplog first saw their file were never its to deliver.
    std::thread::sleep(Duration::from_secs(2));

    // Read while the run goes on: the mock cluster keeps only about 5 MiB of message sets
    // per partition, dropping the oldest. Lines count as arrived once `missing` is set,
    // after the writers finish.
    let missing: Missing = Arc::default();
    let arrived: Arrived = Arc::default();
    let consumer = {
        let (brokers, missing) = (brokers.clone(), Arc::clone(&missing));
        let arrived = Arc::clone(&arrived);
        let wait = Duration::from_secs(if files > 100 { 1_800 } else { 240 });
        std::thread::spawn(move || {
            let mut counted = 0;
            consume_until(&brokers, "soak", wait, |received| {
                let mut arrived = arrived.lock().expect("lock");
                arrived.extend(received[counted..].iter().map(|m| m.numbered()));
                counted = received.len();
                let mut missing = missing.lock().expect("lock");
                let Some(missing) = missing.as_mut() else {
                    return false;
                };
                missing.retain(|key| !arrived.contains(key));
                missing.is_empty()
            })
        })
    };
    let may_be_lost = MayBeLost::default();
    let alive = Alive::default();
    let writers: Vec<_> = paths
        .iter()
        .cloned()
        .enumerate()
        .map(|(file, path)| {
            let may_be_lost = Arc::clone(&may_be_lost);
            let (alive, arrived) = (Arc::clone(&alive), Arc::clone(&arrived));
            std::thread::spawn(move || write(file, &path, lines, &may_be_lost, (&alive, &arrived)))
        })
        .collect();

    let mut chaos = Chaos(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    for round in 0..rounds {
        std::thread::sleep(chaos.between(1_000, 3_000));
        let dead = alive.write().expect("lock");
        shiplog.kill();
        std::thread::sleep(chaos.between(50, 500));
        shiplog = Running::start(&config, &log);
        std::thread::sleep(Duration::from_secs(1));
        drop(dead);
        std::thread::sleep(chaos.between(500, 2_000));
        if round % 2 == 0 {
            let outage = alive.write().expect("lock");
            kafka.broker_down(-1).expect("brokers down");
            std::thread::sleep(chaos.between(1_000, 3_000));
            kafka.broker_up(-1).expect("brokers up");
            std::thread::sleep(Duration::from_secs(5));
            drop(outage);
        } else {
            api.set_down(true);
            std::thread::sleep(chaos.between(1_000, 3_000));
            api.set_down(false);
        }
    }
    for writer in writers {
        writer.join().expect("writer finished");
    }
    eprintln!(
        "{files} files x {lines} lines, {rounds} kills and outages in {:.0?}",
        started.elapsed()
    );

    let may_be_lost = may_be_lost.lock().expect("lock").clone();
    let expected: BTreeSet<(usize, usize)> = (0..files)
        .flat_map(|file| (0..lines).map(move |seq| (file, seq)))
        .filter(|key| !may_be_lost.contains(key))
        .collect();
    *missing.lock().expect("lock") = Some(expected);
    let received = consumer.join().expect("the consumer");
    let status = shiplog.stop();
    let shiplog_log = fs::read_to_string(&log).unwrap_or_default();
    let log_tail: Vec<&str> = shiplog_log.lines().rev().take(40).collect();
    assert!(
        status.success(),
        "{status}; shiplog's log, last lines first:\n{}",
        log_tail.join("\n")
    );

    let (counts, order) = account(&received);
    let lost: Vec<(usize, usize)> = (0..files)
        .flat_map(|file| (0..lines).map(move |seq| (file, seq)))
        .filter(|key| !counts.contains_key(key) && !may_be_lost.contains(key))
        .collect();
    let mut by_file: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (file, seq) in &lost {
        by_file.entry(*file).or_default().push(*seq);
    }
    let in_file_sink: BTreeSet<(usize, usize)> =
        util::numbered(&node.records()).into_iter().collect();
    for (file, seqs) in by_file.iter().take(8) {
        let found = seqs
            .iter()
            .filter(|s| in_file_sink.contains(&(*file, **s)))
            .count();
        eprintln!(
            "file {file} ({:?}): {} lost, {:?}..={:?}, {found} of them in the file sink",
            Rotation::of(*file),
            seqs.len(),
            seqs.first(),
            seqs.last()
        );
    }
    assert!(
        lost.is_empty(),
        "{} lines lost, first {:?}; shiplog's log, last lines first:\n{}",
        lost.len(),
        lost.first(),
        log_tail.join("\n")
    );
    // Per file, in Kafka (one pod, one key, one partition): each line's first arrival
    // comes after every earlier line's first arrival; repeats after a kill come later.
    for (file, seqs) in &order {
        let mut seen = BTreeSet::new();
        let firsts: Vec<usize> = seqs
            .iter()
            .copied()
            .filter(|seq| seen.insert(*seq))
            .collect();
        if let Some(pair) = firsts.windows(2).find(|pair| pair[0] > pair[1]) {
            panic!("file {file}: {} arrived before {}", pair[0], pair[1]);
        }
    }
    // A kill repeats what was delivered but not yet committed: under a second of writing
    // per file (100 lines) per kill.
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    let bound = rounds * files * 100;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates, more than {bound}"
    );
    let tolerated = may_be_lost
        .iter()
        .filter(|key| !counts.contains_key(key))
        .count();
    eprintln!(
        "{} lines delivered, {duplicates} repeats, {tolerated} lost by design in copytruncate windows",
        counts.len()
    );
    let pods: BTreeSet<&str> = received
        .iter()
        .filter_map(|m| m.record["kubernetes"]["pod_name"].as_str())
        .collect();
    assert_eq!(pods.len(), files, "every record carries its pod");
}

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    /// `None` when mounting is not permitted (not root): the test says so and passes.
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        fs::create_dir_all(path).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .stderr(std::process::Stdio::null())
            .status();
        status.is_ok_and(|s| s.success()).then(|| SmallDisk {
            path: path.to_owned(),
        })
    }

    /// Writes a filler file until the disk is full.
    fn fill(&self) {
        let mut filler = fs::File::create(self.path.join("filler")).expect("filler");
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
        drop(std::io::Write::flush(&mut filler));
    }

    fn free(&self) {
        fs::remove_file(self.path.join("filler")).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        drop(
            std::process::Command::new("umount")
                .arg(&self.path)
                .status(),
        );
    }
}

#[test]
fn a_full_state_disk_holds_commits_back_loses_nothing_and_commits_once_freed() {
    let node = Node::new();
    let Some(disk) = SmallDisk::mount(&node.path("state"), "2m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let path = node.container_log("shop", "web-1", "app", b"");
    let config = node.config(&[
        ("tail", "rescan_interval = \"200ms\""),
        (
            "state",
            "path = \"state/state.db\"\ncommit_interval = \"100ms\"",
        ),
        ("pipeline", "batch_timeout = \"50ms\""),
        ("server", "listen = \"127.0.0.1:0\""),
    ]);
    let log = node.path("shiplog.log");
    let shiplog = Running::start(&config, &log);
    let address = util::server_address(&log);
    let state = node.path("state/state.db");
    let lines =
        |range: std::ops::Range<usize>| range.map(|s| numbered_line(0, s)).collect::<String>();
    append(&path, &lines(0..100));
    util::wait_for_commit(
        &state,
        fs::metadata(&path).expect("log").len(),
        "the first commit",
    );

    disk.fill();
    append(&path, &lines(100..300));
    let failures = || {
        util::metric(
            &util::http_get(&address, "/metrics").1,
            "shiplog_checkpoint_commit_failures_total",
        )
    };
    wait_until(
        Duration::from_secs(30),
        "commits failing on the full disk",
        || failures().is_some_and(|n| n > 0.0),
    );
    wait_until(
        Duration::from_secs(30),
        "records delivered all the same",
        || node.records().len() >= 300,
    );
    assert_eq!(
        util::http_get(&address, "/healthz").0,
        200,
        "a full disk is not a wedge: restarting would not free it"
    );

    disk.free();
    let end = fs::metadata(&path).expect("log").len();
    util::wait_for_commit(&state, end, "the commit once the disk is freed");
    assert!(shiplog.stop().success());
    let seqs: Vec<usize> = util::numbered(&node.records())
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        seqs,
        (0..300).collect::<Vec<_>>(),
        "each line once, in order"
    );
}
