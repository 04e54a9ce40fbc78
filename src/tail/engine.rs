//! The tail engine: one loop that finds files, follows them through rotation, and reads them.
//!
//! One loop over all files, on one thread, as Vector's `file_server` and Fluent Bit's tail
//! input do: find files (globs, on change events and every `rescan_interval`), read each
//! one with new bytes for a bounded number of chunks (round-robin, so one busy file cannot
//! starve the others), close the ones rotated away once drained. Rotation of every kind
//! comes down to one question asked of a path: is it still the same file?
//!
//! - rename + create (the kubelet's, docker's): the path now names another file; the old
//!   one stays open, is read to its end, and is closed `rotate_wait` after its last growth.
//!   Its successor is read as soon as the old one has been read to its end once since the
//!   rotation was seen (issue 17: waiting for the close stalled it for `rotate_wait`), so
//!   every line the old file held then comes first; lines the runtime still writes to the
//!   old file afterwards (before it reopens its log) are read too, interleaved.
//! - copytruncate: the file is shorter than what was read; it is read again from 0.
//! - deletion: the path is gone; the open file is read to its end as above.
//! - rotation while shiplog was down: a checkpointed file no longer at its path is looked
//!   for by identity in its old folder (the kubelet leaves it there as `0.log.<time>`) and
//!   read from its checkpoint to its end before its successor (`startup.rs`, which also
//!   tells those from files the globs now exclude).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::identity::{FileId, Fingerprint};
use super::watch::{DirWatcher, Wake};
use super::{FileSet, FoundFile, LineReader, Lines};
use crate::config::ReadFrom;
use crate::liveness::Stage;
use crate::metrics::Metrics;

mod startup;

pub use startup::is_gone;

/// Chunks one file may read in one round before the others get their turn.
const CHUNKS_PER_ROUND: usize = 8;

/// How the engine reads, from the config.
#[derive(Debug, Clone)]
pub struct TailSettings {
    /// Where a file found at first start with no checkpoint is read from.
    pub read_from: ReadFrom,
    /// A line with no newline within this many bytes is cut.
    pub max_pending: usize,
    /// How often the globs are evaluated again.
    pub rescan_interval: Duration,
    /// How long a rotated or deleted file stays open after its last growth.
    pub rotate_wait: Duration,
    /// Read what the files hold now and return (`--once`).
    pub once: bool,
}

/// Where a file was left last time, from the checkpoint store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The file's identity.
    pub id: FileId,
    /// Its first bytes, to tell a reused inode from the same file.
    pub fingerprint: Fingerprint,
    /// Its resolved path when last seen.
    pub path: PathBuf,
    /// The offset every sink had acknowledged.
    pub offset: u64,
    /// The path the globs matched it at (a kubelet file's `/var/log/containers` link; a
    /// rotated file's original's): still at `path` but no longer matched there, the file
    /// was excluded, not rotated. `None` for a checkpoint older than this field.
    pub found_at: Option<PathBuf>,
}

/// What the engine reports, per file, in order: `Opened`, any number of `Lines`, `Closed`.
#[derive(Debug)]
pub enum TailEvent {
    /// A file is being followed from now on; `file` numbers it for the events that follow.
    /// A file read again after a truncation gets a new number.
    Opened {
        /// The file's number in this run.
        file: u64,
        /// Where it was found and what it resolves to.
        found: FoundFile,
        /// Its identity.
        id: FileId,
        /// Its first bytes when opened.
        fingerprint: Fingerprint,
        /// Where reading starts.
        offset: u64,
    },
    /// Lines read from the file.
    Lines {
        /// The file's number.
        file: u64,
        /// The lines and their offsets.
        lines: Lines,
    },
    /// Nothing more will be read under this number.
    Closed {
        /// The file's number.
        file: u64,
        /// The file is gone from its path (rotated away or deleted) and fully read: its
        /// checkpoint can be forgotten once everything read is delivered.
        gone: bool,
    },
}

