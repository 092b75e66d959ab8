//! Replays a fuzz target's inputs through its check as an ordinary test: the seed corpus
//! (`fuzz/corpus/<target>/`, including entries a local fuzzing run added) and the kept crash
//! reproducers (`fuzz/regressions/<target>/`). Every input runs even after a failure, and the
//! failing files are named. Included by the crates' `tests/fuzz_replay.rs` (not by the fuzz
//! targets themselves).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// `fuzz/` seen from the crate whose test includes this file.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Feeds every input of `target` to `check`; fails naming each input that panicked, and when the
/// target has no seed at all (a corpus directory that went missing must not pass silently).
pub fn replay(target: &str, check: fn(&[u8])) {
    let root = fuzz_dir();
    let corpus = inputs(&root.join("corpus").join(target));
    let regressions = inputs(&root.join("regressions").join(target));
    assert!(
        corpus.iter().any(|p| p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))),
        "no seed-* input in fuzz/corpus/{target}"
    );
    let mut failed = Vec::new();
    for file in corpus.iter().chain(&regressions) {
        let data = match std::fs::read(file) {
            Ok(data) => data,
            // A running fuzzer replaces corpus entries with smaller ones as it goes.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => panic!("{}: {e}", file.display()),
        };
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed the target's invariants:\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
}
