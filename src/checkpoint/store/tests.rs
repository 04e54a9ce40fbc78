use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::UNIX_EPOCH;

use proptest::collection::vec;
use proptest::prelude::*;
use rusqlite::ffi;
use tempfile::TempDir;

use super::*;

/// A fresh directory and the database path inside it (not created yet).
fn new_db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("state.db");
    (dir, path)
}

fn checkpoint(ino: u64, first_bytes: &str, offset: u64) -> Checkpoint {
    Checkpoint {
        id: FileId { dev: 2049, ino },
        fingerprint: Fingerprint::of(first_bytes.as_bytes()),
        path: PathBuf::from(format!("/var/log/pods/ns_pod_uid/app/{ino}.log")),
        offset,
        found_at: Some(PathBuf::from(format!(
            "/var/log/containers/pod_ns_app-{ino}.log"
        ))),
    }
}

fn at(unix_seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix_seconds)
}

fn load_sorted(store: &Store) -> Vec<Checkpoint> {
    let mut checkpoints = store.load().expect("load");
    checkpoints.sort_by_key(|checkpoint| checkpoint.id);
    checkpoints
}

fn open_error(path: &Path) -> StoreError {
    match Store::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(error) => error,
    }
}

#[test]
fn committed_checkpoints_load_back_unchanged_with_non_utf8_paths_and_full_range_numbers() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    let odd = Checkpoint {
        id: FileId {
            dev: u64::MAX,
            ino: u64::MAX - 1,
        },
        fingerprint: Fingerprint {
            len: Fingerprint::MAX_LEN,
            hash: u64::MAX,
        },
        path: PathBuf::from(OsString::from_vec(b"/var/log/\xff\xfe.log".to_vec())),
        offset: u64::MAX,
        found_at: Some(PathBuf::from(OsString::from_vec(b"/var/\xfe.log".to_vec()))),
    };
    let written = vec![checkpoint(1, "2024-05-01T10:00:00Z stdout F a", 4096), odd];

    store.commit(&written, at(1_700_000_000)).expect("commit");
    assert_eq!(load_sorted(&store), written);
}

#[test]
fn a_commit_of_three_is_all_there_after_a_reopen() {
    let (_dir, path) = new_db();
    let written = vec![
        checkpoint(1, "a", 10),
        checkpoint(2, "b", 20),
        checkpoint(3, "c", 30),
    ];
    let mut store = Store::open(&path).expect("open");
    store.commit(&written, at(100)).expect("commit");
    store.close().expect("close");

    assert_eq!(load_sorted(&Store::open(&path).expect("reopen")), written);
}

#[test]
fn a_new_offset_for_the_same_file_replaces_the_old_one() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&[checkpoint(1, "a", 10)], at(100))
        .expect("commit");
    store
        .commit(&[checkpoint(1, "a", 25)], at(101))
        .expect("commit");

    assert_eq!(load_sorted(&store), vec![checkpoint(1, "a", 25)]);
}

/// fluent/fluent-bit#1875: a new file on a reused inode must not keep the old file's offset.
#[test]
fn a_reused_inode_with_another_fingerprint_replaces_the_old_files_checkpoint() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&[checkpoint(7, "old file", 90_000)], at(100))
        .expect("commit");
    let reused = Checkpoint {
        path: PathBuf::from("/var/log/pods/ns_other_uid/app/0.log"),
        ..checkpoint(7, "new file", 120)
    };
    store
        .commit(std::slice::from_ref(&reused), at(101))
        .expect("commit");

    assert_eq!(load_sorted(&store), vec![reused]);
}

#[test]
fn within_one_commit_the_last_checkpoint_for_a_file_wins() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    let batch = [
        checkpoint(1, "a", 10),
        checkpoint(2, "b", 5),
        checkpoint(1, "a", 30),
    ];
    store.commit(&batch, at(100)).expect("commit");

    assert_eq!(
        load_sorted(&store),
        vec![checkpoint(1, "a", 30), checkpoint(2, "b", 5)]
    );
}

#[test]
fn forgotten_files_lose_their_checkpoints_and_the_others_keep_theirs() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    let written = [
        checkpoint(1, "a", 10),
        checkpoint(2, "b", 20),
        checkpoint(3, "c", 30),
    ];
    store.commit(&written, at(100)).expect("commit");

    let never_stored = FileId { dev: 9, ino: 9 };
    let removed = store
        .forget(&[written[0].id, written[2].id, never_stored])
        .expect("forget");
    assert_eq!(removed, 2);
    assert_eq!(load_sorted(&store), vec![checkpoint(2, "b", 20)]);
}

