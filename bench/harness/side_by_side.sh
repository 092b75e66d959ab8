#!/usr/bin/env bash
# Full side-by-side measurement: direct vs mcpgate vs nginx, 3 repetitions, medians.
# Extra arguments go to `sidebyside` (see `sidebyside --help`), e.g. --reps 5 --nice -10.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

cd "$ROOT"
cargo build --release -q -p mcpgate-bench --bins
cargo build --release -q -p mcpgate-core
exec "$TARGET/release/sidebyside" --out "$TARGET/bench/side_by_side.json" "$@"
