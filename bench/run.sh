#!/usr/bin/env bash
# Benchmark: tools/call of the echo tool through mcp-plugin-host (C reference plugin) against the official
# Python MCP SDK's own server (MCPServer, stateless, JSON responses) with the same tool, same load generator,
# same run, same machine. Writes bench/results/host-vs-python.md and prints the table.
#   bench/run.sh [DURATION_SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
# Toolchains installed outside the system PATH (rustup, the Swift tarball) still count.
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
DURATION="${1:-10}"
CONNS="${2:-16}"

scripts/install-deps.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
swift build -c release --product mcp-plugin-host >/dev/null
scripts/build-plugins.sh >/dev/null

free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port() {  # wait (with a deadline) until something answers on the port
    local deadline=$((SECONDS + 60))
    until curl -s -o /dev/null "http://127.0.0.1:$1/"; do
        [ $SECONDS -lt $deadline ] || { echo "server on port $1 did not come up" >&2; exit 1; }
        sleep 0.1
    done
}
check_echo() {  # one real request, so a server that answers errors cannot post a good number
    curl -s -X POST "http://127.0.0.1:$1/mcp" -H 'Content-Type: application/json' \
        -H 'Accept: application/json, text/event-stream' -H 'MCP-Protocol-Version: 2026-07-28' \
        -H 'Mcp-Method: tools/call' -H 'Mcp-Name: echo' \
        -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' \
        | grep -q '"text":"hello"' || { echo "server on port $1 does not answer the echo call correctly" >&2; exit 1; }
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

HOST_PORT=$(free_port)
.build/release/mcp-plugin-host --plugin .build-plugins/libreference.so --listen "127.0.0.1:$HOST_PORT" \
    >/dev/null 2>/dev/null &
pids+=($!); HOST_PID=$!
POOL_PORT=$(free_port)
.build/release/mcp-plugin-host --plugin .build-plugins/libfaulty.so --listen "127.0.0.1:$POOL_PORT" \
    >/dev/null 2>/dev/null &
pids+=($!); POOL_PID=$!
PY_PORT=$(free_port)
.venv/bin/python bench/python_echo_server.py "$PY_PORT" >/dev/null 2>&1 &
pids+=($!); PY_PID=$!
wait_port "$HOST_PORT"; wait_port "$PY_PORT"; wait_port "$POOL_PORT"
check_echo "$HOST_PORT"; check_echo "$PY_PORT"

run_wrk() {  # port -> "requests duration_us p50_us p99_us non2xx"
    wrk -t1 -c"$CONNS" -d2s -s bench/echo_call.lua "http://127.0.0.1:$1/mcp" >/dev/null  # warm-up
    wrk -t1 -c"$CONNS" -d"${DURATION}s" -s bench/echo_call.lua "http://127.0.0.1:$1/mcp" \
        | awk '/^RESULT/ { for (i=2;i<=NF;i++) { split($i,kv,"="); printf "%s ", kv[2] } print "" }'
}
read -r h_req h_dur h_p50 h_p99 h_err <<<"$(run_wrk "$HOST_PORT")"
h_rss=$(rss_kb "$HOST_PID")
read -r p_req p_dur p_p50 p_p99 p_err <<<"$(run_wrk "$PY_PORT")"
p_rss=$(rss_kb "$PY_PID")
read -r t_req t_dur t_p50 t_p99 t_err <<<"$(TOOL=ok run_wrk "$POOL_PORT")"
t_rss=$(rss_kb "$POOL_PID")

mkdir -p bench/results
.venv/bin/python - "$DURATION" "$CONNS" "$h_req" "$h_dur" "$h_p50" "$h_p99" "$h_err" "$h_rss" \
    "$p_req" "$p_dur" "$p_p50" "$p_p99" "$p_err" "$p_rss" \
    "$t_req" "$t_dur" "$t_p50" "$t_p99" "$t_err" "$t_rss" <<'PY' | tee bench/results/host-vs-python.md
import sys, platform, os
d, c = sys.argv[1], sys.argv[2]
h = list(map(int, sys.argv[3:9])); p = list(map(int, sys.argv[9:15])); t = list(map(int, sys.argv[15:21]))
def rps(x): return x[0] / (x[1] / 1e6)
hr, pr = rps(h), rps(p)
print(f"`bench/run.sh {d} {c}`: wrk -t1 -c{c} -d{d}s, 2026-07-28 tools/call echo, {os.cpu_count()} cores, {platform.machine()}\n")
print("| server | req/s | p50 ms | p99 ms | non-2xx | RSS after run MB |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| mcp-plugin-host + C reference plugin | {hr:,.0f} | {h[2]/1000:.2f} | {h[3]/1000:.2f} | {h[4]} | {h[5]/1024:.1f} |")
print(f"| mcp-plugin-host, a tool on a handler thread (faulty `ok`, max 2) | {rps(t):,.0f} | {t[2]/1000:.2f} | {t[3]/1000:.2f} | {t[4]} | {t[5]/1024:.1f} |")
print(f"| Python SDK MCPServer (stateless, JSON) | {pr:,.0f} | {p[2]/1000:.2f} | {p[3]/1000:.2f} | {p[4]} | {p[5]/1024:.1f} |")
print(f"\nRatio: host/Python req/s = **{hr/pr:.1f}×**; p99 host/Python = {h[3]/max(p[3],1):.3f}.")
print(f"Targets: ≥ 15× req/s ({'met' if hr/pr >= 15 else 'NOT met'}), host p99 ≤ 2 ms "
      f"({'met' if h[3] <= 2000 else 'NOT met'}), host RSS ≤ 20 MB ({'met' if h[5] <= 20*1024 else 'NOT met'}).")
PY