#[test]
fn purge_removes_only_checkpoints_not_committed_within_the_age() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(
            &[checkpoint(1, "stale", 1), checkpoint(2, "again", 2)],
            at(1_000),
        )
        .expect("commit");
    store
        .commit(&[checkpoint(3, "at the cutoff", 3)], at(1_400))
        .expect("commit");
    store
        .commit(&[checkpoint(4, "recent", 4)], at(1_500))
        .expect("commit");
    store
        .commit(&[checkpoint(2, "again", 20)], at(1_900))
        .expect("commit");

    let removed = store
        .purge_older_than(Duration::from_secs(600), at(2_000))
        .expect("purge");
    assert_eq!(removed, 1);
    assert_eq!(
        load_sorted(&store),
        vec![
            checkpoint(2, "again", 20),
            checkpoint(3, "at the cutoff", 3),
            checkpoint(4, "recent", 4)
        ]
    );
}

#[test]
fn purge_with_an_age_longer_than_the_clock_removes_nothing() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&[checkpoint(1, "a", 1)], at(0))
        .expect("commit");

    let removed = store
        .purge_older_than(Duration::from_secs(3_600), at(10))
        .expect("purge");
    assert_eq!(removed, 0);
    assert_eq!(store.load().expect("load").len(), 1);
}

#[test]
fn the_last_commit_survives_dropping_the_store_without_closing_it() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&[checkpoint(1, "a", 10)], at(100))
        .expect("commit");
    store
        .commit(&[checkpoint(1, "a", 20)], at(101))
        .expect("commit");
    drop(store);

    assert_eq!(
        load_sorted(&Store::open(&path).expect("reopen")),
        vec![checkpoint(1, "a", 20)]
    );
}

/// A crash runs no destructor: the connection is never closed, and the commit exists only
/// in the WAL file, which the next open must replay.
#[test]
fn the_last_commit_survives_a_crash_that_never_closes_the_database() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&[checkpoint(1, "a", 10)], at(100))
        .expect("commit");
    std::mem::forget(store);
    let wal = fs::metadata(path.with_extension("db-wal")).expect("the WAL file");
    assert!(wal.len() > 0, "the commit is in the WAL");

    assert_eq!(
        load_sorted(&Store::open(&path).expect("reopen")),
        vec![checkpoint(1, "a", 10)]
    );
}

#[test]
fn a_new_database_is_in_wal_mode_with_normal_sync_and_the_current_schema() {
    let (_dir, path) = new_db();
    let store = Store::open(&path).expect("open");
    let pragma = |name: &str| -> String {
        store
            .conn
            .pragma_query_value(None, name, |row| row.get::<_, rusqlite::types::Value>(0))
            .map(|value| format!("{value:?}"))
            .expect("pragma")
    };

    assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
    assert_eq!(pragma("synchronous"), "Integer(1)", "1 is NORMAL");
    assert_eq!(pragma("user_version"), format!("Integer({SCHEMA_VERSION})"));
}

#[test]
fn a_version_1_database_is_migrated_keeping_its_rows_without_a_found_at_path() {
    let (_dir, path) = new_db();
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(CREATE_CHECKPOINTS)
            .expect("version 1 schema");
        conn.pragma_update(None, "user_version", 1)
            .expect("version");
        conn.execute(
            "INSERT INTO checkpoints VALUES (2049, 7, 3, 42, CAST('/var/log/a.log' AS BLOB), 10, 0)",
            [],
        )
        .expect("a version 1 row");
    }
    let mut store = Store::open(&path).expect("open");
    let old = Checkpoint {
        id: FileId { dev: 2049, ino: 7 },
        fingerprint: Fingerprint { len: 3, hash: 42 },
        path: PathBuf::from("/var/log/a.log"),
        offset: 10,
        found_at: None,
    };
    assert_eq!(load_sorted(&store), vec![old]);
    let new = checkpoint(8, "new", 5);
    store
        .commit(std::slice::from_ref(&new), at(1))
        .expect("commit");
    drop(store);
    let store = Store::open(&path).expect("open again");
    assert_eq!(load_sorted(&store)[1], new, "found_at round-trips");
}

#[test]
fn a_text_file_is_refused_as_not_a_database_naming_its_path() {
    let (_dir, path) = new_db();
    fs::write(&path, "this is a log line, not a database\n".repeat(100)).expect("write");

    let error = open_error(&path);
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "state database {} is corrupt or not an SQLite database: file is not a database",
            path.display()
        )
    );
}

#[test]
fn a_directory_in_place_of_the_database_is_refused_naming_its_path() {
    let (_dir, path) = new_db();
    fs::create_dir(&path).expect("mkdir");

    let error = open_error(&path);
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "cannot open state database {}: Is a directory (os error 21)",
            path.display()
        )
    );
}

