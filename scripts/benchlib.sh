# shellcheck shell=bash
# Steps the bench-*.sh scripts share; sourced, not run. Sourcing it is also their start-up:
# strict mode, and the repository root as working directory (in `root`).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck disable=SC2034 # used by the scripts that source this file
root="$PWD"

# A TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Prints a new API key for EMAIL with SCOPE (e.g. `upload,read`), made with the CLI of the
# medport binary MEDPORT; exits when none came out.
new_api_key() {
    local medport="$1" email="$2" scope="$3" key
    key="$("$medport" apikey create --email "$email" --scope "$scope" 2>/dev/null)"
    case "$key" in mp_*) ;; *) echo "could not create an API key" >&2; exit 1 ;; esac
    printf '%s\n' "$key"
}

# Starts `MEDPORT serve` in the background, its output in LOG, and waits until GET /readyz
# on 127.0.0.1:PORT answers; sets `pid`. Exits with the log when medport stops or never
# gets ready (10 s).
start_medport() {
    local medport="$1" log="$2" port="$3"
    "$medport" serve >"$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 0.05
    done
    echo "medport not ready after 10 s" >&2
    exit 1
}

# Waits for every background job PID given; fails when any of them failed.
wait_all() {
    local job failed=0
    for job in "$@"; do wait "$job" || failed=1; done
    return "$failed"
}

# Node.js and the real tus-js-client (tests/tus-js), installed when missing.
need_tus_js() {
    command -v node >/dev/null || { echo "needs Node.js 18+ (Debian package nodejs)" >&2; exit 1; }
    [ -f tests/tus-js/node_modules/tus-js-client/package.json ] || npm ci --prefix tests/tus-js --silent
}

# Sets `medport`: MEDPORT_BENCH_BIN, or the release binary, built first.
release_medport() {
    medport="${MEDPORT_BENCH_BIN:-}"
    if [ -z "$medport" ]; then
        printf 'building the release binary\n' >&2
        cargo build --release --locked --quiet
        medport="${CARGO_TARGET_DIR:-$root/target}/release/medport"
    fi
}

# Sets `work` to a new directory for benchmark NAME under MEDPORT_BENCH_DIR (or the temp dir)
# and `pid` to empty, for the caller's cleanup.
bench_workdir() {
    work="$(mktemp -d "${MEDPORT_BENCH_DIR:-${TMPDIR:-/tmp}}/medport-bench-$1.XXXXXX")"
    pid=""
}

# Stops the medport `start_medport` started, if any.
stop_started() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
}

# The server's backends for SETUP (local: SQLite and the local store under `work`; pg-s3:
# a new PostgreSQL database and S3 bucket on the test services, named after NAME and dropped
# on exit), its address (`port`), and request limits out of the way (thousands of requests
# from one client must measure the pipeline, not the per-account limit). Sets `bucket` and
# `database` (and `suffix`, unless the caller chose one), and the exit trap that stops medport and removes `work`.
bench_backends() {
    local name="$1"
    bench_setup="$2"
    suffix="${suffix:-$(date +%s)-$$}"
    bucket="medport-bench-$name-$suffix"
    database=""
    trap bench_cleanup EXIT
    export MEDPORT_DATA_DIR="$work/data"
    if [ "$bench_setup" = pg-s3 ]; then
        python3 -c 'import boto3' 2>/dev/null || pip install --quiet boto3
        scripts/test-services.sh postgres s3 >/dev/null
        # shellcheck disable=SC1091
        source target/test-services.env
        export MEDPORT_TEST_S3_ENDPOINT MEDPORT_TEST_S3_ACCESS_KEY MEDPORT_TEST_S3_SECRET_KEY \
            MEDPORT_TEST_S3_REGION
        python3 scripts/bench-upload.py bucket "$bucket"
        database="medport_bench_${name}_$$"
        psql -q "$MEDPORT_TEST_POSTGRES" -c "CREATE DATABASE \"$database\"" >/dev/null
        export DATABASE_URL="${MEDPORT_TEST_POSTGRES%/*}/$database"
        export MEDPORT_S3_ENDPOINT="$MEDPORT_TEST_S3_ENDPOINT" MEDPORT_S3_REGION="$MEDPORT_TEST_S3_REGION"
        export MEDPORT_S3_BUCKET="$bucket" MEDPORT_S3_PATH_STYLE=true
        export MEDPORT_S3_ACCESS_KEY_ID="$MEDPORT_TEST_S3_ACCESS_KEY"
        export MEDPORT_S3_SECRET_ACCESS_KEY="$MEDPORT_TEST_S3_SECRET_KEY"
        export MEDPORT_ALLOW_LOOPBACK_ENDPOINTS=true
    fi
    export RUST_LOG=warn
    port="$(free_port)"
    export MEDPORT_BIND="127.0.0.1:$port"
    export MEDPORT_RATE_LIMIT_GENERAL_PER_MINUTE=1000000 MEDPORT_RATE_LIMIT_UPLOAD_PER_MINUTE=1000000
}

bench_cleanup() {
    stop_started
    rm -rf "$work"
    if [ "$bench_setup" = pg-s3 ]; then
        python3 scripts/bench-upload.py drop "$bucket" || true
        [ -z "$database" ] || psql -q "$MEDPORT_TEST_POSTGRES" -c "DROP DATABASE IF EXISTS \"$database\"" >/dev/null 2>&1 || true
    fi
}
