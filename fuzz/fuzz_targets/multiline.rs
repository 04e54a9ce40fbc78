//! Fuzz target: `checks::multiline` on every input. See `fuzz/checks.rs` for what it asserts.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)] // each target uses one check
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::multiline(data));
