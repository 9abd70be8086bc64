#!/usr/bin/env bash
# The chaos soak (docs/reliability.md, "Chaos soak"): MINUTES of random faults under load against one supervisor,
# then the end checks. Writes bench/chaos/results.md (MINUTES=30 is the figure docs/reliability.md quotes; the test
# command runs 2). Exits 1 when a check fails.
#   bench/chaos/run.sh [MINUTES=30] [SEED]
#   SKIP_BUILD=1 bench/chaos/run.sh 2      uses the release binaries and plugins already built
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES="${1:-30}"
SEED="${2:-$(date +%s)}"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    swift build -c release >&2
    scripts/build-plugins.sh >/dev/null
fi
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || { echo "chaos: $PY missing (scripts/install-deps.sh makes .venv)" >&2; exit 1; }
. bench/peer.sh
bench_workdir mcp-chaos
OUT="${CHAOS_OUT:-bench/chaos/results.md}"
"$PY" -u bench/chaos/soak.py --work "$WORK" --supervisor .build/release/mcp-supervisor \
    --host .build/release/mcp-plugin-host --plugins "$PWD/.build-plugins" --minutes "$MINUTES" --seed "$SEED" \
    --command "bench/chaos/run.sh $MINUTES $SEED" --out "$OUT" &
DRIVER=$!
wait "$DRIVER"
