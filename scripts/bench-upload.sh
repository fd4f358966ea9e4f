#!/usr/bin/env bash
# Upload throughput through medport against the storage's own client. Starts a release
# `medport` (SQLite, data directory in a temp dir), uploads a generated DICOM file through tus
# with the real tus-js-client (tests/tus-js), then stores the same file without medport:
#
#   s3    (default) the bucket is on the S3 test server; the reference is boto3 uploading the
#         file straight to the same server (multipart, 8 MiB parts).
#   local the bucket is medport's local encrypted store; the reference is `cp` of the file to
#         the same disk followed by `sync` of the copy (medport makes every part durable before
#         it answers, so the copy is made durable too).
#
# Prints both throughputs, their ratio, medport's peak RSS (VmHWM) and the CPU time medport
# spent per run. Every upload through medport is downloaded back through medport and
# compared with the file's SHA-256 (outside the timed part).
#
#   scripts/bench-upload.sh
#   MEDPORT_BENCH_STORE=local scripts/bench-upload.sh
#   MEDPORT_BENCH_PARALLEL=8 MEDPORT_BENCH_UPLOAD_MIB=256 scripts/bench-upload.sh
#
# Knobs (environment): MEDPORT_BENCH_STORE (s3 or local), MEDPORT_BENCH_UPLOAD_MIB (file
# size, default 1024), MEDPORT_BENCH_PARALLEL (uploads at once on each side, default 1; the
# throughput is then the sum over all of them), MEDPORT_BENCH_CLIENT (tus client:
# tus-js-client, the default, or curl), MEDPORT_BENCH_CHUNK_MIB (tus PATCH size, default
# Infinity, tus-js-client's own default: one PATCH; the browser page sends 50 MiB),
# MEDPORT_BENCH_RUNS (run pairs, default 3; the medians are reported),
# MEDPORT_BENCH_S3_CONCURRENCY (boto3 parts in flight per upload, default 10),
# MEDPORT_BENCH_LOG (medport's RUST_LOG, default warn; `warn,medport=debug` logs every stored
# part for scripts/bench-upload-timeline.py), MEDPORT_BENCH_KEEP_LOG (copy medport's log
# there at the end), MEDPORT_BENCH_DIR (where the file and data directory go; default the
# system temp dir), MEDPORT_BENCH_BIN (a medport binary to measure instead of building one),
# CARGO_TARGET_DIR.
# Targets: ratio medport/direct >= 0.85, peak RSS < 150 MiB whatever the file size.
# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"

mib="${MEDPORT_BENCH_UPLOAD_MIB:-1024}"
chunk_mib="${MEDPORT_BENCH_CHUNK_MIB:-Infinity}"
store="${MEDPORT_BENCH_STORE:-s3}"
parallel="${MEDPORT_BENCH_PARALLEL:-1}"
client="${MEDPORT_BENCH_CLIENT:-tus-js-client}"
runs="${MEDPORT_BENCH_RUNS:-3}"
bytes=$((mib * 1024 * 1024))
[ "$bytes" -ge 1024 ] || { echo "MEDPORT_BENCH_UPLOAD_MIB must be at least 1" >&2; exit 1; }
case "$store" in s3 | local) ;; *) echo "MEDPORT_BENCH_STORE is s3 or local" >&2; exit 1 ;; esac
[ "$parallel" -ge 1 ] 2>/dev/null || { echo "MEDPORT_BENCH_PARALLEL must be at least 1" >&2; exit 1; }
if [ "$chunk_mib" = Infinity ]; then chunk=Infinity; else chunk=$((chunk_mib * 1024 * 1024)); fi

log() { printf 'bench-upload: %s\n' "$*" >&2; }
now() { date +%s.%N; }

# ---------------------------------------------------------------- tools and services
need_tus_js
if [ "$store" = s3 ]; then
    python3 -c 'import boto3' 2>/dev/null || pip install --quiet boto3
    scripts/test-services.sh s3 >/dev/null
    # shellcheck disable=SC1091
    source target/test-services.env
    export MEDPORT_TEST_S3_ENDPOINT MEDPORT_TEST_S3_ACCESS_KEY MEDPORT_TEST_S3_SECRET_KEY \
        MEDPORT_TEST_S3_REGION
