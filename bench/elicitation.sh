#!/usr/bin/env bash
# Benchmark: the round trip of an elicitation through mcp-plugin-host (C reference plugin, tool `confirm`) against
# the official Python MCP SDK's own server doing the same (bench/python_confirm_server.py), same client (the
# Python SDK's, accepting at once), same run, both protocol eras (2025-11-25: elicitation/create on the call's
# SSE stream; 2026-07-28: input_required and the retry carrying requestState). Writes
# bench/results/elicitation.md (and .json) and prints the table.
#   bench/elicitation.sh [CALLS] [CLIENTS]
#     CALLS    timed calls per row (default 500); CLIENTS: the second table's concurrent clients (default 4; 1: none)
# Environment: MCP_PLUGIN_HOST  the host binary (default .build/release/mcp-plugin-host, built if missing)
#              SKIP_PLUGINS=1   use the plugins already in .build-plugins/ instead of running scripts/build-plugins.sh
#              WARMUP           warm-up calls per client before each row (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
CALLS="${1:-500}"
CLIENTS="${2:-4}"
WARMUP="${WARMUP:-20}"
HOST_BIN="${MCP_PLUGIN_HOST:-.build/release/mcp-plugin-host}"

scripts/install-deps.sh
if [ ! -x "$HOST_BIN" ]; then
    [ -z "${MCP_PLUGIN_HOST:-}" ] || { echo "MCP_PLUGIN_HOST=$HOST_BIN is not an executable" >&2; exit 1; }
    swift build -c release --product mcp-plugin-host >/dev/null
fi
[ "${SKIP_PLUGINS:-}" = 1 ] || scripts/build-plugins.sh >/dev/null
[ -f .build-plugins/libreference.so ] || { echo "no .build-plugins/libreference.so" >&2; exit 1; }

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {  # wait (with a deadline) until something answers on the port
    local deadline=$((SECONDS + 60))
    until curl -s -o /dev/null "http://127.0.0.1:$1/"; do
        [ $SECONDS -lt $deadline ] || { echo "server on port $1 did not come up" >&2; exit 1; }
        sleep 0.1
    done
}

pids=()  # the driver first: on SIGTERM it ends its client workers before the servers go
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
trap 'exit 130' INT TERM

HOST_PORT=$(free_port)
"$HOST_BIN" --plugin .build-plugins/libreference.so --listen "127.0.0.1:$HOST_PORT" >/dev/null 2>&1 &
pids+=($!); HOST_PID=$!
PY_PORT=$(free_port)
.venv/bin/python bench/python_confirm_server.py "$PY_PORT" >/dev/null 2>&1 &
pids+=($!); PY_PID=$!
wait_port "$HOST_PORT"; wait_port "$PY_PORT"

mkdir -p bench/results
# The driver checks every answer and exits non-zero (set -e ends the script) when a server answers wrongly. It
# runs in the background so that a TERM or INT to this script runs the cleanup at once, not after the driver.
.venv/bin/python bench/elicitation_client.py --host-port "$HOST_PORT" --host-pid "$HOST_PID" \
    --py-port "$PY_PORT" --py-pid "$PY_PID" --calls "$CALLS" --clients "$CLIENTS" --warmup "$WARMUP" \
    --command bench/elicitation.sh --out bench/results/elicitation.md &
DRIVER=$!
pids=("$DRIVER" "${pids[@]}")
wait "$DRIVER"
