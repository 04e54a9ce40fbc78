//! Test helpers: a throw-away node tree (kubelet-style log files and symlinks), a config
//! for it, and the real `shiplog` binary run against it (ripgrep's `tests/util.rs` idea).

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod kafka;
pub mod moto;
pub mod relay;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A 64-hex container id made from a short tag, so tests stay readable.
pub fn container_id(tag: &str) -> String {
    format!("{tag:0>64}")
}

/// A temporary node: `var/log/pods/...` files, `var/log/containers/...` links, a config.
pub struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    pub fn new() -> Node {
        Node {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A node in memory (`/dev/shm`, when the machine has it), for tests that time
    /// delivery: on a busy machine the disk can hold the file sink's and the state
    /// database's `fdatasync` for seconds, and that would be timed too.
    pub fn in_memory() -> Node {
        let shm = Path::new("/dev/shm");
        match tempfile::tempdir_in(shm) {
            Ok(dir) if shm.is_dir() => Node { dir },
            _ => Node::new(),
        }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a container's log file the way the kubelet lays it out, and its symlink.
    /// Returns the file's path under `var/log/pods`.
    pub fn container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        content: &[u8],
    ) -> PathBuf {
        let pod_dir = format!("var/log/pods/{namespace}_{pod}_uid-{pod}/{container}");
        let file = self.path(&pod_dir).join("0.log");
        fs::create_dir_all(file.parent().expect("has a parent")).expect("mkdir");
        fs::write(&file, content).expect("write log");
        let links = self.path("var/log/containers");
        fs::create_dir_all(&links).expect("mkdir");
        let id = container_id(&format!("{:x}", content.len() + pod.len()));
        let link = links.join(format!("{pod}_{namespace}_{container}-{id}.log"));
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        file
    }

    /// Writes `shiplog.toml`: the node's container logs, metadata off, records to
    /// `out.jsonl`. Each `(table, lines)` of `extra` adds lines to a table (a key given
    /// there replaces the default one).
    pub fn config(&self, extra: &[(&str, &str)]) -> PathBuf {
        let mut tables: Vec<(&str, Vec<String>)> = vec![
            (
                "tail",
                vec!["include = [\"var/log/containers/*.log\"]".into()],
            ),
            ("state", vec!["path = \"state.db\"".into()]),
            ("kubernetes", vec!["metadata = \"off\"".into()]),
            ("server", vec!["listen = \"\"".into()]),
            (
                "sinks.out",
                vec!["type = \"file\"".into(), "path = \"out.jsonl\"".into()],
            ),
        ];
        for (table, lines) in extra {
            let index = match tables.iter().position(|(name, _)| name == table) {
                Some(index) => index,
                None => {
                    tables.push((table, Vec::new()));
                    tables.len() - 1
                }
            };
            for line in lines.lines() {
                let key = line.split('=').next().unwrap_or_default().trim();
                let existing = &mut tables[index].1;
                existing.retain(|old| old.split('=').next().unwrap_or_default().trim() != key);
                existing.push(line.to_owned());
            }
        }
        let text: String = tables
            .iter()
            .map(|(name, lines)| format!("[{name}]\n{}\n", lines.join("\n")))
            .collect();
        self.write("shiplog.toml", text.as_bytes())
    }

    pub fn write(&self, relative: &str, content: &[u8]) -> PathBuf {
        let path = self.path(relative);
        fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
        fs::write(&path, content).expect("write");
        path
    }

    /// The records the file sink wrote, in order. A record still being written (no newline
    /// yet) is left for the next look.
    pub fn records(&self) -> Vec<Value> {
        self.records_in("out.jsonl")
    }

    /// The records in the sink file `name` (relative to the node), as [`Node::records`].
    pub fn records_in(&self, name: &str) -> Vec<Value> {
        let text = fs::read(self.path(name)).unwrap_or_default();
        let complete = match text.iter().rposition(|&b| b == b'\n') {
            Some(last) => &text[..last],
            None => &[][..],
        };
        complete
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).expect("each record is JSON"))
            .collect()
    }
}

/// The records of a file sink, read as they are written: what arrived since the last look.
pub struct SinkReader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl SinkReader {
    pub fn new(path: PathBuf) -> SinkReader {
        SinkReader {
            path,
            offset: 0,
            partial: Vec::new(),
        }
    }

