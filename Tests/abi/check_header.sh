#!/usr/bin/env bash
# Compiles Tests/abi/header_usage.c, which includes mcp_plugin.h and uses MCPP_HAS,
# MCPP_LIT and MCPP_DEFINE_ENTRY, as C11 and C17 (gcc) and C++11 and C++17 (g++) with
# -Wall -Wextra -pedantic -Werror, links each as a shared object (also with
# -fvisibility=hidden) and checks that it exports the unmangled mcpp_negotiate_v1.
#
# Usage: Tests/abi/check_header.sh [--header PATH]     (CC / CXX override gcc / g++)
# Exits non-zero on the first failure.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
HEADER="$REPO/Sources/PluginABI/include/mcp_plugin.h"
if [ "${1:-}" = "--header" ]; then
    HEADER="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
    shift 2
fi
[ $# -eq 0 ] || { echo "usage: $0 [--header PATH]" >&2; exit 64; }
[ -f "$HEADER" ] || { echo "check_header: no header at $HEADER" >&2; exit 1; }

CC="${CC:-gcc}"
CXX="${CXX:-g++}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/check_header.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
# The header is always included as "mcp_plugin.h" from a folder holding only it.
mkdir "$TMP/include"
cp "$HEADER" "$TMP/include/mcp_plugin.h"

WARN=(-Wall -Wextra -pedantic -Werror)
status=0
check() { # LABEL COMPILER LANG STD [extra flags...]
    local label="$1" compiler="$2" lang="$3" std="$4"
    shift 4
    local out="$TMP/$label.so"
    if ! "$compiler" -x "$lang" "-std=$std" "${WARN[@]}" "$@" -shared -fPIC -I "$TMP/include" \
        -o "$out" "$HERE/header_usage.c" 2>"$TMP/$label.err"; then
        echo "FAIL $label: $compiler -std=$std" >&2
        sed 's/^/    /' "$TMP/$label.err" >&2
        status=1
        return
    fi
    if command -v nm >/dev/null 2>&1 && ! nm -D --defined-only "$out" | grep -qE ' T mcpp_negotiate_v1$'; then
        echo "FAIL $label: mcpp_negotiate_v1 is not exported unmangled" >&2
        nm -D --defined-only "$out" | sed 's/^/    /' >&2
        status=1
        return
    fi
    echo "ok   $label"
}

for std in c11 c17; do
    check "$std" "$CC" c "$std"
    check "$std-hidden" "$CC" c "$std" -fvisibility=hidden
done
for std in c++11 c++17; do
    check "$std" "$CXX" c++ "$std"
    check "$std-hidden" "$CXX" c++ "$std" -fvisibility=hidden
done
exit "$status"
