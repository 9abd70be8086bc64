#!/usr/bin/env bash
# Instructions the host spends per request, counted by callgrind (repeatable whatever else the machine does):
# runs mcp-plugin-host under valgrind twice, serving N1 and N2 requests over one kept-alive connection, and
# prints (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up and shutdown cancel out.
#   bench/profile/callgrind-host.sh BIN_DIR [PLUGIN=.build-plugins/libreference.so] [TOOL=echo] [N1=200] [N2=1200]
# HOST_ARGS="--no-metrics" passes extra host flags (the metrics-cost comparison, docs/performance.md).
# Leaves the callgrind output of the N2 run in $OUT (default: a temporary folder it names) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN="$1" PLUGIN="${2:-.build-plugins/libreference.so}" TOOL="${3:-echo}" N1="${4:-200}" N2="${5:-1200}"
OUT="${OUT:-$(mktemp -d)}"
PY="${PY:-.venv/bin/python}"
run() {
    local n="$1" port
    port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$n" --trace-children=no \
        "$BIN/mcp-plugin-host" --plugin "$PLUGIN" --listen "127.0.0.1:$port" ${HOST_ARGS:-} >"$OUT/host.$n.log" 2>&1 &
    local pid=$!
    for _ in $(seq 600); do
        "$PY" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port)))" && break
        sleep 0.1
    done
    "$PY" bench/profile/host_client.py "$port" "$n" "$TOOL"
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^summary:/ {print $2}' "$OUT/cg.$n"
}
a=$(run "$N1")
b=$(run "$N2")
echo "$BIN: $(( (b - a) / (N2 - N1) )) instructions per request ($TOOL; Ir $a at $N1, $b at $N2; out in $OUT)"