fi

release_medport

bench_workdir upload
suffix="$(date +%s)-$$"
bucket="medport-bench-$suffix"
direct_bucket="medport-bench-direct-$suffix"
cleanup() {
    stop_started
    if [ -n "${MEDPORT_BENCH_KEEP_LOG:-}" ] && [ -f "$work/medport.log" ]; then
        cp "$work/medport.log" "$MEDPORT_BENCH_KEEP_LOG"
    fi
    rm -rf "$work"
    if [ "$store" = s3 ]; then
        # Gigabytes per run: never leave them on the shared S3 test server.
        python3 scripts/bench-upload.py drop "$bucket" || true
        python3 scripts/bench-upload.py drop "$direct_bucket" || true
    fi
}
trap cleanup EXIT

if [ "$store" = s3 ]; then
    python3 scripts/bench-upload.py bucket "$bucket"
    python3 scripts/bench-upload.py bucket "$direct_bucket"
fi

# ---------------------------------------------------------------- medport
export MEDPORT_DATA_DIR="$work/data"
if [ "$store" = s3 ]; then
    export MEDPORT_S3_ENDPOINT="$MEDPORT_TEST_S3_ENDPOINT" MEDPORT_S3_REGION="$MEDPORT_TEST_S3_REGION"
    export MEDPORT_S3_BUCKET="$bucket" MEDPORT_S3_PATH_STYLE=true
    export MEDPORT_S3_ACCESS_KEY_ID="$MEDPORT_TEST_S3_ACCESS_KEY"
    export MEDPORT_S3_SECRET_ACCESS_KEY="$MEDPORT_TEST_S3_SECRET_KEY"
    export MEDPORT_ALLOW_LOOPBACK_ENDPOINTS=true
fi
export RUST_LOG="${MEDPORT_BENCH_LOG:-warn}"
port="$(free_port)"
export MEDPORT_BIND="127.0.0.1:$port"

email="bench-$suffix@example.org"
"$medport" migrate >/dev/null
password="bench password long enough $suffix"
printf '%s' "$password" |
    "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
key="$(new_api_key "$medport" "$email" upload,read)" || exit 1
start_medport "$medport" "$work/medport.log" "$port"

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
            dd if="$file" bs=1M skip="$offset" count="$n" iflag=skip_bytes,count_bytes \
                status=none | "${patch[@]}" --data-binary @- || return 1
        fi
        offset=$((offset + n))
    done
    printf '%s\n' "$location"
}

# ---------------------------------------------------------------- the runs
# One upload through medport; writes the upload's URL to $1.
one_upload() {
    if [ "$client" = curl ]; then
        tus_with_curl >"$1"
    else
        node tests/tus-js/upload.mjs --endpoint "http://127.0.0.1:$port/tus/" --key "$key" \
            --file "$file" --filename bench.dcm --filetype application/dicom \
            --chunk-size "$chunk" --timeout 3600 |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])' >"$1"
    fi
}

# `parallel` uploads through medport at once; fails when any of them fails.
through_medport() {
    local i pids=()
    for i in $(seq 1 "$parallel"); do
        one_upload "$work/url.$i" &
        pids+=("$!")
    done
    wait_all "${pids[@]}"
}

# Every upload of the run, downloaded back through medport by its owner, must be the file.
check_uploads() {
    local i url ids=()
    for i in $(seq 1 "$parallel"); do
        url="$(cat "$work/url.$i")"
        ids+=("${url##*/}")
    done
    printf '%s\n' "$password" | python3 scripts/bench-upload.py check "$port" "$email" "$sha256" "${ids[@]}"
}

# The same bytes stored without medport; prints the seconds it took.
direct() {
    local run="$1" start i pids=()
    if [ "$store" = s3 ]; then
        python3 scripts/bench-upload.py direct "$file" "$direct_bucket" "bench-$run" "$parallel"
        return
    fi
    start="$(now)"
    for i in $(seq 1 "$parallel"); do
        { cp "$file" "$work/copy.$i" && sync "$work/copy.$i"; } &
        pids+=("$!")
    done
    wait_all "${pids[@]}" || return 1
    awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.3f\n", b - a }'
    rm -f "$work"/copy.*
}

