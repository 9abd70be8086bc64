#!/usr/bin/env bash
# Benchmark: the gateway (docs/gateway.md) against the direct call and the FastMCP 4.1.6 proxy over the same host,
# plus tools/list over 10 servers and the gateway's RSS; ContextForge 1.1.0 where it installs. Same run, same machine.
# Writes bench/results/gateway.md (raw numbers: .build-bench/gateway.json).
#   bench/gateway/run.sh [SECONDS=10] [CONNECTIONS=16]
#   SKIP_BUILD=1 bench/gateway/run.sh    uses the release binaries and plugins already built
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
SECONDS_PER_ROW="${1:-10}"
CONNS="${2:-16}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    scripts/install-deps.sh >&2
    swift build -c release >&2
    scripts/build-plugins.sh >/dev/null
fi
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
FASTMCP_VENV=.build-bench/venv-fastmcp-4.1.6
if [ ! -x "$FASTMCP_VENV/bin/python" ] || ! "$FASTMCP_VENV/bin/python" -c 'import fastmcp' 2>/dev/null; then
    python3 -m venv "$FASTMCP_VENV"
    "$FASTMCP_VENV/bin/pip" install -q 'fastmcp==4.1.6'
fi
mkdir -p bench/results .build-bench
.venv/bin/python -u bench/gateway/bench.py --host "$PWD/.build/release/mcp-plugin-host" \
    --gateway "$PWD/.build/release/mcp-gateway" --plugin "$PWD/.build-plugins/libreference.so" \
    --fastmcp-python "$FASTMCP_VENV/bin/python" --seconds "$SECONDS_PER_ROW" --conns "$CONNS" \
    --command "bench/gateway/run.sh $SECONDS_PER_ROW $CONNS" \
    --out bench/results/gateway.md --json .build-bench/gateway.json
