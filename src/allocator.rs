//! glibc malloc's arenas, bounded to [`ARENAS`] before shiplog starts any thread.
//!
//! glibc gives each new thread its own arena, up to 8 per core, and an arena keeps what its
//! threads once used. shiplog's threads (tokio's, the tail and processing threads,
//! librdkafka's one per broker, each allocating and freeing a zstd context of ~1.8 MB per
//! produce request) left ~56 MiB in 16 arenas for a heap that never passed 21 MB (issue
//! 27: the `pipeline` bench into Kafka, heaptrack for the heap, /proc/PID/smaps for the
//! arenas). With two arenas the same run peaked 23 MiB lower at the same CPU.
//!
//! The arena count can only be set before the first allocation, from the environment
//! (`MALLOC_ARENA_MAX`), and calling `mallopt` would take `unsafe`; so when the variable
//! is not set, shiplog executes itself again, same PID, arguments and environment, with it
//! set. A user's own `MALLOC_ARENA_MAX` (or `GLIBC_TUNABLES` naming `arena_max`) is left
//! as it is.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// The arenas shiplog runs with unless told otherwise.
pub const ARENAS: &str = "2";

const VARIABLE: &str = "MALLOC_ARENA_MAX";

/// Executes shiplog again with [`VARIABLE`] set, unless the environment already bounds the
/// arenas. Returns only when it did not (then nothing changes: a failed exec leaves the
/// process as it was).
pub fn bound_arenas() {
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if !needs_bound(std::env::var_os(VARIABLE).as_deref(), &tunables) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = Command::new(exe);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    // `exec` returns only on failure, and then shiplog goes on as it is.
    let _error = command.args(args).env(VARIABLE, ARENAS).exec();
}

/// Whether the arenas still need bounding, given `MALLOC_ARENA_MAX` and `GLIBC_TUNABLES`.
fn needs_bound(variable: Option<&OsStr>, tunables: &OsStr) -> bool {
    variable.is_none()
        && !tunables
            .to_string_lossy()
            .contains("glibc.malloc.arena_max")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_the_user_set_is_kept() {
        let none = OsStr::new("");
        assert!(needs_bound(None, none));
        assert!(!needs_bound(Some(OsStr::new("4")), none));
        let tunable = OsStr::new("glibc.malloc.arena_max=8:glibc.malloc.tcache_count=0");
        assert!(!needs_bound(None, tunable));
        assert!(needs_bound(None, OsStr::new("glibc.malloc.tcache_count=0")));
    }
}