/// One followed file.
#[derive(Debug)]
struct Followed {
    found: FoundFile,
    id: FileId,
    reader: LineReader,
    /// When the file stopped being at its path; `None` while it is current.
    rotated: Option<Instant>,
    /// When the last read returned bytes (or the file was opened).
    last_growth: Instant,
    /// The file's size at the last look; a look that finds another size checks that the
    /// file still starts with `fingerprint`.
    last_len: u64,
    /// The file's first bytes as last verified (grows to its full length as the file does).
    fingerprint: Fingerprint,
    /// The last read found nothing new.
    at_end: bool,
    /// A predecessor (rotated away) that must be drained before this file is read.
    after: Option<u64>,
    /// Rotated, and read to its end since: a successor waiting for it may be read.
    drained: bool,
    /// When following began: rotated siblings changed since then were written while this
    /// file was followed, so they are this file's successors.
    started: SystemTime,
}

/// The engine. Build it, then call [`Tailer::run`] on a thread that may block.
#[derive(Debug)]
pub struct Tailer {
    settings: TailSettings,
    files: FileSet,
    resume: HashMap<FileId, Resume>,
    first_start: bool,
    events: mpsc::Sender<TailEvent>,
    wake: std_mpsc::Receiver<Wake>,
    watcher: DirWatcher,
    followed: BTreeMap<u64, Followed>,
    by_path: HashMap<PathBuf, u64>,
    /// Files rotated while shiplog was down, by the path their successor now has.
    predecessors: HashMap<PathBuf, u64>,
    /// The file each path named when it last changed, until the path's new file is found.
    departed: HashMap<PathBuf, Departed>,
    /// Identities of files already read to their end and closed: never read again.
    closed: ClosedIds,
    /// Where the files' lag is reported.
    metrics: Arc<Metrics>,
    next_file: u64,
    /// Matched files that could not be opened (and were reported), until they can be.
    unreadable: HashSet<PathBuf>,
    /// Whether discovery has looked at the globs once in this run.
    looked: bool,
}

/// The receiving end of [`TailEvent`]s is gone: nothing read would be used.
struct Disconnected;

impl Tailer {
    /// An engine for `files`. `resume` holds the checkpoints of the last run; `first_start`
    /// says there was no last run (`read_from` applies only then). Wake-ups (from the
    /// file watcher it creates, and `Wake::Stop` from whoever owns `wake_tx`) arrive on
    /// `wake`.
    pub fn new(
        settings: TailSettings,
        files: FileSet,
        resume: Vec<Resume>,
        first_start: bool,
        events: mpsc::Sender<TailEvent>,
        (wake_tx, wake): (std_mpsc::Sender<Wake>, std_mpsc::Receiver<Wake>),
        metrics: Arc<Metrics>,
    ) -> Tailer {
        let watcher = if settings.once {
            DirWatcher::disabled()
        } else {
            DirWatcher::new(wake_tx)
        };
        Tailer {
            settings,
            files,
            resume: resume.into_iter().map(|r| (r.id, r)).collect(),
            first_start,
            events,
            wake,
            watcher,
            followed: BTreeMap::new(),
            by_path: HashMap::new(),
            predecessors: HashMap::new(),
            departed: HashMap::new(),
            closed: ClosedIds::default(),
            next_file: 0,
            metrics,
            unreadable: HashSet::new(),
            looked: false,
        }
    }

    /// Follows files until told to stop (or, with `once`, until everything is read).
    pub fn run(mut self) {
        self.metrics.liveness.begin(Stage::Tail);
        for dir in self.files.watch_dirs() {
            self.watcher.watch(&dir);
        }
        // Ending early (the pipeline went away) needs no clean-up: dropping the sender is
        // the signal downstream.
        drop(self.follow());
        self.metrics.liveness.end(Stage::Tail);
    }

