#!/usr/bin/env bash
# Builds the Debian package from debian/ with dpkg-buildpackage and debhelper, reusing the release executables
# scripts/test.sh built (nothing Swift is compiled again), then runs lintian on it (docs/packaging.md).
#
#   scripts/build-deb.sh                       -> .build/deb/mcp-supervisor_<version>_<arch>.deb
#   MCP_DEB_VERSION=0.1.0+2 scripts/build-deb.sh   the same with another version (the upgrade test uses it)
#   MCP_RELEASE_DIR=DIR                        where the executables are (default .build/release)
#   MCP_DEB_LINTIAN=0                          skip lintian (the upgrade test's second build of the same files)
#
# dpkg-buildpackage writes its results next to the source folder, so it runs in a staging copy under
# .build/deb/stage; prints the path of the .deb on its last line.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RELEASE_DIR="$(cd "${MCP_RELEASE_DIR:-$REPO/.build/release}" && pwd)"
OUT="$REPO/.build/deb"
STAGE="$OUT/stage"

for c in mcp-supervisor mcpctl mcp-plugin-host mcp-gateway; do
    [ -x "$RELEASE_DIR/$c" ] || { echo "build-deb: $RELEASE_DIR/$c is missing (swift build -c release)" >&2; exit 1; }
done
for t in dpkg-buildpackage dh help2man patchelf lintian; do
    command -v "$t" >/dev/null || { echo "build-deb: $t is not installed (scripts/install-deps.sh)" >&2; exit 1; }
done

rm -rf "$STAGE"
mkdir -p "$STAGE/src/Sources/PluginABI" "$STAGE/src/Plugins"
cp -a "$REPO/debian" "$REPO/packaging" "$REPO/docs" "$STAGE/src/"
cp -a "$REPO/Sources/PluginABI/include" "$STAGE/src/Sources/PluginABI/"
cp -a "$REPO/Plugins/reference-c" "$STAGE/src/Plugins/"
# The Swift version the executables were built with: a Swift plugin must be built with the same (docs/packaging.md).
{ swift --version 2>/dev/null || echo "unknown (swift not on PATH at package build)"; } | head -n 1 >"$STAGE/src/debian/swift-version"
if [ -n "${MCP_DEB_VERSION:-}" ]; then
    sed -i "1s/(.*)/($MCP_DEB_VERSION)/" "$STAGE/src/debian/changelog"
fi

(cd "$STAGE/src" && MCP_RELEASE_DIR="$RELEASE_DIR" dpkg-buildpackage -b -uc -us >"$OUT/dpkg-buildpackage.log" 2>&1) || {
    tail -40 "$OUT/dpkg-buildpackage.log" >&2
    echo "build-deb: dpkg-buildpackage failed; the whole log is $OUT/dpkg-buildpackage.log" >&2
    exit 1
}
deb="$(ls "$STAGE"/mcp-supervisor_*.deb)"
mv -f "$deb" "$OUT/"
deb="$OUT/$(basename "$deb")"

# lintian: every remaining tag is justified in docs/packaging.md and overridden in debian/*.lintian-overrides;
# any tag left is an error here.
if [ "${MCP_DEB_LINTIAN:-1}" != 0 ] && ! lintian --fail-on error,warning,info --info "$deb" >"$OUT/lintian.txt" 2>&1; then
    cat "$OUT/lintian.txt" >&2
    echo "build-deb: lintian is not clean for $deb (docs/packaging.md)" >&2
    exit 1
fi
echo "$deb"
