#!/usr/bin/env bash
# Page latency under load. Starts a release `medport` (SQLite, data directory in a temp dir),
# creates two uploaders with the CLI (one whose session wrk uses, one that keeps signing in),
# seeds a few uploads through tus so the history is not empty, signs in through the login
# form and then runs wrk on the authenticated history page `/uploads`:
#   1. a short warm-up (not reported);
#   2. 64 connections for MEDPORT_BENCH_SECONDS: requests/s, p50, p99;
#   3. the same while 5 sign-ins per second run (each a full GET /login + POST /login with
#      the real password, bcrypt cost 12), started on a fixed schedule whether or not the
#      earlier ones have finished.
# Reports both, the ratio p99(with sign-ins) / p99(without) against the target 2.0 (bcrypt
# must not stall other requests), how many sign-ins succeeded and the pages' status codes.
# Before those, at each of MEDPORT_BENCH_TAIL_CONNECTIONS (default "8 64"), `/healthz` (the
# same middleware, no database) then `/uploads`, back to back: the page's p99 against
# /healthz's (target <= 3) and its throughput against /healthz's (target >= 0.4).
#
#   scripts/bench-pages.sh
#
# Client addresses: medport rate-limits anonymous traffic per client address and a signed-in
# session per account. As behind a load balancer, medport runs here with
# MEDPORT_TRUSTED_PROXIES=127.0.0.1 and every request says where it comes from in
# X-Forwarded-For: wrk spreads its requests over 10.1-10.2.y.z (scripts/bench-pages.lua), each
# sign-in has its own 10.250+.y.z address. The one session wrk uses is one account, so the
# general per-account limit is raised (MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE), and the upload
# limit too, for a large MEDPORT_BENCH_SEED; the sign-in limits stay as shipped. Without that
# the benchmark would measure 429s.
#
# Every page answer must be 200: the script exits 1 if wrk saw any other status (a 303 to
# /login, a 429...), a socket error or a timeout, or if a sign-in failed. Missing the 2x target
# is reported, not an error.
#
# Knobs (environment): MEDPORT_BENCH_SECONDS (each measured run, default 20),
# MEDPORT_BENCH_CONNECTIONS (default 64), MEDPORT_BENCH_LOGINS_PER_SECOND (default 5),
# MEDPORT_BENCH_RUNS (pairs of runs without / with sign-ins, alternating, default 1; the
# report adds the medians), MEDPORT_BENCH_SEED (uploads in the history, default 20), MEDPORT_BENCH_BIN (a medport binary
# to measure instead of building one), CARGO_TARGET_DIR (default /work/release-target),
# MEDPORT_BENCH_PG (a postgres:// URL of a database the benchmark may fill: then the same runs
# again on PostgreSQL), MEDPORT_BENCH_ANALYZE (1, the default: on a PostgreSQL server with
# autovacuum off, VACUUM ANALYZE once after seeding; 0: measure with no statistics),
# MEDPORT_BENCH_DIR (where the data directory goes).
# shellcheck source=scripts/benchlib.sh
source "$(dirname "$0")/benchlib.sh"

seconds="${MEDPORT_BENCH_SECONDS:-20}"
connections="${MEDPORT_BENCH_CONNECTIONS:-64}"
logins_per_second="${MEDPORT_BENCH_LOGINS_PER_SECOND:-5}"
seed="${MEDPORT_BENCH_SEED:-20}"
runs="${MEDPORT_BENCH_RUNS:-1}"
tail_connections="${MEDPORT_BENCH_TAIL_CONNECTIONS:-8 64}"
results=()
tails=()

log() { printf 'bench-pages: %s\n' "$*" >&2; }

# ---------------------------------------------------------------- tools
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        log "installing wrk (Debian package)"
        apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
    else
        echo "needs wrk: run 'sudo apt-get install -y wrk' (Debian package) and try again" >&2
        exit 1
    fi
fi
command -v curl >/dev/null || { echo "needs curl" >&2; exit 1; }

medport="${MEDPORT_BENCH_BIN:-}"
if [ -z "$medport" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/release-target}"
    log "building the release binary (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
    cargo build --release --locked --quiet --bin medport
    medport="$CARGO_TARGET_DIR/release/medport"
fi
[ -x "$medport" ] || { echo "no medport binary at $medport" >&2; exit 1; }

