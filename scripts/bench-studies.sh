#!/usr/bin/env bash
# Study pages and study archives. Starts a release `medport` (SQLite, local store, data in a
# temp dir), sends generated DICOM studies (scripts/dicom-fixtures.sh --bench) as batches with
# tus-js-client, then measures, in one run:
#   1. latency: wrk with 8 connections for MEDPORT_BENCH_SECONDS on the study page
#      (`/studies/{uid}`, signed-in session) and the API (`/api/v1/studies/{uid}`, API key:
#      its default answer, the first window of 1,000 instances, and its last window) of a
#      study of
#      MEDPORT_BENCH_INSTANCES instances (default 5000), with `/healthz` as the reference;
#      p99 of each. Target: p99 < 100 ms for both.
#   2. archive: the ZIP of a study of about MEDPORT_BENCH_ZIP_MIB MiB (default 1024, in 8 MiB
#      instances) against downloading the same bytes stored as one file, three times each,
#      alternating, into /dev/null; the ratio of their median speeds, and medport's peak RSS before and
#      after, with a study a quarter that size zipped first. Targets: ratio >= 0.8; RSS
#      independent of study size.
# The ZIPs are checked: every entry's SHA-256 must be the generated file's.
#
#   scripts/bench-studies.sh
#
# Knobs (environment): MEDPORT_BENCH_INSTANCES, MEDPORT_BENCH_ZIP_MIB, MEDPORT_BENCH_SECONDS
# (each wrk run, default 10), MEDPORT_BENCH_BIN (a medport binary to measure instead of
# building one), MEDPORT_BENCH_DIR, CARGO_TARGET_DIR.
# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"

instances="${MEDPORT_BENCH_INSTANCES:-5000}"
zip_mib="${MEDPORT_BENCH_ZIP_MIB:-1024}"
seconds="${MEDPORT_BENCH_SECONDS:-10}"

log() { printf 'bench-studies: %s\n' "$*" >&2; }
now() { date +%s.%N; }

need_tus_js
command -v wrk >/dev/null || { echo "needs wrk (Debian package wrk)" >&2; exit 1; }

release_medport

bench_workdir studies
cleanup() {
    stop_started
    rm -rf "$work"
}
trap cleanup EXIT

suffix="$(date +%s)-$$"
export MEDPORT_DATA_DIR="$work/data" RUST_LOG=warn
export MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE=1000000 MEDPORT_RATE_LIMIT_UPLOAD_PER_MINUTE=1000000
port="$(free_port)"
export MEDPORT_BIND="127.0.0.1:$port"
base="http://127.0.0.1:$port"
email="bench-$suffix@example.org"
password="bench password long enough $suffix"
"$medport" migrate >/dev/null
printf '%s' "$password" | "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
key="$(new_api_key "$medport" "$email" upload,read)" || exit 1
start_medport "$medport" "$work/medport.log" "$port"

# Sends the generated folder DIR as one batch; prints the study's UID from the manifest.
send_study() {
    local dir="$1" manifest="$2"
    node tests/tus-js/batch.mjs --base "$base" --dir "$dir" --key "$key" --parallel 4 >"$work/last-batch.json"
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["study_instance_uid"])' "$manifest"
}

rss() { awk -v f="$1" '$1 == f ":" { print $2 }' "/proc/$pid/status"; }

# ---------------------------------------------------------------- 1. latency
log "generating and sending a study of $instances instances"
bash scripts/dicom-fixtures.sh "$work/fx-pages" --bench "$instances" 7 >/dev/null
big_study="$(send_study "$work/fx-pages/bench-$instances-7" "$work/fx-pages/bench-$instances-7.json")"
cookie="$(MEDPORT_BENCH_PASSWORD="$password" python3 scripts/bench-pages.py signin --port "$port" --email "$email")"

# p99 in milliseconds of wrk with 8 connections on PATH, with extra wrk arguments.
p99() {
    local path="$1"; shift
    wrk -t2 -c8 -d"${seconds}s" --latency "$@" "$base$path" >"$work/wrk.txt"
    if grep -q "Non-2xx" "$work/wrk.txt"; then cat "$work/wrk.txt" >&2; echo "non-2xx answers on $path" >&2; exit 1; fi
    python3 - "$work/wrk.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
print(f"{float(m.group(1)) * scale:.2f} {float(rps.group(1)):.0f}")
EOF
}
read -r health_p99 health_rps < <(p99 /healthz)
read -r page_p99 page_rps < <(p99 "/studies/$big_study" -H "Cookie: $cookie")
read -r api_p99 api_rps < <(p99 "/api/v1/studies/$big_study" -H "Authorization: Bearer $key")
last_window=$(( instances > 1000 ? instances - 1000 : 0 ))
read -r last_p99 last_rps < <(p99 "/api/v1/studies/$big_study?offset=$last_window" -H "Authorization: Bearer $key")

