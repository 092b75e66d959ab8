#!/usr/bin/env bash
# CI smoke of the side-by-side harness: builds the fixtures and mcpgate, then two short runs:
# 1. every leg (direct, mcpgate, nginx, and the recording-off A/B variant mcpgate-nolog) and every
#    scenario (including the ACL-filtered and JWT ones) with our loadgen and mock;
# 2. the legs not ours: wrk and our loadgen × the mock, nginx as a trivial origin and
#    server-everything, for call-json and list-acl-jwt (closed loop only).
# Each run lasts a fraction of a second per leg; the JSON is checked. Asserts that the harness
# runs and its output parses, never a speed. Fails loudly if a leg cannot run (missing nginx,
# wrk or server-everything, mcpgate not starting, errors through a proxy).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="${1:-$TARGET/bench/smoke.json}"
OUT_LEGS="${OUT%.json}-legs.json"

# nginx (proxy leg, trivial origin), wrk (second load generator), server-everything (real MCP
# origin): installed when missing (apt-get as root, npm ci in tests/js); fails loudly otherwise.
"$ROOT/bench/harness/ensure_tools.sh" nginx wrk everything

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

"$TARGET/release/sidebyside" --smoke --loadgen ours,wrk --origin mock,nginx,everything \
    --scenarios call-json,list-acl-jwt --closed-only --out "$OUT_LEGS"

python3 - "$OUT_LEGS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert not d["failures"], d["failures"]
combos = {(s["loadgen"], s["origin"]) for s in d["summary"]}
want = {(lg, o) for lg in ("ours", "wrk") for o in ("mock", "nginx", "everything")}
assert combos == want, f"combinations in output: {sorted(combos)}"
for s in d["summary"]:
    assert s["leg"] in ("direct", "mcpgate", "nginx"), s
    assert s["rps"] and s["errors"] == 0, s
    if s["leg"] != "direct":
        assert s["proxy_cpu_us_per_req"] is not None, s
    if s["leg"] == "mcpgate":
        assert s["cpu_vs_nginx"] is not None and s["cpu_vs_nginx_paired"] is not None, s
for r in d["runs"]:
    assert r["report"]["requests"] > 0, (r["combo"], r["leg"], r["scenario"])
    assert r["combo"] == f"w{r['workers']} {r['loadgen']}→{r['origin']}", r["combo"]
    if r["loadgen"] == "wrk":
        assert r["report"]["driver"] == "wrk", r
print(f"smoke: OK ({len(d['runs'])} runs over {len(combos)} load generator × origin combinations, output {sys.argv[1]})")
PY
