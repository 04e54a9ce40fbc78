//! Tests of [`Reassembler`]: worked examples, then a model test over random splits.

use proptest::prelude::*;

use super::*;
use crate::decode::{Format, cri, docker, strategies};

const T1: &str = "2024-01-01T00:00:01.000000001Z";
const T2: &str = "2024-01-01T00:00:02.000000002Z";
const T3: &str = "2024-01-01T00:00:03.000000003Z";
const T4: &str = "2024-01-01T00:00:04.000000004Z";
const T5: &str = "2024-01-01T00:00:05.000000005Z";

/// An emitted message, owned so that a test can keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Out {
    time: String,
    stream: Stream,
    bytes: Vec<u8>,
    truncated: bool,
    partial: bool,
}

impl Out {
    fn whole(time: &str, stream: Stream, bytes: impl AsRef<[u8]>) -> Self {
        Out {
            time: time.to_owned(),
            stream,
            bytes: bytes.as_ref().to_vec(),
            truncated: false,
            partial: false,
        }
    }

    fn truncated(self) -> Self {
        Out {
            truncated: true,
            ..self
        }
    }

    fn partial(self) -> Self {
        Out {
            partial: true,
            ..self
        }
    }
}

impl From<Message<'_>> for Out {
    fn from(message: Message<'_>) -> Self {
        Out {
            time: message.time.into_owned(),
            stream: message.stream,
            bytes: message.bytes.into_owned(),
            truncated: message.truncated,
            partial: message.partial,
        }
    }
}

/// A CRI line.
fn cri(time: &str, stream: Stream, tag: &str, message: impl AsRef<[u8]>) -> Vec<u8> {
    let mut line = format!("{time} {} {tag} ", stream.as_str()).into_bytes();
    line.extend_from_slice(message.as_ref());
    line
}

/// A docker json-file line; `log` carries its own `\n` when it ends the line.
fn docker(time: &str, stream: Stream, log: &str) -> Vec<u8> {
    let entry = serde_json::json!({"log": log, "stream": stream.as_str(), "time": time});
    entry.to_string().into_bytes()
}

/// Decodes `line`, failing the test if it does not decode.
fn decoded(format: Format, line: &[u8]) -> Decoded<'_> {
    match format.decode(line) {
        Ok(decoded) => decoded,
        Err(err) => panic!("{err}: {}", String::from_utf8_lossy(line)),
    }
}

/// Pushes `line` and returns what it emitted.
fn push(reassembler: &mut Reassembler, format: Format, line: &[u8]) -> Vec<Out> {
    let mut out = Vec::new();
    reassembler.push(decoded(format, line), &mut |message| {
        out.push(message.into())
    });
    out
}

/// Pushes every line and returns everything emitted.
fn push_all(reassembler: &mut Reassembler, format: Format, lines: &[Vec<u8>]) -> Vec<Out> {
    lines
        .iter()
        .flat_map(|line| push(reassembler, format, line))
        .collect()
}

fn flush(reassembler: &mut Reassembler) -> Vec<Out> {
    let mut out = Vec::new();
    reassembler.flush(&mut |message| out.push(message.into()));
    out
}

#[test]
fn a_whole_line_with_nothing_pending_is_emitted_without_copying() {
    let mut reassembler = Reassembler::new(1024);
    let line = cri(T1, Stream::Stdout, "F", "hello");
    let mut seen = Vec::new();
    reassembler.push(decoded(Format::Cri, &line), &mut |message| {
        assert!(matches!(message.bytes, Cow::Borrowed(_)), "{message:?}");
        assert!(matches!(message.time, Cow::Borrowed(_)), "{message:?}");
        seen.push(Out::from(message));
    });
    assert_eq!(seen, [Out::whole(T1, Stream::Stdout, "hello")]);
    assert!(reassembler.is_empty());
}

