//! IBM's official Python client (`keyprotect==3.0.1` from PyPI) against the gateway in front of
//! the embedded dev KMS: create a key, wrap, unwrap, rotate, a refusal, instance policies
//! (`tests/python/kp_roundtrip.py`).
//!
//! The test keeps its own virtualenv under the build directory (`target/pyenv`, made with
//! `python3 -m venv` and `pip install keyprotect==3.0.1`) and reuses it when it already holds
//! that version. Without python3 or without PyPI it fails, saying why: it never passes silently.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::TestGateway;

const KEYPROTECT: &str = "keyprotect==3.0.1";
const INSTANCE: &str = "00000000-0000-4000-8000-0000000000a1";

/// `target/pyenv` (next to `target/tmp`, the integration tests' scratch directory).
fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .join("pyenv")
}

fn run(command: &mut Command) -> std::io::Result<Output> {
    command.output()
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// True when the virtualenv's python imports keyprotect 3.0.1.
fn has_client(python: &Path) -> bool {
    run(Command::new(python).args([
        "-c",
        "import importlib.metadata as m, keyprotect.ibm_key_protect_api_v2; \
         assert m.version('keyprotect') == '3.0.1'",
    ]))
    .is_ok_and(|out| out.status.success())
}

/// The virtualenv's python, with keyprotect 3.0.1 installed (made on first use).
fn python_with_client() -> PathBuf {
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    if has_client(&python) {
        return python;
    }
    // Missing or half-made (an interrupted earlier run): start again.
    let _ = std::fs::remove_dir_all(&venv);
    let made = run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).unwrap_or_else(|e| {
        panic!("this test needs python3 (with the venv module) to run IBM's Python client: {e}")
    });
    assert!(
        made.status.success(),
        "python3 -m venv {} failed:\n{}",
        venv.display(),
        tail(&made.stderr)
    );
    let installed = run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--retries",
        "2",
        "--timeout",
        "30",
        KEYPROTECT,
    ]))
    .unwrap_or_else(|e| panic!("cannot run pip in {}: {e}", venv.display()));
    assert!(
        installed.status.success(),
        "cannot install {KEYPROTECT} from PyPI into {} (is PyPI reachable?). This test needs \
         IBM's Python client and does not pass without it. pip said:\n{}\n{}",
        venv.display(),
        tail(&installed.stdout),
        tail(&installed.stderr)
    );
    assert!(
        has_client(&python),
        "{KEYPROTECT} was installed into {} but cannot be imported",
        venv.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_creates_wraps_and_unwraps_through_the_gateway() {
    let python = tokio::task::spawn_blocking(python_with_client)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let gw = TestGateway::start("[upstream]\nurl = \"embedded\"\n").await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kp_roundtrip.py");
    let url = format!("http://{}", gw.addrs.public);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .env("KP_URL", url)
            .env("KP_INSTANCE", INSTANCE)
            .output()
    })
    .await
    .expect("the client run panicked")
    .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("all steps passed"),
        "the Python client did not finish:\n{stdout}"
    );
    // The gateway saw and counted the client's requests.
    assert!(
        gw.metric(
            "kmsgate_requests_total",
            &[("route", "key_unwrap"), ("outcome", "forwarded")]
        )
        .await
            >= 3.0
    );
    gw.shutdown().await;
}
