#!/usr/bin/env bash
# Runs every test: starts the test services (PostgreSQL; later the S3 server and clamd),
# then the Rust unit and HTTP-level suites on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-services.sh postgres
# shellcheck disable=SC1091
source target/test-services.env
export MEDPORT_TEST_POSTGRES

cargo test --locked --all-targets
