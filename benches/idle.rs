//! What following idle files costs: `shiplog` follows N files (default 1,000) that stop
//! growing, and its CPU time is sampled from `/proc/PID/stat` over a quiet window
//! (default 10 s). Idle files should cost next to nothing: no polling of each file, only
//! inotify and one rescan per `rescan_interval` (5 s, the default).
//!
//! `cargo bench --bench idle [-- --files N --seconds S]`. Under `cargo test` (no
//! `--bench` argument) it runs a small version, so the harness itself stays working.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    let value = args
        .iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1));
    value.and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User + system CPU time of `pid`, in clock ticks (100 per second on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("process stat");
    shiplog::metrics::cpu_ticks(&stat)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let files = arg("--files", if benching { 1000 } else { 20 });
    let seconds = arg("--seconds", if benching { 10 } else { 1 });
    let root = std::env::temp_dir().join(format!("shiplog-idle-{}", std::process::id()));
    fs::remove_dir_all(&root).ok();
    let links = root.join("var/log/containers");
    fs::create_dir_all(&links).expect("mkdir");
    for n in 0..files {
        let dir = root.join(format!("var/log/pods/idle_pod-{n}_uid-{n}/app"));
        fs::create_dir_all(&dir).expect("mkdir");
        let lines: String = (0..10)
            .map(|i| format!("2026-11-25T09:00:00.{i:09}Z stdout F pod {n} line {i}\n"))
            .collect();
        fs::write(dir.join("0.log"), lines).expect("write");
        let link = links.join(format!("pod-{n}_idle_app-{n:064x}.log"));
        std::os::unix::fs::symlink(dir.join("0.log"), link).expect("link");
    }
    let config = "[tail]\ninclude = [\"var/log/containers/*.log\"]\n[state]\npath = \"state.db\"\n\
                  [kubernetes]\nmetadata = \"off\"\n[server]\nlisten = \"\"\n\
                  [sinks.out]\ntype = \"file\"\npath = \"out.jsonl\"\n";
    fs::write(root.join("shiplog.toml"), config).expect("config");

    let mut child = Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(["--config", &root.join("shiplog.toml").to_string_lossy()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("shiplog starts");
    let started = Instant::now();
    let expected = files * 10;
    while count_lines(&root.join("out.jsonl")) < expected {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "shiplog did not catch up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let caught_up = started.elapsed();
    // Let the last commit and batch timers settle, then measure a quiet window.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(seconds));
    let used = cpu_ticks(child.id()) - before;
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    child.wait().expect("exits");
    fs::remove_dir_all(&root).ok();
    println!(
        "{files} idle files: caught up in {:.2} s; then {:.2} CPU-s in {seconds} s ({:.2} % of one core)",
        caught_up.as_secs_f64(),
        used as f64 / 100.0,
        used as f64 / seconds as f64,
    );
}

fn count_lines(path: &Path) -> u64 {
    fs::read(path).map_or(0, |bytes| {
        bytes.iter().filter(|&&b| b == b'\n').count() as u64
    })
}
