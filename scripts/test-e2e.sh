#!/usr/bin/env bash
# Real-browser end-to-end scenarios (e2e/): Debian's Chromium driven by playwright-core
# against medport servers this run starts itself: one on SQLite with a temporary data
# directory, one on a fresh PostgreSQL database with its default bucket on a fresh S3
# bucket. Builds the debug binary, starts the test services (PostgreSQL, the S3 server),
# installs e2e/node_modules when missing, runs the scenarios, exits non-zero on failure.
#
#   scripts/test-e2e.sh                       # every scenario, SQLite then PostgreSQL + S3
#   scripts/test-e2e.sh sqlite                # one deployment only (sqlite | postgres)
#   scripts/test-e2e.sh --update-screenshots  # also rewrite docs/screenshots/*.png
#
# Needs node/npm and /usr/bin/chromium (Debian package `chromium`, installed with apt when
# missing and run as root); never downloads a browser. Logs and pictures of failed pages:
# target/e2e/ (MEDPORT_E2E_ARTIFACTS).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=()
screenshots=""
for arg in "$@"; do
    case "$arg" in
        sqlite) runs+=(e2e/tests/sqlite.test.mjs) ;;
        postgres) runs+=(e2e/tests/postgres-s3.test.mjs) ;;
        --update-screenshots) screenshots="$PWD/docs/screenshots" ;;
        *) echo "usage: $0 [sqlite] [postgres] [--update-screenshots]" >&2; exit 2 ;;
    esac
done
if [ ${#runs[@]} -eq 0 ]; then
    runs=(e2e/tests/sqlite.test.mjs e2e/tests/postgres-s3.test.mjs)
fi

chromium="${MEDPORT_E2E_CHROMIUM:-/usr/bin/chromium}"
# A fresh machine: install Debian's Chromium (never a downloaded browser), as the test
# services install theirs, when running as root; otherwise say what is missing.
if [ ! -x "$chromium" ] && [ "$chromium" = /usr/bin/chromium ] && [ "$(id -u)" = 0 ] &&
    command -v apt-get >/dev/null; then
    echo "e2e: installing Debian's chromium (apt)"
    mkdir -p target
    { apt-get -q -o DPkg::Lock::Timeout=300 update && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q -o DPkg::Lock::Timeout=300 chromium; } >target/e2e-apt.log 2>&1 ||
        { echo "e2e: apt-get install chromium failed; see target/e2e-apt.log" >&2; exit 1; }
fi
[ -x "$chromium" ] || { echo "e2e: $chromium not found: install Debian's package chromium" >&2; exit 1; }
command -v node >/dev/null || { echo "e2e: node not found: install Debian's packages nodejs and npm" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$PWD/target}"
echo "e2e: cargo build --bin medport"
cargo build --locked --bin medport
export MEDPORT_E2E_BIN="$target/debug/medport"

scripts/test-services.sh postgres s3 oidc
# shellcheck disable=SC1091
source target/test-services.env
export MEDPORT_TEST_POSTGRES
export MEDPORT_TEST_S3_ENDPOINT MEDPORT_TEST_S3_ACCESS_KEY MEDPORT_TEST_S3_SECRET_KEY \
    MEDPORT_TEST_S3_REGION
export MEDPORT_TEST_OIDC_ISSUER

# playwright-core downloads no browser; the variable makes sure nothing ever tries.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d e2e/node_modules ]; then
    npm ci --prefix e2e --no-audit --no-fund
fi

export MEDPORT_E2E_CHROMIUM="$chromium"
export MEDPORT_E2E_ARTIFACTS="${MEDPORT_E2E_ARTIFACTS:-$PWD/target/e2e}"
rm -rf "$MEDPORT_E2E_ARTIFACTS/logs" "$MEDPORT_E2E_ARTIFACTS/failures"
mkdir -p "$MEDPORT_E2E_ARTIFACTS"
if [ -n "$screenshots" ]; then
    export MEDPORT_E2E_SCREENSHOTS="$screenshots"
fi

# One file at a time: two cores, and each run starts its own servers and browser.
node --test --test-concurrency=1 --test-reporter=spec "${runs[@]}"
