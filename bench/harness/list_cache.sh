#!/usr/bin/env bash
# The list cache's cost, in one run (docs/integrity.md, issue 17): `tools/list` of 100 tools
# through mcpgate passing it through (leg `mcpgate`) and answered from the list cache (leg
# `list-cached`, bench/harness/list-cache.toml), with and without the ACL filtering it, CPU µs per
# request of the proxy, legs interleaved, paired ratios (bench/README.md "A/B of two mcpgate
# configs in one run"). Extra arguments go to sidebyside (`--reps 20 --duration 3`…).
#
#   bench/harness/list_cache.sh [--reps N] [...]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
cargo build --release --quiet -p mcpgate-core --bin mcpgate -p mcpgate-bench --bins
exec "$target/release/sidebyside" \
  --legs direct,mcpgate \
  --mcpgate-variant "list-cached=$root/bench/harness/list-cache.toml" \
  --scenarios list,list-acl \
  --tools 100 \
  --out "$target/bench/list_cache.json" \
  "$@"
