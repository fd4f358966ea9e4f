#!/usr/bin/env bash
# Lints the deployment files in deploy/ with the tools that read them for real:
#   - names:   every MEDPORT_* variable they use is one medport reads (src/config*), the
#              proxies point at the address in the env example and that example trusts them,
#              and the routes they treat specially exist (src/web/routes);
#   - systemd: `systemd-analyze verify` on a copy of deploy/medport.service whose ExecStart
#              points at a stand-in executable (verify refuses a missing binary);
#   - nginx:   `nginx -t` on deploy/nginx/medport.conf inside a throwaway nginx.conf with a
#              throwaway self-signed certificate;
#   - caddy:   `caddy validate` and `caddy fmt` on deploy/caddy/Caddyfile;
#   - hadolint on deploy/Containerfile.
# systemd-analyze, nginx -t and caddy validate exit 0 on many mistakes (an unknown key is
# "ignoring", a bad value a warning): any warning about our file is a failure. Before each
# check, a deliberately broken copy must be caught, so a check that cannot fail is noticed.
# A tool that is not installed is reported as SKIPPED, never as passed. `--require
# systemd,nginx,caddy` turns a skip of those checks into a failure (for CI; `--require all`
# for every check). Debian: apt-get install systemd nginx caddy openssl (hadolint is not
# packaged). Exit code: 0 when nothing failed, 1 otherwise.
# Usage: scripts/lint-deploy.sh [--require CHECK[,CHECK...]|all]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

required=""
case "${1:-}" in
"") ;;
--require) required=",${2:?--require needs a list: systemd,nginx,caddy,hadolint or all},";;
*) echo "usage: $0 [--require CHECK[,CHECK...]|all]" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

failures=0
skips=0
pass() { printf 'PASSED   %s\n' "$1"; }
fail() {
    printf 'FAILED   %s\n' "$1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/         /'
    failures=$((failures + 1))
}
# skip CHECK WHAT WHY
skip() {
    if [[ "$required" == *",$1,"* || "$required" == ",all," ]]; then
        fail "$2" "$3, and --require names $1"
        return
    fi
    printf 'SKIPPED  %s (%s)\n' "$2" "$3"
    skips=$((skips + 1))
}

# --- names ----------------------------------------------------------------------------

check_names() {
    local problems="" var
    while read -r var; do
        grep -rqF "\"$var\"" src/config.rs src/config/ src/cli.rs ||
            problems+="$var is used in deploy/ but medport does not read it"$'\n'
    done < <(grep -ohE '\b(MEDPORT_[A-Z0-9_]+|DATABASE_URL)\b' -r deploy | sort -u)
    local bind proxies
    bind=$(sed -n 's/^MEDPORT_BIND=//p' deploy/medport.env.example)
    proxies=$(sed -n 's/^MEDPORT_TRUSTED_PROXIES=//p' deploy/medport.env.example)
    grep -qE "^\s*server ${bind//./\\.};" deploy/nginx/medport.conf ||
        problems+="the nginx upstream is not MEDPORT_BIND ($bind)"$'\n'
    grep -qE "reverse_proxy ${bind//./\\.} " deploy/caddy/Caddyfile ||
        problems+="the Caddy upstream is not MEDPORT_BIND ($bind)"$'\n'
    # A proxy on this host connects from loopback: medport must trust that address.
    case "$bind" in
    127.0.0.1:*) [[ ",$proxies," == *",127.0.0.1,"* ]] ||
        problems+="MEDPORT_TRUSTED_PROXIES ($proxies) lacks 127.0.0.1, the proxy's address"$'\n' ;;
    esac
    grep -q "^ExecStart=/usr/local/bin/medport serve$" deploy/medport.service ||
        problems+="the unit does not run /usr/local/bin/medport serve"$'\n'
    grep -q "^ReadWritePaths=$(sed -n 's/^MEDPORT_DATA_DIR=//p' deploy/medport.env.example)$" \
        deploy/medport.service ||
        problems+="the unit's ReadWritePaths is not MEDPORT_DATA_DIR"$'\n'
    # The routes the proxies stream or leave unlimited.
    local route
    for route in 'web::scope("/tus")' 'POST "/uploads"' '"/dicomweb/studies"' \
        '"/files/{id}/download"' '"/api/v1/uploads/{id}/content"' \
        '"/studies/{uid}/archive"' '"/api/v1/studies/{uid}/archive"'; do
        grep -rqF "$route" src/web/routes ||
            problems+="route $route named by the proxy files is not in src/web/routes"$'\n'
    done
    if [ -z "$problems" ]; then pass "names: settings, addresses and routes match the source"; else
        fail "names" "${problems%$'\n'}"
    fi
}

# --- systemd ----------------------------------------------------------------------------

# Verifies a unit file; prints what systemd-analyze said about it and fails on any of it.
verify_unit() {
    local unit=$1 out rc
    out=$(systemd-analyze verify --man=no "$unit" 2>&1)
    rc=$?
    out=$(printf '%s\n' "$out" | grep -F -e "$(basename "$unit")" -e "$tmp" || true)
    printf '%s' "$out"
    [ $rc -eq 0 ] && [ -z "$out" ]
}

