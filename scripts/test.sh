#!/usr/bin/env bash
# The one command that runs every test of mcpgate (README "Testing"; .ci/run execs it).
#
# 1. Installs what the tests need and is missing: Node.js/npm and Python 3 with venv (apt-get,
#    only if absent), the npm peers from tests/js/package-lock.json (npm ci) and the Python SDK
#    from tests/py/requirements.lock (pip --require-hashes into tests/py/.venv). Each install is
#    skipped when it was already made from the same lockfile, so reruns are fast.
# 2. Lint gates: `cargo fmt --all --check` and `cargo clippy --workspace --all-targets -- -D
#    warnings`. Either failing stops the run (exit 1) before any test, with a line saying which.
# 3. Builds the mcpgate binary once and hands it to the end-to-end suite (MCPGATE_BIN).
# 4. Runs `cargo test --workspace --no-fail-fast`: every crate's unit/property tests plus the
#    end-to-end suite in tests/. Exits non-zero on any failure, after a one-line total.
# 5. Then, each counted as one test: the bench harness in smoke mode, the 60-second soak
#    (scripts/soak.py) and every fuzz target for a fixed budget (scripts/fuzz.sh).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

log() { printf '==> %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# TLS end-to-end tests: `openssl s_client` checks protocol versions, ALPN and SNI
# (tests/tests/tls.rs records a skip without it).
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# Observability end-to-end tests: a real Prometheus scrapes the gateway; the console is loaded in
# headless Chromium (tests/tests/observe_*.rs fail, not skip, without them).
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# The management console's browser test drives Chromium through WebDriver
# (tests/tests/management_console.rs; selenium comes from tests/py/requirements.lock).
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
# The tutorial's commands (tests/tests/tutorial.rs runs docs/tutorial.md) use curl and jq.
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# Rate-limit end-to-end tests: cluster-scope rules share a real Redis, and two gateways sit behind
# a real HAProxy (tests/tests/limits.rs starts both on free loopback ports; fail, not skip).
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- test peers from the committed lockfiles -------------------------------------------------
# The marker holds a copy of the lockfile the install was made from; the Rust harness
# (tests/src/peers.rs) uses the same markers and flock files, so neither installs twice.
install_js() {
  local dir=tests/js marker=tests/js/node_modules/.mcpgate-installed-lock
  exec 8>"$dir/.install.lock"
  flock 8
  if ! cmp -s "$dir/package-lock.json" "$marker"; then
    log "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$marker"
  fi
  exec 8>&-
}

install_py() {
  local dir=tests/py venv=tests/py/.venv marker=tests/py/.venv/.mcpgate-installed-lock
  exec 9>"$dir/.install.lock"
  flock 9
  if ! cmp -s "$dir/requirements.lock" "$marker"; then
    log "pip install --require-hashes -r $dir/requirements.lock into $venv"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$dir/requirements.lock"
    cp "$dir/requirements.lock" "$marker"
  fi
  exec 9>&-
}

install_js
install_py

# --- lint gates ------------------------------------------------------------------------------
# Before the tests: formatting and clippy findings fail the run like a failing test would, and
# say so in one line rather than in the middle of the test output.
gate() {
  log "$*"
  if ! "$@"; then
    log "FAILED lint gate: $* (fix the findings above; \`cargo fmt --all\` rewrites formatting)"
    printf 'total: 0 passed, 1 failed\n'
    exit 1
  fi
}
gate cargo fmt --all --check
gate cargo clippy --workspace --all-targets -- -D warnings

# --- build the binary under test -------------------------------------------------------------
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
log "cargo build -p mcpgate-core --bin mcpgate"
cargo build -p mcpgate-core --bin mcpgate
export MCPGATE_BIN="$target_dir/debug/mcpgate"

# --- run everything --------------------------------------------------------------------------
# Tests that cannot run here (io_uring blocked) append their reason to this file.
skip_log=$(mktemp)
test_log=$(mktemp)
trap 'rm -f "$skip_log" "$test_log"' EXIT
export MCPGATE_E2E_SKIP_LOG="$skip_log"

log "cargo test --workspace"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$test_log"
status=${PIPESTATUS[0]}
set -e

# The side-by-side load harness in smoke mode (seconds): it must run and its output must parse;
# no speed is asserted here (figures live in bench/README.md).
log "bench/harness/smoke.sh"
smoke_status=0
bench/harness/smoke.sh || smoke_status=$?

# The soak in its 60-second form: steady half load on the release binary with reloads; fails on any
# failed request, growing RSS or leaked descriptors (scripts/soak.py; the 30-minute figures are in
# bench/soak/RESULTS.md).
log "scripts/soak.py --duration 60"
soak_status=0
python3 scripts/soak.py --duration 60 || soak_status=$?

# Every cargo-fuzz target for a fixed budget (MCPGATE_FUZZ_SECONDS each, default 30); a crash
# fails the run and its reproducer is kept under fuzz/regressions/ (which the unit tests replay).
log "scripts/fuzz.sh"
fuzz_status=0
scripts/fuzz.sh || fuzz_status=$?

if [[ -s "$skip_log" ]]; then
  printf '\nSkipped (reason printed by each test):\n' >&2
  sort "$skip_log" >&2
fi

# One closing line over every test binary: libtest prints one "test result:" per binary.
# Tests that skipped themselves reported "ok" to libtest; they are counted as skipped here.
python3 - "$test_log" "$skip_log" "$status" "$smoke_status" "$fuzz_status" "$soak_status" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
skipped_by_harness = sum(1 for line in open(sys.argv[2], encoding="utf-8") if line.strip())
passed = failed = ignored = 0
for m in re.finditer(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", text, re.M):
    passed += int(m[1]); failed += int(m[2]); ignored += int(m[3])
status = int(sys.argv[3])
if status != 0 and failed == 0:
    failed = 1  # a build error or a crashed test binary: no result line, still a failure
for extra in sys.argv[4:7]:  # the bench harness smoke, the fuzz run, the soak
    if int(extra) == 0:
        passed += 1
    else:
        failed += 1
print(f"total: {passed - skipped_by_harness} passed, {failed} failed, {ignored + skipped_by_harness} skipped")
PY
if ((status == 0 && smoke_status != 0)); then
  status=$smoke_status
fi
if ((status == 0 && soak_status != 0)); then
  status=$soak_status
fi
if ((status == 0 && fuzz_status != 0)); then
  status=$fuzz_status
fi
exit "$status"
