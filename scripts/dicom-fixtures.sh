#!/usr/bin/env bash
# Writes DICOM test data for study uploads into OUT_DIR: files made by pydicom, a DICOM
# library this project did not write, from the vendor test files bundled in its wheel (none
# is downloaded), so the tests upload what a real DICOM writer produces rather than bytes we
# shaped ourselves.
#
#   scripts/dicom-fixtures.sh OUT_DIR [--many N] [--bench COUNT SIZE_KIB]
#
#   OUT_DIR/cd/ + cd.json          a CD file-set: DICOMDIR and extensionless PT000000/ST000000/
#                                  SE00000n/IM00000n files, one study in 3 series (12 instances)
#   OUT_DIR/many/ + many.json      --many N: N instances of one study in 3 series, in folders and
#                                  at the top level, with and without .dcm, plus .DS_Store and
#                                  Thumbs.db
#   OUT_DIR/bench-C-S/ + .json     --bench C S: C instances of one study, each exactly S KiB (S >= 7)
#   OUT_DIR/manifest.json          what the outputs were made for (written last)
#
# The manifests' format is in scripts/dicom_fixtures.py's header. Idempotent: when
# OUT_DIR/manifest.json was written for the same arguments, pydicom version and generator,
# nothing is done (well under a second). pydicom is installed with pip, pinned, into
# ${CARGO_TARGET_DIR:-target}/pydeps/pydicom-VERSION, never into the system's Python.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYDICOM_VERSION="3.0.2"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
[[ "$TARGET" == /* ]] || TARGET="$PWD/$TARGET" # as cargo reads it
PYDEPS="$TARGET/pydeps"
PYDICOM_DIR="$PYDEPS/pydicom-$PYDICOM_VERSION"
GENERATOR="$ROOT/scripts/dicom_fixtures.py"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'dicom-fixtures: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
usage() { die "usage: $0 OUT_DIR [--many N] [--bench COUNT SIZE_KIB]"; }
is_count() { [[ "$1" =~ ^[1-9][0-9]{0,6}$ ]]; }

install_pydicom() {
    [[ -d "$PYDICOM_DIR/pydicom-$PYDICOM_VERSION.dist-info" ]] && return 0
    log "dicom-fixtures: installing pydicom==$PYDICOM_VERSION (PyPI) into $PYDICOM_DIR"
    command -v python3 >/dev/null || die "python3 (with pip) is needed to install pydicom"
    local tmp
    tmp="$(mktemp -d "$PYDEPS/.install.XXXXXX")"
    python3 -m pip install --disable-pip-version-check --no-input -q \
        --target "$tmp" "pydicom==$PYDICOM_VERSION" >"$PYDEPS/pydicom-install.log" 2>&1 || {
        rm -rf "$tmp"
        die "pip install pydicom==$PYDICOM_VERSION failed; see $PYDEPS/pydicom-install.log"
    }
    [[ -d "$tmp/pydicom-$PYDICOM_VERSION.dist-info" ]] || { rm -rf "$tmp"; die "pip installed no pydicom $PYDICOM_VERSION"; }
    rm -rf "$PYDICOM_DIR"
    mv "$tmp" "$PYDICOM_DIR"
}

main() {
    local out="" many="" bench_count="" bench_kib="" stamp t0
    [[ $# -ge 1 ]] || usage
    case "$1" in -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        return 0
        ;;
    esac
    out="$1"
    shift
    [[ -n "$out" && "$out" != -* ]] || usage
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --many)
                if [[ $# -lt 2 ]] || ! is_count "$2"; then die "--many needs a count (N >= 3)"; fi
                [[ "$2" -ge 3 ]] || die "--many needs N >= 3 (one instance per series at least)"
                many="$2"
                shift 2
                ;;
            --bench)
                if [[ $# -lt 3 ]] || ! is_count "$2" || ! is_count "$3"; then
                    die "--bench needs COUNT and SIZE_KIB (both >= 1)"
                fi
                bench_count="$2" bench_kib="$3"
                shift 3
                ;;
            *) usage ;;
        esac
    done

    # What the outputs depend on; manifest.json records it, so a match means nothing to do.
    stamp="pydicom=$PYDICOM_VERSION generator=$(sha256sum "$GENERATOR" | cut -c1-16) many=${many:-none} bench=${bench_count:-none}x${bench_kib:-none}"
    if grep -qF "\"stamp\": \"$stamp\"" "$out/manifest.json" 2>/dev/null; then
        echo "dicom-fixtures: $out is up to date ($stamp)"
        return 0
    fi

    t0="$(now)"
    mkdir -p "$PYDEPS" "$out"
    # Serialise concurrent runs (the install, and writers of the same OUT_DIR).
    exec 9>"$PYDEPS/.dicom-fixtures.lock"
    flock -w 600 9 || die "another dicom-fixtures.sh has held the lock for 10 minutes"
    if grep -qF "\"stamp\": \"$stamp\"" "$out/manifest.json" 2>/dev/null; then
        echo "dicom-fixtures: $out is up to date ($stamp)"
        return 0
    fi
    install_pydicom
    local args=("$out" --stamp "$stamp")
    [[ -n "$many" ]] && args+=(--many "$many")
    [[ -n "$bench_count" ]] && args+=(--bench "$bench_count" "$bench_kib")
    PYTHONPATH="$PYDICOM_DIR" python3 "$GENERATOR" "${args[@]}" 9>&-
    echo "dicom-fixtures: wrote $out ($(since "$t0") s)"
}

main "$@"
