//! The client matrix: IBM's official clients call every public API method they have through the
//! gateway on the quickstart configuration (the embedded dev KMS, `policies.api = "own"`), each
//! against a gateway of its own on ephemeral ports:
//!
//! - Python `keyprotect==3.0.1` (`IbmKeyProtectApiV2`, `tests/python/kp_methods.py`),
//! - Python `keyprotect==2.3.1` (redstone's `KeyProtect`, the older client that PUTs instance
//!   policies without `?policy=` and rotates with no body, `tests/python/kp231_methods.py`),
//! - Node `@ibm-cloud/ibm-key-protect` 0.1.2 (`tests/node/kp_methods.js`).
//!
//! Each script prints one row per call (method, call, HTTP status, result) and the client's
//! public API methods, found by looking into the installed package. The test asserts that the
//! rows are exactly the table in `docs/clients.md` for that client, that every method has a row,
//! and that only KMIP answers FEATURE_RESTRICTED_ERR. The scripts themselves check the
//! reference's reproductions of UNAUTHORIZED_ERR, CONFIG_RULE_CONFLICT_ERR and
//! KEY_CREATE_IMPORT_ACCESS_ERR byte for byte (status, code, message, envelope).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use support::{TestGateway, sdk};

const INSTANCE: &str = "00000000-0000-4000-8000-0000000000d1";

/// One call: the first four columns of a docs/clients.md row.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    method: String,
    call: String,
    status: String,
    result: String,
}

impl Row {
    fn markdown(&self) -> String {
        format!(
            "| `{}` | {} | {} | {} |",
            self.method, self.call, self.status, self.result
        )
    }
}

/// What a client's script printed.
struct Run {
    rows: Vec<Row>,
    methods: Vec<String>,
}

/// Runs `program script` against a quickstart gateway of its own and reads its rows.
async fn run(name: &str, program: &Path, script: &str, env: &[(&str, String)]) -> Run {
    let policies = sdk::scratch(&format!("client-matrix-{name}"));
    let config = sdk::quickstart(&policies);
    let tokens = [
        sdk::token(&config, &format!("{name}-1")),
        sdk::token(&config, &format!("{name}-2")),
    ];
    let gw = TestGateway::start_with(config).await;
    let mut command = sdk::client_command(program, script, &gw, INSTANCE, tokens);
    for (key, value) in env {
        command.env(key, value);
    }
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the client run panicked")
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&policies);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = Vec::new();
    let mut methods = None;
    for line in stdout.lines() {
        if let Some(row) = line.strip_prefix("ROW ") {
            let row: Value = serde_json::from_str(row).expect("a ROW line is JSON");
            let text = |field: &str| match &row[field] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            rows.push(Row {
                method: text("method"),
                call: text("call"),
                status: text("status"),
                result: text("result"),
            });
        } else if let Some(list) = line.strip_prefix("METHODS ") {
            methods = Some(serde_json::from_str(list).expect("the METHODS line is a JSON list"));
        }
    }
    Run {
        rows,
        methods: methods.unwrap_or_else(|| panic!("{script} printed no METHODS line:\n{stdout}")),
    }
}

/// The rows of the table between `<!-- matrix: NAME -->` and `<!-- /matrix -->` in
/// docs/clients.md (the first four cells of each).
fn documented(name: &str) -> Vec<Row> {
    let docs =
        std::fs::read_to_string(sdk::repo().join("docs/clients.md")).expect("read docs/clients.md");
    let start = format!("<!-- matrix: {name} -->");
    let table = docs
        .split_once(&start)
        .and_then(|(_, rest)| rest.split_once("<!-- /matrix -->"))
        .unwrap_or_else(|| panic!("docs/clients.md has no table marked {start}"))
        .0;
    table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            assert!(cells.len() >= 6, "a short row in docs/clients.md: {line}");
            Row {
                method: cells[1].trim_matches('`').to_owned(),
                call: cells[2].to_owned(),
                status: cells[3].to_owned(),
                result: cells[4].to_owned(),
            }
        })
        .collect()
}

/// The run is the documented table, every API method has a row, and only KMIP is refused as a
/// feature the instance does not have.
fn assert_matrix(name: &str, run: &Run) {
    let called: BTreeSet<&str> = run.rows.iter().map(|r| r.method.as_str()).collect();
    let missing: Vec<&String> = run
        .methods
        .iter()
        .filter(|m| !called.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{name}: methods never called: {missing:?}"
    );
    for row in &run.rows {
        if row.result.contains("FEATURE_RESTRICTED_ERR") {
            assert!(
                row.method.to_lowercase().contains("kmip"),
                "{name}: {} answered FEATURE_RESTRICTED_ERR",
                row.method
            );
        }
    }
    let expected = documented(name);
    if run.rows != expected {
        let got: Vec<String> = run.rows.iter().map(Row::markdown).collect();
        let want: Vec<String> = expected.iter().map(Row::markdown).collect();
        let first = got
            .iter()
            .zip(&want)
            .position(|(g, w)| g != w)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{name}: the calls' results differ from docs/clients.md from row {} on:\n  got:  {:?}\n  \
             docs: {:?}\nThe run, as table rows:\n{}",
            first + 1,
            got.get(first),
            want.get(first),
            got.join("\n")
        );
    }
}

/// Runs the client's script and asserts its matrix; `methods`: how many API methods the
/// client has.
async fn check(name: &str, program: &Path, script: &str, env: &[(&str, String)], methods: usize) {
    let run = run(name, program, script, env).await;
    assert_eq!(run.methods.len(), methods, "{name}'s API methods");
    assert_matrix(name, &run);
}

/// Installs a client (blocking: pip or npm) and hands back what runs it.
async fn install<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyprotect_3_0_1_every_method() {
    let python = install(sdk::keyprotect_3_0_1).await;
    let script = "tests/python/kp_methods.py";
    check("keyprotect-3.0.1", &python, script, &[], 46).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyprotect_2_3_1_every_method() {
    let python = install(sdk::keyprotect_2_3_1).await;
    let script = "tests/python/kp231_methods.py";
    check("keyprotect-2.3.1", &python, script, &[], 49).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_0_1_2_every_method() {
    let modules = install(sdk::node_modules).await;
    let env = [("NODE_PATH", modules.display().to_string())];
    let script = "tests/node/kp_methods.js";
    check(
        "ibm-key-protect-node-0.1.2",
        Path::new("node"),
        script,
        &env,
        31,
    )
    .await;
}
