//! IBM's official SDKs for the client tests (`tests/python_client.rs`, `tests/client_matrix.rs`):
//! a virtualenv per Python client and one `node_modules` for the Node SDK, made under the build
//! directory on first use and reused while they hold the pinned versions; the quickstart
//! configuration on ephemeral ports; and a client script's run against a gateway.
//!
//! Without python3, node or npm, or without their package registries, a test that needs them
//! fails and says why: it never passes silently.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kmsgate::config::Config;

use super::TestGateway;

/// The build directory's root (`target/`, the parent of the integration tests' scratch
/// directory `target/tmp`).
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory")
        .to_path_buf()
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The last 20 lines of a command's output.
pub fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn succeeded(command: &mut Command) -> bool {
    command.output().is_ok_and(|out| out.status.success())
}

fn must_run(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot {what}: {e}"));
    assert!(
        out.status.success(),
        "cannot {what} ({}):\n{}\n{}",
        out.status,
        tail(&out.stdout),
        tail(&out.stderr)
    );
    out
}

/// The python of `target/pyenv`: keyprotect 3.0.1, with the RSA library its scripts seal a
/// secure import with (the client has no helpers for it).
pub fn keyprotect_3_0_1() -> PathBuf {
    python_with("pyenv", &["keyprotect==3.0.1", "cryptography==50.0.2"])
}

/// The python of `target/pyenv-2.3.1`: keyprotect 2.3.1 (redstone, which brings its own
/// `cryptography`).
pub fn keyprotect_2_3_1() -> PathBuf {
    python_with("pyenv-2.3.1", &["keyprotect==2.3.1"])
}

/// The python of the virtualenv `target/<venv>` with PyPI's `requirements` (`name==version`)
/// installed (made on first use, and made again when it holds other versions or is half-made).
pub fn python_with(venv: &str, requirements: &[&str]) -> PathBuf {
    let dir = target_dir().join(venv);
    let python = dir.join("bin").join("python");
    let pins: Vec<(&str, &str)> = requirements
        .iter()
        .map(|r| r.split_once("==").expect("a requirement is name==version"))
        .collect();
    let check = format!(
        "import importlib.metadata as m; assert all(m.version(n) == v for n, v in {pins:?})"
    );
    if succeeded(Command::new(&python).args(["-c", &check])) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    must_run(
        Command::new("python3").arg("-m").arg("venv").arg(&dir),
        "make a virtualenv with python3 -m venv (this test runs IBM's Python client)",
    );
    must_run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--retries",
                "2",
                "--timeout",
                "30",
            ])
            .args(requirements),
        &format!("install {requirements:?} from PyPI (is PyPI reachable?)"),
    );
    assert!(
        succeeded(Command::new(&python).args(["-c", &check])),
        "{requirements:?} were installed into {} but are not there",
        dir.display()
    );
    python
}

/// `target/node-sdk/node_modules`, installed with `npm ci` from `tests/node/package.json` and its
/// lock (again when the lock changes).
pub fn node_modules() -> PathBuf {
    let dir = target_dir().join("node-sdk");
    let lock = std::fs::read(repo().join("tests/node/package-lock.json"))
        .expect("read tests/node/package-lock.json");
    let installed = dir.join("node_modules/.kmsgate-lock.json");
    if std::fs::read(&installed).is_ok_and(|l| l == lock) {
        return dir.join("node_modules");
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create target/node-sdk");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(repo().join("tests/node").join(file), dir.join(file))
            .unwrap_or_else(|e| panic!("copy tests/node/{file}: {e}"));
    }
    must_run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir),
        "install the Node SDK with npm ci in target/node-sdk (are node and npm installed, is \
         the npm registry reachable?)",
    );
    std::fs::write(&installed, &lock).expect("mark target/node-sdk installed");
    dir.join("node_modules")
}

/// The quickstart configuration (`config/kmsgate.toml`: the embedded dev KMS, development-key
/// tokens, `policies.api = "own"`) on ephemeral ports, persisting policies under `policies`,
/// with no shutdown grace period.
pub fn quickstart(policies: &Path) -> Config {
    let quickstart = std::fs::read_to_string(repo().join("config/kmsgate.toml"))
        .expect("read config/kmsgate.toml");
    let overrides = format!(
        "[listen]\npublic = \"127.0.0.1:0\"\nprivate = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [shutdown]\ngrace_period = \"0s\"\n[policies]\ndir = {:?}\n",
        policies.display().to_string()
    );
    let config = Config::from_toml(&[&quickstart, &overrides])
        .unwrap_or_else(|e| panic!("the quickstart configuration: {e}"));
    assert!(config.upstream.is_embedded());
    config
}

/// A fresh scratch directory under `target/tmp` for one test's policy files.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A development token for `subject`, an hour long.
pub fn token(config: &Config, subject: &str) -> String {
    kmsgate::auth::devtoken::mint(
        &config.auth,
        subject,
        std::time::Duration::from_secs(3600),
        false,
    )
    .expect("the quickstart configuration mints development tokens")
}

/// A command that runs the client script `script` (a path in the repository) with `program`
/// against `gw`, with what the scripts read: `KP_URL` and `KP_PRIVATE_URL` (the gateway's
/// listeners), `KP_INSTANCE`, `KP_TOKEN` and `KP_TOKEN_2` (two subjects, for dual
/// authorization) and `KP_CATALOGUE` (the reference's envelopes,
/// `tests/fixtures/reason-catalogue.json`).
pub fn client_command(
    program: &Path,
    script: &str,
    gw: &TestGateway,
    instance: &str,
    tokens: [String; 2],
) -> Command {
    let [token, token_2] = tokens;
    let mut command = Command::new(program);
    command
        .arg(repo().join(script))
        .env("KP_URL", format!("http://{}", gw.addrs.public))
        .env(
            "KP_PRIVATE_URL",
            format!("http://{}", gw.addrs.private.expect("a private listener")),
        )
        .env("KP_INSTANCE", instance)
        .env("KP_TOKEN", token)
        .env("KP_TOKEN_2", token_2)
        .env(
            "KP_CATALOGUE",
            repo().join("tests/fixtures/reason-catalogue.json"),
        );
    command
}