#[test]
fn a_missing_state_directory_is_refused_naming_the_directory_and_not_created() {
    let (dir, _) = new_db();
    let missing = dir.path().join("not-mounted");

    let error = open_error(&missing.join("state.db"));
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "state directory {} does not exist (it should be mounted)",
            missing.display()
        )
    );
    assert!(!missing.exists());
}

#[test]
fn a_read_only_state_directory_is_refused_naming_the_database() {
    let (dir, _) = new_db();
    let read_only = dir.path().join("state");
    fs::create_dir(&read_only).expect("mkdir");
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).expect("chmod");
    if fs::File::create(read_only.join("probe")).is_ok() {
        // Permission bits do not bind this process (root, as in CI): run this test again
        // in a process without the capability that overrides them.
        return rerun_without_dac_override(
            "a_read_only_state_directory_is_refused_naming_the_database",
        );
    }
    let path = read_only.join("state.db");

    let error = open_error(&path);
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "cannot open state database {}: Permission denied (os error 13)",
            path.display()
        )
    );
}

/// Runs the test named `test` (in this module) again in a child process whose capabilities
/// lack `CAP_DAC_OVERRIDE` and `CAP_DAC_READ_SEARCH`, so file permissions apply to it even as
/// root. Needs `setpriv` (util-linux).
fn rerun_without_dac_override(test: &str) {
    let module = module_path!()
        .split_once("::")
        .map_or("", |(_crate, module)| module);
    let output = std::process::Command::new("setpriv")
        .args([
            "--inh-caps=-all",
            "--bounding-set=-dac_override,-dac_read_search",
        ])
        .arg(std::env::current_exe().expect("this test binary"))
        .args([&format!("{module}::{test}"), "--exact", "--test-threads=1"])
        .output()
        .expect("run setpriv");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "without CAP_DAC_OVERRIDE: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_damaged_database_is_refused_at_open_naming_its_path() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    let many: Vec<_> = (0..500).map(|ino| checkpoint(ino, "line", ino)).collect();
    store.commit(&many, at(100)).expect("commit");
    store.close().expect("close");
    // Page 2 onwards hold the table; overwrite a page of it with garbage.
    let mut bytes = fs::read(&path).expect("read");
    assert!(bytes.len() > 3 * 4096, "the table spans several pages");
    bytes[4096..8192].fill(0xA5);
    fs::write(&path, bytes).expect("write");

    let error = open_error(&path);
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
    assert!(!error.is_retryable());
    let message = error.to_string();
    let expected = format!("state database {} is corrupt", path.display());
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn a_database_from_a_newer_shiplog_is_refused() {
    let (_dir, path) = new_db();
    Store::open(&path).expect("open").close().expect("close");
    let newer = SCHEMA_VERSION + 1;
    let conn = Connection::open(&path).expect("open directly");
    conn.pragma_update(None, "user_version", newer)
        .expect("pragma");
    conn.close().expect("close");

    let error = open_error(&path);
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "state database {} has schema version {newer}; this shiplog knows up to {SCHEMA_VERSION}",
            path.display()
        )
    );
}

#[test]
fn a_commit_blocked_by_another_writer_is_retryable_and_the_next_one_succeeds() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store.conn.busy_timeout(Duration::ZERO).expect("no waiting");
    let other = Connection::open(&path).expect("second connection");
    other.execute_batch("BEGIN IMMEDIATE").expect("lock");

    let error = store
        .commit(&[checkpoint(1, "a", 10)], at(100))
        .expect_err("locked");
    assert!(matches!(error, StoreError::Transient { .. }), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(
        error.to_string(),
        format!(
            "state database {}: commit failed (retryable): database is locked",
            path.display()
        )
    );

    other.execute_batch("ROLLBACK").expect("unlock");
    store
        .commit(&[checkpoint(1, "a", 10)], at(101))
        .expect("retry");
    assert_eq!(load_sorted(&store), vec![checkpoint(1, "a", 10)]);
}

#[test]
fn a_full_disk_is_retryable_and_the_failed_commit_writes_nothing() {
    let (_dir, path) = new_db();
    let mut store = Store::open(&path).expect("open");
    store
        .commit(&[checkpoint(1, "a", 10)], at(100))
        .expect("commit");
    let pages: i64 = store
        .conn
        .pragma_query_value(None, "page_count", |row| row.get(0))
        .expect("page count");
    store
        .conn
        .pragma_update(None, "max_page_count", pages)
        .expect("cap the size");

    let many: Vec<_> = (2..2_000).map(|ino| checkpoint(ino, "b", ino)).collect();
    let error = store.commit(&many, at(101)).expect_err("full");
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        error.to_string().contains("database or disk is full"),
        "{error}"
    );
    assert_eq!(load_sorted(&store), vec![checkpoint(1, "a", 10)]);
}