check_systemd() {
    if ! command -v systemd-analyze >/dev/null; then
        skip systemd "systemd: deploy/medport.service" "systemd-analyze not installed"
        return
    fi
    mkdir -p "$tmp/systemd/bin"
    printf '#!/bin/sh\nexit 0\n' >"$tmp/systemd/bin/medport"
    chmod 755 "$tmp/systemd/bin/medport"
    local unit="$tmp/systemd/medport.service" broken="$tmp/systemd/broken/medport.service"
    sed "s#^ExecStart=/usr/local/bin/medport#ExecStart=$tmp/systemd/bin/medport#" \
        deploy/medport.service >"$unit"
    if ! grep -q "^ExecStart=$tmp/systemd/bin/medport " "$unit"; then
        fail "systemd: deploy/medport.service" "no ExecStart=/usr/local/bin/medport line"
        return
    fi
    mkdir -p "$(dirname "$broken")"
    sed 's/^ProtectSystem=strict$/ProtectSystem=sometimes/' "$unit" >"$broken"
    if verify_unit "$broken" >/dev/null; then
        fail "systemd: deploy/medport.service" "systemd-analyze did not notice a broken copy"
        return
    fi
    local said
    if said=$(verify_unit "$unit"); then
        pass "systemd: deploy/medport.service (systemd-analyze verify)"
    else
        fail "systemd: deploy/medport.service (systemd-analyze verify)" "$said"
    fi
}

# --- nginx ------------------------------------------------------------------------------

# nginx -t on a site file inside a wrapper that keeps every path in the temp dir; any
# [warn] or [emerg] fails.
nginx_test() {
    local site=$1 dir out rc
    dir=$(dirname "$site")
    cat >"$dir/nginx.conf" <<EOF
pid $dir/nginx.pid;
error_log $dir/error.log;
events {}
http {
    access_log off;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    include $site;
}
EOF
    out=$(nginx -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" 2>&1)
    rc=$?
    printf '%s' "$out"
    [ $rc -eq 0 ] && ! grep -qE '\[(warn|emerg|alert|crit|error)\]' <<<"$out"
}

check_nginx() {
    if ! command -v nginx >/dev/null; then
        skip nginx "nginx: deploy/nginx/medport.conf" "nginx not installed"
        return
    fi
    if ! command -v openssl >/dev/null; then
        skip nginx "nginx: deploy/nginx/medport.conf" "openssl not installed (for a throwaway certificate)"
        return
    fi
    local dir="$tmp/nginx"
    mkdir -p "$dir/tls" "$dir/broken"
    if ! openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=medport.example.org \
        -keyout "$dir/tls/privkey.pem" -out "$dir/tls/fullchain.pem" >/dev/null 2>&1; then
        fail "nginx: deploy/nginx/medport.conf" "could not make a throwaway certificate"
        return
    fi
    sed "s#/etc/letsencrypt/live/medport.example.org/#$dir/tls/#" \
        deploy/nginx/medport.conf >"$dir/medport.conf"
    sed 's/^\(\s*\)proxy_request_buffering off;/\1proxy_request_buffering of;/' \
        "$dir/medport.conf" >"$dir/broken/medport.conf"
    if nginx_test "$dir/broken/medport.conf" >/dev/null; then
        fail "nginx: deploy/nginx/medport.conf" "nginx -t did not notice a broken copy"
        return
    fi
    local said
    if said=$(nginx_test "$dir/medport.conf"); then
        pass "nginx: deploy/nginx/medport.conf (nginx -t, $(nginx -v 2>&1 | sed 's/.*\///'))"
    else
        fail "nginx: deploy/nginx/medport.conf (nginx -t)" "$said"
    fi
}

# --- caddy ------------------------------------------------------------------------------

# caddy validate, with its state kept in the temp dir; a warning fails.
caddy_validate() {
    local file=$1 out rc
    out=$(cd "$tmp/caddy" && HOME="$tmp/caddy" XDG_DATA_HOME="$tmp/caddy" \
        XDG_CONFIG_HOME="$tmp/caddy" caddy validate --config "$file" --adapter caddyfile 2>&1)
    rc=$?
    # Only what went wrong: warnings, errors and plain-text lines other than the verdict.
    grep -vE '"level":"(info|debug)"|^Valid configuration$' <<<"$out"
    [ $rc -eq 0 ] && ! grep -qE '"level":"(warn|error)"' <<<"$out"
}

check_caddy() {
    if ! command -v caddy >/dev/null; then
        skip caddy "caddy: deploy/caddy/Caddyfile" "caddy not installed"
        return
    fi
    mkdir -p "$tmp/caddy"
    sed 's/^\(\s*\)flush_interval -1$/\1flush_intervall -1/' deploy/caddy/Caddyfile \
        >"$tmp/caddy/Caddyfile.broken"
    if caddy_validate "$tmp/caddy/Caddyfile.broken" >/dev/null; then
        fail "caddy: deploy/caddy/Caddyfile" "caddy validate did not notice a broken copy"
        return
    fi
    local said
    if ! said=$(caddy_validate "$PWD/deploy/caddy/Caddyfile"); then
        fail "caddy: deploy/caddy/Caddyfile (caddy validate)" "$said"
    elif ! said=$(caddy fmt deploy/caddy/Caddyfile | diff -u deploy/caddy/Caddyfile -); then
        fail "caddy: deploy/caddy/Caddyfile (caddy fmt: not formatted)" "$said"
    else
        pass "caddy: deploy/caddy/Caddyfile (caddy validate, caddy fmt, $(caddy version | cut -d' ' -f1))"
    fi
}

# --- hadolint ---------------------------------------------------------------------------

check_containerfile() {
    if ! command -v hadolint >/dev/null; then
        skip hadolint "hadolint: deploy/Containerfile" "hadolint not installed"
        return
    fi
    local said
    if said=$(hadolint deploy/Containerfile 2>&1); then
        pass "hadolint: deploy/Containerfile"
    else
        fail "hadolint: deploy/Containerfile" "$said"
    fi
}

check_names
check_systemd
check_nginx
check_caddy
check_containerfile

if [ $failures -gt 0 ]; then
    printf '\nlint-deploy: %d failed, %d skipped\n' "$failures" "$skips"
    exit 1
fi
printf '\nlint-deploy: no failures, %d skipped\n' "$skips"
