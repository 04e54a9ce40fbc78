use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::Path;

use proptest::prelude::*;

use super::*;

fn create(path: &Path, content: &[u8]) -> File {
    fs::write(path, content).expect("write");
    File::open(path).expect("open")
}

fn append(path: &Path, content: &[u8]) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(content).expect("append");
}

fn truncate(path: &Path, len: u64) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open for writing");
    file.set_len(len).expect("truncate");
}

fn id_of(file: &File) -> FileId {
    FileId::of(&file.metadata().expect("metadata"))
}

/// A kubelet CRI line, different for each `n` from its first bytes on.
fn cri_line(n: u32) -> Vec<u8> {
    format!("2024-05-0{n}T10:00:00.000000000Z stdout F line {n}\n").into_bytes()
}

#[test]
fn the_same_file_has_the_same_id_and_a_matching_fingerprint_through_every_handle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("0.log");
    let first = create(&path, &cri_line(1));
    let link = dir.path().join("link.log");
    std::os::unix::fs::symlink(&path, &link).expect("symlink");
    let second = File::open(&link).expect("open through the link");

    assert_eq!(id_of(&first), id_of(&second));
    let fingerprint = Fingerprint::read(&first).expect("fingerprint");
    assert_eq!(
        Fingerprint::read(&second).expect("fingerprint"),
        fingerprint
    );
    assert!(fingerprint.matches(&second).expect("match"));
}

#[test]
fn a_file_deleted_and_created_again_is_told_apart_even_when_it_gets_the_same_inode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("0.log");
    let old = create(&path, &cri_line(1));
    let (old_id, old_fingerprint) = (id_of(&old), Fingerprint::read(&old).expect("fp"));
    drop(old);
    fs::remove_file(&path).expect("delete");

    let new = create(&path, &cri_line(2));
    // The kernel may or may not hand out the same inode again; either way the old
    // checkpoint must not apply to the new file.
    let same_inode = id_of(&new) == old_id;
    assert!(
        !old_fingerprint.matches(&new).expect("match"),
        "the old fingerprint matched the new file (same inode: {same_inode})"
    );
}

#[test]
fn a_truncated_file_no_longer_matches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("0.log");
    let file = create(&path, &cri_line(1).repeat(10));
    let fingerprint = Fingerprint::read(&file).expect("fingerprint");
    assert_eq!(fingerprint.len, Fingerprint::MAX_LEN);

    truncate(&path, 10);
    assert!(
        !fingerprint.matches(&file).expect("match"),
        "shorter than len"
    );

    // copytruncate: emptied, then written again with new lines past the old length.
    truncate(&path, 0);
    append(&path, &cri_line(2).repeat(10));
    assert!(
        !fingerprint.matches(&file).expect("match"),
        "new first bytes"
    );
}

#[test]
fn appending_keeps_a_full_fingerprint_matching_and_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("0.log");
    let file = create(&path, &cri_line(1).repeat(10));
    let fingerprint = Fingerprint::read(&file).expect("fingerprint");

    append(&path, &cri_line(2));
    assert!(fingerprint.matches(&file).expect("match"));
    assert_eq!(Fingerprint::read(&file).expect("fingerprint"), fingerprint);
}

#[test]
fn a_short_files_fingerprint_matches_after_the_file_grows_and_a_new_read_covers_more() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("0.log");
    let file = create(&path, b"2024-05");
    let short = Fingerprint::read(&file).expect("fingerprint");
    assert_eq!(short.len, 7);

    append(&path, b"-01T10:00:00Z stdout F hello\n");
    assert!(short.matches(&file).expect("match"));
    let longer = Fingerprint::read(&file).expect("fingerprint");
    assert_eq!(longer.len, 36);
    assert!(longer.matches(&file).expect("match"));
}

#[test]
fn an_empty_files_fingerprint_has_no_length_and_matches_any_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = create(&dir.path().join("empty.log"), b"");
    let fingerprint = Fingerprint::read(&empty).expect("fingerprint");
    assert_eq!(fingerprint.len, 0);

    let other = create(&dir.path().join("other.log"), &cri_line(1));
    assert!(fingerprint.matches(&empty).expect("match"));
    assert!(fingerprint.matches(&other).expect("match"));
}

#[test]
fn reading_and_matching_a_fingerprint_leave_the_file_position_where_it_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut file = create(&dir.path().join("0.log"), &cri_line(1).repeat(10));
    let mut start = [0u8; 5];
    file.read_exact(&mut start).expect("read");

    let fingerprint = Fingerprint::read(&file).expect("fingerprint");
    assert!(fingerprint.matches(&file).expect("match"));
    assert_eq!(file.stream_position().expect("position"), 5);
}

#[test]
fn a_fingerprint_no_read_can_make_matches_no_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = create(&dir.path().join("0.log"), &cri_line(1).repeat(10));
    let full = Fingerprint::read(&file).expect("fingerprint");
    let too_long = Fingerprint {
        len: Fingerprint::MAX_LEN + 1,
        ..full
    };
    assert!(!too_long.matches(&file).expect("match"));
}

/// The values FNV's authors publish (`fnv1a64` test vectors): if these change, every stored
/// fingerprint stops matching and every file is read again from its start.
#[test]
fn the_hash_is_fnv1a_64_so_stored_fingerprints_stay_valid_across_releases() {
    let cases: &[(&[u8], u64)] = &[
        (b"", 0xcbf2_9ce4_8422_2325),
        (b"a", 0xaf63_dc4c_8601_ec8c),
        (b"foobar", 0x8594_4171_f739_67e8),
    ];
    for &(bytes, hash) in cases {
        assert_eq!(
            fnv1a_64(bytes),
            hash,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

proptest! {
    /// Only the first MAX_LEN bytes count, and whatever follows them never breaks a match.
    #[test]
    fn a_fingerprint_read_from_a_file_matches_it_and_every_longer_version_of_it(
        content in proptest::collection::vec(any::<u8>(), 0..400),
        appended in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("0.log");
        let file = create(&path, &content);
        let fingerprint = Fingerprint::read(&file).expect("fingerprint");
        prop_assert_eq!(fingerprint, Fingerprint::of(&content));
        prop_assert_eq!(fingerprint.len as usize, content.len().min(MAX_LEN));

        append(&path, &appended);
        prop_assert!(fingerprint.matches(&file).expect("match"));
    }
}
