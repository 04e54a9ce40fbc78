//! Turning a line's payload into fields for the record's `data` object.
//!
//! Pure. Today: the JSON merge ([`json::object`]). User-defined parsers (regex, logfmt)
//! selected by pod annotation arrive with the parsers issue.

pub mod json;
