#!/usr/bin/env bash
# Benchmark: the control socket and health probing of mcp-supervisor, in one run on this machine:
#   1. `mcpctl status` (and `mcpctl --json status`) wall time per process with SERVERS servers running,
#      against `supervisorctl status` with SERVERS programs under supervisord 4.3.0 (RUNS runs after 10 warm-ups)
#   2. the supervisor's CPU with `[health]` probing every 1 s against probing off, over IDLE_SECONDS each
#      (skipped, with a message, while this mcp-supervisor rejects the `[health]` table)
# Prints a markdown table and writes bench/control/results.md.
#   bench/control/run.sh [RUNS=200] [IDLE_SECONDS=20] [SERVERS=50]
#   PHASES=1 bench/control/run.sh      runs only some phases (default 1,2)
#   Builds (swift build -c release, scripts/build-plugins.sh) only what is missing; BUILD=1 rebuilds anyway,
#   SKIP_BUILD=1 never builds.
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
export PYTHONDONTWRITEBYTECODE=1
RUNS="${1:-200}"
IDLE="${2:-20}"
SERVERS="${3:-50}"

BINS=(.build/release/mcp-supervisor .build/release/mcp-plugin-host .build/release/mcpctl)
PLUGIN=.build-plugins/libreference.so
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    missing=0
    for f in "${BINS[@]}"; do [ -e "$f" ] || missing=1; done
    if [ "${BUILD:-0}" = 1 ] || [ "$missing" = 1 ]; then swift build -c release >&2; fi
    if [ "${BUILD:-0}" = 1 ] || [ ! -e "$PLUGIN" ]; then scripts/build-plugins.sh >/dev/null; fi
fi
for f in "${BINS[@]}" "$PLUGIN"; do
    [ -e "$f" ] || { echo "missing $f (build first, without SKIP_BUILD=1)" >&2; exit 1; }
done

. bench/peer.sh
peer_venv
bench_workdir mcp-control-bench

"$VENV/bin/python" -u bench/control/bench.py --work "$WORK" \
    --supervisor .build/release/mcp-supervisor --host .build/release/mcp-plugin-host \
    --mcpctl .build/release/mcpctl --plugin "$PLUGIN" \
    --supervisord "$VENV/bin/supervisord" --supervisorctl "$VENV/bin/supervisorctl" \
    --sleep "$(command -v sleep)" --runs "$RUNS" --idle "$IDLE" --servers "$SERVERS" \
    --phases "${PHASES:-1,2}" --command "bench/control/run.sh $RUNS $IDLE $SERVERS" \
    --out bench/control/results.md &
DRIVER=$!
wait "$DRIVER"