    fn follow(&mut self) -> Result<(), Disconnected> {
        self.resume_rotated_while_down()?;
        self.discover()?;
        if self.settings.once {
            return self.read_everything_once();
        }
        let mut next_rescan = Instant::now() + self.settings.rescan_interval;
        loop {
            let progressed = self.read_round()?;
            self.publish_lag();
            self.close_drained()?;
            let wait = if progressed {
                Duration::ZERO
            } else {
                let until_rescan = next_rescan.saturating_duration_since(Instant::now());
                until_rescan.min(self.until_next_close())
            };
            let mut moved = false;
            let woken = {
                let _waiting = self.metrics.liveness.wait(Stage::Tail);
                self.wake.recv_timeout(wait)
            };
            match woken {
                Ok(Wake::Stop) | Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                Ok(wake) => moved = wake == Wake::Moved,
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            }
            // Take every wake-up that is waiting: one look serves them all.
            while let Ok(wake) = self.wake.try_recv() {
                match wake {
                    Wake::Stop => return Ok(()),
                    Wake::Moved => moved = true,
                    Wake::Grew => {}
                }
            }
            if moved || Instant::now() >= next_rescan {
                self.discover()?;
                next_rescan = Instant::now() + self.settings.rescan_interval;
            }
        }
    }

    /// `--once`: every file to its end, what follows its last newline included.
    fn read_everything_once(&mut self) -> Result<(), Disconnected> {
        let keys: Vec<u64> = self.followed.keys().copied().collect();
        for key in keys {
            while self.read_file(key, usize::MAX)? {}
            self.close(key, false)?;
        }
        Ok(())
    }

    /// Finds the files the globs match now and compares them with those followed.
    fn discover(&mut self) -> Result<(), Disconnected> {
        let (found, skipped) = self.files.scan();
        for (path, reason) in skipped {
            tracing::debug!(path = %path.display(), %reason, "not following");
        }
        if !self.unreadable.is_empty() {
            // A file gone from the globs is forgotten: were it back, it would be reported anew.
            let matched: HashSet<&Path> = found.iter().map(|f| f.target.as_path()).collect();
            self.unreadable
                .retain(|path| matched.contains(path.as_path()));
        }
        let mut seen = HashMap::new();
        for file in found {
            // A stat tells whether a followed path still names the same file; only a file
            // new to its path is opened (rescans of many idle files stay cheap).
            let Ok(metadata) = std::fs::metadata(&file.target) else {
                continue;
            };
            seen.insert(file.path.clone(), FileId::of(&metadata));
            let current = self
                .by_path
                .get(&file.path)
                .and_then(|key| self.followed.get(key).map(|followed| (*key, followed.id)));
            let unchanged = match current {
                Some((_, id)) => id == FileId::of(&metadata),
                None => self
                    .followed
                    .values()
                    .any(|f| f.id == FileId::of(&metadata)),
            };
            if unchanged {
                continue;
            }
            // Opened now, it may be newer than the stat: its own metadata decides.
            let Some((handle, metadata)) = self.open_found(&file.target) else {
                continue;
            };
            let id = FileId::of(&metadata);
            seen.insert(file.path.clone(), id);
            if let Some((old, _)) = current {
                self.depart(old);
            }
            match self.departed.remove(&file.path) {
                // The path named another file before: this one is new since, read it whole,
                // after the old one and any file rotated in between.
                Some(departed) => {
                    let predecessor = self.start_missed(&file, &departed, id)?;
                    let key = self.start(file, handle, id, 0)?;
                    self.wait_for(key, predecessor);
                }
                None => {
                    let checkpointed = self.resume.contains_key(&id);
                    let offset = self.start_offset(id, &metadata, &handle);
                    let mut predecessor = self.predecessors.remove(&file.target);
                    if predecessor.is_none() && !checkpointed && !self.history_before_install() {
                        predecessor = self.start_unseen_siblings(&file, id)?;
                    }
                    let key = self.start(file, handle, id, offset)?;
                    self.wait_for(key, predecessor);
                }
            }
        }
        let vanished: Vec<u64> = self
            .by_path
            .iter()
            .filter(|(path, _)| !seen.contains_key(*path))
            .map(|(_, key)| *key)
            .collect();
        for key in vanished {
            self.depart(key);
        }
        self.looked = true;
        Ok(())
    }

