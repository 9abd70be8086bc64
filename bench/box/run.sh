#!/usr/bin/env bash
# Host start-to-ready (p50) and sequential tools/call throughput with the full box vs none (docs/security.md).
# Usage: bench/box/run.sh [STARTS] [CALLS]   (MCP_PLUGIN_HOST picks the host binary; default the release build)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" "$REPO/bench/box/bench.py" "${1:-30}" "${2:-3000}"
