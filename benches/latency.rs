//! Delivery latency through rotation: how long a line takes from its write to its arrival in
//! a `file` sink while every file is renamed away (the kubelet's rotation) once a second.
//!
//! `shiplog` follows N files (default 8) in the kubelet's layout, with the default config
//! (`rotate_wait = "30s"`, `batch_timeout = "1s"`) but for the paths. Writers append CRI
//! lines carrying their write time at R lines/s each (default 500) for S seconds (default
//! 20), renaming each file aside and starting a new one every `--rotate-ms` (default 1000);
//! a reader polls the sink's file every 5 ms. Reported: p50, p99 and max of write to
//! arrival of the lines written while every writer was writing, but the last second (once
//! the writers stop, the last batch waits for `batch_timeout`, which says nothing of
//! rotation), the max over all lines, and how many lines had not arrived `--wait` seconds
//! (default 60) after the writers stopped (those count as later than any arrived line).
//!
//! `cargo bench --bench latency [-- --files N --rate R --seconds S --rotate-ms MS
//! --wait S --shiplog PATH]`; `--shiplog` measures another build (a before/after). Under
//! `cargo test` (no `--bench` argument) it runs a small version, so the harness itself
//! stays working.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn number(name: &str, default: u64) -> u64 {
    arg(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Writes `rate` lines a second to `path` for `seconds`, renaming it aside every `rotate`;
/// each line's message is `<write time in ns since the epoch> <padding>`. Returns how many
/// lines it wrote and when it wrote the last.
fn write(path: &Path, rate: u64, seconds: u64, rotate: Duration) -> (u64, u128) {
    let start = Instant::now();
    let total = rate * seconds;
    let mut next_rotation = start + rotate;
    let mut generation = 0;
    let padding = "x".repeat(120);
    let mut file = open_append(path);
    for n in 0..total {
        if Instant::now() >= next_rotation {
            generation += 1;
            let aside = format!("{}.20261125-{generation:06}", path.display());
            fs::rename(path, aside).expect("rotate");
            file = open_append(path);
            next_rotation += rotate;
        }
        let line = format!(
            "2026-11-25T09:00:00.000000000Z stdout F {} {padding}\n",
            now_nanos()
        );
        file.write_all(line.as_bytes()).expect("write");
        let due = start + Duration::from_secs_f64((n + 1) as f64 / rate as f64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    (total, now_nanos())
}

fn open_append(path: &Path) -> fs::File {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append")
}

/// Polls the sink's file every 5 ms until `expected` (known once the writers are done)
/// records arrived, or `wait` has passed since it was known; returns each record's write
/// time (ns since the epoch) and latency (µs).
fn arrivals(out: &Path, expected: &dyn Fn() -> Option<u64>, wait: Duration) -> Vec<(u128, u64)> {
    let mut latencies = Vec::new();
    let (mut offset, mut partial) = (0, Vec::new());
    let mut stopped_at = None;
    loop {
        if let Ok(mut file) = fs::File::open(out) {
            file.seek(SeekFrom::Start(offset)).expect("seek");
            let mut bytes = std::mem::take(&mut partial);
            offset += file.read_to_end(&mut bytes).expect("read") as u64;
            let arrived = now_nanos();
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            partial = bytes.split_off(complete);
            for record in bytes.split(|&b| b == b'\n').filter(|r| !r.is_empty()) {
                let record: serde_json::Value = serde_json::from_slice(record).expect("JSON");
                let log = record["log"].as_str().unwrap_or_default();
                let written: u128 = log
                    .split(' ')
                    .next()
                    .and_then(|t| t.parse().ok())
                    .expect("a write time");
                let micros = arrived.saturating_sub(written) / 1000;
                latencies.push((written, u64::try_from(micros).unwrap_or(u64::MAX)));
            }
        }
        match expected() {
            Some(total) if latencies.len() as u64 >= total => return latencies,
            Some(_) => {
                let since = *stopped_at.get_or_insert_with(Instant::now);
                if since.elapsed() >= wait {
                    return latencies;
                }
            }
            None => {}
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let files = number("--files", if benching { 8 } else { 2 });
    let rate = number("--rate", if benching { 500 } else { 100 });
    let seconds = number("--seconds", if benching { 20 } else { 3 });
    let rotate = Duration::from_millis(number("--rotate-ms", 1000));
    let wait = Duration::from_secs(number("--wait", if benching { 60 } else { 30 }));
    let shiplog: PathBuf =
        arg("--shiplog").map_or_else(|| env!("CARGO_BIN_EXE_shiplog").into(), PathBuf::from);

    let root = std::env::temp_dir().join(format!("shiplog-latency-{}", std::process::id()));
    fs::remove_dir_all(&root).ok();
    let links = root.join("var/log/containers");
    fs::create_dir_all(&links).expect("mkdir");
    let paths: Vec<PathBuf> = (0..files)
        .map(|n| {
            let dir = root.join(format!("var/log/pods/bench_pod-{n}_uid-{n}/app"));
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("0.log"), b"").expect("create");
            let link = links.join(format!("pod-{n}_bench_app-{n:064x}.log"));
            std::os::unix::fs::symlink(dir.join("0.log"), link).expect("link");
            dir.join("0.log")
        })
        .collect();
    let config = "[tail]\ninclude = [\"var/log/containers/*.log\"]\n[state]\npath = \"state.db\"\n\
                  [kubernetes]\nmetadata = \"off\"\n[server]\nlisten = \"\"\n\
                  [sinks.out]\ntype = \"file\"\npath = \"out.jsonl\"\n";
    fs::write(root.join("shiplog.toml"), config).expect("config");

    let mut child = Command::new(&shiplog)
        .args(["--config", &root.join("shiplog.toml").to_string_lossy()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("shiplog starts");
    // Let it start and open the (empty) files before the first line.
    std::thread::sleep(Duration::from_secs(2));

    let done = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let first_end = Arc::new(std::sync::Mutex::new(u128::MAX));
    let writers: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let written = Arc::clone(&written);
            let first_end = Arc::clone(&first_end);
            std::thread::spawn(move || {
                let (lines, end) = write(&path, rate, seconds, rotate);
                written.fetch_add(lines, Ordering::SeqCst);
                let mut first = first_end.lock().expect("lock");
                *first = (*first).min(end);
            })
        })
        .collect();
    let finisher = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for writer in writers {
                writer.join().expect("writer");
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let expected = || {
        done.load(Ordering::SeqCst)
            .then(|| written.load(Ordering::SeqCst))
    };
    let arrived = arrivals(&root.join("out.jsonl"), &expected, wait);
    finisher.join().expect("writers");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("exits");
    fs::remove_dir_all(&root).ok();

    let total = written.load(Ordering::SeqCst);
    let missing = total.saturating_sub(arrived.len() as u64);
    // Lines written in the last second have arrived, or not, with the run's last batch.
    let steady_until = first_end
        .lock()
        .expect("lock")
        .saturating_sub(1_000_000_000);
    let steady_total = (total as f64 * (seconds as f64 - 1.0) / seconds as f64) as usize;
    let mut steady: Vec<u64> = arrived
        .iter()
        .filter(|(written, _)| *written < steady_until)
        .map(|(_, latency)| *latency)
        .collect();
    steady.sort_unstable();
    // Lines that never arrived count as later than any that did.
    let at = |quantile: f64| -> String {
        let rank = ((steady_total as f64 * quantile).ceil() as usize).max(1) - 1;
        match steady.get(rank) {
            Some(us) => format!("{:.0} ms", *us as f64 / 1000.0),
            None => format!("> {} s", wait.as_secs()),
        }
    };
    let max_all = arrived
        .iter()
        .map(|(_, latency)| *latency)
        .max()
        .unwrap_or(0);
    println!(
        "{files} files x {rate} lines/s for {seconds} s, each renamed every {} ms; {}",
        rotate.as_millis(),
        shiplog.display()
    );
    let over = |arrived_max: String| match missing {
        0 => arrived_max,
        _ => format!("> {} s", wait.as_secs()),
    };
    println!(
        "write to arrival, all but the last second: p50 {}, p99 {}, max {}; all lines: max {}; \
         {missing} of {total} lines not arrived {} s after the writers stopped",
        at(0.5),
        at(0.99),
        over(format!(
            "{:.0} ms",
            steady.last().copied().unwrap_or(0) as f64 / 1000.0
        )),
        over(format!("{:.0} ms", max_all as f64 / 1000.0)),
        wait.as_secs()
    );
}
