#!/usr/bin/env bash
# The main job, out of the box: installs what is needed, builds (release), builds the reference plugins, and
# runs mcp-supervisor on the bundled example configuration (examples/supervisor.toml): the C reference plugin
# on http://127.0.0.1:8765/mcp (two replicas) and the Rust one on a dynamic port, state in .state/.
# Ctrl-C stops every server in reverse dependency order; `kill -HUP` reloads examples/servers.d/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Toolchains installed outside the system PATH (rustup, the Swift tarball) still count.
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH

scripts/install-deps.sh
swift build -c release --product mcp-plugin-host
swift build -c release --product mcp-supervisor
swift build -c release --product mcpctl
swift build -c release --product mcp-gateway
scripts/build-plugins.sh
exec .build/release/mcp-supervisor --config examples/supervisor.toml --host .build/release/mcp-plugin-host