    /// Whether rotated files found now predate shiplog on this node: during the very first
    /// start's first look only. Later, a rotated file beside a path nothing of which is
    /// checkpointed holds lines written while shiplog was meant to be reading them.
    fn history_before_install(&self) -> bool {
        self.first_start && !self.looked
    }

    /// Starts the rotated siblings of a path found with nothing of it checkpointed, each
    /// whole and oldest first, and returns the last, which the path's file `current` must
    /// wait for. Such a path rotated before any run read it: a pod started and rotated
    /// while shiplog was down, or the last run was killed before it committed the path
    /// (seen under load: a run killed 0.3 s after starting never got to discovery, and the
    /// file it would have read from its first line was renamed before the next run).
    /// Siblings with a checkpoint of their own are the start-up's (`startup.rs`).
    fn start_unseen_siblings(
        &mut self,
        found: &FoundFile,
        current: FileId,
    ) -> Result<Option<u64>, Disconnected> {
        let mut predecessor = None;
        let unseen = self.siblings_since(&found.target, &[current], SystemTime::UNIX_EPOCH);
        for sibling in unseen {
            if self.resume.contains_key(&sibling.id) {
                continue;
            }
            tracing::info!(path = %sibling.path.display(), "reading a rotated file of a path no run had read yet");
            predecessor = self.start_after(&found.path, sibling, 0, predecessor)?;
        }
        Ok(predecessor)
    }

