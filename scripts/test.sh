#!/usr/bin/env bash
# Runs every test: starts the test services (PostgreSQL, the S3 server, clamd, the OpenID
# Provider, the SMTP server), then the Rust unit and HTTP-level suites on SQLite and
# PostgreSQL and the storage suite on the local store and on S3, then the real-browser
# scenarios (scripts/test-e2e.sh: Debian's Chromium, on SQLite and on PostgreSQL + S3). The
# S3 tests fail (never skip) when the S3 server is not there; the browser scenarios fail
# when Chromium is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-services.sh postgres s3 clamd oidc smtp
# The real tus client the tus tests drive (pinned in tests/tus-js/package-lock.json).
[ -f tests/tus-js/node_modules/tus-js-client/package.json ] ||
    npm ci --prefix tests/tus-js --no-audit --no-fund
# shellcheck disable=SC1091
source target/test-services.env
export MEDPORT_TEST_POSTGRES
export MEDPORT_TEST_CLAMD MEDPORT_TEST_CLAMD_SIGNATURE
export MEDPORT_TEST_S3_ENDPOINT MEDPORT_TEST_S3_ACCESS_KEY MEDPORT_TEST_S3_SECRET_KEY \
    MEDPORT_TEST_S3_REGION
export MEDPORT_TEST_SMTP_URL MEDPORT_TEST_SMTP_MAILDIR MEDPORT_TEST_SMTP_CONTROL

cargo test --locked --all-targets

scripts/test-e2e.sh
