#!/usr/bin/env bash
# The whole test suite in one command: installs what it needs, builds, runs the Swift unit tests, the ABI
# checks and the integration tests against real processes, real sockets and the official Python MCP SDK.
set -euo pipefail
cd "$(dirname "$0")/.."
# Toolchains installed outside the system PATH (rustup, the Swift tarball) still count.
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH

scripts/install-deps.sh
echo "== swift build"
swift build
echo "== plugins"
scripts/build-plugins.sh
echo "== swift test"
swift test
echo "== integration tests (pytest)"
export MCP_PLUGIN_HOST="$PWD/.build/debug/mcp-plugin-host"
export MCP_PLUGIN_DIR="$PWD/.build-plugins"
.venv/bin/python -m pytest Tests/integration -q -p no:cacheprovider --timeout=300 "$@"
