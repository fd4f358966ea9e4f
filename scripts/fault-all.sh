#!/usr/bin/env bash
# Runs the quick fault and load scenarios (each a few minutes at most) one after another
# and fails when any of them does. The release binary is built once and shared.
#
#   scripts/fault-all.sh                 # sqlite-reader, storage, db, diskfull, crash, load
#   scripts/fault-all.sh crash db        # only these
#
# Needs the shared test services (scripts/test-services.sh postgres s3; started here when
# down), python3 with boto3 (installed with pip when missing), PostgreSQL's server
# binaries (for the private cluster of `db`) and root for `diskfull` (skipped otherwise).
# Knobs: CARGO_TARGET_DIR, MEDPORT_FAULT_BIN (skip the build), MEDPORT_FAULT_KEEP=1.
set -uo pipefail
cd "$(dirname "$0")/.."

scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(sqlite-reader storage db diskfull crash load)

scripts/test-services.sh postgres s3 >/dev/null || exit 1
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet boto3 || exit 1
if [[ -z "${MEDPORT_FAULT_BIN:-}" ]]; then
    echo "fault-all: building the release binary" >&2
    cargo build --release --bin medport --quiet || exit 1
    export MEDPORT_FAULT_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/medport"
fi

passed=0
failed=0
failures=()
for name in "${scenarios[@]}"; do
    script="scripts/fault-$name.py"
    [[ -f "$script" ]] || { echo "fault-all: no scenario '$name'" >&2; exit 2; }
    echo "=== fault-$name"
    start=$(date +%s)
    if python3 "$script"; then
        passed=$((passed + 1))
        echo "=== fault-$name: ok ($(($(date +%s) - start)) s)"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "=== fault-$name: FAILED ($(($(date +%s) - start)) s)"
    fi
done
[[ $failed -eq 0 ]] || echo "fault-all: failed: ${failures[*]}"
echo "fault-all: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
