#!/usr/bin/env bash
# Benchmark: how fast the port of a down (fatal) server answers, against a live host's answer in the same run
# (docs/reliability.md, "Answers while a server is down"). Writes bench/unavailable/results.md.
#   bench/unavailable/run.sh [REQUESTS=2000] [CONNS=32]
#   SKIP_BUILD=1 bench/unavailable/run.sh    uses the release binaries and plugins already built
set -euo pipefail
cd "$(dirname "$0")/../.."
REQUESTS="${1:-2000}"
CONNS="${2:-32}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release >&2
    scripts/build-plugins.sh >/dev/null
fi
. bench/peer.sh
bench_workdir mcp-unavailable-bench
python3 -u bench/unavailable/bench.py --work "$WORK" --supervisor .build/release/mcp-supervisor \
    --host .build/release/mcp-plugin-host --plugins "$PWD/.build-plugins" --requests "$REQUESTS" --conns "$CONNS" \
    --command "bench/unavailable/run.sh $REQUESTS $CONNS" --out bench/unavailable/results.md &
DRIVER=$!
wait "$DRIVER"
