#!/usr/bin/env bash
# The main job, out of the box: installs what is needed, builds (release) and serves the bundled C reference
# plugin with mcp-plugin-host on http://127.0.0.1:${PORT:-8765}/mcp until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# Toolchains installed outside the system PATH (rustup, the Swift tarball) still count.
for d in "$HOME/.cargo/bin" /opt/swift/usr/bin; do [ -d "$d" ] && PATH="$PATH:$d"; done
export PATH

scripts/install-deps.sh
swift build -c release --product mcp-plugin-host
scripts/build-plugins.sh
exec .build/release/mcp-plugin-host --plugin .build-plugins/libreference.so --listen "127.0.0.1:${PORT:-8765}"
