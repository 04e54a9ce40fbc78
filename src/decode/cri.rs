//! CRI lines. TODO(helper): implement.

use super::{DecodeError, Decoded};

/// Decodes one CRI line.
pub(super) fn decode(_line: &[u8]) -> Result<Decoded<'_>, DecodeError> {
    Err(DecodeError::Cri("not implemented"))
}