# ---------------------------------------------------------------- 2. archive
# Downloads URL with curl into FILE; prints the seconds it took.
fetch() {
    local url="$1" out="$2"; shift 2
    local start; start="$(now)"
    curl -fsS -o "$out" "$@" "$url"
    python3 -c "print($(now) - $start)"
}
zip_check() {
    python3 - "$1" "$2" <<'EOF'
import hashlib, json, sys, zipfile
manifest = json.load(open(sys.argv[2]))
want = sorted(i["sha256"] for i in manifest["instances"])
with zipfile.ZipFile(sys.argv[1]) as z:
    got = sorted(hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist() if not n.endswith("DICOMDIR"))
if got != want:
    sys.exit(f"bench-studies: the ZIP holds {len(got)} entries, {len(want)} expected, or other bytes")
EOF
}
quarter=$(( zip_mib / 4 / 8 )); full=$(( zip_mib / 8 ))
log "generating and sending studies of $((quarter * 8)) and $((full * 8)) MiB"
bash scripts/dicom-fixtures.sh "$work/fx-q" --bench "$quarter" 8192 >/dev/null
bash scripts/dicom-fixtures.sh "$work/fx-f" --bench "$full" 8192 >/dev/null
small_study="$(send_study "$work/fx-q/bench-$quarter-8192" "$work/fx-q/bench-$quarter-8192.json")"
zip_study="$(send_study "$work/fx-f/bench-$full-8192" "$work/fx-f/bench-$full-8192.json")"
find "$work/fx-f/bench-$full-8192" -type f | sort | xargs cat >"$work/all.dcm"
node tests/tus-js/upload.mjs --endpoint "$base/tus/" --key "$key" --file "$work/all.dcm" \
    --filename all.dcm --chunk-size Infinity --timeout 3600 >"$work/single.json"
single_id="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["url"].rsplit("/", 1)[1])' "$work/single.json")"
rm -f "$work/all.dcm"

fetch "$base/api/v1/studies/$small_study/archive" "$work/small.zip" -H "Authorization: Bearer $key" >/dev/null
rss_small="$(rss VmHWM)"
zip_check "$work/small.zip" "$work/fx-q/bench-$quarter-8192.json"
rm -f "$work/small.zip"
# Alternating, so that a slow moment of the machine does not land on one side only, and
# into /dev/null: writing a GiB to this disk took longer than medport took to send it. The
# ZIP is then fetched once more into a file and checked.
one_runs=(); zip_runs=()
for _ in 1 2 3; do
    one_runs+=("$(fetch "$base/files/$single_id/download" /dev/null -H "Cookie: $cookie")")
    zip_runs+=("$(fetch "$base/api/v1/studies/$zip_study/archive" /dev/null -H "Authorization: Bearer $key")")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
one_file_s="$(median "${one_runs[@]}")"; zip_s="$(median "${zip_runs[@]}")"
fetch "$base/api/v1/studies/$zip_study/archive" "$work/study.zip" -H "Authorization: Bearer $key" >/dev/null
rss_full="$(rss VmHWM)"
zip_check "$work/study.zip" "$work/fx-f/bench-$full-8192.json"
zip_bytes="$(stat -c %s "$work/study.zip")"

python3 - <<EOF
mib = $zip_bytes / 1048576
print(f"study pages, {$instances} instances, 8 connections, {$seconds} s each:")
print(f"  /healthz:               p99 {$health_p99:.1f} ms, {$health_rps} req/s")
print(f"  /studies/{{uid}}:         p99 {$page_p99:.1f} ms, {$page_rps} req/s (target p99 < 100 ms: {'met' if $page_p99 < 100 else 'MISSED'})")
print(f"  /api/v1/studies/{{uid}}: p99 {$api_p99:.1f} ms, {$api_rps} req/s (target p99 < 100 ms: {'met' if $api_p99 < 100 else 'MISSED'})")
print(f"    its last window (?offset=$last_window): p99 {$last_p99:.1f} ms, {$last_rps} req/s (target p99 < 100 ms: {'met' if $last_p99 < 100 else 'MISSED'})")
print(f"study archive, {mib:.0f} MiB:")
print(f"  ZIP:      {$zip_s:.2f} s, {mib / $zip_s:.0f} MiB/s (median of ${zip_runs[*]})")
print(f"  one file: {$one_file_s:.2f} s, {mib / $one_file_s:.0f} MiB/s (median of ${one_runs[*]})")
ratio = $one_file_s / $zip_s
print(f"  ratio ZIP / one file speed: {ratio:.2f} (target >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'})")
print(f"  peak RSS after a {$quarter * 8} MiB ZIP: {$rss_small / 1024:.0f} MiB; after a {$full * 8} MiB ZIP: {$rss_full / 1024:.0f} MiB")
EOF