    /// The `log` of every record written since the last call (see [`SinkReader::new_records`]).
    pub fn new_logs(&mut self) -> Vec<String> {
        self.new_records()
            .iter()
            .map(|record| record["log"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Every record written since the last call. A line that is not JSON is skipped: the
    /// end of a record a `kill -9` cut short, then the next record appended (its lines were
    /// not acknowledged, so they are read and written again).
    pub fn new_records(&mut self) -> Vec<Value> {
        let Ok(mut file) = fs::File::open(&self.path) else {
            return Vec::new();
        };
        file.seek(SeekFrom::Start(self.offset)).expect("seek");
        let mut bytes = std::mem::take(&mut self.partial);
        let read = file.read_to_end(&mut bytes).expect("read the sink's file");
        self.offset += read as u64;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .filter_map(|line| serde_json::from_slice(line).ok())
            .collect()
    }
}

/// Runs the real binary with `args`.
pub fn shiplog(args: &[&str]) -> Output {
    shiplog_with_env(args, &[])
}

/// Runs the real binary with `args` and the variables `env` added to its environment.
pub fn shiplog_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiplog"))
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .expect("shiplog runs")
}

/// Runs `shiplog --config CONFIG --once` and insists it succeeded.
pub fn run_once(config: &Path) -> Output {
    run_once_with_env(config, &[])
}

/// [`run_once`] with the variables `env` added to shiplog's environment.
pub fn run_once_with_env(config: &Path, env: &[(&str, &str)]) -> Output {
    let args = ["--config", config.to_str().expect("UTF-8 path"), "--once"];
    let output = shiplog_with_env(&args, env);
    assert!(
        output.status.success(),
        "shiplog failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The stderr of a run, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `shiplog` following files in the background, stopped by PID.
pub struct Running {
    child: std::process::Child,
}

impl Running {
    /// Starts `shiplog --config CONFIG` (follow mode), its stderr appended to `stderr_to`.
    pub fn start(config: &Path, stderr_to: &Path) -> Running {
        Running::start_with_env(config, stderr_to, &[])
    }

    /// [`Running::start`] with the variables `env` added to shiplog's environment; a
    /// variable given as empty is removed (`("RUST_LOG", "")` lets the config choose).
    pub fn start_with_env(config: &Path, stderr_to: &Path, env: &[(&str, &str)]) -> Running {
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_to)
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shiplog"));
        command.env("RUST_LOG", "info");
        for (name, value) in env {
            if value.is_empty() {
                command.env_remove(name);
            } else {
                command.env(name, value);
            }
        }
        let child = command
            .args(["--config", config.to_str().expect("UTF-8 path")])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("shiplog starts");
        Running { child }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("shiplog's status")
    }

    /// Waits at most `timeout` for the process to end by itself; its exit status.
    pub fn wait_for_exit(&mut self, timeout: std::time::Duration) -> std::process::ExitStatus {
        let mut status = None;
        wait_until(timeout, "shiplog to exit", || {
            status = self.exited();
            status.is_some()
        });
        status.expect("exited")
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        self.child.wait().expect("shiplog exits")
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill(mut self) {
        signal(self.pid(), "KILL");
        self.child.wait().expect("shiplog is reaped");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A test that failed half-way must not leave a collector running.
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "KILL");
            self.child.wait().ok();
        }
    }
}

/// Sends `SIG<name>` to `pid` with kill(1).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status();
    assert!(status.is_ok_and(|s| s.success()), "kill -{name} {pid}");
}

/// Polls `done` until it holds or `timeout` passes; panics naming `what` on timeout.
pub fn wait_until(timeout: std::time::Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A CRI line whose message names the writer's file and a sequence number: `<file>:<seq>`.
pub fn numbered_line(file: usize, seq: usize) -> String {
    format!("2026-11-25T09:00:00.{seq:09}Z stdout F {file}:{seq}\n")
}

/// The `(file, seq)` of every numbered record, in output order.
pub fn numbered(records: &[Value]) -> Vec<(usize, usize)> {
    records
        .iter()
        .filter_map(|r| {
            let (file, seq) = r["log"].as_str()?.split_once(':')?;
            Some((file.parse().ok()?, seq.parse().ok()?))
        })
        .collect()
}

/// Appends `text` to the file at `path`, creating it if missing, as a container runtime does.
pub fn append(path: &Path, text: &str) {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("append");
}

/// The address shiplog's HTTP server listens on, read from its log once it says (for a
/// config with `server.listen = "127.0.0.1:0"`).
pub fn server_address(log: &Path) -> String {
    let mut address = String::new();
    wait_until(
        std::time::Duration::from_secs(20),
        "the server's address in the log",
        || {
            let text = fs::read_to_string(log).unwrap_or_default();
            let found = text
                .split("\"address\":\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next());
            address = found.unwrap_or_default().to_owned();
            !address.is_empty()
        },
    );
    address
}

/// `GET path` on `address` over a real socket; the status code and the body.
pub fn http_get(address: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
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

/// A response of [`http_request`].
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET path` on `address` with an `Accept` header when given; `None` when nothing
/// answers (the connection is refused or cut).
pub fn http_request(address: &str, path: &str, accept: Option<&str>) -> Option<HttpResponse> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    let accept = accept.map_or(String::new(), |accept| format!("Accept: {accept}\r\n"));
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: shiplog\r\n{accept}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    Some(HttpResponse {
        status,
        content_type,
        body: body.to_owned(),
    })
}

/// A `127.0.0.1` address with a port nothing listens on now.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").to_string()
}

/// How many lines of the log at `log` contain `needle`.
pub fn log_count(log: &Path, needle: &str) -> usize {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(needle))
        .count()
}

/// The value of the sample named exactly `name` (labels included) in Prometheus text.
pub fn metric(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok()).flatten()
    })
}

/// Waits until the shiplog serving on `address` has `files` files open: it is following
/// them, so whatever is written from now on is its to deliver.
pub fn wait_for_open_files(address: &str, files: usize) {
    wait_until(
        std::time::Duration::from_secs(20),
        "shiplog to open the files",
        || {
            let (_, metrics) = http_get(address, "/metrics");
            metric(&metrics, "shiplog_files_open") == Some(files as f64)
        },
    );
}

/// The committed offset of every file in the state database at `state`; empty while
/// shiplog has not created it (or its table) yet.
pub fn committed_offsets(state: &Path) -> Vec<u64> {
    let read = || -> rusqlite::Result<Vec<u64>> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let db = rusqlite::Connection::open_with_flags(state, flags)?;
        let mut query = db.prepare("SELECT file_offset FROM checkpoints")?;
        let rows = query.query_map([], |row| row.get::<_, i64>(0))?;
        rows.map(|offset| offset.map(i64::unsigned_abs)).collect()
    };
    read().unwrap_or_default()
}

/// Waits until some file's committed offset is `offset`.
pub fn wait_for_commit(state: &Path, offset: u64, what: &str) {
    wait_until(std::time::Duration::from_secs(60), what, || {
        committed_offsets(state).contains(&offset)
    });
}

/// Checks twice a second for `outage` that no committed offset passes `bound`: what a
/// sink that is down has not acknowledged is never committed.
pub fn assert_offsets_held_back(state: &Path, bound: u64, outage: std::time::Duration) {
    let start = std::time::Instant::now();
    while start.elapsed() < outage {
        let offsets = committed_offsets(state);
        assert!(
            offsets.iter().all(|&offset| offset <= bound),
            "nothing committed past what the sink acknowledged: {offsets:?} vs {bound}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Runs shiplog with `args` as user `nobody` (util-linux's `setpriv`), with the node's
/// folders opened to it, so that a file mode 000 really is unreadable (root reads
/// anything). `None` when not root or without `setpriv`: the caller says so and passes.
pub fn shiplog_as_nobody(node: &Node, args: &[&str]) -> Option<Output> {
    use std::os::unix::fs::PermissionsExt;
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout == b"0\n");
    let has_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !has_setpriv {
        return None;
    }
    let as_nobody = |program: &Path| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(program)
            .env("RUST_LOG", "warn");
        command
    };
    // The binary may sit where nobody cannot reach it (a private home): then a copy does.
    let mut binary = PathBuf::from(env!("CARGO_BIN_EXE_shiplog"));
    let runs = as_nobody(&binary)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status();
    if !runs.is_ok_and(|s| s.success()) {
        let copy = node.path("shiplog");
        fs::copy(&binary, &copy).expect("copy the binary");
        binary = copy;
    }
    let mut dirs = vec![node.path("")];
    while let Some(dir) = dirs.pop() {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).expect("chmod");
        for entry in fs::read_dir(&dir).expect("list") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    Some(
        as_nobody(&binary)
            .args(args)
            .output()
            .expect("shiplog runs"),
    )
}
