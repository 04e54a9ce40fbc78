//! The SQLite database of checkpoints: one row per file, keyed by (device, inode).
//!
//! Synchronous and single-owner: one task owns the [`Store`] and calls it once per
//! `state.commit_interval` (from a blocking thread, as it does file I/O). SQL lives in named
//! constants, the schema in an append-only list of migrations.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags, Row, TransactionBehavior, params};

use crate::tail::{FileId, Fingerprint};

/// `MIGRATIONS[n]` takes the schema from version `n` to `n + 1` (`PRAGMA user_version`; a new
/// database is version 0). Append only: databases in the field were made by the ones before.
const MIGRATIONS: &[&str] = &[CREATE_CHECKPOINTS, ADD_FOUND_AT];

/// The schema version this build writes.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Version 1. Integers are SQLite's signed 64 bits: `u64` values are stored bit for bit
/// (`cast_signed`), so a device number or hash with the high bit set round-trips. `path` is
/// the path's bytes, so a non-UTF-8 path round-trips. Keyed without a rowid: the key is
/// the only way rows are found.
const CREATE_CHECKPOINTS: &str = "
    CREATE TABLE checkpoints (
        dev              INTEGER NOT NULL,
        ino              INTEGER NOT NULL,
        fingerprint_len  INTEGER NOT NULL,
        fingerprint_hash INTEGER NOT NULL,
        path             BLOB    NOT NULL,
        file_offset      INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL, -- unix seconds of the last commit of this row
        PRIMARY KEY (dev, ino)
    ) WITHOUT ROWID;
";

/// Version 2: the path the globs matched a file at (issue 17). NULL in rows written before;
/// for a kubelet file, its `/var/log/containers` link.
const ADD_FOUND_AT: &str = "ALTER TABLE checkpoints ADD COLUMN found_at BLOB;";

/// A row for the same (dev, ino) is overwritten whole: with the same fingerprint that moves
/// the offset; with another one the inode was reused and the old file's row must go.
const UPSERT: &str = "
    INSERT INTO checkpoints
        (dev, ino, fingerprint_len, fingerprint_hash, path, file_offset, updated_at, found_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
    ON CONFLICT (dev, ino) DO UPDATE SET
        fingerprint_len  = excluded.fingerprint_len,
        fingerprint_hash = excluded.fingerprint_hash,
        path             = excluded.path,
        file_offset      = excluded.file_offset,
        updated_at       = excluded.updated_at,
        found_at         = excluded.found_at
";

const LOAD: &str = "
    SELECT dev, ino, fingerprint_len, fingerprint_hash, path, file_offset, found_at
    FROM checkpoints
";

const FORGET: &str = "DELETE FROM checkpoints WHERE dev = ?1 AND ino = ?2";

const PURGE: &str = "DELETE FROM checkpoints WHERE updated_at < ?1";

/// How long a statement waits for another connection's lock before failing with a
/// retryable [`StoreError::Transient`]. Another process on the same file is an old pod
/// overlapping a new one during a rollout; a second is a fair wait within a commit interval.
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// SQLite result codes a later attempt may not meet: a lock another connection holds, a
/// full disk, an I/O error. The caller keeps its offsets and commits again next interval.
const RETRYABLE: &[ErrorCode] = &[
    ErrorCode::DatabaseBusy,
    ErrorCode::DatabaseLocked,
    ErrorCode::DiskFull,
    ErrorCode::SystemIoFailure,
];

/// Where to resume one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The file's identity; at most one checkpoint per id is stored.
    pub id: FileId,
    /// The file's first bytes when the checkpoint was made: a file found with this `id` whose
    /// start does not match is another file on a reused inode, and must not resume here.
    pub fingerprint: Fingerprint,
    /// The file's resolved path when last seen. For logs and for recognising a file found
    /// again; not part of its identity (rotation renames files).
    pub path: PathBuf,
    /// The offset just past the last line every sink acknowledged: reading resumes here.
    pub offset: u64,
    /// The path the globs matched the file at (for a kubelet file, its `/var/log/containers`
    /// link; for a rotated file, its original's): a file still at `path` but no longer
    /// matched there was excluded, not rotated. `None` in rows older than this field.
    pub found_at: Option<PathBuf>,
}

