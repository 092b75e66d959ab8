#!/bin/bash
# CPU µs per tools/call and per tools/list (issue 15): the pass-through API vs a virtual API over
# three upstreams (server-everything twice over Streamable HTTP, once over stdio; its list is the
# three merged), same gateway, same run. The client accepts JSON and event streams, as the SDKs
# do, so virtual calls are answered as the gateway's own event stream.
# Gateway CPU (utime+stime of its process, /proc) / requests wrk completed; every answer is
# checked to be the echo (virtual_call.lua prints the first bad one).
# Usage: cargo build --release -p mcpgate-core --bin mcpgate && bench/harness/virtual_server.sh
#        (MCPGATE_BIN=path: another build, e.g. a before/after pair in one sitting)
#        (ROUNDS=N rounds, default 3; medians printed at the end)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${MCPGATE_BIN:-$ROOT/target/release/mcpgate}
LUA=$ROOT/bench/harness/virtual_call.lua
WORK=$(mktemp -d)
cd "$WORK"
SE=$ROOT/tests/js/node_modules/@modelcontextprotocol/server-everything/dist/index.js
# Waits (at most 30 s) until $1 is true; fails the run otherwise.
wait_for() {
  for _ in $(seq 300); do eval "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for: $1" >&2; exit 1
}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# The ports are fixed: a gateway or server of a previous run may still be closing.
wait_for "! listening 34201 && ! listening 34202 && ! listening 34210"
PORT=34201 node $SE streamableHttp > se1.log 2>&1 & S1=$!
PORT=34202 node $SE streamableHttp > se2.log 2>&1 & S2=$!
trap 'kill $S1 $S2 ${G:-} 2>/dev/null' EXIT
wait_for "listening 34201 && listening 34202"
cat > gw.toml <<TOML
[gateway]
listen = "127.0.0.1:34210"
admin = ""
workers = 1
[gateway.log]
enabled = false
[[api]]
name = "pass"
path = "/pass"
upstream = "http://127.0.0.1:34201/mcp"
[[api]]
name = "virt"
path = "/virt"
[[api.upstream]]
name = "a"
url = "http://127.0.0.1:34201/mcp"
[[api.upstream]]
name = "b"
url = "http://127.0.0.1:34202/mcp"
[[api.upstream]]
name = "s"
command = "node"
args = ["$SE", "stdio"]
TOML
$BIN run --config gw.toml > gw.log 2>&1 & G=$!
wait_for "grep -q 'stdio upstream virt/s: initialized' gw.log"
init() { curl -s -D - -o /dev/null -H content-type:application/json -H 'accept: application/json, text/event-stream' http://127.0.0.1:34210/$1 -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"b","version":"1"}}}' | grep -i '^mcp-session-id:' | cut -d' ' -f2 | tr -d '\r'; }
cpu() { awk '{print $14+$15}' /proc/$G/stat; }
ROUNDS=${ROUNDS:-3}
declare -A samples
for round in $(seq "$ROUNDS"); do
for case in "pass echo" "virt a__echo" "virt s__echo" "pass tools/list" "virt tools/list"; do
  set -- $case
  SID=$(init $1)
  c0=$(cpu)
  out=$(SID=$SID TOOL=$2 wrk -t1 -c4 -d8s -s $LUA http://127.0.0.1:34210/$1)
  c1=$(cpu)
  n=$(echo "$out" | awk '/requests in/ {print $1}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
  us=$(( (c1-c0)*10000 / n ))
  samples["$case"]="${samples[$case]:-} $us"
  echo "round $round: $1 $2: requests=$n non2xx=${non2xx:-0} cpu_us_per_req=$us"
  echo "$out" | grep -q "BAD ANSWER" && { echo "$out" | grep "BAD ANSWER"; exit 1; }
done
done
# Medians per case, and each virtual case over its pass-through (median of the per-round ratios
# would pair rounds; the ratio of medians is what is reported).
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for case in "pass echo" "virt a__echo" "virt s__echo" "pass tools/list" "virt tools/list"; do
  echo "median $case: $(echo "${samples[$case]}" | median) µs (samples:${samples[$case]})"
done
kill $G $S1 $S2
trap - EXIT