    /// Opens a file discovery found. A file that cannot be opened for another reason than
    /// being gone (permissions, say) is reported once, with the reason, and tried again at
    /// each rescan; that it became readable is reported too.
    fn open_found(&mut self, path: &Path) -> Option<(File, std::fs::Metadata)> {
        match try_open(path) {
            Ok(opened) => {
                if self.unreadable.remove(path) {
                    tracing::info!(path = %path.display(), "readable now; following it");
                }
                opened
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => {
                if self.unreadable.insert(path.to_path_buf()) {
                    tracing::warn!(path = %path.display(), %error, "cannot open a matched log file; trying again at each rescan");
                }
                None
            }
        }
    }

    /// Where a newly found file is read from: its checkpoint when it is the same file,
    /// its end at a first start with `read_from = "tail"`, else its first byte.
    fn start_offset(&mut self, id: FileId, metadata: &std::fs::Metadata, file: &File) -> u64 {
        if let Some(resume) = self.resume.remove(&id) {
            let same = resume.fingerprint.matches(file).unwrap_or(false);
            if same && resume.offset <= metadata.len() {
                return resume.offset;
            }
            tracing::info!(path = %resume.path.display(), "a new file took a checkpointed inode; reading it from the start");
            return 0;
        }
        match (self.first_start, self.settings.read_from) {
            (true, ReadFrom::Tail) => metadata.len(),
            _ => 0,
        }
    }

    /// Starts following `file` from `offset` under a new number, which it returns; `None`
    /// when the file cannot be read (the rescan tries again).
    fn start(
        &mut self,
        found: FoundFile,
        file: File,
        id: FileId,
        offset: u64,
    ) -> Result<Option<u64>, Disconnected> {
        let opened = Fingerprint::read(&file).and_then(|fingerprint| {
            Ok((
                fingerprint,
                LineReader::from_file(file, offset, self.settings.max_pending)?,
            ))
        });
        let (fingerprint, reader) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(path = %found.target.display(), %error, "cannot read; will try again");
                return Ok(None);
            }
        };
        let key = self.next_file;
        self.next_file += 1;
        if let Some(dir) = found.target.parent() {
            self.watcher.watch(dir);
        }
        self.by_path.insert(found.path.clone(), key);
        self.send(TailEvent::Opened {
            file: key,
            found: found.clone(),
            id,
            fingerprint,
            offset,
        })?;
        let followed = Followed {
            found,
            id,
            reader,
            rotated: None,
            last_growth: Instant::now(),
            last_len: offset,
            fingerprint,
            at_end: false,
            after: None,
            drained: false,
            started: SystemTime::now(),
        };
        self.followed.insert(key, followed);
        Ok(Some(key))
    }

    fn wait_for(&mut self, key: Option<u64>, predecessor: Option<u64>) {
        if let Some(file) = key.and_then(|key| self.followed.get_mut(&key)) {
            file.after = predecessor;
        }
    }

    /// The file `key` is no longer at its path: it is rotated, and the path remembers it
    /// until its new file turns up.
    fn depart(&mut self, key: u64) {
        if let Some(file) = self.followed.get(&key).filter(|f| f.rotated.is_none()) {
            let departed = Departed {
                key,
                target: file.found.target.clone(),
                started: file.started,
                id: file.id,
            };
            self.departed.insert(file.found.path.clone(), departed);
        }
        self.mark_rotated(key);
    }

    /// Starts the files rotated away from `departed`'s path after it and before `newest`
    /// (the path's current file) was found: under backpressure a path can rotate more than
    /// once between two looks, and the kubelet keeps the rotated files beside the current
    /// one. Returns the last of the chain, which the path's current file must wait for.
    fn start_missed(
        &mut self,
        found: &FoundFile,
        departed: &Departed,
        newest: FileId,
    ) -> Result<Option<u64>, Disconnected> {
        let mut predecessor = Some(departed.key);
        // Rotated since `departed` was first followed, and neither it nor the newest file.
        let missed =
            self.siblings_since(&departed.target, &[newest, departed.id], departed.started);
        for sibling in missed {
            tracing::info!(path = %sibling.path.display(), "reading a file rotated away before it was seen");
            predecessor = self.start_after(&found.path, sibling, 0, predecessor)?;
        }
        Ok(predecessor)
    }

    /// Starts `candidate`, rotated or copied away from the file the globs match at `path`,
    /// reading from `offset` once `predecessor` is drained. Returns what the next file of
    /// the chain waits for: this one, or `predecessor` still when this one cannot be read.
    fn start_after(
        &mut self,
        path: &Path,
        candidate: Candidate,
        offset: u64,
        predecessor: Option<u64>,
    ) -> Result<Option<u64>, Disconnected> {
        let found = FoundFile {
            path: path.to_path_buf(),
            target: candidate.path,
        };
        let Some(key) = self.start(found, candidate.file, candidate.id, offset)? else {
            return Ok(predecessor);
        };
        self.mark_rotated(key);
        self.wait_for(Some(key), predecessor);
        Ok(Some(key))
    }

    /// Rotated siblings of `target` (`<name>.<suffix>` or `<name>-<suffix>`, not
    /// compressed) modified at or after `since`, neither followed nor closed nor one of
    /// `exclude`, oldest first (by name among equal times).
    fn siblings_since(
        &self,
        target: &Path,
        exclude: &[FileId],
        since: SystemTime,
    ) -> Vec<Candidate> {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Vec::new();
        };
        let name = name.to_string_lossy();
        let prefixes = [format!("{name}."), format!("{name}-")];
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut missed: Vec<Candidate> = entries
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let name = path.file_name()?.to_string_lossy().into_owned();
                let compressed = [".gz", ".zst", ".xz", ".bz2"]
                    .iter()
                    .any(|s| name.ends_with(s));
                if !prefixes.iter().any(|p| name.starts_with(p)) || compressed {
                    return None;
                }
                let (handle, metadata) = open(&path)?;
                let id = FileId::of(&metadata);
                let known = exclude.contains(&id)
                    || self.closed.contains(id, &handle)
                    || self.followed.values().any(|f| f.id == id);
                let modified = metadata.modified().ok()?;
                (!known && modified >= since).then_some(Candidate {
                    path,
                    file: handle,
                    id,
                    modified,
                })
            })
            .collect();
        // Files rotated within one tick of a coarse clock share a time: the kubelet's
        // timestamped names then tell their order.
        missed.sort_by(|a, b| {
            a.modified
                .cmp(&b.modified)
                .then_with(|| a.path.cmp(&b.path))
        });
        missed
    }

    fn mark_rotated(&mut self, key: u64) {
        let Some(file) = self.followed.get_mut(&key) else {
            return;
        };
        if file.rotated.is_none() {
            file.rotated = Some(Instant::now());
            file.at_end = false;
            if self.by_path.get(&file.found.path) == Some(&key) {
                self.by_path.remove(&file.found.path);
            }
        }
    }

    /// Bytes written to followed files and not read yet, as of each file's last look.
    fn publish_lag(&self) {
        let lags = self
            .followed
            .values()
            .map(|f| f.last_len.saturating_sub(f.reader.read_position()));
        let (sum, max) = lags.fold((0u64, 0u64), |(sum, max), lag| (sum + lag, max.max(lag)));
        self.metrics
            .files_lag_bytes
            .set(i64::try_from(sum).unwrap_or(i64::MAX));
        self.metrics
            .files_lag_max_bytes
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// Reads every file that has something new, a bounded number of chunks each.
    fn read_round(&mut self) -> Result<bool, Disconnected> {
        let keys: Vec<u64> = self.followed.keys().copied().collect();
        let mut progressed = false;
        for key in keys {
            let blocked = self.followed[&key]
                .after
                .and_then(|p| self.followed.get(&p))
                .is_some_and(|predecessor| !predecessor.drained);
            if !blocked {
                progressed |= self.read_file(key, CHUNKS_PER_ROUND)?;
            }
        }
        Ok(progressed)
    }

    /// Reads up to `chunks` chunks of one file, sending each as it is read; true when it
    /// read something.
    fn read_file(&mut self, key: u64, chunks: usize) -> Result<bool, Disconnected> {
        if self.truncated(key) {
            self.restart_truncated(key)?;
            return Ok(true);
        }
        let mut progressed = false;
        for _ in 0..chunks {
            let Some(file) = self.followed.get_mut(&key) else {
                break;
            };
            let lines = match file.reader.read_lines() {
                Ok(Some(lines)) => lines,
                Ok(None) => {
                    file.at_end = true;
                    file.drained |= file.rotated.is_some();
                    break;
                }
                Err(error) => {
                    let path = file.found.target.display();
                    tracing::warn!(path = %path, %error, "read failed; retrying later");
                    break;
                }
            };
            file.last_growth = Instant::now();
            file.at_end = false;
            progressed = true;
            self.send(TailEvent::Lines { file: key, lines })?;
        }
        Ok(progressed)
    }

    /// True when the file no longer holds what was read of it (copytruncate): it is
    /// shorter than the read position, or, when its size changed, its first bytes are not
    /// the ones it was opened with (it was cut and refilled past the old offset between
    /// two looks). A fingerprint shorter than its full length is extended as the file grows.
    fn truncated(&mut self, key: u64) -> bool {
        let Some(file) = self.followed.get_mut(&key) else {
            return false;
        };
        let Ok(len) = file.reader.file().metadata().map(|m| m.len()) else {
            return false;
        };
        if len == file.last_len {
            return false;
        }
        file.last_len = len;
        if len < file.reader.read_position() {
            return true;
        }
        match file.fingerprint.matches(file.reader.file()) {
            Ok(true) => {
                if file.fingerprint.len < Fingerprint::MAX_LEN {
                    let longer = Fingerprint::read(file.reader.file());
                    file.fingerprint = longer.unwrap_or(file.fingerprint);
                }
                false
            }
            Ok(false) => true,
            Err(_) => false,
        }
    }

    /// A truncated file is read again from its first byte under a new number.
    ///
    /// copytruncate copies the file aside, then cuts it. What the copy holds beyond the
    /// last line read is read from the copy first, when the copy is in the same folder (as
    /// logrotate leaves it): so only lines written between the rotator's copy and its
    /// truncation are lost, a window that belongs to copytruncate itself, and that reading
    /// promptly keeps small.
    fn restart_truncated(&mut self, key: u64) -> Result<(), Disconnected> {
        let Some(old) = self.followed.get_mut(&key) else {
            return Ok(());
        };
        let (found, id, fingerprint) = (old.found.clone(), old.id, old.fingerprint);
        let read_up_to = old.reader.offset();
        let copy = self.find_copy(&found.target, id, fingerprint, read_up_to);
        let Some(old) = self.followed.get_mut(&key) else {
            return Ok(());
        };
        // An unfinished last line is in the copy, whole, or gone with the cut.
        old.reader.drop_pending();
        tracing::info!(path = %found.target.display(), "file truncated; reading it again from the start");
        let file = old.reader.file().try_clone();
        self.close(key, false)?;
        if let Some(copy) = copy {
            tracing::info!(copy = %copy.path.display(), from = read_up_to, "reading what the truncated file's copy holds beyond the last line read");
            let (copy_id, modified) = (copy.id, copy.modified);
            self.read_whole(&found.path, copy, read_up_to)?;
            // Cut again before shiplog looked: what came between is only in later copies.
            for later in self.siblings_since(&found.target, &[id, copy_id], modified) {
                tracing::info!(copy = %later.path.display(), "reading a later copy: the file was cut again before shiplog looked");
                self.read_whole(&found.path, later, 0)?;
            }
        }
        match file {
            Ok(file) => self.start(found, file, id, 0).map(drop),
            Err(error) => {
                tracing::warn!(%error, "cannot reopen a truncated file; the rescan will find it");
                Ok(())
            }
        }
    }

    /// Reads `copy`, of the file the globs match at `path`, from `offset` to its end, now,
    /// and closes it.
    fn read_whole(
        &mut self,
        path: &Path,
        copy: Candidate,
        offset: u64,
    ) -> Result<(), Disconnected> {
        let aside = FoundFile {
            path: path.to_path_buf(),
            target: copy.path,
        };
        if let Some(key) = self.start(aside, copy.file, copy.id, offset)? {
            self.mark_rotated(key);
            while self.read_file(key, usize::MAX)? {}
            self.close(key, true)?;
        }
        Ok(())
    }

    /// The copy copytruncate made of the file `id` at `target`: another file in its folder
    /// that starts with the same bytes and holds more than `read_up_to` bytes, the most
    /// recently modified if several do. Files already followed or read are not copies.
    fn find_copy(
        &self,
        target: &Path,
        id: FileId,
        fingerprint: Fingerprint,
        read_up_to: u64,
    ) -> Option<Candidate> {
        let entries = std::fs::read_dir(target.parent()?).ok()?;
        entries
            .flatten()
            .filter_map(|entry| {
                let path = entry.path();
                let (handle, metadata) = open(&path)?;
                let copy_id = FileId::of(&metadata);
                let known = copy_id == id
                    || self.followed.values().any(|f| f.id == copy_id)
                    || self.closed.contains(copy_id, &handle);
                let copy = !known
                    && metadata.len() > read_up_to
                    && fingerprint.matches(&handle).unwrap_or(false);
                let modified = metadata.modified().ok()?;
                copy.then_some(Candidate {
                    path,
                    file: handle,
                    id: copy_id,
                    modified,
                })
            })
            .max_by_key(|candidate| candidate.modified)
    }

    /// Closes rotated files that have been drained and quiet for `rotate_wait`.
    fn close_drained(&mut self) -> Result<(), Disconnected> {
        let now = Instant::now();
        let wait = self.settings.rotate_wait;
        let done: Vec<u64> = self
            .followed
            .iter()
            .filter(|(_, f)| f.rotated.is_some() && f.at_end && now >= f.last_growth + wait)
            .map(|(key, _)| *key)
            .collect();
        for key in done {
            self.close(key, true)?;
        }
        Ok(())
    }

    fn until_next_close(&self) -> Duration {
        let now = Instant::now();
        self.followed
            .values()
            .filter(|f| f.rotated.is_some())
            .map(|f| (f.last_growth + self.settings.rotate_wait).saturating_duration_since(now))
            .min()
            .unwrap_or(Duration::MAX)
    }

    /// Stops following `key`: what follows its last newline goes out as the end of the
    /// file, then `Closed`.
    fn close(&mut self, key: u64, gone: bool) -> Result<(), Disconnected> {
        let Some(mut file) = self.followed.remove(&key) else {
            return Ok(());
        };
        self.closed.insert(file.id, file.fingerprint);
        self.departed.retain(|_, departed| departed.key != key);
        if self.by_path.get(&file.found.path) == Some(&key) {
            self.by_path.remove(&file.found.path);
        }
        match file.reader.take_unterminated() {
            Ok(Some(lines)) => self.send(TailEvent::Lines { file: key, lines })?,
            Ok(None) => {}
            Err(error) => {
                let path = file.found.target.display();
                tracing::warn!(path = %path, %error, "cannot read the unfinished last line of a file being closed; it is not shipped");
            }
        }
        self.send(TailEvent::Closed { file: key, gone })
    }

    /// Sends `event` downstream, waiting (backpressure) while the channel is full.
    fn send(&self, event: TailEvent) -> Result<(), Disconnected> {
        let _waiting = self.metrics.liveness.wait(Stage::Tail);
        self.events.blocking_send(event).map_err(|_| Disconnected)
    }
}