#[test]
fn every_whole_valid_case_comes_out_as_it_was_decoded() {
    let cases = docker::valid_cases()
        .into_iter()
        .map(|case| (Format::Docker, case))
        .chain(
            cri::valid_cases()
                .into_iter()
                .map(|case| (Format::Cri, case)),
        );
    for (format, (line, expected)) in cases {
        let mut reassembler = Reassembler::new(1024);
        let mut out = push(&mut reassembler, format, line);
        out.extend(flush(&mut reassembler));
        let expected = Out {
            partial: expected.partial,
            ..Out::whole(&expected.time, expected.stream, &expected.message)
        };
        assert_eq!(out, [expected], "{}", String::from_utf8_lossy(line));
    }
}

#[test]
fn docker_entries_split_every_16_kib_are_joined_into_one_line() {
    let piece = |c: &str| c.repeat(16 * 1024);
    let lines = [
        docker(T1, Stream::Stdout, &piece("a")),
        docker(T2, Stream::Stdout, &piece("b")),
        docker(T3, Stream::Stdout, &piece("c")),
        docker(T4, Stream::Stdout, "the end\n"),
    ];
    let mut reassembler = Reassembler::new(256 * 1024);
    let out = push_all(&mut reassembler, Format::Docker, &lines);
    let whole = [piece("a"), piece("b"), piece("c"), "the end".to_owned()].concat();
    assert_eq!(out, [Out::whole(T1, Stream::Stdout, whole)]);
    assert!(reassembler.is_empty());
}

#[test]
fn cri_partial_pieces_are_joined_with_the_full_piece_that_ends_them() {
    let lines = [
        cri(T1, Stream::Stdout, "P", "first "),
        cri(T2, Stream::Stdout, "P", "second "),
        cri(T3, Stream::Stdout, "F", "last"),
    ];
    let mut reassembler = Reassembler::new(1024);
    let out = push_all(&mut reassembler, Format::Cri, &lines);
    assert_eq!(out, [Out::whole(T1, Stream::Stdout, "first second last")]);
    assert!(reassembler.is_empty());
}

#[test]
fn an_empty_full_piece_ends_a_cri_line() {
    let lines = [
        cri(T1, Stream::Stderr, "P", "all of it"),
        cri(T2, Stream::Stderr, "F", ""),
    ];
    let mut reassembler = Reassembler::new(1024);
    let out = push_all(&mut reassembler, Format::Cri, &lines);
    assert_eq!(out, [Out::whole(T1, Stream::Stderr, "all of it")]);
}

#[test]
fn interleaved_stdout_and_stderr_pieces_are_joined_per_stream() {
    let lines = [
        cri(T1, Stream::Stdout, "P", "out-1 "),
        cri(T2, Stream::Stderr, "P", "err-1 "),
        cri(T3, Stream::Stdout, "P", "out-2 "),
        cri(T4, Stream::Stderr, "F", "err-2"),
        cri(T5, Stream::Stdout, "F", "out-3"),
    ];
    let mut reassembler = Reassembler::new(1024);
    let out = push_all(&mut reassembler, Format::Cri, &lines);
    assert_eq!(
        out,
        [
            Out::whole(T2, Stream::Stderr, "err-1 err-2"),
            Out::whole(T1, Stream::Stdout, "out-1 out-2 out-3"),
        ]
    );
}

#[test]
fn a_whole_line_on_one_stream_goes_out_while_the_other_stream_waits() {
    let mut reassembler = Reassembler::new(1024);
    let docker_piece = docker(T1, Stream::Stdout, "waiting ");
    assert_eq!(push(&mut reassembler, Format::Docker, &docker_piece), []);
    let whole = docker(T2, Stream::Stderr, "meanwhile\n");
    assert_eq!(
        push(&mut reassembler, Format::Docker, &whole),
        [Out::whole(T2, Stream::Stderr, "meanwhile")]
    );
    let end = docker(T3, Stream::Stdout, "done\n");
    assert_eq!(
        push(&mut reassembler, Format::Docker, &end),
        [Out::whole(T1, Stream::Stdout, "waiting done")]
    );
}

