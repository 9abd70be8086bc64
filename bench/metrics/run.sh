#!/usr/bin/env bash
# Benchmark (issue 12): the metrics listener with SERVERS servers against supervisord's XML-RPC getAllProcessInfo,
# the supervisor's CPU when scraped every 15 s, and its RSS with the status page's history full. One run, this
# machine; prints a markdown table and writes bench/metrics/results.md.
#   bench/metrics/run.sh [RUNS=200] [IDLE_SECONDS=90] [SERVERS=50]
#   PHASES=1 bench/metrics/run.sh      runs only some phases (default 1,2,3,4)
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
export PYTHONDONTWRITEBYTECODE=1
RUNS="${1:-200}"
IDLE="${2:-90}"
SERVERS="${3:-50}"
PLUGIN=.build-plugins/libreference.so
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release >&2
    [ -e "$PLUGIN" ] || scripts/build-plugins.sh >/dev/null
fi
. bench/peer.sh
peer_venv
bench_workdir mcp-metrics-bench
"$VENV/bin/python" -u bench/metrics/bench.py --work "$WORK" \
    --supervisor .build/release/mcp-supervisor --host .build/release/mcp-plugin-host --plugin "$PLUGIN" \
    --supervisord "$VENV/bin/supervisord" --sleep "$(command -v sleep)" --runs "$RUNS" --idle "$IDLE" \
    --servers "$SERVERS" --phases "${PHASES:-1,2,3,4}" --command "bench/metrics/run.sh $RUNS $IDLE $SERVERS" \
    --out bench/metrics/results.md &
DRIVER=$!
wait "$DRIVER"
