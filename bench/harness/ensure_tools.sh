#!/usr/bin/env bash
# Installs what the side-by-side harness's legs need and is missing: nginx (proxy leg and the
# trivial origin) and wrk (the second load generator) from Debian's packages (root, apt-get), and
# server-everything (the real MCP origin) by `npm ci` in tests/js from its committed lockfile, with
# the same marker and flock as scripts/test.sh and tests/src/peers.rs so nothing installs twice.
# Fails loudly, naming what is missing, when it cannot install.
#
# Usage: bench/harness/ensure_tools.sh [nginx] [wrk] [everything]   (default: all three)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
want=("$@")
((${#want[@]})) || want=(nginx wrk everything)

has() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

packages=()
for tool in "${want[@]}"; do
    case "$tool" in
        nginx) has nginx || packages+=(nginx) ;;
        wrk) has wrk || packages+=(wrk) ;;
        everything) has node || packages+=(nodejs); has npm || packages+=(npm) ;;
        *) echo "ensure_tools: unknown tool $tool (nginx, wrk, everything)" >&2; exit 2 ;;
    esac
done
if ((${#packages[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "ensure_tools: installing ${packages[*]} (Debian packages)" >&2
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "ensure_tools: FAILED: missing ${packages[*]} (apt-get install -y ${packages[*]})" >&2
        exit 1
    fi
fi

for tool in "${want[@]}"; do
    if [ "$tool" = everything ]; then
        dir="$ROOT/tests/js"
        marker="$dir/node_modules/.mcpgate-installed-lock"
        exec 8>"$dir/.install.lock"
        flock 8
        if ! cmp -s "$dir/package-lock.json" "$marker"; then
            echo "ensure_tools: npm ci in tests/js (server-everything)" >&2
            (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
            cp "$dir/package-lock.json" "$marker"
        fi
        exec 8>&-
        entry="$dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
        [ -f "$entry" ] || { echo "ensure_tools: FAILED: $entry missing after npm ci" >&2; exit 1; }
    fi
done