#[test]
fn a_partial_line_left_at_the_end_is_flushed_flagged_partial() {
    let mut reassembler = Reassembler::new(1024);
    let lines = [
        cri(T1, Stream::Stdout, "P", "never "),
        cri(T2, Stream::Stdout, "P", "finished"),
        cri(T3, Stream::Stderr, "P", ""),
    ];
    assert_eq!(push_all(&mut reassembler, Format::Cri, &lines), []);
    assert!(!reassembler.is_empty());
    assert_eq!(
        flush(&mut reassembler),
        [
            Out::whole(T1, Stream::Stdout, "never finished").partial(),
            Out::whole(T3, Stream::Stderr, "").partial(),
        ]
    );
    assert!(reassembler.is_empty());
    assert_eq!(flush(&mut reassembler), []);
}

#[test]
fn a_line_after_a_flush_starts_anew() {
    let mut reassembler = Reassembler::new(1024);
    push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "P", "head"),
    );
    flush(&mut reassembler);
    let out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T2, Stream::Stdout, "F", "tail"),
    );
    assert_eq!(out, [Out::whole(T2, Stream::Stdout, "tail")]);
}

#[test]
fn a_joined_line_of_exactly_the_limit_is_not_truncated() {
    let mut reassembler = Reassembler::new(10);
    let lines = [
        cri(T1, Stream::Stdout, "P", "0123456789"),
        cri(T2, Stream::Stdout, "F", ""),
    ];
    let out = push_all(&mut reassembler, Format::Cri, &lines);
    assert_eq!(out, [Out::whole(T1, Stream::Stdout, "0123456789")]);
}

#[test]
fn a_joined_line_one_byte_over_the_limit_is_cut_into_two_flagged_pieces() {
    let mut reassembler = Reassembler::new(10);
    let lines = [
        cri(T1, Stream::Stdout, "P", "01234"),
        cri(T2, Stream::Stdout, "F", "56789a"),
    ];
    let out = push_all(&mut reassembler, Format::Cri, &lines);
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stdout, "0123456789").truncated(),
            Out::whole(T1, Stream::Stdout, "a").truncated(),
        ]
    );
}

#[test]
fn a_long_joined_line_goes_out_in_flagged_pieces_as_soon_as_each_is_full() {
    let mut reassembler = Reassembler::new(10);
    let piece = |tag, message| cri(T1, Stream::Stdout, tag, message);
    // 12 bytes: over the limit, but the cut needs 3 bytes past it to see whole characters.
    assert_eq!(
        push(&mut reassembler, Format::Cri, &piece("P", "0123456789ab")),
        []
    );
    assert_eq!(
        push(&mut reassembler, Format::Cri, &piece("P", "cdefghij")),
        [Out::whole(T1, Stream::Stdout, "0123456789").truncated()]
    );
    assert_eq!(
        push(&mut reassembler, Format::Cri, &piece("F", "klm")),
        [
            Out::whole(T1, Stream::Stdout, "abcdefghij").truncated(),
            Out::whole(T1, Stream::Stdout, "klm").truncated(),
        ]
    );
}

#[test]
fn a_whole_line_over_the_limit_is_cut_into_borrowed_flagged_pieces() {
    let mut reassembler = Reassembler::new(10);
    let line = cri(T1, Stream::Stderr, "F", "0123456789abcdefghijKLMNO");
    let mut out = Vec::new();
    reassembler.push(decoded(Format::Cri, &line), &mut |message| {
        assert!(matches!(message.bytes, Cow::Borrowed(_)), "{message:?}");
        out.push(Out::from(message));
    });
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stderr, "0123456789").truncated(),
            Out::whole(T1, Stream::Stderr, "abcdefghij").truncated(),
            Out::whole(T1, Stream::Stderr, "KLMNO").truncated(),
        ]
    );
}

