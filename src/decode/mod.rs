//! Container-runtime line formats: docker json-file and CRI, turned into [`Decoded`] lines.
//!
//! Everything here is pure: functions over borrowed bytes, no I/O, no clock, no Kubernetes.
//! A line is decoded borrowing from the caller's buffer; a copy is made only when a docker
//! message has JSON escapes to undo. [`Reassembler`] (one per file, kept by the pipeline)
//! joins the pieces runtimes split long lines into: CRI `P`…`F` and docker's 16 KiB entries.

mod cri;
mod docker;
mod partial;

use std::borrow::Cow;

pub use partial::{Message, Reassembler};

/// Which output stream of the container a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

impl Stream {
    /// The name used in records and in both runtime formats.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The on-disk format of one container log file. Detected once per file, from its first
/// recognisable line, by [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker's json-file driver: `{"log":"...\n","stream":"stdout","time":"..."}`.
    Docker,
    /// The CRI format (containerd, CRI-O): `<RFC 3339 time> <stream> <P|F> <message>`.
    Cri,
}

impl Format {
    /// Decodes one line (without its trailing newline) in this format.
    pub fn decode(self, line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
        match self {
            Format::Docker => docker::decode(line),
            Format::Cri => cri::decode(line),
        }
    }
}

/// Guesses the format of a file from one of its lines: the format that decodes it, if any.
pub fn detect(line: &[u8]) -> Option<Format> {
    [Format::Docker, Format::Cri]
        .into_iter()
        .find(|format| format.decode(line).is_ok())
}

/// One runtime line, decoded. Borrows from the line where it can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The runtime's timestamp, as written (RFC 3339 with nanoseconds).
    pub time: Cow<'a, str>,
    /// Which stream the container wrote it to.
    pub stream: Stream,
    /// What the container wrote, without the trailing newline the runtime recorded.
    pub message: Cow<'a, [u8]>,
    /// True when this is not the end of the container's line: a CRI `P` line, or a docker
    /// entry whose `log` does not end in `\n` (dockerd splits lines every 16 KiB).
    pub partial: bool,
}

/// Why a line could not be decoded. Small and `Copy`: this is the hot path, and the reason
/// is rendered into the record's `shiplog_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A docker line that is not a JSON object of the json-file shape.
    #[error("not a docker json-file line: {0}")]
    Docker(&'static str),
    /// A line that does not have CRI's `<time> <stream> <P|F> <message>` shape.
    #[error("not a CRI line: {0}")]
    Cri(&'static str),
    /// A line of a file whose format could not be recognised (yet).
    #[error("unrecognised log line format")]
    UnknownFormat,
}
