#!/usr/bin/env bash
# Instructions per history page, counted by valgrind's callgrind: a figure that does not
# depend on what else the machine is doing, so two builds compare exactly. Starts a release
# `medport` (SQLite, a temp data directory), seeds 20 uploads through tus, signs in, then
# serves under callgrind: 20 GETs of /uploads not counted, then MEDPORT_BENCH_PAGES (200)
# counted. Prints instructions per page; the profile is kept for callgrind_annotate when
# MEDPORT_BENCH_KEEP (a file name) is set.
#
#   scripts/bench-page-instructions.sh
#   MEDPORT_BENCH_BIN=/tmp/medport-before scripts/bench-page-instructions.sh
# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"

pages="${MEDPORT_BENCH_PAGES:-200}"
log() { printf 'bench-page-instructions: %s\n' "$*" >&2; }
command -v valgrind >/dev/null || { echo "needs valgrind (Debian package valgrind)" >&2; exit 1; }
command -v callgrind_control >/dev/null || { echo "needs callgrind_control (valgrind)" >&2; exit 1; }

release_medport
work="$(mktemp -d "${TMPDIR:-/tmp}/medport-bench-instr.XXXXXX")"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

export MEDPORT_DATA_DIR="$work/data" MEDPORT_TRUSTED_PROXIES=127.0.0.1 RUST_LOG=warn
export MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE=1000000 MEDPORT_RATE_LIMIT_UPLOAD_PER_MINUTE=1000000
unset DATABASE_URL
port="$(free_port)"
export MEDPORT_BIND="127.0.0.1:$port"
email="bench-instr-$$@example.org"
export MEDPORT_BENCH_PASSWORD="bench password long enough $$"
"$medport" migrate >/dev/null
printf '%s\n' "$MEDPORT_BENCH_PASSWORD" |
    "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
key="$(new_api_key "$medport" "$email" upload)" || exit 1
start_medport "$medport" "$work/medport.log" "$port"
MEDPORT_BENCH_API_KEY="$key" python3 scripts/bench-pages.py seed --port "$port" --count 20
cookie="$(python3 scripts/bench-pages.py signin --port "$port" --email "$email" --expect-total 20)"
kill "$pid"
wait "$pid" 2>/dev/null || true

valgrind --tool=callgrind --callgrind-out-file="$work/page.cg" "$medport" serve >"$work/valgrind.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
done
get() {
    curl -s -o /dev/null -w '%{http_code}\n' -H "Cookie: $cookie" -H "X-Forwarded-For: 10.1.0.$1" \
        "http://127.0.0.1:$port/uploads"
}
for i in $(seq 1 20); do get "$i" >/dev/null; done
callgrind_control -z "$pid" >/dev/null
codes="$(for i in $(seq 1 "$pages"); do get $((i % 250)); done | sort | uniq -c)"
callgrind_control -d "$pid" >/dev/null
sleep 1
[ "$(printf '%s\n' "$codes" | awk '$2 != 200' | wc -l)" = 0 ] ||
    { echo "answers other than 200: $codes" >&2; exit 1; }
dump="$(ls "$work"/page.cg.* | head -n 1)"
total="$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')"
log "$pages pages: $total instructions, $((total / pages)) per page ($medport)"
[ -n "${MEDPORT_BENCH_KEEP:-}" ] && cp "$dump" "$MEDPORT_BENCH_KEEP" && log "profile kept in $MEDPORT_BENCH_KEEP"
exit 0