/// An open checkpoint database. Invariant: its schema is this build's version and it passed
/// SQLite's integrity check when opened.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Why the store could not do what was asked. Every variant names the database's path;
/// [`StoreError::is_retryable`] tells whether trying again later can succeed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database's directory does not exist. Not retryable: the deployment mounts it,
    /// and the store does not create it so that a missing mount is not papered over.
    #[error("state directory {} does not exist (it should be mounted)", .dir.display())]
    MissingDirectory {
        /// The missing directory.
        dir: PathBuf,
    },
    /// The database file cannot be opened for writing: no permission, a directory in its
    /// place, a read-only filesystem, a filesystem without WAL. Not retryable.
    #[error("cannot open state database {}: {source}", .path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The file is not an SQLite database, or is damaged. Not retryable: a person must move
    /// it aside (files are then read again from `tail.read_from`).
    #[error("state database {} is corrupt or not an SQLite database: {reason}", .path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's diagnosis.
        reason: String,
    },
    /// The database has a schema version this build does not know, from a newer shiplog.
    /// Not retryable: running an older shiplog on it could misread it.
    #[error(
        "state database {} has schema version {found}; this shiplog knows up to {supported}",
        .path.display(),
        supported = SCHEMA_VERSION
    )]
    UnknownSchema {
        /// The database file.
        path: PathBuf,
        /// The database's `user_version`.
        found: i64,
    },
    /// Failed for a reason that may pass: the database is locked by another process, the
    /// disk is full, an I/O error. Retryable: nothing was written, so the caller keeps its
    /// offsets and tries again next interval.
    #[error("state database {}: {operation} failed (retryable): {source}", .path.display())]
    Transient {
        /// The database file.
        path: PathBuf,
        /// What was being done: "commit", "load", ...
        operation: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// Any other SQLite failure. Not retryable: it is not known to pass.
    #[error("state database {}: {operation} failed: {source}", .path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done: "commit", "load", ...
        operation: &'static str,
        /// SQLite's error.
        source: rusqlite::Error,
    },
}

impl StoreError {
    /// Whether the same call may succeed later. A failed commit leaves the database as it
    /// was, so retrying it with the same (or newer) offsets is always safe.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Transient { .. } => true,
            StoreError::MissingDirectory { .. }
            | StoreError::Open { .. }
            | StoreError::Corrupt { .. }
            | StoreError::UnknownSchema { .. }
            | StoreError::Sqlite { .. } => false,
        }
    }

    /// Classifies an SQLite error by its result code.
    fn from_sqlite(path: &Path, operation: &'static str, source: rusqlite::Error) -> StoreError {
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt {
                path,
                reason: source.to_string(),
            },
            Some(code) if RETRYABLE.contains(&code) => StoreError::Transient {
                path,
                operation,
                source,
            },
            _ => StoreError::Sqlite {
                path,
                operation,
                source,
            },
        }
    }
}

/// `map_err` adapter: an SQLite error during `operation` on the database at `path`.
fn sqlite_error<'a>(
    path: &'a Path,
    operation: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + Copy + 'a {
    move |source| StoreError::from_sqlite(path, operation, source)
}

