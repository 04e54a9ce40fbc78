//! Docker json-file lines. TODO(helper): implement.

use super::{DecodeError, Decoded};

/// Decodes one docker json-file line.
pub(super) fn decode(_line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    Err(DecodeError::Docker("not implemented"))
}
