//! moto, the CloudWatch Logs peer of the CloudWatch tests, provisioned by the tests
//! themselves: a fresh machine has Python 3 and pip but no moto, and `cargo test` must pass
//! there with nothing installed first.
//!
//! On first use a virtualenv is made under the target folder (`target/moto-venv`, beside
//! the test binaries, so `cargo clean` removes it) with `python3 -m venv`, and moto is
//! installed into it with pip; later runs find it ready. A file lock keeps test binaries
//! running at once from building it twice. `SHIPLOG_MOTO_PYTHON` names a Python that already
//! has moto, to skip all of this (offline machines).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The moto release the tests are written against.
const MOTO: &str = "moto[server]==5.2.5";

/// A Python interpreter that can run `python -m moto.server`, made ready on first call.
/// Panics with the command to run by hand when it cannot be made ready.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(provision).clone()
}

fn provision() -> PathBuf {
    if let Some(python) = std::env::var_os("SHIPLOG_MOTO_PYTHON") {
        let python = PathBuf::from(python);
        assert!(
            has_moto(&python),
            "SHIPLOG_MOTO_PYTHON={} cannot import moto.server",
            python.display()
        );
        return python;
    }
    let venv = target_dir().join("moto-venv");
    let python = venv.join("bin").join("python");
    if has_moto(&python) {
        return python;
    }
    fs::create_dir_all(target_dir()).expect("target folder");
    let lock = File::create(target_dir().join("moto-venv.lock")).expect("moto-venv.lock");
    lock.lock().expect("lock moto-venv.lock");
    // Another test binary may have built it while this one waited for the lock.
    if has_moto(&python) {
        return python;
    }
    eprintln!(
        "moto is not installed yet: making {} (once; takes a minute)",
        venv.display()
    );
    let by_hand = format!(
        "python3 -m venv {venv} && {venv}/bin/python -m pip install '{MOTO}'",
        venv = venv.display()
    );
    fs::remove_dir_all(&venv).ok();
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        &by_hand,
    );
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            MOTO,
        ]),
        &by_hand,
    );
    assert!(
        has_moto(&python),
        "moto was installed into {} but `import moto.server` fails; run by hand: {by_hand}",
        venv.display()
    );
    python
}

/// Runs one provisioning step; on failure panics with its output and the command to run
/// by hand (pip that cannot reach its registry ends here).
fn run(command: &mut Command, by_hand: &str) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}; run by hand: {by_hand}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}\nthe CloudWatch tests need moto; run by hand: {by_hand}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn has_moto(python: &Path) -> bool {
    python.exists()
        && Command::new(python)
            .args(["-c", "import moto.server"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
}

/// The target folder this test binary was built into (`target/debug/deps/<test>` → `target`),
/// which follows `CARGO_TARGET_DIR` wherever it points.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target")))
}
