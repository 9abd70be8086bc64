#!/usr/bin/env bash
# Benchmark: the box's cost (issue 13, docs/security.md) — full box against no box in the same run: the
# supervisor's respawn to ready, the host's exec to serving, tools/call throughput (wrk), then verification time
# per MB (bench/trust/run.sh). Writes bench/box/results.md (+ .json) and prints the tables. Needs root (the boxed
# server runs as nobody, with cgroup limits).
#   bench/box/run.sh [STARTS=100] [KILLS=100] [ROUNDS=5] [SECONDS=5] [CONNS=16]
#   SKIP_BUILD=1 uses the release builds as they are; MCP_PLUGIN_HOST / MCP_SUPERVISOR pick other binaries.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
if [ -z "${SKIP_BUILD:-}" ]; then
    scripts/install-deps.sh
    swift build -c release >/dev/null
    scripts/build-plugins.sh >/dev/null
fi
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || PY=python3
# Not beneath /tmp: the boxed server's private /tmp would hide its plugin and paths.
WORK="$(mktemp -d /var/tmp/bench-box.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$PY" bench/box/bench.py "$WORK" "${1:-100}" "${2:-100}" "${3:-5}" "${4:-5}" "${5:-16}" bench/box/results.md
echo
echo "Verification time per MB (bench/trust/run.sh):"
HOST="${MCP_PLUGIN_HOST:-.build/release/mcp-plugin-host}" bench/trust/run.sh 20 | tee -a bench/box/results.md
