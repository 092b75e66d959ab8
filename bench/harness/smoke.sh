#!/usr/bin/env bash
# CI smoke of the side-by-side harness: builds the fixtures and mcpgate, runs every leg
# (direct, mcpgate, nginx, and the recording-off A/B variant mcpgate-nolog) and every scenario
# (including the ACL-filtered and JWT ones) for a fraction of a second, and checks the JSON.
# Asserts that the harness runs and its output parses, never a speed. Fails loudly if a leg
# cannot run (missing nginx, mcpgate not starting, errors through a proxy).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${1:-$TARGET/bench/smoke.json}"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "smoke: nginx missing, installing it (Debian package)" >&2
        apt-get update -qq && apt-get install -y -qq nginx >/dev/null
    else
        echo "smoke: FAILED: nginx is not installed (apt-get install -y nginx)" >&2
        exit 1
    fi
fi

cd "$ROOT"
cargo build --release -q -p mcpgate-bench --bins
cargo build --release -q -p mcpgate-core

"$TARGET/release/sidebyside" --smoke --observe-ab --out "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
legs = {s["leg"] for s in d["summary"]}
assert legs == {"direct", "mcpgate", "nginx", "mcpgate-nolog"}, f"legs in output: {legs}"
assert not d["failures"], d["failures"]
scenarios = {s["scenario"] for s in d["summary"]}
want = {"call-json", "call-sse", "list", "list-acl", "list-acl-jwt", "idle-sse"}
assert scenarios == want, f"scenarios in output: {scenarios}"
for s in d["summary"]:
    if s["scenario"] == "idle-sse":
        assert s["idle_streams_open"], s
    else:
        assert s["rps"] and s["p99_us"] is not None, s
        if s["leg"] != "direct":
            assert s["proxy_cpu_us_per_req"] is not None, s
            assert s["proxy_cpu_us_per_req_min"] <= s["proxy_cpu_us_per_req_max"], s
        if s["leg"] == "mcpgate-nolog":
            assert s["cpu_vs_mcpgate"] and s["cpu_vs_mcpgate_paired"], s
    # loadgen counts every tools/list answer: 50 of 100 tools through mcpgate's ACL, 100 elsewhere;
    # a wrong count is an error, so an unfiltered gateway cannot pass.
    if s["scenario"].startswith("list-acl"):
        assert s["errors"] == 0, s
acl_runs = [r for r in d["runs"] if r["scenario"].startswith("list-acl")]
assert acl_runs and all(r["report"]["requests"] > 0 for r in acl_runs), "list-acl runs missing"
print(f"smoke: OK ({len(d['runs'])} runs, output {sys.argv[1]})")
PY
