#!/usr/bin/env bash
# Instructions mcp-gateway spends per call, counted by callgrind (repeatable whatever else the machine does): a
# host of the C reference plugin runs normally, the gateway in front of it (--backend s0=PORT) under valgrind,
# twice, serving N1 and N2 calls of s0__echo over one kept-alive connection; prints (Ir(N2) - Ir(N1)) / (N2 - N1).
#   bench/profile/callgrind-gateway.sh BIN_DIR [N1=200] [N2=1200]
# Leaves the callgrind output of the N2 run in $OUT (default: a temporary folder it names) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$1" N1="${2:-200}" N2="${3:-1200}"
OUT="${OUT:-$(mktemp -d)}"
PY="${PY:-.venv/bin/python}"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
    for _ in $(seq 600); do
        "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
        sleep 0.1
    done
    return 1
}
# valgrind 3.19 cannot read the debug info swift-nio-ssl's BoringSSL leaves in the executable ("possibly corrupted
# debuginfo"): a copy without it keeps the symbol table, which is all callgrind's per-function counts need.
objcopy --strip-debug "$BIN/mcp-gateway" "$OUT/mcp-gateway"
hport=$(free_port)
"$BIN/mcp-plugin-host" --plugin .build-plugins/libreference.so --listen "127.0.0.1:$hport" --threads 1 \
    >"$OUT/backend.log" 2>&1 &
backend=$!
trap 'kill $backend 2>/dev/null; wait $backend 2>/dev/null || true' EXIT
wait_port "$hport"
run() {
    local n="$1" port
    port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$n" --trace-children=no \
        "$OUT/mcp-gateway" --listen "127.0.0.1:$port" --backend "s0=$hport" >"$OUT/gateway.$n.log" 2>&1 &
    local pid=$!
    wait_port "$port" || { echo "the gateway under valgrind did not listen: $OUT/gateway.$n.log" >&2; exit 1; }
    # The gateway has read the backend's lists once s0__echo answers; the first calls warm it up in both runs.
    for _ in $(seq 600); do "$PY" bench/profile/host_client.py "$port" 1 s0__echo 2>/dev/null && break; sleep 0.2; done
    "$PY" bench/profile/host_client.py "$port" "$n" s0__echo
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^summary:/ {print $2}' "$OUT/cg.$n"
}
a=$(run "$N1")
b=$(run "$N2")
echo "$BIN: $(( (b - a) / (N2 - N1) )) gateway instructions per call (s0__echo; Ir $a at $N1, $b at $N2; out in $OUT)"
