//! Load once: policy files and token keys are read once per start and once per reload.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::*;
use crate::policy::reload::Reloadable;
use crate::settings::reads;

/// A Key Protect policy document (as `GET /api/v2/instance/policies` returns it): allowedIP.
fn allowed(net: &str) -> String {
    format!(
        "{{\"metadata\": {{\"collectionType\": \"application/vnd.ibm.kms.policy+json\", \
         \"collectionTotal\": 1}}, \"resources\": [{{\"policy_type\": \"allowedIP\", \
         \"policy_data\": {{\"enabled\": true, \"attributes\": {{\"allowed_ip\": [\"{net}\"]}}}}}}]}}"
    )
}

fn key(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn config_text(dir: &Path, shadow: bool) -> String {
    format!(
        "[upstream]\nurl = \"embedded\"\n\n[auth]\nenabled = true\nalgorithms = [\"RS256\", \"ES256\"]\n\n\
         [[auth.pem_keys]]\nkid = \"rsa\"\nfile = {:?}\n\n[[auth.pem_keys]]\nkid = \"ec\"\nfile = {:?}\n\n\
         [policies]\ndir = {:?}\nshadow_all = {shadow}\n",
        key("test-rsa-public.pem"),
        key("test-ec-public.pem"),
        dir.join("policies"),
    )
}

fn counts(files: &[&Path]) -> Vec<usize> {
    let reads: BTreeMap<PathBuf, usize> = reads::take();
    files
        .iter()
        .map(|f| reads.get(*f).copied().unwrap_or(0))
        .collect()
}

#[test]
fn policy_files_and_token_keys_are_read_once_per_start_and_once_per_reload() {
    let dir = std::env::temp_dir().join(format!("kmsgate-load-once-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("policies")).unwrap();
    let (a, default) = (
        dir.join("policies/inst-a.json"),
        dir.join("policies/default.json"),
    );
    fs::write(&a, allowed("10.0.0.0/8")).unwrap();
    fs::write(&default, allowed("192.168.0.0/16")).unwrap();
    let config_file = dir.join("kmsgate.toml");
    fs::write(&config_file, config_text(&dir, false)).unwrap();
    let (rsa, ec) = (key("test-rsa-public.pem"), key("test-ec-public.pem"));
    let files = [a.as_path(), default.as_path(), rsa.as_path(), ec.as_path()];
    reads::take();

    // Loading the configuration reads none of the files it names.
    let config = Config::load(Some(&config_file)).unwrap();
    assert_eq!(counts(&files), [0, 0, 0, 0], "Config::load");

    // The start: every file once.
    let prepared = Gateway::prepare(config.clone()).unwrap();
    assert_eq!(counts(&files), [1, 1, 1, 1], "Gateway::prepare");
    assert_eq!(prepared.policies.store().snapshot().len(), 1);

    // A policy reload: the policy files once, no key.
    assert!(Reloadable::reload(&*prepared.policies));
    assert_eq!(counts(&files), [1, 1, 0, 0], "policy reload");

    // A config reload that changes [policies]: the policy files once, no key (a change to
    // [auth] needs a restart).
    let reload = ConfigReload::new(
        config_file.clone(),
        config.clone(),
        LiveRules::new(&config),
        prepared.policies.clone(),
        &prepared.metrics,
    );
    fs::write(&config_file, config_text(&dir, true)).unwrap();
    reads::take();
    assert!(reload.apply());
    assert_eq!(counts(&files), [1, 1, 0, 0], "config reload");
    let _ = fs::remove_dir_all(&dir);
}
