#!/usr/bin/env bash
# Benchmark: the cost of one update of a plugin series (the metrics extension's lock-free cells,
# Sources/CHostSupport/metrics.c) against a double behind a pthread mutex, from 1 thread and from N threads on
# one series, same run. Checks that no update was lost. Writes bench/results/plugin-metrics.md.
#   bench/plugin_metrics/run.sh [UPDATES_PER_THREAD] [THREADS]
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-20000000}"
T="${2:-$(nproc)}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cc -O2 -std=c11 -pthread -I Sources/CHostSupport/include -o "$TMP/cells" bench/plugin_metrics/cells.c \
    Sources/CHostSupport/metrics.c -lm
mkdir -p bench/results
{
    echo "# One update of a plugin series ($N updates per thread, $(nproc) cores, $(date -u +%Y-%m-%d))"
    echo
    echo "| threads on one series | counter add (ns) | histogram observe, 16 buckets (ns) | mutex + double (ns) | add / mutex |"
    echo "|---|---|---|---|---|"
    "$TMP/cells" "$N" "$T" | awk '/^RESULT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "| %s | %.1f | %.1f | %.1f | %.2f |\n", v["threads"], v["add_ns"], v["observe_ns"], v["mutex_ns"], v["add_ns"] / v["mutex_ns"] }'
} | tee bench/results/plugin-metrics.md
