#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed budget and fails on a crash.
#
#   scripts/fuzz.sh                 # every target, MCPGATE_FUZZ_SECONDS (default 30) each
#   scripts/fuzz.sh sse_parser ...  # only these targets
#
# Environment:
#   MCPGATE_FUZZ_SECONDS        budget per target in seconds (default 30; with MCPGATE_FUZZ_RUNS:
#                               a cap on that run's time, none when unset)
#   MCPGATE_FUZZ_RUNS           run each target for this many executions instead (the long run:
#                               MCPGATE_FUZZ_RUNS=100000000, figures in README.md "Fuzzing")
#   MCPGATE_FUZZ_INPUT_TIMEOUT  seconds one input may take before it counts as a hang (default 10)
#   CARGO_TARGET_DIR            honoured as usual (default fuzz/target)
#
# The toolchain is stable Rust: cargo-fuzz needs nightly flags, so RUSTC_BOOTSTRAP=1 is set here.
# Targets are built with `--sanitizer none` (about 10x faster than AddressSanitizer; the code under
# test has no unsafe of its own). A crash, a hang or an out-of-memory input fails the run, and the
# input libFuzzer saved is copied to fuzz/regressions/<target>/ so that it is kept in the repository
# and replayed by the ordinary unit tests (codec/tests/fuzz_replay.rs, policies/tests/fuzz_replay.rs,
# core/tests/fuzz_replay.rs) from then on. New corpus entries stay in fuzz/corpus/<target>/
# (git-ignored except the seed-* files).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs_budget="${MCPGATE_FUZZ_RUNS:-}"
if [ -n "$runs_budget" ]; then
    budget="${MCPGATE_FUZZ_SECONDS:-0}"   # libFuzzer: 0 = no time limit
else
    budget="${MCPGATE_FUZZ_SECONDS:-30}"
fi
limits=(-max_total_time="$budget")
budget_text="${budget}s"
[ "$budget" = 0 ] && budget_text="no time limit"
[ -n "$runs_budget" ] && limits+=(-runs="$runs_budget")
input_timeout="${MCPGATE_FUZZ_INPUT_TIMEOUT:-10}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz: no targets" >&2
    exit 1
fi

echo "fuzz: building the targets (--sanitizer none)"
cargo fuzz build --sanitizer none

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
failed=()
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "artifacts/$target"
    # Artifacts of earlier runs are not this run's findings.
    find "artifacts/$target" -type f -delete
    log="$logs/$target.log"
    echo "fuzz: $target for ${runs_budget:+$runs_budget runs, }$budget_text"
    status=0
    cargo fuzz run "$target" --sanitizer none -- \
        "${limits[@]}" -timeout="$input_timeout" -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    runs="$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' "$log" | tail -n 1)"
    if [ -z "$runs" ]; then
        runs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1 ?/p' "$log" | tail -n 1)"
    fi
    read -r executions seconds <<<"${runs:-? ?}"
    corpus_size="$(find "corpus/$target" -type f | wc -l)"
    artifacts=()
    while IFS= read -r -d '' file; do
        artifacts+=("$file")
    done < <(find "artifacts/$target" -type f -print0)
    if [ "$status" -ne 0 ] || [ "${#artifacts[@]}" -gt 0 ]; then
        failed+=("$target")
        mkdir -p "regressions/$target"
        for file in "${artifacts[@]}"; do
            cp "$file" "regressions/$target/"
            echo "fuzz: $target: kept reproducer fuzz/regressions/$target/$(basename "$file")"
        done
        echo "fuzz: $target FAILED (exit $status); last lines of its output:"
        tail -n 40 "$log" | sed 's/^/    /'
        summary+=("$(printf '%-24s FAILED   %12s runs in %ss' "$target" "$executions" "$seconds")")
    else
        per_second="?"
        if [ "$seconds" != "?" ] && [ "$seconds" -gt 0 ] 2>/dev/null; then
            per_second=$((executions / seconds))
        fi
        summary+=("$(printf '%-24s ok  %12s runs in %4ss  %8s/s  corpus %s' \
            "$target" "$executions" "$seconds" "$per_second" "$corpus_size")")
    fi
done

echo "fuzz: summary (budget ${runs_budget:+$runs_budget runs, }$budget_text per target)"
printf '    %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}" >&2
    echo "fuzz: reproducers are in fuzz/regressions/; commit them with the fix" >&2
    exit 1
fi