#[test]
fn sqlite_errors_are_retryable_only_for_locks_full_disks_and_io() {
    let cases = [
        (ffi::SQLITE_BUSY, true),
        (ffi::SQLITE_LOCKED, true),
        (ffi::SQLITE_FULL, true),
        (ffi::SQLITE_IOERR, true),
        (ffi::SQLITE_CORRUPT, false),
        (ffi::SQLITE_NOTADB, false),
        (ffi::SQLITE_READONLY, false),
        (ffi::SQLITE_CANTOPEN, false),
        (ffi::SQLITE_CONSTRAINT, false),
    ];
    for (code, retryable) in cases {
        let source = rusqlite::Error::SqliteFailure(ffi::Error::new(code), None);
        let error = StoreError::from_sqlite(Path::new("/state.db"), "commit", source);
        assert_eq!(error.is_retryable(), retryable, "code {code}: {error:?}");
        assert!(error.to_string().contains("/state.db"), "{error}");
    }
}

/// What a store holds, as a map: the reference the store must agree with.
#[derive(Default)]
struct Model {
    rows: HashMap<FileId, (Checkpoint, i64)>,
}

#[derive(Debug, Clone)]
enum Op {
    Commit(Vec<Checkpoint>, u64),
    Forget(Vec<FileId>),
    Purge { age: u64, now: u64 },
}

impl Model {
    fn apply(&mut self, op: &Op) -> usize {
        match op {
            Op::Commit(checkpoints, now) => {
                for checkpoint in checkpoints {
                    let row = (checkpoint.clone(), unix_seconds(at(*now)));
                    self.rows.insert(checkpoint.id, row);
                }
                0
            }
            Op::Forget(ids) => ids
                .iter()
                .filter(|id| self.rows.remove(id).is_some())
                .count(),
            Op::Purge { age, now } => {
                let cutoff = now.saturating_sub(*age).cast_signed();
                let before = self.rows.len();
                self.rows.retain(|_, (_, updated_at)| *updated_at >= cutoff);
                before - self.rows.len()
            }
        }
    }

    fn checkpoints(&self) -> Vec<Checkpoint> {
        let mut checkpoints: Vec<_> = self.rows.values().map(|(c, _)| c.clone()).collect();
        checkpoints.sort_by_key(|checkpoint| checkpoint.id);
        checkpoints
    }
}

fn apply(store: &mut Store, op: &Op) -> usize {
    match op {
        Op::Commit(checkpoints, now) => store.commit(checkpoints, at(*now)).map(|()| 0),
        Op::Forget(ids) => store.forget(ids),
        Op::Purge { age, now } => store.purge_older_than(Duration::from_secs(*age), at(*now)),
    }
    .expect("store operation")
}

/// Few ids, so operations collide; devices at both ends of the range, so the signed
/// storage of unsigned numbers is exercised.
fn any_file_id() -> impl Strategy<Value = FileId> {
    (prop_oneof![Just(0), Just(u64::MAX)], 0..4u64).prop_map(|(dev, ino)| FileId { dev, ino })
}

fn any_checkpoint() -> impl Strategy<Value = Checkpoint> {
    let first_bytes = vec(any::<u8>(), 0..3);
    let path = vec(any::<u8>(), 1..6);
    let found_at = proptest::option::of(vec(any::<u8>(), 1..6));
    (any_file_id(), first_bytes, path, any::<u64>(), found_at).prop_map(
        |(id, first, path, offset, found_at)| Checkpoint {
            id,
            fingerprint: Fingerprint::of(&first),
            path: PathBuf::from(OsString::from_vec(path)),
            offset,
            found_at: found_at.map(|bytes| PathBuf::from(OsString::from_vec(bytes))),
        },
    )
}

fn any_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (vec(any_checkpoint(), 0..4), 0..100u64).prop_map(|(c, now)| Op::Commit(c, now)),
        1 => vec(any_file_id(), 0..3).prop_map(Op::Forget),
        1 => (0..50u64, 0..100u64).prop_map(|(age, now)| Op::Purge { age, now }),
    ]
}

proptest! {
    #[test]
    fn any_sequence_of_commits_forgets_and_purges_matches_a_map_after_a_reopen(
        ops in vec(any_op(), 0..12),
    ) {
        let (_dir, path) = new_db();
        let mut store = Store::open(&path).expect("open");
        let mut model = Model::default();
        for op in &ops {
            prop_assert_eq!(apply(&mut store, op), model.apply(op), "{:?}", op);
        }
        drop(store);

        let reopened = Store::open(&path).expect("reopen");
        prop_assert_eq!(load_sorted(&reopened), model.checkpoints());
    }
}
