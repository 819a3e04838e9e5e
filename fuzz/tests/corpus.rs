//! Replays the committed seed corpora (`corpus/<target>/*`) through the targets, without a
//! fuzzing engine: `cargo test` in this crate. A finding to reproduce can be replayed the same
//! way: `KMSGATE_FUZZ_REPLAY=<target>:<dir or file> cargo test --test corpus -- --nocapture`.

use std::path::{Path, PathBuf};

fn files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n == "README.txt"))
        .collect();
    out.sort();
    out
}

fn replay(target: &str, path: &Path) -> usize {
    let inputs = files(path);
    for file in &inputs {
        let data = std::fs::read(file).unwrap();
        eprintln!("{target}: {}", file.display());
        assert!(kmsgate_fuzz::run(target, &data), "unknown target {target}");
    }
    inputs.len()
}

#[test]
fn seed_corpora_pass_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for target in kmsgate_fuzz::TARGETS {
        let n = replay(target, &root.join(target));
        assert!(n > 0, "corpus/{target} is empty");
    }
}

#[test]
fn replay_findings() {
    let Ok(spec) = std::env::var("KMSGATE_FUZZ_REPLAY") else {
        return;
    };
    let (target, path) = spec
        .split_once(':')
        .expect("KMSGATE_FUZZ_REPLAY=<target>:<path>");
    replay(target, Path::new(path));
}
