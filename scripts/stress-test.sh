#!/usr/bin/env bash
# The integration suite on a loaded machine: `stress-ng --cpu 2` keeps two workers spinning for the whole run
# (a loaded two-core CI box), so a timing bound that only holds on an idle machine shows up as a failure.
# Expects the release build and the plugins (scripts/test.sh builds both); extra arguments go to pytest
# (e.g. `scripts/stress-test.sh Tests/integration/test_health.py -x`). Exit status: pytest's.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v stress-ng >/dev/null 2>&1; then
    echo "stress-test: apt-get install stress-ng"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq stress-ng >/dev/null
fi
for f in .build/release/mcp-plugin-host .build/release/mcp-supervisor .build/release/mcpctl; do
    [ -x "$f" ] || { echo "stress-test: $f is not built (swift build -c release)" >&2; exit 1; }
done
[ -d .build-plugins ] || { echo "stress-test: plugins are not built (scripts/build-plugins.sh)" >&2; exit 1; }
python=.venv/bin/python
[ -x "$python" ] || python=/work/main/.venv/bin/python
[ -x "$python" ] || { echo "stress-test: no .venv (scripts/install-deps.sh)" >&2; exit 1; }

stress-ng --cpu 2 --timeout 0 --quiet &
stress_pid=$!
# Stop the load however this script ends (the pytest status is kept).
trap 'kill "$stress_pid" 2>/dev/null; wait "$stress_pid" 2>/dev/null || true' EXIT
echo "stress-test: stress-ng --cpu 2 running (pid $stress_pid)"

export MCP_PLUGIN_HOST="$PWD/.build/release/mcp-plugin-host"
export MCP_SUPERVISOR="$PWD/.build/release/mcp-supervisor"
export MCP_PLUGIN_DIR="$PWD/.build-plugins"
args=("$@")
[ "${#args[@]}" -gt 0 ] || args=(Tests/integration)
"$python" -m pytest "${args[@]}" -q -p no:cacheprovider --timeout=600 -rf --durations=15
