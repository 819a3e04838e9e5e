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
//! The test keeps its own virtualenv under the build directory (`target/pyenv`, see
//! `tests/support/sdk.rs`) and reuses it when it already holds that version. Without python3 or
//! without PyPI it fails, saying why: it never passes silently.

mod support;

use support::{TestGateway, sdk};

const INSTANCE: &str = "00000000-0000-4000-8000-0000000000a1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_client_on_the_quickstart_configuration() {
    let python = tokio::task::spawn_blocking(sdk::keyprotect_3_0_1)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let policies = sdk::scratch("python-client-policies");
    let config = sdk::quickstart(&policies);
    let token = sdk::token(&config, "python-client");
    // A second user, for dual authorization.
    let token_2 = sdk::token(&config, "python-client-2");
    let gw = TestGateway::start_with(config).await;
    let mut command = sdk::client_command(
        &python,
        "tests/python/kp_roundtrip.py",
        &gw,
        INSTANCE,
        [token, token_2],
    );
    let out = tokio::task::spawn_blocking(move || command.output())
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
