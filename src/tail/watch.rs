//! Change notification: inotify (through `notify`) on the folders that hold followed files.
//!
//! `notify` directly rather than linemux's `MuxedEvents`: linemux wraps the same watcher
//! and adds a line reader we cannot use (no byte offsets, UTF-8 only), so it would only
//! add a layer. Events only wake the engine; what changed is found out by looking (a stat
//! per file, a glob per rescan), so a lost or coalesced event costs latency, never data.
//! When inotify is unavailable or its watches run out, the periodic rescan still finds and
//! reads everything, only later.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use notify::{EventKind, RecursiveMode, Watcher};

/// What wakes the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Files grew: read them.
    Grew,
    /// Files appeared, vanished or were renamed: find files again, then read.
    Moved,
    /// Stop reading and return.
    Stop,
}

/// Watches folders and sends a [`Wake`] for every change in them.
pub struct DirWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    dirs: HashSet<PathBuf>,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("dirs", &self.dirs)
            .finish_non_exhaustive()
    }
}

impl DirWatcher {
    /// A watcher sending on `wake`. Without inotify it watches nothing and says so once.
    pub fn new(wake: mpsc::Sender<Wake>) -> DirWatcher {
        let handler = move |event: notify::Result<notify::Event>| {
            let kind = match event {
                Ok(event) => match event.kind {
                    EventKind::Access(_) => return,
                    EventKind::Modify(notify::event::ModifyKind::Data(_)) => Wake::Grew,
                    _ => Wake::Moved,
                },
                // An overflowed queue lost events: look at everything again.
                Err(_) => Wake::Moved,
            };
            // The engine is gone when this fails; nothing is left to wake.
            wake.send(kind).ok();
        };
        let watcher = notify::recommended_watcher(handler)
            .inspect_err(|error| {
                tracing::warn!(%error, "no file notifications; relying on the periodic rescan");
            })
            .ok();
        DirWatcher {
            watcher,
            dirs: HashSet::new(),
        }
    }

    /// A watcher that watches nothing (`--once` needs no notifications).
    pub fn disabled() -> DirWatcher {
        DirWatcher {
            watcher: None,
            dirs: HashSet::new(),
        }
    }

    /// Watches `dir` (not recursively), once. A failure (watch limit reached, folder gone)
    /// is logged; the rescan covers that folder instead.
    pub fn watch(&mut self, dir: &Path) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        if self.dirs.contains(dir) {
            return;
        }
        match watcher.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => {
                self.dirs.insert(dir.to_path_buf());
            }
            Err(error) => {
                tracing::debug!(dir = %dir.display(), %error, "cannot watch; the rescan covers it");
            }
        }
    }
}
