#!/usr/bin/env bash
# Runs the DICOMweb test driver (tests/dicomweb/client.py) with dicomweb-client, a DICOMweb
# client this project did not write, installed from PyPI, pinned with every dependency,
# into ${CARGO_TARGET_DIR:-target}/pydeps/dicomweb-client-VERSION (never the system's Python
# packages). Idempotent: once installed, it only runs the driver.
#
#   scripts/dicomweb-client.sh vendor                       list pydicom's bundled files
#   scripts/dicomweb-client.sh check --url U --key K --manifest M [--store]
#   scripts/dicomweb-client.sh --install-only
#
# The driver's arguments are in its own help (tests/dicomweb/client.py --help).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="0.60.1"
# What pip resolved for dicomweb-client 0.60.1 when it was pinned; installed exactly, with
# --no-deps, so a new release of a dependency never changes what the tests run.
PINS=(
    "dicomweb-client==$VERSION"
    "pydicom==3.0.2"
    "numpy==2.4.6"
    "pillow==13.0.0"
    "requests==2.34.2"
    "retrying==1.4.2"
    "urllib3==2.8.0"
    "idna==3.21"
    "charset-normalizer==3.5.3"
    "certifi==2026.10.19.post1"
)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET" == /* ]] || TARGET="$PWD/$TARGET" # as cargo reads it
PYDEPS="$TARGET/pydeps"
DIR="$PYDEPS/dicomweb-client-$VERSION"
DRIVER="$ROOT/tests/dicomweb/client.py"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'dicomweb-client: ERROR: %s\n' "$*" >&2; exit 1; }

installed() { [[ -f "$DIR/.complete" ]]; }

install() {
    installed && return 0
    mkdir -p "$PYDEPS"
    # Serialise concurrent runs: one installs, the others wait and find it done.
    exec 8>"$PYDEPS/.dicomweb-client.lock"
    flock -w 600 8 || die "another dicomweb-client.sh has held the lock for 10 minutes"
    installed && return 0
    command -v python3 >/dev/null || die "python3 (with pip) is needed to install dicomweb-client"
    log "dicomweb-client: installing dicomweb-client==$VERSION and its pinned dependencies (PyPI) into $DIR"
    local tmp
    tmp="$(mktemp -d "$PYDEPS/.install.XXXXXX")"
    python3 -m pip install --disable-pip-version-check --no-input -q --no-deps \
        --target "$tmp" "${PINS[@]}" >"$PYDEPS/dicomweb-client-install.log" 2>&1 || {
        rm -rf "$tmp"
        die "pip install failed; see $PYDEPS/dicomweb-client-install.log"
    }
    [[ -d "$tmp/dicomweb_client-$VERSION.dist-info" ]] || { rm -rf "$tmp"; die "pip installed no dicomweb-client $VERSION"; }
    touch "$tmp/.complete"
    rm -rf "$DIR"
    mv "$tmp" "$DIR"
    exec 8>&-
}

main() {
    case "${1:-}" in
        -h | --help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            return 0
            ;;
        --install-only)
            install
            return 0
            ;;
    esac
    install
    PYTHONPATH="$DIR" PYTHONDONTWRITEBYTECODE=1 exec python3 "$DRIVER" "$@"
}

main "$@"
