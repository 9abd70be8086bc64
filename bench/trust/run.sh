#!/usr/bin/env bash
# Benchmark: plugin verification time per MB (docs/security.md, "Plugin trust"). For files of 1, 10 and 50 MB
# (random bytes: verification does not care whether they are ELF), signed with a fresh Ed25519 key by the openssl
# CLI, times mcp-plugin-host's verify path — copy into a memfd, seal, SHA-256, Ed25519 check — RUNS times per
# size and mode (signed; sha256 only) with the hidden --bench-verify flag, and prints p50 ms and ms per MB.
#   bench/trust/run.sh [RUNS=20]        HOST=path/to/mcp-plugin-host (default: release build, else debug)
# The timed code is libcrypto and the kernel's copy, so a debug host measures the same as a release one.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS="${1:-20}"
HOST="${HOST:-}"
if [ -z "$HOST" ]; then
    for h in .build/release/mcp-plugin-host .build/debug/mcp-plugin-host; do [ -x "$h" ] && { HOST="$h"; break; }; done
fi
[ -x "${HOST:-}" ] || { echo "no mcp-plugin-host built (swift build)" >&2; exit 1; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench-trust.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/keys"
openssl genpkey -algorithm ed25519 -out "$WORK/key.pem"
openssl pkey -in "$WORK/key.pem" -pubout -out "$WORK/keys/pub.pem"
echo "| size | mode | p50 ms | min ms | ms per MB (p50) |"
echo "|---|---|---|---|---|"
for mb in 1 10 50; do
    f="$WORK/lib$mb.so"
    head -c $((mb * 1024 * 1024)) /dev/urandom > "$f"
    openssl pkeyutl -sign -rawin -inkey "$WORK/key.pem" -in "$f" -out "$f.sig"
    digest="$(sha256sum "$f" | cut -d' ' -f1)"
    for mode in signed sha256; do
        if [ "$mode" = signed ]; then args=(--trust signed --trusted-keys-dir "$WORK/keys"); else args=(--sha256 "$digest"); fi
        out="$("$HOST" --plugin "$f" --bench-verify "$RUNS" "${args[@]}")"
        python3 -c '
import json, sys
r = json.loads(sys.argv[1]); mb = int(sys.argv[2])
p50, low = r["p50_ms"], r["min_ms"]
print(f"| {mb} MB | {sys.argv[3]} | {p50:.2f} | {low:.2f} | {p50 / mb:.2f} |")
' "$out" "$mb" "$mode"
    done
done
