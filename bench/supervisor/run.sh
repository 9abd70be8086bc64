#!/usr/bin/env bash
# Benchmark: mcp-supervisor against supervisord on this machine, in one run:
#   1. restart latency over KILLS kill -9 (kill -> replacement exec'd; kill -> the port answers an echo call again)
#   2. refused/failed connections during KILLS restarts under loopback load
#   3. SERVERS servers: cold start to all ready, then the supervisor's own idle CPU and RSS
# Prints a markdown table and writes bench/supervisor/results.md (raw numbers: .build-bench/supervisor-results.json).
#   bench/supervisor/run.sh [KILLS=100] [IDLE_SECONDS=60] [SERVERS=50]
#   SKIP_BUILD=1 bench/supervisor/run.sh    uses the release binaries and plugins already built
#   PHASES=1,3 bench/supervisor/run.sh      runs only some phases
set -euo pipefail
cd "$(dirname "$0")/../.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
KILLS="${1:-100}"
IDLE="${2:-60}"  # a whole number of default health-probe periods (30 s): a shorter window over- or under-counts probes
SERVERS="${3:-50}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release >&2
    scripts/build-plugins.sh >/dev/null
fi
for f in .build/release/mcp-supervisor .build/release/mcp-plugin-host .build-plugins/libreference.so; do
    [ -e "$f" ] || { echo "missing $f (build first, without SKIP_BUILD=1)" >&2; exit 1; }
done

. bench/peer.sh
peer_venv
bench_workdir mcp-supervisor-bench

mkdir -p .build-bench
"$VENV/bin/python" -u bench/supervisor/bench.py --work "$WORK" \
    --supervisor .build/release/mcp-supervisor --host .build/release/mcp-plugin-host \
    --plugin .build-plugins/libreference.so --supervisord "$VENV/bin/supervisord" \
    --sleep "$(command -v sleep)" --kills "$KILLS" --idle "$IDLE" --servers "$SERVERS" \
    --phases "${PHASES:-1,2,3}" --command "bench/supervisor/run.sh $KILLS $IDLE $SERVERS" \
    --out bench/supervisor/results.md --json .build-bench/supervisor-results.json &
DRIVER=$!
wait "$DRIVER"
