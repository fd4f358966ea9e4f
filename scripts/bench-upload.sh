#!/usr/bin/env bash
# Upload throughput through medport against uploading straight to S3. Starts a release
# `medport` (SQLite, data directory in a temp dir) whose default bucket is on the S3 test
# server, uploads a generated DICOM file through tus with the real tus-js-client
# (tests/tus-js), then uploads the same file straight to the S3 server with boto3 (multipart,
# 8 MiB parts). Prints both throughputs, their ratio, medport's peak RSS (VmHWM) and the CPU
# time medport spent per upload.
#
#   scripts/bench-upload.sh
#
# Knobs (environment): MEDPORT_BENCH_UPLOAD_MIB (file size, default 1024),
# MEDPORT_BENCH_CLIENT (tus client: tus-js-client, the default, or curl),
# MEDPORT_BENCH_CHUNK_MIB (tus PATCH size, default 64; `Infinity` sends one PATCH),
# MEDPORT_BENCH_RUNS (upload pairs, default 3; the medians are reported),
# MEDPORT_BENCH_S3_CONCURRENCY (boto3 parts in flight, default 10), MEDPORT_BENCH_DIR (where
# the file and data directory go; default the system temp dir), MEDPORT_BENCH_BIN (a medport
# binary to measure instead of building one), CARGO_TARGET_DIR.
# Targets: ratio medport/direct >= 0.85, peak RSS < 150 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

mib="${MEDPORT_BENCH_UPLOAD_MIB:-1024}"
chunk_mib="${MEDPORT_BENCH_CHUNK_MIB:-64}"
client="${MEDPORT_BENCH_CLIENT:-tus-js-client}"
runs="${MEDPORT_BENCH_RUNS:-3}"
bytes=$((mib * 1024 * 1024))
[ "$bytes" -ge 1024 ] || { echo "MEDPORT_BENCH_UPLOAD_MIB must be at least 1" >&2; exit 1; }
if [ "$chunk_mib" = Infinity ]; then chunk=Infinity; else chunk=$((chunk_mib * 1024 * 1024)); fi

log() { printf 'bench-upload: %s\n' "$*" >&2; }
now() { date +%s.%N; }

# ---------------------------------------------------------------- tools and services
command -v node >/dev/null || { echo "needs Node.js 18+ (Debian package nodejs)" >&2; exit 1; }
[ -f tests/tus-js/node_modules/tus-js-client/package.json ] || npm ci --prefix tests/tus-js --silent
python3 -c 'import boto3' 2>/dev/null || pip install --quiet boto3
scripts/test-services.sh s3 >/dev/null
# shellcheck disable=SC1091
source target/test-services.env
export MEDPORT_TEST_S3_ENDPOINT MEDPORT_TEST_S3_ACCESS_KEY MEDPORT_TEST_S3_SECRET_KEY \
    MEDPORT_TEST_S3_REGION

medport="${MEDPORT_BENCH_BIN:-}"
if [ -z "$medport" ]; then
    log "building the release binary"
    cargo build --release --locked --quiet
    medport="${CARGO_TARGET_DIR:-$root/target}/release/medport"
fi

work="$(mktemp -d "${MEDPORT_BENCH_DIR:-${TMPDIR:-/tmp}}/medport-bench-upload.XXXXXX")"
pid=""
suffix="$(date +%s)-$$"
bucket="medport-bench-$suffix"
direct_bucket="medport-bench-direct-$suffix"
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
    # Gigabytes per run: never leave them on the shared S3 test server.
    python3 scripts/bench-upload.py drop "$bucket" || true
    python3 scripts/bench-upload.py drop "$direct_bucket" || true
}
trap cleanup EXIT

python3 scripts/bench-upload.py bucket "$bucket"
python3 scripts/bench-upload.py bucket "$direct_bucket"

# ---------------------------------------------------------------- medport
export MEDPORT_DATA_DIR="$work/data"
export MEDPORT_S3_ENDPOINT="$MEDPORT_TEST_S3_ENDPOINT" MEDPORT_S3_REGION="$MEDPORT_TEST_S3_REGION"
export MEDPORT_S3_BUCKET="$bucket" MEDPORT_S3_PATH_STYLE=true
export MEDPORT_S3_ACCESS_KEY_ID="$MEDPORT_TEST_S3_ACCESS_KEY"
export MEDPORT_S3_SECRET_ACCESS_KEY="$MEDPORT_TEST_S3_SECRET_KEY"
export MEDPORT_ALLOW_LOOPBACK_ENDPOINTS=true
export RUST_LOG=warn
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export MEDPORT_BIND="127.0.0.1:$port"

email="bench-$suffix@example.org"
"$medport" migrate >/dev/null
printf '%s' "bench password long enough $suffix" |
    "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
key="$("$medport" apikey create --email "$email" --scope upload,read 2>/dev/null)"
case "$key" in mp_*) ;; *) echo "could not create an API key" >&2; exit 1 ;; esac

"$medport" serve >"$work/medport.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/medport.log" >&2; exit 1; }
    sleep 0.05
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { echo "medport not ready" >&2; exit 1; }

