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

# The peer, from PyPI, in its own virtual environment (the same one as bench/supervisor; gitignored: .build*/).
VENV=.build-bench/venv-supervisord
if [ ! -x "$VENV/bin/supervisord" ] || [ ! -x "$VENV/bin/supervisorctl" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q 'supervisor==4.3.0'
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mcp-control-bench.XXXXXX")"
DRIVER=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
        kill -TERM "$DRIVER" 2>/dev/null || true   # the driver stops its supervisors and their children
        for _ in $(seq 1 200); do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DRIVER" 2>/dev/null || true
    fi
    # Anything the driver started or saw as a supervised child and that is still there (driver killed hard):
    # only these pids, and only while they still run one of the benchmark's executables.
    if [ -f "$WORK/pids" ]; then
        local host sleepbin sup
        host="$(readlink -f .build/release/mcp-plugin-host)"; sleepbin="$(readlink -f "$(command -v sleep)")"
        sup="$(readlink -f .build/release/mcp-supervisor)"
        while read -r pid; do
            exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
            case "$exe" in
                "$host" | "$sleepbin" | "$sup") kill -KILL "$pid" 2>/dev/null || true ;;
                *python*) grep -qa -e "$WORK" -e supervisord "/proc/$pid/cmdline" 2>/dev/null \
                    && kill -KILL "$pid" 2>/dev/null || true ;;
            esac
        done <"$WORK/pids"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$VENV/bin/python" -u bench/control/bench.py --work "$WORK" \
    --supervisor .build/release/mcp-supervisor --host .build/release/mcp-plugin-host \
    --mcpctl .build/release/mcpctl --plugin "$PLUGIN" \
    --supervisord "$VENV/bin/supervisord" --supervisorctl "$VENV/bin/supervisorctl" \
    --sleep "$(command -v sleep)" --runs "$RUNS" --idle "$IDLE" --servers "$SERVERS" \
    --phases "${PHASES:-1,2}" --command "bench/control/run.sh $RUNS $IDLE $SERVERS" \
    --out bench/control/results.md &
DRIVER=$!
wait "$DRIVER"
