#!/usr/bin/env bash
# Builds the C++ reference plugin (Plugins/cpp/reference.cpp, written against the header-only wrapper
# Sources/PluginABI/include/mcp_plugin.hpp) with the machine's g++ and installs it as
#
#   ${MCP_PLUGIN_DIR:-<repo>/.build-plugins}/libcpp_reference.so
#
# Usage: Plugins/cpp/build.sh   (from any directory; prints one line). CXX overrides the compiler.
# The plugin is built to a temporary file beside its destination and moved into place with mv -f, so a host
# that has the old file mapped keeps working.
#
# Linking: libstdc++ and libgcc_s are linked dynamically (the default), on purpose. mcp-plugin-host already
# has the system's libstdc++.so.6 loaded (the Swift runtime depends on it), so the plugin shares that one C++
# runtime instead of carrying a second private copy (-static-libstdc++ would add ~1 MB and a second set of
# exception-handling and allocator state in one process, and needs --exclude-libs to keep its symbols
# hidden). The cost: the plugin needs a libstdc++ at least as new as the g++ that built it on the machine
# that runs it, which `mcp-plugin-host --check` reports. (Build with -static-libstdc++ -static-libgcc if you
# ship the .so to older systems; the version script below keeps it exporting only the entry point.)
#
# Exports: -fvisibility=hidden hides our own code; the linker version script also makes local the std::
# template instances g++ emits with default visibility, so mcpp_negotiate_v1 is the only symbol exported.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$REPO/Plugins/cpp/reference.cpp"
OUT="${MCP_PLUGIN_DIR:-$REPO/.build-plugins}"
CXX="${CXX:-g++}"

if ! command -v "$CXX" >/dev/null 2>&1; then
    echo "Plugins/cpp/build.sh: $CXX not found on PATH (install g++ with C++17 support)" >&2
    exit 1
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

TMP="$(mktemp "$OUT/.libcpp_reference.so.XXXXXX")"
MAP="$(mktemp "${TMPDIR:-/tmp}/cpp_reference.map.XXXXXX")"
trap 'rm -f "$TMP" "$MAP"' EXIT
printf '{ global: mcpp_negotiate_v1; local: *; };\n' >"$MAP"

"$CXX" -shared -fPIC -O2 -std=c++17 -Wall -Wextra -Werror \
    -fvisibility=hidden -fvisibility-inlines-hidden \
    -I "$REPO/Sources/PluginABI/include" \
    -Wl,--version-script="$MAP" -Wl,-z,defs -Wl,--as-needed \
    -o "$TMP" "$SRC"
chmod 755 "$TMP"
mv -f "$TMP" "$OUT/libcpp_reference.so"
rm -f "$MAP"
trap - EXIT

printf 'built %-14s %s\n' cpp_reference "$OUT/libcpp_reference.so"