/// A file found in the folder of a followed or checkpointed one, opened: a rotated sibling,
/// a copy, or the file itself under another name.
#[derive(Debug)]
struct Candidate {
    path: PathBuf,
    file: File,
    id: FileId,
    modified: SystemTime,
}

/// What a path named before it changed: the file, where it was, when following began.
#[derive(Debug)]
struct Departed {
    key: u64,
    target: PathBuf,
    started: SystemTime,
    id: FileId,
}

/// Closed files, the most recent [`ClosedIds::CAPACITY`] of them, by identity and first
/// bytes (a reused inode is another file).
#[derive(Debug, Default)]
struct ClosedIds {
    order: std::collections::VecDeque<FileId>,
    set: HashMap<FileId, Fingerprint>,
}

impl ClosedIds {
    /// Far more than a node keeps rotated files of (the kubelet keeps 5 per container).
    const CAPACITY: usize = 65_536;

    fn insert(&mut self, id: FileId, fingerprint: Fingerprint) {
        if self.set.insert(id, fingerprint).is_none() {
            self.order.push_back(id);
        }
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
    }

    /// Whether `file`, of identity `id`, was read to its end and closed.
    fn contains(&self, id: FileId, file: &File) -> bool {
        self.set
            .get(&id)
            .is_some_and(|fingerprint| fingerprint.matches(file).unwrap_or(false))
    }
}

/// Opens `path` for reading, with its metadata; `None` when it cannot be (gone, a folder).
fn open(path: &Path) -> Option<(File, std::fs::Metadata)> {
    try_open(path).ok().flatten()
}

/// [`open`], telling why a file could not be opened; `Ok(None)` for a folder or the like.
fn try_open(path: &Path) -> std::io::Result<Option<(File, std::fs::Metadata)>> {
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    Ok(metadata.is_file().then_some((file, metadata)))
}