#[test]
fn a_flushed_line_over_the_limit_is_flagged_truncated_and_its_last_piece_partial() {
    let mut reassembler = Reassembler::new(4);
    // Over the limit, but short of the 3 bytes past it a cut may look at: still pending.
    let piece = cri(T1, Stream::Stdout, "P", "012345");
    assert_eq!(push(&mut reassembler, Format::Cri, &piece), []);
    assert_eq!(
        flush(&mut reassembler),
        [
            Out::whole(T1, Stream::Stdout, "0123").truncated(),
            Out::whole(T1, Stream::Stdout, "45").truncated().partial(),
        ]
    );
}

#[test]
fn a_cut_backs_off_to_the_start_of_a_utf8_character() {
    let mut reassembler = Reassembler::new(5);
    let out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "F", "aaaa€b"),
    );
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stdout, "aaaa").truncated(),
            Out::whole(T1, Stream::Stdout, "€b").truncated(),
        ]
    );
}

#[test]
fn a_cut_backs_off_up_to_three_bytes_for_a_four_byte_character() {
    let mut reassembler = Reassembler::new(4);
    let out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "F", "a😀😀"),
    );
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stdout, "a").truncated(),
            Out::whole(T1, Stream::Stdout, "😀").truncated(),
            Out::whole(T1, Stream::Stdout, "😀").truncated(),
        ]
    );
}

#[test]
fn a_cut_through_invalid_utf8_is_made_exactly_at_the_limit() {
    let mut reassembler = Reassembler::new(5);
    let out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "F", b"aaaa\xe2\x82\xffb"),
    );
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stdout, b"aaaa\xe2").truncated(),
            Out::whole(T1, Stream::Stdout, b"\x82\xffb").truncated(),
        ]
    );
}

#[test]
fn a_limit_smaller_than_a_character_cuts_inside_it_rather_than_emit_nothing() {
    let mut reassembler = Reassembler::new(1);
    let out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "F", "é"),
    );
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stdout, b"\xc3").truncated(),
            Out::whole(T1, Stream::Stdout, b"\xa9").truncated(),
        ]
    );
}

#[test]
fn a_limit_of_zero_is_taken_as_one() {
    let mut reassembler = Reassembler::new(0);
    let out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "F", "ab"),
    );
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stdout, "a").truncated(),
            Out::whole(T1, Stream::Stdout, "b").truncated(),
        ]
    );
}

#[test]
fn memory_per_stream_stays_within_the_limit_however_long_the_line() {
    let max = 100;
    let mut reassembler = Reassembler::new(max);
    let mut out = Vec::new();
    let mut line = Vec::new();
    for i in 0..1000 {
        let piece = format!("piece {i:04} of a very long line; ");
        line.extend_from_slice(piece.as_bytes());
        out.extend(push(
            &mut reassembler,
            Format::Cri,
            &cri(T1, Stream::Stdout, "P", piece),
        ));
        assert!(reassembler.stdout.bytes.len() < max + CUT_LOOKAHEAD);
        assert!(reassembler.stdout.bytes.capacity() <= max + CUT_LOOKAHEAD);
    }
    out.extend(push(
        &mut reassembler,
        Format::Cri,
        &cri(T2, Stream::Stdout, "F", ""),
    ));
    assert!(
        out.iter()
            .all(|out| out.truncated && out.bytes.len() <= max && out.time == T1)
    );
    assert_eq!(out.concat_bytes(), line);
}

trait ConcatBytes {
    fn concat_bytes(&self) -> Vec<u8>;
}

impl ConcatBytes for [Out] {
    fn concat_bytes(&self) -> Vec<u8> {
        self.iter()
            .flat_map(|out| out.bytes.iter().copied())
            .collect()
    }
}

/// One container line of the model test, and where the runtime split it.
#[derive(Debug, Clone)]
struct SplitLine {
    bytes: Vec<u8>,
    /// Offsets of the cuts into pieces, in order; equal offsets make empty pieces.
    cuts: Vec<usize>,
}