# Each run uploads through medport, then without it; the medians are reported, since
# other work on a 2-core machine moves single runs a lot.
if [ "$store" = s3 ]; then reference="boto3 -> S3"; else reference="cp + sync"; fi
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"
results="$work/results.txt"
total_mib=$((mib * parallel))
for run in $(seq 1 "$runs"); do
    log "run $run/$runs: $parallel x $mib MiB through medport ($client, $chunk_mib MiB PATCHes, $store store)"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    cpu_before="$(cpu_ticks)"
    start="$(now)"
    through_medport || { tail -n 50 "$work/medport.log" >&2; exit 1; }
    medport_s="$(awk -v a="$start" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }')"
    cpu_s="$(awk -v a="$cpu_before" -v b="$(cpu_ticks)" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    log "run $run/$runs: checking what medport stored (downloads through medport)"
    check_uploads

    log "run $run/$runs: $parallel x $mib MiB without medport ($reference)"
    direct_s="$(direct "$run")"
    echo "$medport_s $direct_s $cpu_s $load" >>"$results"
    awk -v mib="$total_mib" -v run="$run" '{ printf "run %d: medport %.1f MiB/s, direct %.1f MiB/s, ratio %.2f, medport CPU %.1f s, load %s\n", run, mib / $1, mib / $2, $2 / $1, $3, $4 }' \
        <(tail -n 1 "$results") >&2
done
hwm_kib="$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")"

# The floor under medport's CPU: one SHA-256 pass over the same file (OpenSSL, with the
# CPU's SHA extensions where it has them), timed as user CPU seconds in this run.
sha_floor_s="$(python3 - "$file" <<'PY'
import hashlib, resource, sys
before = resource.getrusage(resource.RUSAGE_SELF)
digest = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(8 << 20):
        digest.update(chunk)
after = resource.getrusage(resource.RUSAGE_SELF)
print(f"{after.ru_utime - before.ru_utime:.3f}")
PY
)"

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
medport_s="$(cut -d' ' -f1 "$results" | median)"
direct_s="$(cut -d' ' -f2 "$results" | median)"
cpu_s="$(cut -d' ' -f3 "$results" | median)"
awk -v mib="$mib" -v n="$parallel" -v m="$medport_s" -v d="$direct_s" -v hwm="$hwm_kib" \
    -v chunk="$chunk_mib" -v cpu="$cpu_s" -v runs="$runs" -v store="$store" -v client="$client" \
    -v ref="$reference" -v conc="${MEDPORT_BENCH_S3_CONCURRENCY:-10}" -v sha="$sha_floor_s" 'BEGIN {
    printf "store: %s, file: %d MiB, uploads at once: %d, tus PATCH: %s MiB, medians of %d runs\n", store, mib, n, chunk, runs
    if (store == "s3") printf "boto3 parts in flight per upload: %d\n", conc
    printf "medport (%s -> medport): %7.1f MiB/s (%.1f s)\n", client, n * mib / m, m
    printf "direct  (%s): %7.1f MiB/s (%.1f s)\n", ref, n * mib / d, d
    # The targets are for one upload on S3; other setups are reported.
    target = (n == 1 && store == "s3")
    printf "ratio medport/direct: %.2f%s\n", d / m, target ? " (target >= 0.85)" : ""
    printf "medport peak RSS (VmHWM, whole process life): %.1f MiB%s\n", hwm / 1024, n == 1 ? " (target < 150 MiB)" : ""
    printf "medport CPU per run: %.1f s (%.0f%% of one core)\n", cpu, 100 * cpu / m
    gib = n * mib / 1024
    printf "medport CPU per GiB: %.2f s (target <= 1.5 s); one SHA-256 pass over the file: %.2f s per GiB; ratio %.2f\n", cpu / gib, sha / (mib / 1024), (cpu / gib) / (sha / (mib / 1024))
}'
