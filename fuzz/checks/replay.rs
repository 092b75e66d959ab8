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
    // On a thread with the stack a fuzz target has (libFuzzer runs it on the main thread), and
    // more, since this is an unoptimised build: parsing a malformed 27-byte CEL condition takes
    // 2-4 MiB of stack there (fuzz/corpus/cel_condition, see README.md, Fuzzing).
    let (corpus_len, regressions_len) = (corpus.len(), regressions.len());
    let failed = std::thread::Builder::new()
        .stack_size(REPLAY_STACK)
        .spawn(move || run_all(corpus.iter().chain(&regressions), check))
        .unwrap_or_else(|e| panic!("cannot start the replay thread: {e}"))
        .join()
        .unwrap_or_else(|_| panic!("{target}: the replay thread panicked"));
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs failed the target's invariants:\n{}",
        failed.len(),
        corpus_len + regressions_len,
        failed.join("\n")
    );
}

/// Stack of the replay thread: a fuzz target's 8 MiB, doubled for the unoptimised build.
const REPLAY_STACK: usize = 16 * 1024 * 1024;

/// Runs every file through `check`; the files whose run panicked.
fn run_all<'p>(files: impl Iterator<Item = &'p PathBuf>, check: fn(&[u8])) -> Vec<String> {
    let mut failed = Vec::new();
    for file in files {
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
    failed
}
