#!/usr/bin/env bash
# Rate limits (issue 16): the latency and CPU a rule adds, at a fixed open-loop rate, for no rule,
# a node-scope rule and a cluster-scope rule (one Redis round trip per request), and the Redis
# round trips per request from the gateway's own /metrics. One worker, loopback, a local
# redis-server (Debian's). Prints one line per variant. Needs the release binaries:
#   cargo build --release -p mcpgate-bench --bins -p mcpgate-core
# Usage: bench/harness/limits_latency.sh [RATE=2000] [SECONDS=8]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
T=${CARGO_TARGET_DIR:-target}/release
RATE=${1:-2000}
DUR=${2:-8}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
REDIS_PORT=$(port); MOCK_PORT=$(port); GW_PORT=$(port); ADMIN_PORT=$(port)
WORK=$(mktemp -d)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS=$!
"$T/mock_upstream" --listen "127.0.0.1:$MOCK_PORT" --tools 100 --result-bytes 256 >"$WORK/mock.log" 2>&1 &
MOCK=$!
trap 'kill $REDIS $MOCK 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 1
for variant in none node cluster; do
  {
    printf '[gateway]\nlisten = "127.0.0.1:%s"\nadmin = "127.0.0.1:%s"\nworkers = 1\n' "$GW_PORT" "$ADMIN_PORT"
    printf '[gateway.redis]\naddress = "127.0.0.1:%s"\n' "$REDIS_PORT"
    printf '[[api]]\nname = "bench"\npath = "/mcp-proxy"\nupstream = "http://127.0.0.1:%s/mcp"\n' "$MOCK_PORT"
    if [[ $variant != none ]]; then
      # Never refuses: what is measured is the decision's cost.
      printf '[[api.limit]]\nname = "calls"\nmethods = ["tools/call"]\nkey = "client_ip"\nrate = "1000000000/1s"\nscope = "%s"\n' "$variant"
    fi
  } >"$WORK/$variant.toml"
  "$T/mcpgate" run -c "$WORK/$variant.toml" >"$WORK/gw-$variant.log" 2>&1 &
  GW=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null && break; sleep 0.1; done
  "$T/loadgen" --url "http://127.0.0.1:$GW_PORT/mcp-proxy" --scenario call-json --connections 16 \
    --rate "$RATE" --duration "$DUR" --watch "gw=$GW" >"$WORK/lg-$variant.json"
  metrics=$(curl -s "http://127.0.0.1:$ADMIN_PORT/metrics")
  kill "$GW"; wait "$GW" 2>/dev/null || true
  python3 - "$variant" "$WORK/lg-$variant.json" "$metrics" <<'PY'
import json, re, sys
variant, report, metrics = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
def num(name):
    m = re.search(r'^' + re.escape(name) + r'(?:\{[^}]*\})? (\d+)$', metrics, re.M)
    return int(m.group(1)) if m else 0
calls = num("mcpgate_ratelimit_redis_calls_total")
decided = sum(int(v) for v in re.findall(r'^mcpgate_ratelimit_decisions_total\{[^}]*\} (\d+)$', metrics, re.M))
lat, gw = report["latency_us"], report["watched"]["gw"]
rt = f"{calls / decided:.4f}" if decided else "-"
print(f"{variant:8} requests {report['requests']:6} errors {report['errors']} p50 {lat['p50']} us p99 {lat['p99']} us "
      f"cpu {gw['cpu_us_per_request']:.1f} us/req redis round trips/request {rt}")
PY
done
