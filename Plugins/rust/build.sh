#!/usr/bin/env bash
# Builds the Rust plugin kit (Plugins/rust/mcp-plugin) and the Rust reference plugin (Plugins/rust/reference)
# offline with the machine's cargo (std only: no crates, no network) and installs the plugin as
#
#   ${MCP_PLUGIN_DIR:-<repo>/.build-plugins}/librust_reference.so
#
# Cargo's output (target dir and CARGO_HOME) stays under <repo>/.build-rust/ (gitignored via .build*/).
# Usage: Plugins/rust/build.sh   (from any directory; prints one line)
# The plugin is moved into place atomically, so a host that has the old file mapped keeps working.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORKSPACE="$REPO/Plugins/rust"
BUILD="$REPO/.build-rust"
OUT="${MCP_PLUGIN_DIR:-$REPO/.build-plugins}"

if ! command -v cargo >/dev/null 2>&1; then
    echo "Plugins/rust/build.sh: cargo not found on PATH (install a Rust toolchain >= 1.82)" >&2
    exit 1
fi

mkdir -p "$OUT" "$BUILD"
OUT="$(cd "$OUT" && pwd)"

# A private CARGO_HOME: no user config, registry or credentials are read; --offline: never the network.
export CARGO_HOME="$BUILD/cargo-home"
export CARGO_TARGET_DIR="$BUILD/target"
unset CARGO_BUILD_TARGET

cargo build --release --offline --quiet --manifest-path "$WORKSPACE/Cargo.toml" --workspace

SO="$CARGO_TARGET_DIR/release/libmcp_rust_reference.so"
if [ ! -f "$SO" ]; then
    echo "Plugins/rust/build.sh: cargo did not produce $SO" >&2
    exit 1
fi

TMP="$(mktemp "$OUT/.librust_reference.so.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
cp "$SO" "$TMP"
chmod 755 "$TMP"
mv -f "$TMP" "$OUT/librust_reference.so"
trap - EXIT

printf 'built %-14s %s\n' rust_reference "$OUT/librust_reference.so"
