#!/usr/bin/env bash
# Benchmark: command servers (docs/servers.md). wrk on tools/call of a trivial tool in a Python stdio program,
# through our bridge (mcp-plugin-host -- PROGRAM), through mcp-proxy 0.13.0 (PyPI) wrapping the same program, and
# served by the Python SDK's own HTTP transport; the program's own stdio round trip as the floor; restart latency
# (kill -> serving) of a command server next to a plugin server. Same run, same machine.
# Writes bench/results/commands.md (raw numbers: .build-bench/commands.json).
#   bench/commands/run.sh [SECONDS=10] [CONNECTIONS=16] [KILLS=20]
#   SKIP_BUILD=1 bench/commands/run.sh    uses the release binaries and plugins already built
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
SECONDS_PER_ROW="${1:-10}"
CONNS="${2:-16}"
KILLS="${3:-20}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    scripts/install-deps.sh >&2
    swift build -c release >&2
    scripts/build-plugins.sh >/dev/null
fi
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/install-deps.sh installs it)" >&2; exit 1; }
PROXY_VENV=.build-bench/venv-mcp-proxy
if [ ! -x "$PROXY_VENV/bin/mcp-proxy" ]; then
    python3 -m venv "$PROXY_VENV"
    "$PROXY_VENV/bin/pip" install -q 'mcp-proxy==0.13.0'
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-commands-bench.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p bench/results .build-bench
.venv/bin/python -u bench/commands/bench.py --host "$PWD/.build/release/mcp-plugin-host" \
    --supervisor "$PWD/.build/release/mcp-supervisor" --mcpctl "$PWD/.build/release/mcpctl" \
    --plugin "$PWD/.build-plugins/libreference.so" --mcp-proxy "$PROXY_VENV/bin/mcp-proxy" --work "$WORK" \
    --seconds "$SECONDS_PER_ROW" --conns "$CONNS" --kills "$KILLS" \
    --command "bench/commands/run.sh $SECONDS_PER_ROW $CONNS $KILLS" \
    --out bench/results/commands.md --json .build-bench/commands.json
