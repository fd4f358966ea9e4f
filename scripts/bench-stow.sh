#!/usr/bin/env bash
# STOW-RS against tus for the same files, in the same run, and medport's memory while one
# 2 GiB STOW request streams. Starts a release `medport` with its data directory in a temp
# dir, generates COUNT DICOM files of SIZE KiB with pydicom (scripts/dicom-fixtures.sh
# --bench), then:
#   1. sends them with STOW-RS (scripts/bench-stow.py: PER_REQUEST parts a request, PARALLEL
#      requests at once), then the same files as one tus batch with the real tus-js-client
#      (tests/tus-js/batch.mjs, PARALLEL files at once); prints both throughputs and their
#      ratio;
#   2. restarts medport (so its peak RSS is this phase's alone) and sends one STOW request of
#      BIG_MIB MiB: one pydicom instance of 8 MiB (one storage part; the generator's pixel
#      matrix cannot grow much beyond 16 MiB) BIG_MIB/8 times over, stored as an instance and
#      its duplicates; prints medport's peak RSS (VmHWM).
#
#   scripts/bench-stow.sh                             # SQLite, local store
#   MEDPORT_BENCH_SETUP=pg-s3 scripts/bench-stow.sh   # PostgreSQL, S3
#
# Targets: STOW throughput >= 0.8x tus; peak RSS < 150 MiB while the 2 GiB request streams.
#
# Knobs (environment): MEDPORT_BENCH_SETUP (local or pg-s3), MEDPORT_BENCH_FILES (default
# 1000), MEDPORT_BENCH_FILE_KIB (default 512), MEDPORT_BENCH_PER_REQUEST (default 50),
# MEDPORT_BENCH_PARALLEL (default 4), MEDPORT_BENCH_BIG_MIB (default 2048, at most 8000 (the
# parts a request may hold); 0 skips phase 2; needs that much disk), MEDPORT_BENCH_BIN (a medport binary to measure instead of
# building one), MEDPORT_BENCH_DIR (where the files and data go), CARGO_TARGET_DIR.
# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"

setup="${MEDPORT_BENCH_SETUP:-local}"
case "$setup" in local | pg-s3) ;; *) echo "MEDPORT_BENCH_SETUP is local or pg-s3" >&2; exit 1 ;; esac
count="${MEDPORT_BENCH_FILES:-1000}"
kib="${MEDPORT_BENCH_FILE_KIB:-512}"
per_request="${MEDPORT_BENCH_PER_REQUEST:-50}"
parallel="${MEDPORT_BENCH_PARALLEL:-4}"
big_mib="${MEDPORT_BENCH_BIG_MIB:-2048}"
case "$big_mib" in *[!0-9]*) echo "MEDPORT_BENCH_BIG_MIB is a number of MiB" >&2; exit 1 ;; esac

log() { printf 'bench-stow: %s\n' "$*" >&2; }

need_tus_js

release_medport

bench_workdir stow
suffix="$(date +%s)-$$"
bench_backends stow "$setup"

log "generating $count DICOM files of $kib KiB"
bash scripts/dicom-fixtures.sh "$work/fx" --bench "$count" "$kib" >/dev/null
folder="$work/fx/bench-$count-$kib"
[ -d "$folder" ] || { echo "no generated folder at $folder" >&2; exit 1; }

email="bench-$suffix@example.org"
"$medport" migrate >/dev/null
printf '%s' "bench password long enough $suffix" |
    "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
key="$(new_api_key "$medport" "$email" upload,read)" || exit 1
start_medport "$medport" "$work/medport.log" "$port"
cat "$folder"/* >/dev/null

log "STOW-RS: $count files, $per_request a request, $parallel requests at once"
python3 scripts/bench-stow.py batch --base "http://127.0.0.1:$port" --key "$key" \
    --dir "$folder" --per-request "$per_request" --parallel "$parallel" >"$work/stow.json"
log "tus: the same files as one batch, $parallel at once"
node tests/tus-js/batch.mjs --base "http://127.0.0.1:$port" --dir "$folder" --key "$key" \
    --parallel "$parallel" >"$work/tus.json"
rss_batches_kib="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")"

python3 - "$work/stow.json" "$work/tus.json" "$rss_batches_kib" "$setup" <<'EOF'
import json, sys
stow, tus = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rss_kib, setup = int(sys.argv[3]), sys.argv[4]
if stow["stored"] != stow["files"] or stow["failed"]:
    sys.exit(f"bench-stow: STOW stored {stow['stored']} of {stow['files']} ({stow['failed']} failed)")
if tus["stored"] != tus["files"] or tus["problems"]:
    sys.exit(f"bench-stow: tus stored {tus['stored']} of {tus['files']} ({tus['problems']} problems)")
mib = stow["bytes"] / 1048576
stow_rate, tus_rate = mib / stow["seconds"], mib / tus["seconds"]
ratio = stow_rate / tus_rate
print(f"setup {setup}: {stow['files']} files, {mib:.0f} MiB")
print(f"  STOW-RS: {stow['seconds']:.2f} s, {stow_rate:.1f} MiB/s, "
      f"{stow['files'] / stow['seconds']:.0f} files/s ({stow['requests']} requests)")
print(f"  tus:     {tus['seconds']:.2f} s, {tus_rate:.1f} MiB/s, {tus['files'] / tus['seconds']:.0f} files/s")
print(f"  ratio STOW / tus: {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'})")
print(f"  peak RSS over both: {rss_kib / 1024:.0f} MiB")
EOF

[ "$big_mib" -gt 0 ] || exit 0
piece_kib=8192
times=$((big_mib * 1024 / piece_kib))
[ "$times" -ge 1 ] || { echo "MEDPORT_BENCH_BIG_MIB is at least 8" >&2; exit 1; }
log "generating one DICOM instance of $((piece_kib / 1024)) MiB"
bash scripts/dicom-fixtures.sh "$work/big" --bench 1 "$piece_kib" >/dev/null
big="$(find "$work/big/bench-1-$piece_kib" -type f | head -n 1)"
[ -n "$big" ] || { echo "no generated instance under $work/big" >&2; exit 1; }
# The batch phase's files are no longer needed; the big request needs the room.
rm -rf "$work/fx"
stop_started
start_medport "$medport" "$work/medport-big.log" "$port"
log "one STOW request of $big_mib MiB (the instance $times times over)"
python3 scripts/bench-stow.py repeat --base "http://127.0.0.1:$port" --key "$key" \
    --file "$big" --times "$times" >"$work/big.json"
rss_big_kib="$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")"
python3 - "$work/big.json" "$rss_big_kib" <<'EOF'
import json, sys
big, rss_kib = json.load(open(sys.argv[1])), int(sys.argv[2])
mib = big["bytes"] / 1048576
print(f"  one {mib:.0f} MiB STOW request: {big['seconds']:.1f} s, {mib / big['seconds']:.1f} MiB/s, "
      f"{big['stored']} parts stored")
print(f"  peak RSS while it streamed: {rss_kib / 1024:.0f} MiB "
      f"(target < 150: {'met' if rss_kib / 1024 < 150 else 'MISSED'})")
EOF
