//! The `stdout` sink: one JSON record per line on standard output.

use std::io::Write;

use super::{Batch, SendError};

/// Writes batches to standard output, flushing each.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl StdoutSink {
    /// The sink.
    pub fn new() -> Self {
        StdoutSink
    }

    /// Writes the batch and flushes. A closed stdout (the reader went away) is fatal: no
    /// later attempt can succeed, and nothing written after it would be seen.
    pub fn send(&mut self, batch: &Batch) -> Result<(), SendError> {
        let mut out = std::io::stdout().lock();
        let written = batch
            .chunks()
            .iter()
            .try_for_each(|chunk| out.write_all(&chunk.json));
        written
            .and_then(|()| out.flush())
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::BrokenPipe => {
                    SendError::Fatal(format!("stdout closed: {error}"))
                }
                _ => SendError::Retry(format!("writing to stdout: {error}")),
            })
    }
}
