#!/usr/bin/env bash
# Builds the C plugins the integration tests load, into ${MCP_PLUGIN_DIR:-<repo>/.build-plugins}:
#
#   libreference.so      Plugins/reference-c/reference.c
#   libhostile.so        Plugins/hostile/hostile.c (tries what the box must stop; docs/security.md)
#   libfaulty.so         Tests/fixtures/plugins/faulty.c
#   libhealth_states.so  Tests/fixtures/plugins/health_states.c
#   libmetrics_probe.so  Tests/fixtures/plugins/metrics_probe.c (the metrics extension, from a tool)
#   liblarger_structs.so Tests/fixtures/plugins/larger_structs.c (structs of a later 1.x header)
#   libsmall_structs.so  Tests/fixtures/plugins/small_structs.c (one struct smaller than 1.0's, by env)
#   librust_reference.so Plugins/rust (Plugins/rust/build.sh), libcpp_reference.so Plugins/cpp (build.sh),
#   libgo_reference.so   Plugins/go (build.sh)
#   broken plugins       lib{no_entry,wrong_major,newer_minor,create_fails,create_crash,
#                        bad_describe,missing_lib,not_elf,wrong_machine}.so
#
# Usage: scripts/build-plugins.sh        (from any directory; CC overrides the compiler)
# Every plugin is rebuilt on each run and moved into place atomically, so running it twice
# is harmless and a host that has a plugin mapped is never handed a half-written file.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CC="${CC:-cc}"
FIXTURES="$REPO/Tests/fixtures/plugins"
OUT="${MCP_PLUGIN_DIR:-$REPO/.build-plugins}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

CFLAGS=(-shared -fPIC -O2 -Wall -Wextra -Werror -std=c11 -I "$REPO/Sources/PluginABI/include")

TMP="$(mktemp -d "${TMPDIR:-/tmp}/build-plugins.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# install NAME FILE: moves FILE into place as $OUT/libNAME.so and reports it.
install_plugin() {
    mv -f "$2" "$OUT/lib$1.so"
    printf 'built %-14s %s\n' "$1" "$OUT/lib$1.so"
}

# build NAME SOURCE [extra compiler/linker arguments...]
build() {
    local name="$1" source="$2"
    shift 2
    "$CC" "${CFLAGS[@]}" -o "$TMP/lib$name.so" "$source" "$@"
    install_plugin "$name" "$TMP/lib$name.so"
}

build reference "$REPO/Plugins/reference-c/reference.c"
build conformance "$REPO/Plugins/conformance/conformance.c" -pthread
build hostile "$REPO/Plugins/hostile/hostile.c"
build faulty "$FIXTURES/faulty.c"
build health_states "$FIXTURES/health_states.c" -pthread
build metrics_probe "$FIXTURES/metrics_probe.c" -pthread
build no_entry "$FIXTURES/no_entry.c"
build wrong_major "$FIXTURES/wrong_major.c"
build newer_minor "$FIXTURES/newer_minor.c"
build create_fails "$FIXTURES/create_fails.c"
build create_crash "$FIXTURES/create_crash.c"
build bad_describe "$FIXTURES/bad_describe.c"
build larger_structs "$FIXTURES/larger_structs.c"
build small_structs "$FIXTURES/small_structs.c"

# missing_lib: link against libmcpp_gone.so, then delete it, so DT_NEEDED cannot be resolved.
# --no-as-needed keeps DT_NEEDED even on toolchains that default to --as-needed.
mkdir "$TMP/gone"
"$CC" "${CFLAGS[@]}" -o "$TMP/gone/libmcpp_gone.so" "$FIXTURES/missing_lib_dep.c"
"$CC" "${CFLAGS[@]}" -o "$TMP/libmissing_lib.so" "$FIXTURES/missing_lib.c" \
    -L "$TMP/gone" -Wl,--no-as-needed -lmcpp_gone
rm -rf "$TMP/gone"
if command -v readelf >/dev/null 2>&1 && ! readelf -d "$TMP/libmissing_lib.so" | grep -q 'NEEDED.*\[libmcpp_gone\.so\]'; then
    echo "build-plugins: libmissing_lib.so has no DT_NEEDED entry for libmcpp_gone.so" >&2
    exit 1
fi
install_plugin missing_lib "$TMP/libmissing_lib.so"

# not_elf: a text file with a plugin's name.
printf 'This is a text file, not a shared object.\n' >"$TMP/libnot_elf.so"
install_plugin not_elf "$TMP/libnot_elf.so"

# wrong_machine: a copy of libreference.so whose ELF header claims another machine:
# e_machine (2 bytes at offset 18, little-endian) = EM_AARCH64 (183), or EM_X86_64 (62)
# when this machine is itself aarch64.
cp "$OUT/libreference.so" "$TMP/libwrong_machine.so"
if [ "$(od -An -tu1 -j5 -N1 "$TMP/libwrong_machine.so" | tr -d ' ')" != 1 ]; then
    echo "build-plugins: libreference.so is not a little-endian ELF file; cannot patch e_machine" >&2
    exit 1
fi
case "$(uname -m)" in
    aarch64 | arm64) machine=62 bytes='\076\000' ;;
    *) machine=183 bytes='\267\000' ;;
esac
# shellcheck disable=SC2059  # the format is the octal byte string
printf "$bytes" | dd of="$TMP/libwrong_machine.so" bs=1 seek=18 count=2 conv=notrunc 2>/dev/null
if [ "$(od -An -tu2 -j18 -N2 "$TMP/libwrong_machine.so" | tr -d ' ')" != "$machine" ]; then
    echo "build-plugins: patching e_machine of libwrong_machine.so failed" >&2
    exit 1
fi
install_plugin wrong_machine "$TMP/libwrong_machine.so"

# The Rust reference plugin (std only, offline) with the machine's cargo.
"$REPO/Plugins/rust/build.sh"
# The C++ reference plugin (Sources/PluginABI/include/mcp_plugin.hpp) with the machine's g++.
"$REPO/Plugins/cpp/build.sh"
# The Go reference plugin (Plugins/go/mcpplugin, cgo, -buildmode=c-shared) with Debian's go.
"$REPO/Plugins/go/build.sh"
