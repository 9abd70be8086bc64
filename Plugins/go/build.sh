#!/usr/bin/env bash
# Builds the Go reference plugin (Plugins/go/reference, on the kit Plugins/go/mcpplugin) with the machine's Go
# toolchain (std + cgo only: no modules are fetched, GOPROXY=off) and installs it as
#
#   ${MCP_PLUGIN_DIR:-<repo>/.build-plugins}/libgo_reference.so
#
# Go's caches (GOPATH, GOCACHE) stay under <repo>/.build-go/ (gitignored via .build*/).
# Usage: Plugins/go/build.sh [package]   (from any directory; prints one line). package is a folder of
# Plugins/go holding a package main, default reference; kittest (the kit's test plugin, used by
# Tests/integration/test_go_plugin.py) installs as libgo_kittest.so.
# The plugin is built into a temporary file and moved into place atomically, so a host that has the old file
# mapped keeps working. The linker version script mcpplugin/exports.map leaves mcpp_negotiate_v1 as the only
# dynamic symbol.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PKG="${1:-reference}"
case "$PKG" in
    */* | .* | "") echo "Plugins/go/build.sh: the package must be a folder name of Plugins/go, not '$PKG'" >&2; exit 2 ;;
esac
NAME="go_$PKG"
MODULE="$REPO/Plugins/go"
BUILD="$REPO/.build-go"
OUT="${MCP_PLUGIN_DIR:-$REPO/.build-plugins}"

if ! command -v go >/dev/null 2>&1; then
    echo "Plugins/go/build.sh: go not found on PATH (install a Go toolchain >= 1.19 with cgo, e.g. apt-get install golang-go); nothing built" >&2
    exit 1
fi

mkdir -p "$OUT" "$BUILD"
OUT="$(cd "$OUT" && pwd)"

# Private caches, no network, no toolchain switching, no user GOFLAGS/GOENV.
export GOPATH="$BUILD/gopath" GOCACHE="$BUILD/cache" GOMODCACHE="$BUILD/gopath/pkg/mod"
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GOENV=off GO111MODULE=on CGO_ENABLED=1
unset GOOS GOARCH

TMP="$(mktemp "$OUT/.lib$NAME.so.XXXXXX")"
trap 'rm -f "$TMP" "${TMP%.so*}.h" "$TMP.h"' EXIT
(cd "$MODULE" && go build -buildmode=c-shared -trimpath \
    -ldflags "-s -extldflags=-Wl,--version-script=$MODULE/mcpplugin/exports.map" \
    -o "$TMP" "./$PKG")
rm -f "$TMP.h" "${TMP%.so*}.h"
chmod 755 "$TMP"
mv -f "$TMP" "$OUT/lib$NAME.so"
trap - EXIT

printf 'built %-14s %s\n' "$NAME" "$OUT/lib$NAME.so"
