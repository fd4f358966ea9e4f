#!/usr/bin/env bash
# The cost per file of a study sent as a folder. Starts a release `medport` with its data
# directory in a temp dir, generates COUNT DICOM files of SIZE KiB with pydicom
# (scripts/dicom-fixtures.sh --bench), and sends them as one batch with the real
# tus-js-client under Node (tests/tus-js/batch.mjs, 4 files at once, one request per file).
# Then the same bytes again as one file (tests/tus-js/upload.mjs), in the same run, so the
# ratio batch time / one-file time says what the files cost beyond their bytes.
#
#   scripts/bench-batch.sh                         # SQLite, local store, 2000 x 64 KiB
#   MEDPORT_BENCH_SETUP=pg-s3 scripts/bench-batch.sh   # PostgreSQL, S3, 2000 x 512 KiB
#
# Prints files per second, the ratio, medport's peak RSS (VmHWM) and CPU seconds, and checks
# that the batch stored every file (the finish summary's `stored`).
# Targets: local: >= 100 files/s; pg-s3: batch time <= 2x the one-file time; peak RSS
# < 150 MiB in both.
#
# Knobs (environment): MEDPORT_BENCH_SETUP (local or pg-s3), MEDPORT_BENCH_FILES (default
# 2000), MEDPORT_BENCH_FILE_KIB (default 64 for local, 512 for pg-s3), MEDPORT_BENCH_PARALLEL
# (files at once, default 4), MEDPORT_BENCH_BIN (a medport binary to measure instead of
# building one), MEDPORT_BENCH_DIR (where the files and data go), CARGO_TARGET_DIR.
# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"

setup="${MEDPORT_BENCH_SETUP:-local}"
case "$setup" in local) default_kib=64 ;; pg-s3) default_kib=512 ;;
    *) echo "MEDPORT_BENCH_SETUP is local or pg-s3" >&2; exit 1 ;; esac
count="${MEDPORT_BENCH_FILES:-2000}"
kib="${MEDPORT_BENCH_FILE_KIB:-$default_kib}"
parallel="${MEDPORT_BENCH_PARALLEL:-4}"

log() { printf 'bench-batch: %s\n' "$*" >&2; }
now() { date +%s.%N; }

need_tus_js

release_medport

bench_workdir batch
suffix="$(date +%s)-$$"
bench_backends batch "$setup"

log "generating $count DICOM files of $kib KiB"
bash scripts/dicom-fixtures.sh "$work/fx" --bench "$count" "$kib" >/dev/null
folder="$work/fx/bench-$count-$kib"
[ -d "$folder" ] || { echo "no generated folder at $folder" >&2; exit 1; }
# The same bytes as one file: the files one after the other (the first one's preamble makes
# it DICOM).
find "$folder" -type f | sort | xargs cat >"$work/all.dcm"
total="$(stat -c %s "$work/all.dcm")"

email="bench-$suffix@example.org"
"$medport" migrate >/dev/null
printf '%s' "bench password long enough $suffix" |
    "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
key="$(new_api_key "$medport" "$email" upload,read)" || exit 1
start_medport "$medport" "$work/medport.log" "$port"
cat "$work/all.dcm" "$folder"/* >/dev/null

cpu() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
ticks="$(getconf CLK_TCK)"

log "sending the folder: $count files, $parallel at once"
cpu_before="$(cpu)"
node tests/tus-js/batch.mjs --base "http://127.0.0.1:$port" --dir "$folder" --key "$key" \
    --parallel "$parallel" >"$work/batch.json"
cpu_batch="$(( $(cpu) - cpu_before ))"
log "sending the same bytes as one file"
start="$(now)"
node tests/tus-js/upload.mjs --endpoint "http://127.0.0.1:$port/tus/" --key "$key" \
    --file "$work/all.dcm" --filename all.dcm --chunk-size Infinity --timeout 3600 >/dev/null
single="$(python3 -c "print($(now) - $start)")"
rss_kib="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")"

python3 - "$work/batch.json" "$single" "$total" "$rss_kib" "$cpu_batch" "$ticks" "$setup" <<'EOF'
import json, sys
batch = json.load(open(sys.argv[1]))
single, total, rss_kib = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu = int(sys.argv[5]) / int(sys.argv[6])
setup = sys.argv[7]
files, seconds = batch["files"], batch["seconds"]
if batch["stored"] != files or batch["problems"]:
    sys.exit(f"bench-batch: the batch stored {batch['stored']} of {files} ({batch['problems']} problems)")
mib = total / 1048576
print(f"setup {setup}: {files} files, {mib:.0f} MiB")
print(f"  batch:    {seconds:.2f} s, {files / seconds:.0f} files/s, {mib / seconds:.1f} MiB/s, "
      f"medport CPU {cpu:.1f} s ({1000 * cpu / files:.2f} ms per file)")
print(f"  one file: {single:.2f} s, {mib / single:.1f} MiB/s")
print(f"  ratio batch / one file: {seconds / single:.2f}")
print(f"  peak RSS: {rss_kib / 1024:.0f} MiB (target < 150)")
if setup == "local":
    print(f"  target >= 100 files/s: {'met' if files / seconds >= 100 else 'MISSED'}")
else:
    print(f"  target ratio <= 2: {'met' if seconds / single <= 2 else 'MISSED'}")
EOF