work="$(mktemp -d "${MEDPORT_BENCH_DIR:-${TMPDIR:-/tmp}}/medport-bench-pages.XXXXXX")"
pid=""
stop_medport() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}
cleanup() {
    stop_medport
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- one backend
# measure NAME [DATABASE_URL]: a fresh medport, accounts, seed, sign-in, the warm-up, then
# the pairs of runs (without, with sign-ins).
measure() {
    local name="$1" database_url="${2:-}"
    local suffix port email login_email key cookie
    suffix="$(date +%s)-$$-$name"
    export MEDPORT_DATA_DIR="$work/data-$name"
    if [ -n "$database_url" ]; then export DATABASE_URL="$database_url"; else unset DATABASE_URL; fi
    export MEDPORT_TRUSTED_PROXIES=127.0.0.1
    export MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE=1000000
    export MEDPORT_RATE_LIMIT_UPLOAD_PER_MINUTE=1000000
    export RUST_LOG=warn
    port="$(free_port)"
    export MEDPORT_BIND="127.0.0.1:$port"

    email="bench-pages-$suffix@example.org"
    login_email="bench-signin-$suffix@example.org"
    export MEDPORT_BENCH_PASSWORD="bench password long enough $suffix"
    "$medport" migrate >/dev/null
    # Accounts made with the CLI need no password change at first sign-in.
    printf '%s\n' "$MEDPORT_BENCH_PASSWORD" |
        "$medport" user create --email "$email" --role uploader --password-stdin >/dev/null
    printf '%s\n' "$MEDPORT_BENCH_PASSWORD" |
        "$medport" user create --email "$login_email" --role uploader --password-stdin >/dev/null
    key="$(new_api_key "$medport" "$email" upload)" || exit 1
    start_medport "$medport" "$work/medport-$name.log" "$port"

    if [ "$seed" -gt 0 ]; then
        MEDPORT_BENCH_API_KEY="$key" python3 scripts/bench-pages.py seed --port "$port" --count "$seed"
    fi
    # A server with autovacuum off never gathers statistics for the fresh tables, and the
    # planner then scans every upload for a page of 50: not what a production server does.
    if [ -n "$database_url" ] && [ "${MEDPORT_BENCH_ANALYZE:-1}" = 1 ] &&
        [ "$(psql -Atq "$database_url" -c "SELECT current_setting('autovacuum')")" = off ]; then
        echo "bench-pages: autovacuum is off on this PostgreSQL: VACUUM ANALYZE after seeding, as autovacuum would (MEDPORT_BENCH_ANALYZE=0 skips it)"
        psql -q "$database_url" -c "VACUUM ANALYZE" >/dev/null
    fi
    cookie="$(python3 scripts/bench-pages.py signin --port "$port" --email "$email" --expect-total "$seed")"
    export MEDPORT_BENCH_COOKIE="$cookie"

    local common=(--port "$port" --pid "$pid" --lua scripts/bench-pages.lua --connections "$connections"
        --threads 2 --login-email "$login_email")
    python3 scripts/bench-pages.py phase "${common[@]}" --name "$name:warm-up" --seconds 3 \
        --out "$work/warmup-$name.json"
    local run out c
    # The tail: the page against /healthz (same middleware, no database), back to back.
    for c in $tail_connections; do
        for path in /healthz /uploads; do
            out="$work/tail-$name-$c-${path#/}.json"
            python3 scripts/bench-pages.py phase "${common[@]}" --connections "$c" --path "$path" \
                --name "$name:$path c$c" --seconds "$seconds" --out "$out"
            tails+=("$out")
        done
    done
    for run in $(seq 1 "$runs"); do
        out="$work/result-$name-$run-a.json"
        python3 scripts/bench-pages.py phase "${common[@]}" --name "$name:pages #$run" \
            --seconds "$seconds" --out "$out"
        results+=("$out")
        out="$work/result-$name-$run-b.json"
        python3 scripts/bench-pages.py phase "${common[@]}" --name "$name:pages+sign-ins #$run" \
            --seconds "$seconds" --logins-per-second "$logins_per_second" \
            --first-address $(((run - 1) * 10000)) --out "$out"
        results+=("$out")
    done

    kill -0 "$pid" 2>/dev/null || { tail -n 50 "$work/medport-$name.log" >&2; echo "medport died" >&2; exit 1; }
    if grep -qiE ' (error|panicked)' "$work/medport-$name.log"; then
        log "medport logged errors during the runs:"
        grep -iE ' (error|panicked)' "$work/medport-$name.log" | head -n 20 >&2
    fi
    stop_medport
}

log "load average before: $(cat /proc/loadavg)"
measure sqlite
if [ -n "${MEDPORT_BENCH_PG:-}" ]; then
    measure postgres "$MEDPORT_BENCH_PG"
fi
log "load average after: $(cat /proc/loadavg)"

# The report exits 1 if any page answer was not 200 (or a sign-in failed).
python3 scripts/bench-pages.py report "${results[@]}"
if [ ${#tails[@]} -gt 0 ]; then
    printf '\n== the page against /healthz\n'
    python3 scripts/bench-pages.py tail "${tails[@]}"
fi