/// A line and its splits. Docker lines are text: dockerd splits them on characters.
fn split_line(format: Format) -> impl Strategy<Value = SplitLine> {
    let bytes = match format {
        Format::Docker => strategies::text().prop_map(String::into_bytes).boxed(),
        Format::Cri => strategies::cri_message().boxed(),
    };
    (
        bytes,
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    )
        .prop_map(move |(bytes, cuts)| {
            let mut cuts: Vec<usize> = cuts
                .iter()
                .map(|cut| {
                    let mut cut = cut.index(bytes.len() + 1);
                    if format == Format::Docker {
                        while !is_char_boundary(&bytes, cut) {
                            cut -= 1;
                        }
                    }
                    cut
                })
                .collect();
            cuts.sort_unstable();
            SplitLine { bytes, cuts }
        })
}

fn is_char_boundary(bytes: &[u8], at: usize) -> bool {
    bytes.get(at).is_none_or(|&b| !is_continuation(b))
}

/// The lines one stream writes, and whether its last line never ends.
fn stream_lines(format: Format) -> impl Strategy<Value = (Vec<SplitLine>, bool)> {
    (
        prop::collection::vec(split_line(format), 0..6),
        any::<bool>(),
    )
}

/// Renders one piece of a line as the runtime would write it.
fn render(format: Format, time: &str, stream: Stream, piece: &[u8], ends_line: bool) -> Vec<u8> {
    match format {
        Format::Cri => cri(time, stream, if ends_line { "F" } else { "P" }, piece),
        Format::Docker => {
            let mut log = String::from_utf8_lossy(piece).into_owned();
            if ends_line {
                log.push('\n');
            }
            docker(time, stream, &log)
        }
    }
}

/// Every runtime line of one stream, in order: (time of the line's first piece, rendered).
fn render_stream(
    format: Format,
    stream: Stream,
    lines: &[SplitLine],
    unfinished: bool,
) -> Vec<(String, Vec<u8>)> {
    let mut rendered = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let ends = !(unfinished && n + 1 == lines.len());
        let mut from = 0;
        let bounds = line.cuts.iter().copied().chain([line.bytes.len()]);
        let count = line.cuts.len() + 1;
        for (i, to) in bounds.enumerate() {
            // Distinct times, so that a message's time shows which piece it came from.
            let second = match stream {
                Stream::Stdout => 1,
                Stream::Stderr => 2,
            };
            let time = format!("2024-01-01T00:00:0{second}.{:09}Z", rendered.len());
            let piece = line.bytes.get(from..to).unwrap_or_default();
            let line = render(format, &time, stream, piece, ends && i + 1 == count);
            rendered.push((time, line));
            from = to;
        }
    }
    rendered
}

/// What pushing a line in one piece emits; splitting it must not change this.
fn whole_line_output(bytes: &[u8], max: usize, partial: bool) -> Vec<Out> {
    let mut out = Vec::new();
    emit_end(
        T1,
        Stream::Stdout,
        bytes,
        max,
        false,
        partial,
        &mut |message| out.push(Out::from(message)),
    );
    out
}

/// Checks the messages of one stream against the lines it wrote.
fn check_stream(
    emitted: &[Out],
    lines: &[SplitLine],
    rendered: &[(String, Vec<u8>)],
    unfinished: bool,
    max: usize,
) -> Result<(), TestCaseError> {
    let mut emitted = emitted.iter();
    let mut first_piece = 0;
    for (n, line) in lines.iter().enumerate() {
        let partial = unfinished && n + 1 == lines.len();
        let time = rendered
            .get(first_piece)
            .map(|(time, _)| time.as_str())
            .unwrap_or_default();
        first_piece += line.cuts.len() + 1;
        let mut pieces = Vec::new();
        let mut len = 0;
        while pieces.is_empty() || len < line.bytes.len() {
            let Some(message) = emitted.next() else {
                return Err(TestCaseError::fail(format!("line {n} is missing")));
            };
            len += message.bytes.len();
            pieces.push(message.clone());
        }
        prop_assert_eq!(pieces.concat_bytes(), line.bytes.clone(), "line {}", n);
        for piece in &pieces {
            prop_assert!(piece.bytes.len() <= max, "{:?}", piece);
            prop_assert_eq!(piece.truncated, line.bytes.len() > max, "{:?}", piece);
            prop_assert_eq!(piece.time.as_str(), time);
        }
        let flags: Vec<bool> = pieces.iter().map(|piece| piece.partial).collect();
        let mut expected_flags = vec![false; pieces.len()];
        if let Some(last) = expected_flags.last_mut() {
            *last = partial;
        }
        prop_assert_eq!(flags, expected_flags);
        let expected: Vec<_> = whole_line_output(&line.bytes, max, partial)
            .into_iter()
            .map(|out| (out.bytes, out.truncated))
            .collect();
        let got: Vec<_> = pieces
            .into_iter()
            .map(|out| (out.bytes, out.truncated))
            .collect();
        prop_assert_eq!(got, expected, "splitting line {} changed its cut", n);
    }
    prop_assert_eq!(emitted.next(), None);
    Ok(())
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Docker), Just(Format::Cri)]
}