impl Store {
    /// Opens the database at `path`, creating it if absent, and brings its schema up to
    /// date. The directory must exist.
    ///
    /// The journal is WAL with `synchronous = NORMAL`: a commit is then durable once
    /// `commit` returns as far as a crash of the process goes, which is what at-least-once
    /// delivery needs; a power loss may undo the last commits (WAL is synced at
    /// checkpoints, not at every commit), which only makes lines repeat. It never corrupts
    /// the database, and commits stay cheap: no fsync per commit interval.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        check_directory(path)?;
        create_if_absent(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(sqlite_error(path, "open"))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.check_integrity()?;
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every stored checkpoint, in no particular order.
    pub fn load(&self) -> Result<Vec<Checkpoint>, StoreError> {
        let fail = sqlite_error(&self.path, "load");
        let mut statement = self.conn.prepare_cached(LOAD).map_err(fail)?;
        let rows = statement.query_map([], checkpoint_from_row).map_err(fail)?;
        rows.collect::<Result<_, _>>().map_err(fail)
    }

    /// Stores `checkpoints` in one transaction: all of them, or on error none. A checkpoint
    /// replaces the stored one with the same [`FileId`], whatever its fingerprint (a reused
    /// inode); within `checkpoints` the last one for an id wins. `now` is recorded as each
    /// row's commit time, which [`Store::purge_older_than`] looks at.
    pub fn commit(
        &mut self,
        checkpoints: &[Checkpoint],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let fail = sqlite_error(&self.path, "commit");
        let updated_at = unix_seconds(now);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        {
            let mut upsert = tx.prepare_cached(UPSERT).map_err(fail)?;
            for checkpoint in checkpoints {
                upsert_one(&mut upsert, checkpoint, updated_at).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    /// Removes the checkpoints of files gone for good, in one transaction; returns how many
    /// were stored. Ids with no checkpoint are not an error.
    pub fn forget(&mut self, ids: &[FileId]) -> Result<usize, StoreError> {
        let fail = sqlite_error(&self.path, "forget");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let mut removed = 0;
        {
            let mut delete = tx.prepare_cached(FORGET).map_err(fail)?;
            for id in ids {
                removed += delete
                    .execute(params![id.dev.cast_signed(), id.ino.cast_signed()])
                    .map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(removed)
    }

    /// Removes the checkpoints last committed more than `age` before `now` (whole seconds);
    /// returns how many. For files that vanished while nobody was watching: a file still
    /// followed must be committed again within `age`, or it loses its checkpoint.
    pub fn purge_older_than(
        &mut self,
        age: Duration,
        now: SystemTime,
    ) -> Result<usize, StoreError> {
        let age = i64::try_from(age.as_secs()).unwrap_or(i64::MAX);
        let cutoff = unix_seconds(now).saturating_sub(age);
        self.conn
            .execute(PURGE, [cutoff])
            .map_err(sqlite_error(&self.path, "purge"))
    }

    /// Closes the database, reporting what dropping it would not. Committed checkpoints are
    /// safe without it: dropping the store, or a crash, loses nothing committed.
    pub fn close(self) -> Result<(), StoreError> {
        let fail = sqlite_error(&self.path, "close");
        self.conn.close().map_err(|(_, error)| fail(error))
    }

    /// SQLite's quick check, which reads every page: a damaged database is refused at start
    /// rather than failing on some later commit. Cheap at the size of a checkpoint table.
    fn check_integrity(&self) -> Result<(), StoreError> {
        let verdict: String = self
            .conn
            .query_row("PRAGMA quick_check(1)", [], |row| row.get(0))
            .map_err(sqlite_error(&self.path, "integrity check"))?;
        if verdict == "ok" {
            return Ok(());
        }
        Err(StoreError::Corrupt {
            path: self.path.clone(),
            reason: verdict,
        })
    }

    /// WAL and `synchronous = NORMAL` (see [`Store::open`] for why), and the lock wait.
    fn configure(&self) -> Result<(), StoreError> {
        let fail = sqlite_error(&self.path, "configure");
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(fail)?;
        let mode: String = self
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            let reason = format!("journal_mode stayed {mode:?}: the filesystem cannot do WAL");
            return Err(StoreError::Open {
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::Unsupported, reason),
            });
        }
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)
    }

    /// Applies the migrations the database has not had, in one transaction.
    fn migrate(&mut self) -> Result<(), StoreError> {
        let fail = sqlite_error(&self.path, "migrate");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(fail)?;
        let Some(pending) = usize::try_from(found)
            .ok()
            .and_then(|applied| MIGRATIONS.get(applied..))
        else {
            return Err(StoreError::UnknownSchema {
                path: self.path.clone(),
                found,
            });
        };
        if pending.is_empty() {
            return Ok(());
        }
        for migration in pending {
            tx.execute_batch(migration).map_err(fail)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(fail)?;
        tx.commit().map_err(fail)
    }
}

/// A missing directory gets its own error naming it; other trouble with it (not a
/// directory, no permission) is reported by [`create_if_absent`] with the OS's reason.
fn check_directory(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match dir.try_exists() {
        Ok(false) => Err(StoreError::MissingDirectory {
            dir: dir.to_path_buf(),
        }),
        Ok(true) | Err(_) => Ok(()),
    }
}

/// Opens `path` for writing, creating it empty if absent (SQLite takes an empty file for an
/// empty database), and closes it again. This way an unwritable path is reported with the
/// OS's reason ("Permission denied", "Is a directory") rather than SQLite's "unable to open
/// database file". The handle is closed before SQLite opens the file: closing a second
/// descriptor of a file drops every POSIX lock the process holds on it, SQLite's included.
fn create_if_absent(path: &Path) -> Result<(), StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })
}

fn upsert_one(
    upsert: &mut rusqlite::CachedStatement<'_>,
    checkpoint: &Checkpoint,
    updated_at: i64,
) -> rusqlite::Result<usize> {
    upsert.execute(params![
        checkpoint.id.dev.cast_signed(),
        checkpoint.id.ino.cast_signed(),
        checkpoint.fingerprint.len,
        checkpoint.fingerprint.hash.cast_signed(),
        checkpoint.path.as_os_str().as_bytes(),
        checkpoint.offset.cast_signed(),
        updated_at,
        checkpoint
            .found_at
            .as_ref()
            .map(|p| p.as_os_str().as_bytes()),
    ])
}

/// The inverse of [`upsert_one`], for the columns of [`LOAD`].
fn checkpoint_from_row(row: &Row<'_>) -> rusqlite::Result<Checkpoint> {
    let unsigned = |index| row.get::<_, i64>(index).map(i64::cast_unsigned);
    Ok(Checkpoint {
        id: FileId {
            dev: unsigned(0)?,
            ino: unsigned(1)?,
        },
        fingerprint: Fingerprint {
            len: row.get(2)?,
            hash: unsigned(3)?,
        },
        path: PathBuf::from(OsString::from_vec(row.get(4)?)),
        offset: unsigned(5)?,
        found_at: row
            .get::<_, Option<Vec<u8>>>(6)?
            .map(|bytes| PathBuf::from(OsString::from_vec(bytes))),
    })
}

/// Whole seconds since the Unix epoch; a clock before 1970 reads as 0.
fn unix_seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
    })
}

#[cfg(test)]
mod tests;
