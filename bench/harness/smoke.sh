#!/usr/bin/env bash
# CI smoke of the side-by-side harness: builds the fixtures and mcpgate, runs every leg
# (direct, mcpgate, nginx) and every scenario for a fraction of a second, and checks the JSON.
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

"$TARGET/release/sidebyside" --smoke --out "$OUT"

python3 - "$OUT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
legs = {s["leg"] for s in d["summary"]}
assert legs == {"direct", "mcpgate", "nginx"}, f"legs in output: {legs}"
assert not d["failures"], d["failures"]
for s in d["summary"]:
    if s["scenario"] == "idle-sse":
        assert s["idle_streams_open"], s
    else:
        assert s["rps"] and s["p99_us"] is not None, s
        if s["leg"] != "direct":
            assert s["proxy_cpu_us_per_req"] is not None, s
print(f"smoke: OK ({len(d['runs'])} runs, output {sys.argv[1]})")
PY
