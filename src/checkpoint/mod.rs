//! Durable file offsets: where to resume each file after a restart.
//!
//! The log files are the buffer (ARCHITECTURE.md, "Delivery"): a file's committed offset is
//! the end of the last line every sink acknowledged, so resuming there after a crash repeats
//! at most the lines in flight and loses none. This module stores those offsets in SQLite,
//! keyed by file identity ([`crate::tail::FileId`] plus its
//! [`crate::tail::Fingerprint`], so a reused inode never inherits an old file's offset).
//!
//! It owns the database: schema, migrations, transactions and what its errors mean. It knows
//! nothing of sinks, acknowledgements or Kubernetes: the caller decides which offsets are
//! safe to commit and when; the store makes a commit all-or-nothing and says whether a
//! failed one is worth retrying.

mod store;

pub use store::{Checkpoint, Store, StoreError};
