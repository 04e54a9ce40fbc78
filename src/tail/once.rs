//! `--once` reading: every matched file from its first byte to its end, one after another.

use tokio::sync::mpsc;

use super::{FileSet, FoundFile, LineReader, Lines};

/// What the reader reports to the pipeline, per file, in order: `Opened`, any number of
/// `Lines`, then `Closed`.
#[derive(Debug)]
pub enum TailEvent {
    /// A file is about to be read; `file` numbers it for the events that follow.
    Opened {
        /// The file's number in this run.
        file: u64,
        /// Where it was found and what it resolves to.
        found: FoundFile,
    },
    /// Lines read from the file.
    Lines {
        /// The file's number.
        file: u64,
        /// The lines and their offsets.
        lines: Lines,
    },
    /// The file is finished with: nothing more will be read from it.
    Closed {
        /// The file's number.
        file: u64,
    },
}

/// Reads every file `files` matches now, to its end, sending events on `events`. Blocking:
/// run it on a blocking thread. Returns when done or when the receiver is gone. A file that
/// cannot be opened or read is reported and skipped; what was read of it before stands.
pub fn read_once(files: &FileSet, max_pending: usize, events: &mpsc::Sender<TailEvent>) {
    let (found, skipped) = files.scan();
    for (path, reason) in skipped {
        tracing::warn!(path = %path.display(), %reason, "skipping");
    }
    for (file, found) in (0u64..).zip(found) {
        let target = found.target.clone();
        let mut reader = match LineReader::open(&target, 0, max_pending) {
            Ok(reader) => reader,
            Err(error) => {
                tracing::warn!(path = %target.display(), %error, "cannot open, skipping");
                continue;
            }
        };
        if events
            .blocking_send(TailEvent::Opened { file, found })
            .is_err()
        {
            return;
        }
        loop {
            let lines = match reader.read_lines() {
                Ok(Some(lines)) => lines,
                Ok(None) => match reader.take_unterminated() {
                    Some(rest) => rest,
                    None => break,
                },
                Err(error) => {
                    tracing::warn!(path = %target.display(), %error, "read failed, closing");
                    break;
                }
            };
            if events
                .blocking_send(TailEvent::Lines { file, lines })
                .is_err()
            {
                return;
            }
        }
        if events.blocking_send(TailEvent::Closed { file }).is_err() {
            return;
        }
    }
}