/// A whole scenario: the limit, the format, each stream's lines, and how they interleave.
#[allow(clippy::type_complexity)]
fn scenario() -> impl Strategy<
    Value = (
        usize,
        Format,
        (Vec<SplitLine>, bool),
        (Vec<SplitLine>, bool),
        Vec<bool>,
    ),
> {
    format().prop_flat_map(|format| {
        (
            1..48usize,
            Just(format),
            stream_lines(format),
            stream_lines(format),
            prop::collection::vec(any::<bool>(), 1..64),
        )
    })
}

proptest! {
    #[test]
    fn reassembled_messages_give_back_every_line_exactly_within_the_limit(
        (max, format, (out_lines, out_unfinished), (err_lines, err_unfinished), order)
            in scenario(),
    ) {
        let stdout = render_stream(format, Stream::Stdout, &out_lines, out_unfinished);
        let stderr = render_stream(format, Stream::Stderr, &err_lines, err_unfinished);
        // Interleave the two streams as `order` says, keeping each stream's own order.
        let (mut next_out, mut next_err) = (stdout.iter().peekable(), stderr.iter().peekable());
        let mut file = Vec::new();
        for take_stdout in order.iter().cycle() {
            let next = match (take_stdout, next_out.peek(), next_err.peek()) {
                (_, None, None) => break,
                (true, Some(_), _) | (false, Some(_), None) => next_out.next(),
                _ => next_err.next(),
            };
            file.extend(next);
        }

        let mut reassembler = Reassembler::new(max);
        let mut emitted = Vec::new();
        for (_, line) in file {
            let line = format.decode(line).map_err(|err| TestCaseError::fail(err.to_string()))?;
            reassembler.push(line, &mut |message| emitted.push(Out::from(message)));
        }
        let waiting = |unfinished: bool, lines: &[SplitLine]| unfinished && !lines.is_empty();
        let any_waiting =
            waiting(out_unfinished, &out_lines) || waiting(err_unfinished, &err_lines);
        prop_assert_eq!(reassembler.is_empty(), !any_waiting);
        reassembler.flush(&mut |message| emitted.push(Out::from(message)));
        prop_assert!(reassembler.is_empty());

        let (emitted_out, emitted_err): (Vec<Out>, Vec<Out>) =
            emitted.into_iter().partition(|out| out.stream == Stream::Stdout);
        check_stream(&emitted_out, &out_lines, &stdout, out_unfinished, max)?;
        check_stream(&emitted_err, &err_lines, &stderr, err_unfinished, max)?;
    }
}

