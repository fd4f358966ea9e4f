#!/usr/bin/env bash
# Streams generated objects through the local store (upload in parts, complete, download,
# SHA-256 compared) and reports throughput and peak RSS from /usr/bin/time -v, for each size
# given (default 256 MiB and 1 GiB): peak RSS must not grow with the object's size.
#
#   scripts/bench-storage.sh [SIZE_MIB ...]
#
# Knobs (environment): MEDPORT_BENCH_DIR (where the store is created; default the system
# temp dir; use the disk you want to measure), MEDPORT_BENCH_PART_BYTES (default 64 MiB),
# CARGO_TARGET_DIR. Builds the test binary with the dev profile (dependencies optimised).
set -euo pipefail
cd "$(dirname "$0")/.."

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(256 1024)
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package: time)" >&2; exit 1; }

bin="$(cargo test --test storage --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "storage":
        print(m["executable"])')"
[ -n "$bin" ] || { echo "could not build the storage test binary" >&2; exit 1; }

printf '%-10s %-14s %-12s %-16s %-12s\n' size_mib upload_mib_s complete_ms download_mib_s peak_rss_mib
for mib in "${sizes[@]}"; do
    log="$(mktemp)"
    MEDPORT_BENCH_BYTES=$((mib * 1024 * 1024)) /usr/bin/time -v "$bin" --ignored --exact \
        bench::bench_stream_through_local_store --nocapture >"$log" 2>&1 || {
        cat "$log" >&2
        exit 1
    }
    field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" "$log" | head -n1; }
    rss_kib="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$log")"
    printf '%-10s %-14s %-12s %-16s %-12s\n' "$mib" "$(field upload_mib_s)" \
        "$(field complete_ms)" "$(field download_mib_s)" "$((rss_kib / 1024))"
    rm -f "$log"
done
