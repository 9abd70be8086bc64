#!/usr/bin/env bash
# Fuzzes one parser with libFuzzer (docs/reliability.md): builds mcp-fuzz with libFuzzer's coverage instrumentation
# and AddressSanitizer in .build-fuzz (once; incremental after; the C parts too, so the ELF reader is covered), then runs TARGET from its committed corpus.
#   scripts/fuzz.sh TARGET [SECONDS=60]     targets: json toml config uri-template control-line dispatcher http elf
#   scripts/fuzz.sh all [SECONDS]           each target in turn, SECONDS each (CI runs this short)
# New inputs that reach new code go to .build-fuzz/corpus/TARGET (not committed); a crash or a failed property
# is written to .build-fuzz/crashes/TARGET/ and the script fails naming the file: copy it into
# Fuzz/corpus/TARGET/ with the fix, where every normal build's test replays it (mcp-fuzz TARGET Fuzz/corpus/TARGET).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:?usage: scripts/fuzz.sh TARGET|all [SECONDS]}"
SECONDS_EACH="${2:-60}"
TARGETS=(json toml config uri-template control-line dispatcher http elf)
if [ "$TARGET" = all ]; then
    for t in "${TARGETS[@]}"; do "$0" "$t" "$SECONDS_EACH"; done
    exit 0
fi
[[ " ${TARGETS[*]} " == *" $TARGET "* ]] || { echo "fuzz: no target '$TARGET' (${TARGETS[*]})" >&2; exit 64; }
RUNTIME="$(dirname "$(dirname "$(command -v swift)")")/lib/clang"
LIB="$(find "$RUNTIME" -name 'libclang_rt.fuzzer_no_main-x86_64.a' | head -1)"
[ -n "$LIB" ] || { echo "fuzz: libclang_rt.fuzzer_no_main-x86_64.a not found under $RUNTIME" >&2; exit 1; }
swift build --product mcp-fuzz --build-path .build-fuzz \
    -Xswiftc -sanitize=address -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
    -Xcc -fsanitize=address -Xcc -fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp \
    -Xswiftc -DFUZZING -Xlinker "$LIB" -Xlinker -lstdc++ >&2
BIN=.build-fuzz/debug/mcp-fuzz
mkdir -p ".build-fuzz/corpus/$TARGET" ".build-fuzz/crashes/$TARGET"
log=".build-fuzz/$TARGET.log"
# Inputs up to 4 KiB; an ELF file needs its headers, dynamic section and symbol table: 64 KiB.
MAX_LEN=4096
[ "$TARGET" = elf ] && MAX_LEN=65536
set +e
# -timeout: an input that takes a second is a hang (a parser that backtracks without bound); -rss_limit_mb: memory.
ASAN_OPTIONS=detect_leaks=0 "$BIN" "$TARGET" ".build-fuzz/corpus/$TARGET" "Fuzz/corpus/$TARGET" \
    -max_total_time="$SECONDS_EACH" -timeout=1 -rss_limit_mb=2048 -max_len=$MAX_LEN -print_final_stats=1 \
    -artifact_prefix=".build-fuzz/crashes/$TARGET/" >"$log" 2>&1
status=$?
set -e
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
if [ $status -ne 0 ]; then
    echo "fuzz $TARGET: FAILED after $runs runs (coverage $cov); input: $(ls -t .build-fuzz/crashes/$TARGET/* 2>/dev/null | head -1); log: $log" >&2
    grep -E "ERROR|Precondition|Fatal|panic|==[0-9]+==" "$log" | head -5 >&2
    exit 1
fi
echo "fuzz $TARGET: $runs runs in $SECONDS_EACH s, coverage $cov edges, nothing found"