#[test]
fn a_pending_line_cut_early_goes_out_in_flagged_pieces_that_give_the_line_back() {
    let mut reassembler = Reassembler::new(1024);
    let mut out = push_all(
        &mut reassembler,
        Format::Cri,
        &[
            cri(T1, Stream::Stdout, "P", "first "),
            cri(T2, Stream::Stdout, "P", "second "),
        ],
    );
    assert!(out.is_empty());
    assert!(reassembler.held_bytes() >= "first second ".len());
    let cut = reassembler.cut_pending(&mut |message| out.push(message.into()));
    assert_eq!(cut, 1, "one line cut");
    assert_eq!(
        out,
        [Out::whole(T1, Stream::Stdout, "first second ").truncated()]
    );
    assert_eq!(reassembler.held_bytes(), 0, "the buffer is freed");
    assert!(!reassembler.is_empty(), "the line is still open");

    out.extend(push(
        &mut reassembler,
        Format::Cri,
        &cri(T3, Stream::Stdout, "P", "third "),
    ));
    out.extend(push(
        &mut reassembler,
        Format::Cri,
        &cri(T4, Stream::Stdout, "F", "end"),
    ));
    assert_eq!(
        out[1..],
        [Out::whole(T1, Stream::Stdout, "third end").truncated()],
        "the rest of the line is flagged too, with the line's time"
    );
    assert_eq!(out.concat_bytes(), b"first second third end");
    assert_eq!(
        reassembler.held_bytes(),
        0,
        "nothing is held once the line ends"
    );
}

#[test]
fn an_early_cut_keeps_a_utf8_character_cut_short_for_the_next_piece() {
    let mut reassembler = Reassembler::new(1024);
    let e_acute = "é".as_bytes();
    let mut first = b"caf".to_vec();
    first.push(e_acute[0]);
    let mut out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stdout, "P", &first),
    );
    reassembler.cut_pending(&mut |message| out.push(message.into()));
    assert_eq!(out, [Out::whole(T1, Stream::Stdout, "caf").truncated()]);
    out.extend(push(
        &mut reassembler,
        Format::Cri,
        &cri(T2, Stream::Stdout, "F", &e_acute[1..]),
    ));
    assert_eq!(out[1..], [Out::whole(T1, Stream::Stdout, "é").truncated()]);
}

#[test]
fn an_early_cut_leaves_a_stream_with_nothing_pending_alone() {
    let mut reassembler = Reassembler::new(1024);
    let mut out = push(
        &mut reassembler,
        Format::Cri,
        &cri(T1, Stream::Stderr, "P", "err "),
    );
    reassembler.cut_pending(&mut |message| out.push(message.into()));
    out.extend(push(
        &mut reassembler,
        Format::Cri,
        &cri(T2, Stream::Stdout, "F", "whole"),
    ));
    assert_eq!(
        out,
        [
            Out::whole(T1, Stream::Stderr, "err ").truncated(),
            Out::whole(T2, Stream::Stdout, "whole"),
        ]
    );
}

proptest! {
    #[test]
    fn early_cuts_anywhere_lose_and_repeat_no_byte(
        lines in prop::collection::vec(split_line(Format::Cri), 1..6),
        cuts in prop::collection::vec(any::<bool>(), 0..40),
        max in 1..48usize,
    ) {
        let rendered = render_stream(Format::Cri, Stream::Stdout, &lines, false);
        let mut reassembler = Reassembler::new(max);
        let mut emitted = Vec::new();
        let mut cuts = cuts.iter().cycle();
        for (_, line) in &rendered {
            let line = Format::Cri.decode(line).map_err(|err| TestCaseError::fail(err.to_string()))?;
            reassembler.push(line, &mut |message| emitted.push(Out::from(message)));
            if cuts.next().copied().unwrap_or(false) {
                reassembler.cut_pending(&mut |message| emitted.push(Out::from(message)));
            }
            prop_assert!(reassembler.held_bytes() <= max + CUT_LOOKAHEAD);
        }
        prop_assert!(reassembler.is_empty());
        prop_assert_eq!(reassembler.held_bytes(), 0);
        let written: Vec<u8> = lines.iter().flat_map(|line| line.bytes.clone()).collect();
        prop_assert_eq!(emitted.concat_bytes(), written);
        prop_assert!(emitted.iter().all(|out| out.bytes.len() <= max && !out.partial));
        prop_assert!(
            emitted.iter().all(|out| !out.bytes.is_empty() || !out.truncated),
            "a line cut early has no empty last piece"
        );
    }
}
