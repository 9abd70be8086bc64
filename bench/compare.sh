#!/usr/bin/env bash
# Before/after comparison of two builds of ours, interleaved (before, after, before, after, ...) in one run on
# this machine: the host (bench/run.sh's wrk load), the supervisor (bench/supervisor) and the control socket
# (bench/control), our side only; medians per figure and the change. Writes bench/results/before-after.md.
#   bench/compare.sh BEFORE_BIN_DIR AFTER_BIN_DIR [ROUNDS=3] [KILLS=50] [IDLE_SECONDS=30] [SERVERS=50]
# Each folder holds release binaries (mcp-supervisor, mcp-plugin-host, mcpctl), e.g. a copy of .build/release
# taken before a change. Plugins come from this tree (scripts/build-plugins.sh); both builds load the same ones.
# PLUGINS=DIR takes libreference.so and libfaulty.so from DIR instead: an older host that implements only an
# earlier ABI minor needs plugins built against that header (a 1.0 plugin loads in every 1.x host).
set -euo pipefail
cd "$(dirname "$0")/.."
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH
[ $# -ge 2 ] || { sed -n '2,7p' "$0" >&2; exit 2; }
BEFORE="$1" AFTER="$2" ROUNDS="${3:-3}" KILLS="${4:-50}" IDLE="${5:-30}" SERVERS="${6:-50}"
for dir in "$BEFORE" "$AFTER"; do
    for exe in mcp-supervisor mcp-plugin-host mcpctl; do
        [ -x "$dir/$exe" ] || { echo "compare: $dir/$exe is missing" >&2; exit 1; }
    done
done
scripts/install-deps.sh
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
PLUGINS="${PLUGINS:-.build-plugins}"
[ -e "$PLUGINS/libreference.so" ] && [ -e "$PLUGINS/libfaulty.so" ] || scripts/build-plugins.sh >/dev/null

. bench/peer.sh
peer_venv
bench_workdir mcp-compare-bench
mkdir -p bench/results
"$VENV/bin/python" -u bench/compare.py --before "$BEFORE" --after "$AFTER" --plugins "$PLUGINS" \
    --supervisord "$VENV/bin/supervisord" --supervisorctl "$VENV/bin/supervisorctl" --sleep "$(command -v sleep)" \
    --rounds "$ROUNDS" --kills "$KILLS" --idle "$IDLE" --servers "$SERVERS" --work "$WORK" \
    --command "bench/compare.sh BEFORE AFTER $ROUNDS $KILLS $IDLE $SERVERS" --out bench/results/before-after.md &
DRIVER=$!
wait "$DRIVER"
