#!/usr/bin/env bash
# cargo deny: licences, bans and sources always; advisories when the RustSec database can
# be fetched (it lives in a git repository that machines without general internet access
# cannot reach; the run says so plainly instead of pretending).
set -euo pipefail
cd "$(dirname "$0")/.."

# Duplicate-version warnings are informational; errors (licences, bans, sources) still fail.
cargo deny --locked --log-level error check licenses bans sources

if timeout 60 cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --locked --offline check advisories
else
    echo "cargo deny advisories: SKIPPED (the RustSec advisory database could not be fetched from this machine)"
fi