# ---------------------------------------------------------------- the file
file="$work/bench.dcm"
log "generating $mib MiB"
{ head -c 128 /dev/zero; printf 'DICM'; head -c $((bytes - 132)) /dev/urandom; } >"$file"
sha256="$(sha256sum "$file" | cut -d' ' -f1)"
# Both uploads read the file from the page cache.
cat "$file" >/dev/null

# ---------------------------------------------------------------- tus with curl
# The same tus requests from curl, which streams the file from disk with little CPU of its
# own (Node's client copies each chunk into a buffer first): creation, then PATCHes of
# `chunk` bytes (one PATCH for the whole file with `Infinity`).
tus_with_curl() {
    local headers location offset=0 size step
    headers="$(curl -fsS -o /dev/null -D - -X POST "http://127.0.0.1:$port/tus/" \
        -H 'Tus-Resumable: 1.0.0' -H "Authorization: Bearer $key" \
        -H "Upload-Length: $bytes" \
        -H "Upload-Metadata: filename $(printf bench.dcm | base64),filetype $(printf application/dicom | base64)")"
    location="$(printf '%s' "$headers" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')"
    [ -n "$location" ] || { echo "tus creation gave no Location" >&2; return 1; }
    case "$location" in http*) ;; *) location="http://127.0.0.1:$port$location" ;; esac
    size="$bytes"
    if [ "$chunk" = Infinity ]; then step="$size"; else step="$chunk"; fi
    while [ "$offset" -lt "$size" ]; do
        local n=$((size - offset < step ? size - offset : step))
        local patch=(curl -fsS -o /dev/null -X PATCH "$location" -H 'Tus-Resumable: 1.0.0'
            -H "Authorization: Bearer $key" -H "Upload-Offset: $offset" -H 'Expect:'
            -H 'Content-Type: application/offset+octet-stream')
        if [ "$n" -eq "$size" ]; then
            # The whole file: curl streams it from disk.
            "${patch[@]}" -T "$file" || return 1
        else
            # A byte range: curl reads the chunk into its own memory, then sends it.
            tail -c +"$((offset + 1))" "$file" | head -c "$n" |
                "${patch[@]}" --data-binary @- || return 1
        fi
        offset=$((offset + n))
    done
}

# ---------------------------------------------------------------- the runs
# Each run uploads through medport, then straight to S3; the medians are reported, since
# other work on a 2-core machine moves single runs a lot.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
results="$work/results.txt"
for run in $(seq 1 "$runs"); do
    log "run $run/$runs: through medport (tus, $chunk_mib MiB PATCHes)"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    cpu_before="$(cpu_ticks)"
    start="$(now)"
    if [ "$client" = curl ]; then
        tus_with_curl || { tail -n 50 "$work/medport.log" >&2; exit 1; }
    else
        node tests/tus-js/upload.mjs --endpoint "http://127.0.0.1:$port/tus/" --key "$key" \
            --file "$file" --filename bench.dcm --filetype application/dicom \
            --chunk-size "$chunk" --timeout 3600 >"$work/tus.json" ||
            { tail -n 50 "$work/medport.log" >&2; exit 1; }
    fi
    medport_s="$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')"
    cpu_s="$(awk -v a="$cpu_before" -v b="$(cpu_ticks)" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    python3 scripts/bench-upload.py check "$bucket" "$bytes" "$sha256"

    log "run $run/$runs: straight to S3 (boto3, 8 MiB parts)"
    direct_s="$(python3 scripts/bench-upload.py direct "$file" "$direct_bucket" "bench-$run.dcm")"
    echo "$medport_s $direct_s $cpu_s $load" >>"$results"
    awk -v mib="$mib" -v run="$run" '{ printf "run %d: medport %.1f MiB/s, direct %.1f MiB/s, ratio %.2f, medport CPU %.1f s, load %s\n", run, mib / $1, mib / $2, $2 / $1, $3, $4 }' \
        <(tail -n 1 "$results") >&2
done
hwm_kib="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
medport_s="$(cut -d' ' -f1 "$results" | median)"
direct_s="$(cut -d' ' -f2 "$results" | median)"
cpu_s="$(cut -d' ' -f3 "$results" | median)"
awk -v mib="$mib" -v m="$medport_s" -v d="$direct_s" -v hwm="$hwm_kib" -v chunk="$chunk_mib" \
    -v cpu="$cpu_s" -v runs="$runs" -v conc="${MEDPORT_BENCH_S3_CONCURRENCY:-10}" 'BEGIN {
    printf "file: %d MiB, tus PATCH: %s MiB, boto3 parts in flight: %d, medians of %d runs\n", mib, chunk, conc, runs
    printf "medport (tus-js-client -> medport -> S3): %7.1f MiB/s (%.1f s)\n", mib / m, m
    printf "direct  (boto3 -> S3):                    %7.1f MiB/s (%.1f s)\n", mib / d, d
    printf "ratio medport/direct: %.2f (target >= 0.85)\n", d / m
    printf "medport peak RSS (VmHWM, whole process life): %.1f MiB (target < 150 MiB)\n", hwm / 1024
    printf "medport CPU per upload: %.1f s (%.0f%% of one core)\n", cpu, 100 * cpu / m
}'
