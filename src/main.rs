//! The `shiplog` command.
fn main() {}
