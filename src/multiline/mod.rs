//! Multiline records: the consecutive lines of one event (a stack trace) joined into one
//! message, by a [`Rule`] a pod's `shiplog.io/multiline` annotation selects.
//!
//! Pure: no I/O, no clock. A [`Joiner`] (one per stream of a file, kept by the pipeline)
//! takes whole lines, as the [`Reassembler`](crate::decode::Reassembler) gives them, and
//! emits events; the pipeline decides when a held event has waited long enough to
//! [`Joiner::flush`], and keeps a file's offset from passing a held event's first line.
//! Nothing is dropped or altered: the lines of the messages a joiner emits, in order, are
//! the lines it was given.
//!
//! # Layout
//!
//! - [`rules`]: the [`Rule`] kinds: a custom `start` regex, and the built-in state
//!   machines `java`, `python`, `go` and `ruby` (Fluent Bit's built-in multiline parsers).
//! - [`joiner`]: the [`Joiner`], with the `max_lines` / `max_bytes` cut.

pub mod joiner;
pub mod rules;

#[cfg(test)]
mod tests;

pub use joiner::Joiner;
pub use rules::{Rule, Step, builtin};
