//! IBM's official Python client (`keyprotect==3.0.1` from PyPI) against the gateway on the
//! quickstart configuration (`config/kmsgate.toml`: the embedded dev KMS, dev-key tokens,
//! `policies.api = "own"`), on ephemeral ports and with its policy directory in a scratch
//! directory: create a key, wrap, unwrap, rotate, a refusal, instance policies, the key list as
//! the SDK sends it, and the reference's reproductions of UNAUTHORIZED_ERR,
//! CONFIG_RULE_CONFLICT_ERR and KEY_CREATE_IMPORT_ACCESS_ERR, then the dev KMS's Key Protect
//! rules: dual authorization across two users (a second token), one rotation an hour, key
//! policies, aliases, key rings, purge's waiting rule, registrations, KMIP's refusal
//! (`tests/python/kp_roundtrip.py`).
//!
//! The test keeps its own virtualenv under the build directory (`target/pyenv`, made with
//! `python3 -m venv` and `pip install keyprotect==3.0.1`) and reuses it when it already holds
//! that version. Without python3 or without PyPI it fails, saying why: it never passes silently.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kmsgate::config::Config;
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

/// The quickstart configuration, on ephemeral ports, persisting policies under `policies`.
fn quickstart(policies: &Path) -> Config {
    let quickstart =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/kmsgate.toml"))
            .expect("read config/kmsgate.toml");
    let overrides = format!(
        "[listen]\npublic = \"127.0.0.1:0\"\nprivate = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [policies]\ndir = {:?}\n",
        policies.display().to_string()
    );
    let config = Config::from_toml(&[&quickstart, &overrides])
        .unwrap_or_else(|e| panic!("the quickstart configuration: {e}"));
    assert!(config.upstream.is_embedded());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_on_the_quickstart_configuration() {
    let python = tokio::task::spawn_blocking(python_with_client)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let policies = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("python-client-policies-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&policies);
    std::fs::create_dir_all(&policies).expect("create the policy directory");
    let config = quickstart(&policies);
    let token = kmsgate::auth::devtoken::mint(
        &config.auth,
        "python-client",
        std::time::Duration::from_secs(3600),
        false,
    )
    .expect("the quickstart configuration mints development tokens");
    // A second user, for dual authorization.
    let token_2 = kmsgate::auth::devtoken::mint(
        &config.auth,
        "python-client-2",
        std::time::Duration::from_secs(3600),
        false,
    )
    .expect("the quickstart configuration mints development tokens");
    let gw = TestGateway::start_with(config).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/kp_roundtrip.py");
    let url = format!("http://{}", gw.addrs.public);
    let private = format!("http://{}", gw.addrs.private.expect("a private listener"));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(&script)
            .env("KP_URL", url)
            .env("KP_PRIVATE_URL", private)
            .env("KP_INSTANCE", INSTANCE)
            .env("KP_TOKEN", token)
            .env("KP_TOKEN_2", token_2)
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
    // The three refusals were the gateway's, counted by code.
    for code in [
        "UNAUTHORIZED_ERR",
        "CONFIG_RULE_CONFLICT_ERR",
        "KEY_CREATE_IMPORT_ACCESS_ERR",
    ] {
        assert!(
            gw.metric("kmsgate_rejections_total", &[("code", code)])
                .await
                >= 1.0,
            "{code} was not counted"
        );
    }
    // Own mode persisted the policies set through the API.
    let persisted = std::fs::read_dir(&policies)
        .expect("the policy directory")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert!(persisted >= 3, "{persisted} policy files persisted");
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&policies);
}
