use std::fs::OpenOptions;
use std::io::Write;

use proptest::prelude::*;

use super::*;

fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(content).expect("write");
    file
}

/// Reads everything: complete lines, then whatever follows the last newline.
fn read_all(reader: &mut LineReader) -> Vec<Lines> {
    let mut out = Vec::new();
    while let Some(lines) = reader.read_lines().expect("read") {
        out.push(lines);
    }
    out.extend(reader.take_unterminated().expect("read"));
    out
}

#[test]
fn lines_come_with_their_offsets_and_the_unterminated_end_waits() {
    let file = file_with(b"one\ntwo\nthr");
    let mut reader = LineReader::open(file.path(), 0, 1024).expect("open");
    let lines = reader.read_lines().expect("read").expect("two lines");
    assert_eq!(
        (lines.data.as_slice(), lines.start, lines.end),
        (&b"one\ntwo\n"[..], 0, 8)
    );
    assert_eq!(lines.end_kind, LineEnd::Newline);
    assert_eq!(
        reader.read_lines().expect("read"),
        None,
        "an unfinished line waits"
    );
    assert_eq!(reader.offset(), 8);

    let mut writer = OpenOptions::new()
        .append(true)
        .open(file.path())
        .expect("open");
    writer.write_all(b"ee\nfour").expect("append");
    let lines = reader
        .read_lines()
        .expect("read")
        .expect("the finished line");
    assert_eq!(
        (lines.data.as_slice(), lines.start, lines.end),
        (&b"three\n"[..], 8, 14)
    );
    assert_eq!(reader.read_lines().expect("read"), None);

    let rest = reader
        .take_unterminated()
        .expect("read")
        .expect("pending bytes");
    assert_eq!(
        (rest.data.as_slice(), rest.end_kind),
        (&b"four"[..], LineEnd::EndOfFile)
    );
    assert_eq!(reader.take_unterminated().expect("read"), None);
}

#[test]
fn reading_resumes_at_an_offset() {
    let file = file_with(b"one\ntwo\n");
    let mut reader = LineReader::open(file.path(), 4, 1024).expect("open");
    let lines = reader.read_lines().expect("read").expect("a line");
    assert_eq!(
        (lines.data.as_slice(), lines.start, lines.end),
        (&b"two\n"[..], 4, 8)
    );
}

#[test]
fn a_line_with_no_newline_within_the_limit_is_cut_into_pieces_in_order() {
    let file = file_with(b"abcdefghij");
    let mut reader = LineReader::open(file.path(), 0, 4).expect("open");
    let chunks = read_all(&mut reader);
    let summary: Vec<_> = chunks
        .iter()
        .map(|c| {
            (
                String::from_utf8_lossy(&c.data).into_owned(),
                c.end_kind,
                c.continued,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("abcd".to_owned(), LineEnd::Cut, false),
            ("efgh".to_owned(), LineEnd::Cut, true),
            ("ij".to_owned(), LineEnd::EndOfFile, true),
        ]
    );
}

#[test]
fn an_unfinished_line_is_read_again_from_the_file_when_it_ends() {
    let file = file_with(b"one\nan unfinish");
    let mut reader = LineReader::open(file.path(), 0, 1024).expect("open");
    let lines = reader.read_lines().expect("read").expect("a line");
    assert_eq!(lines.data, b"one\n");
    assert_eq!(reader.read_lines().expect("read"), None);
    assert_eq!(reader.read_position(), 15, "the unfinished bytes are known");
    assert_eq!(reader.offset(), 4, "and not returned yet");
    let mut writer = OpenOptions::new()
        .append(true)
        .open(file.path())
        .expect("open");
    writer.write_all(b"ed line\n").expect("append");
    let lines = reader.read_lines().expect("read").expect("the line");
    assert_eq!(
        (lines.data.as_slice(), lines.start, lines.end),
        (&b"an unfinished line\n"[..], 4, 23)
    );
}

/// A file written in `pieces`, a read (or none) after each one: what any writer and any
/// timing of reads can produce.
fn read_while_written(pieces: &[(Vec<u8>, bool)], max_pending: usize) -> Vec<Lines> {
    let file = file_with(b"");
    let mut writer = OpenOptions::new()
        .append(true)
        .open(file.path())
        .expect("open");
    let mut reader = LineReader::open(file.path(), 0, max_pending).expect("open");
    let mut chunks = Vec::new();
    for (piece, read_now) in pieces {
        writer.write_all(piece).expect("append");
        if *read_now {
            while let Some(lines) = reader.read_lines().expect("read") {
                chunks.push(lines);
            }
        }
    }
    chunks.extend(read_all(&mut reader));
    chunks
}

proptest! {
    #[test]
    fn a_file_read_while_it_is_written_comes_out_exactly_in_the_same_chunks_kinds(
        pieces in proptest::collection::vec(
            (proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'x'), any::<u8>()], 0..300),
             any::<bool>()),
            0..20,
        ),
        max_line_bytes in 1usize..200,
    ) {
        let chunks = read_while_written(&pieces, max_line_bytes);
        let content: Vec<u8> = pieces.iter().flat_map(|(piece, _)| piece.clone()).collect();
        let mut expected_start = 0;
        let mut joined = Vec::new();
        for chunk in &chunks {
            prop_assert_eq!(chunk.start, expected_start);
            prop_assert_eq!(chunk.end, chunk.start + chunk.data.len() as u64);
            expected_start = chunk.end;
            match chunk.end_kind {
                LineEnd::Newline => prop_assert_eq!(chunk.data.last(), Some(&b'\n')),
                LineEnd::Cut => {
                    prop_assert_eq!(chunk.data.len(), max_line_bytes);
                    prop_assert!(!chunk.data.contains(&b'\n'));
                }
                LineEnd::EndOfFile => prop_assert!(!chunk.data.contains(&b'\n')),
            }
            joined.extend_from_slice(&chunk.data);
        }
        prop_assert_eq!(joined, content);
    }

    #[test]
    fn the_chunks_are_the_file_exactly(
        content in proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..4000),
        max_line_bytes in 1usize..300,
    ) {
        let file = file_with(&content);
        let mut reader = LineReader::open(file.path(), 0, max_line_bytes).expect("open");
        let chunks = read_all(&mut reader);
        let mut expected_start = 0;
        let mut joined = Vec::new();
        for chunk in &chunks {
            prop_assert_eq!(chunk.start, expected_start);
            prop_assert_eq!(chunk.end, chunk.start + chunk.data.len() as u64);
            expected_start = chunk.end;
            match chunk.end_kind {
                LineEnd::Newline => prop_assert_eq!(chunk.data.last(), Some(&b'\n')),
                LineEnd::Cut => {
                    prop_assert_eq!(chunk.data.len(), max_line_bytes);
                    prop_assert!(!chunk.data.contains(&b'\n'));
                }
                LineEnd::EndOfFile => prop_assert!(!chunk.data.contains(&b'\n')),
            }
            joined.extend_from_slice(&chunk.data);
        }
        prop_assert_eq!(joined, content);
    }
}
