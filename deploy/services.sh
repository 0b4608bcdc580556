#!/usr/bin/env bash
# Local services for silkgate, without a Docker engine: Mosquitto and PostgreSQL 17 + TimescaleDB,
# both bound to 127.0.0.1. Every command is idempotent.
#
#   deploy/services.sh install   host packages (mosquitto, openssl, debootstrap, and the headless
#                                Chromium of the status page's browser test) and, on Debian 12,
#                                a Debian 13 root with postgresql-17 + timescaledb, built once
#   deploy/services.sh browser   only the headless Chromium (tests run against other services)
#   deploy/services.sh start     install if needed, then start them all and wait until they serve;
#                                a broker already running with an outdated configuration (or TLS
#                                files) is restarted
#   deploy/services.sh stop      stop them all, release the root's mounts
#   deploy/services.sh restart   stop, then start
#   deploy/services.sh status    what runs; exits 1 if something is down
#   deploy/services.sh env       SILKGATE_DSN=, SILKGATE_MQTT= and SILKGATE_MQTT_TLS*= lines:
#                                  export $(deploy/services.sh env)   or   set -a; eval "$(...)"
#
# Two Mosquitto brokers run: mqtt://127.0.0.1:1883, anonymous, and mqtts://127.0.0.1:8883, TLS
# (server certificate from a test CA generated into state/mosquitto-tls/ on the first start) with
# username/password (fixed test user silkgate / silkgate-mqtt), anonymous clients refused. Two
# processes rather than two listeners of one: a broker with per_listener_settings true stops
# queueing QoS 1 messages for offline persistent sessions from Mosquitto 2.0.12 on
# (eclipse-mosquitto/mosquitto#2618; Debian 13 ships 2.0.21), which the gateway relies on.
#
# Environment: SILKGATE_CACHE (default /var/cache/silkgate: the root in trixie/, data and logs in
# state/), SILKGATE_PG_PORT (55432), SILKGATE_MQTT_PORT (1883), SILKGATE_MQTT_TLS_PORT (8883),
# SILKGATE_TIMEOUT (seconds to wait for a service, 60), SILKGATE_DEBIAN_MIRROR (default: the
# Debian mirror apt already uses), SILKGATE_NATIVE (1: use the host's own postgresql-17; the
# default on Debian 13).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATES=$HERE/local
CACHE=${SILKGATE_CACHE:-/var/cache/silkgate}
ROOT=$CACHE/trixie
STATE=$CACHE/state
LOGS=$CACHE/logs
PG_PORT=${SILKGATE_PG_PORT:-55432}
MQTT_PORT=${SILKGATE_MQTT_PORT:-1883}
MQTT_TLS_PORT=${SILKGATE_MQTT_TLS_PORT:-8883}
TIMEOUT=${SILKGATE_TIMEOUT:-60}
PG_DB=silkgate
PG_USER=silkgate
PG_PASSWORD=silkgate
# The TLS broker's only user (a loopback test broker: the password is no secret).
MQTT_USER=silkgate
MQTT_PASSWORD=silkgate-mqtt

SUITE=trixie
PG_MAJOR=17
ROOT_PACKAGES="postgresql-$PG_MAJOR postgresql-$PG_MAJOR-timescaledb"
# tests/integration/test_status_page.py loads /status in it: Chromium's headless shell (about
# 100 MB to download once, no X server) and a font for the page's text.
BROWSER_PACKAGES="chromium-headless-shell fonts-dejavu-core"
# Written into the root when it is complete; a root without it (or with another recipe) is rebuilt.
RECIPE="silkgate-root v1: $SUITE $ROOT_PACKAGES"
MARKER=.silkgate-root

PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PGH=$STATE/postgresql   # the cluster's home (data/, server.log) as the host sees it
MQH=$STATE/mosquitto    # the broker's state: rendered config, pid file, log, persistence
MQT=$STATE/mosquitto-tls # the TLS broker's: the same, plus the test CA, server certificate, passwd

if [ -z "${SILKGATE_NATIVE:-}" ]; then
    SILKGATE_NATIVE=0
    # shellcheck disable=SC1091
    [ -r /etc/os-release ] && [ "$(. /etc/os-release && echo "${VERSION_CODENAME:-}")" = "$SUITE" ] &&
        SILKGATE_NATIVE=1
fi
if [ "$SILKGATE_NATIVE" = 1 ]; then
    PGV=$PGH            # the same directory as the server sees it
else
    PGV=/var/lib/silkgate
fi

STEP=main
CLEANUP_DIR=
log() { printf 'silkgate: %s\n' "$*"; }
die() {
    printf 'silkgate: %s failed: %s\n' "$STEP" "$*" >&2
    exit 1
}
on_err() {
    printf 'silkgate: %s failed (exit %s at line %s: %s)\n' "$STEP" "$1" "$2" "$3" >&2
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR
on_exit() {
    if [ -n "$CLEANUP_DIR" ] && [ -e "$CLEANUP_DIR" ]; then
        printf 'silkgate: removing half-built %s\n' "$CLEANUP_DIR" >&2
        safe_rm "$CLEANUP_DIR" || true
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Show the end of a log file on stderr (after a failure).
show_log() {
    [ -s "$1" ] || return 0
    printf -- '--- last lines of %s ---\n' "$1" >&2
    tail -n "${2:-20}" "$1" >&2
}

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it uses apt-get, chroot and mount)"
}

# One services.sh at a time changes things (daemons are started without this descriptor).
take_lock() {
    mkdir -p "$CACHE" "$LOGS"
    exec 9>>"$CACHE/.lock"
    flock -w 900 9 || die "another services.sh still holds $CACHE/.lock"
}

# ---------------------------------------------------------------------------------------------
# mounts and safe removal

# Mount points at or below $1, deepest first.
mounts_under() {
    local dir
    dir=$(realpath -m "$1")
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unmount_under() {
    local m
    for m in $(mounts_under "$1"); do
        umount "$m" 2>/dev/null || umount -l "$m" || return 1
    done
}

# rm -rf that first releases mounts beneath the directory and refuses if any remain, so that a
# bind mount (the host's /dev/shm, the state directory) is never emptied through the root.
safe_rm() {
    [ -e "$1" ] || return 0
    unmount_under "$1" || true
    if [ -n "$(mounts_under "$1")" ]; then
        echo "silkgate: not removing $1: still mounted: $(mounts_under "$1" | tr '\n' ' ')" >&2
        return 1
    fi
    rm -rf --one-file-system "$1"
}

ensure_mount() { # ensure_mount TARGET mount-args...
    local target=$1
    shift
    mkdir -p "$target"
    mountpoint -q "$target" || mount "$@" "$target"
}

# ---------------------------------------------------------------------------------------------
# install

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# Install the missing packages; update the package lists only when there are none yet or the
# install fails on stale ones.
apt_install() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ "${#missing[@]}" -gt 0 ] || return 0
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local aptlog=$LOGS/apt.log
    : >"$aptlog"
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get update -q >>"$aptlog" 2>&1 || { show_log "$aptlog"; die "apt-get update"; }
    fi
    local install=(apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}")
    if ! "${install[@]}" >>"$aptlog" 2>&1; then
        log "apt: refreshing package lists"
        apt-get update -q >>"$aptlog" 2>&1 || { show_log "$aptlog"; die "apt-get update"; }
        "${install[@]}" >>"$aptlog" 2>&1 || { show_log "$aptlog"; die "apt-get install ${missing[*]}"; }
    fi
    # On a systemd host the package starts its own broker on 1883; we run ours instead.
    if [[ " ${missing[*]} " == *" mosquitto "* ]] && [ -d /run/systemd/system ] &&
        systemctl is-active --quiet mosquitto.service 2>/dev/null; then
        log "apt: disabling the mosquitto.service that the package just started"
        systemctl disable --now --quiet mosquitto.service || true
    fi
}

# The Debian archive apt already uses (deb822 .sources and one-line .list files).
debian_mirror() {
    if [ -n "${SILKGATE_DEBIAN_MIRROR:-}" ]; then
        echo "${SILKGATE_DEBIAN_MIRROR%/}"
        return
    fi
    local f
    {
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] && grep -i '^URIs:' "$f" | cut -d: -f2- | tr -s ' \t' '\n'
        done
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] && sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2 }'
        done
    } | grep -E '^https?://.*/debian/?$' | head -n 1 | sed 's:/*$::' || true
}

build_root() {
    STEP="install (root)"
    if [ -f "$ROOT/$MARKER" ] && [ "$(cat "$ROOT/$MARKER")" = "$RECIPE" ]; then
        return 0
    fi
    if [ -e "$ROOT" ]; then
        # Incomplete roots never get the name (built aside, then renamed), so this one is from
        # an older recipe: replace it, but not under a running server.
        [ -z "$(pg_pid)" ] || die "$ROOT is outdated; run 'deploy/services.sh stop' first"
        log "root: replacing $ROOT (recipe changed)"
        safe_rm "$ROOT" || die "cannot remove $ROOT"
    fi
    local stale
    for stale in "$CACHE"/trixie.tmp.*; do
        [ -e "$stale" ] || continue
        log "root: removing half-built $stale"
        safe_rm "$stale" || die "cannot remove $stale"
    done

    local mirror
    mirror=$(debian_mirror)
    [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set SILKGATE_DEBIAN_MIRROR"
    local tmp blog=$LOGS/root-build.log started=$SECONDS
    tmp=$(mktemp -d "$CACHE/trixie.tmp.XXXXXX")
    CLEANUP_DIR=$tmp
    chmod 755 "$tmp"
    : >"$blog"
    local include=()
    [[ "$mirror" == https:* ]] && include=(--include=ca-certificates)
    log "root: debootstrap $SUITE from $mirror (once; about a minute)"
    debootstrap --variant=minbase "${include[@]}" "$SUITE" "$tmp" "$mirror" >>"$blog" 2>&1 ||
        { show_log "$blog"; die "debootstrap $SUITE (log: $blog)"; }

    # No service starts inside the root, and the packages create no cluster of their own.
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    mkdir -p "$tmp/etc/postgresql-common/createcluster.d"
    echo "create_main_cluster = false" >"$tmp/etc/postgresql-common/createcluster.d/silkgate.conf"
    printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE" \
        >"$tmp/etc/apt/sources.list"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true

    # --force-unsafe-io: no fsync per file; a root is only used after the rename below.
    log "root: apt-get install $ROOT_PACKAGES"
    ensure_mount "$tmp/proc" -t proc proc
    local in_root=(chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
    # shellcheck disable=SC2086
    { "${in_root[@]}" apt-get update -q &&
        "${in_root[@]}" apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 \
            -o DPkg::Options::=--force-unsafe-io $ROOT_PACKAGES &&
        "${in_root[@]}" apt-get clean; } >>"$blog" 2>&1 ||
        { show_log "$blog"; die "apt-get install in the root (log: $blog)"; }
    unmount_under "$tmp" || die "cannot unmount $tmp/proc"
    rm -rf "$tmp"/var/lib/apt/lists/* # 90 MB; 'apt-get update' in the root brings them back
    [ -x "$tmp$PGBIN/postgres" ] || die "no $PGBIN/postgres in the new root"
    compgen -G "$tmp/usr/lib/postgresql/$PG_MAJOR/lib/timescaledb*.so" >/dev/null ||
        die "no timescaledb library in the new root"

    sync -f "$tmp" # the files dpkg wrote without fsync are on disk before the root gets its name
    echo "$RECIPE" >"$tmp/$MARKER"
    mv -T "$tmp" "$ROOT"
    CLEANUP_DIR=
    log "root: ready in $ROOT ($(du -sh "$ROOT" | cut -f1), $((SECONDS - started)) s)"
}

cmd_install() {
    need_root
    STEP="install (host packages)"
    command -v dpkg-query >/dev/null || die "this script needs a Debian host (apt, dpkg)"
    if [ "$SILKGATE_NATIVE" = 1 ]; then
        apt_install mosquitto mosquitto-clients openssl postgresql-$PG_MAJOR \
            postgresql-$PG_MAJOR-timescaledb
    else
        apt_install mosquitto mosquitto-clients openssl debootstrap
        build_root
    fi
    cmd_browser
    STEP=install
}

cmd_browser() {
    STEP="install (browser)"
    # shellcheck disable=SC2086
    apt_install $BROWSER_PACKAGES
}

# ---------------------------------------------------------------------------------------------
# running things as the server's postgres user

pg_ids() {
    local ids
    ids=$(awk -F: '$1 == "postgres" { print $3 ":" $4 }' "${1:-$ROOT}/etc/passwd")
    [ -n "$ids" ] || die "no postgres user in ${1:-$ROOT}/etc/passwd"
    echo "$ids"
}

as_postgres() {
    local envv=(/usr/bin/env -i PATH="$PGBIN:/usr/bin:/bin" LANG=C.UTF-8 LC_ALL=C.UTF-8
        HOME=/var/lib/postgresql PGPORT="$PG_PORT")
    if [ "$SILKGATE_NATIVE" = 1 ]; then
        (cd / && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${envv[@]}" "$@")
    else
        local ids
        ids=$(pg_ids)
        chroot --userspec="$ids" --groups="${ids#*:}" "$ROOT" "${envv[@]}" "$@"
    fi
}

# ---------------------------------------------------------------------------------------------
# process checks

# Is something accepting TCP connections on 127.0.0.1:$1?
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Is PID a live process (not a zombie waiting to be reaped) named NAME?
alive() {
    local state
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# The postmaster's pid, if our cluster runs (pid alive, named postgres, working in our data dir).
pg_pid() {
    local f=$PGH/data/postmaster.pid pid
    [ -r "$f" ] || return 0
    pid=$(head -n 1 "$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    alive "$pid" postgres || return 0
    [ "$(stat -L -c %d:%i "/proc/$pid/cwd" 2>/dev/null)" = "$(stat -c %d:%i "$PGH/data")" ] || return 0
    echo "$pid"
}

# mq_pid DIR: the pid of the Mosquitto whose state directory is DIR, if it runs.
mq_pid() {
    local f=$1/mosquitto.pid pid
    [ -r "$f" ] || return 0
    pid=$(head -n 1 "$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    alive "$pid" mosquitto || return 0
    echo "$pid"
}

# In a subshell that is about to start a daemon: close every inherited descriptor above 2 (the
# lock, pipes of whoever called us) so the daemon holds nothing of its caller's.
close_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    return 0
}

not_alive() { ! alive "$@"; }

# wait_for SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds; fail after SECONDS.
wait_for() {
    local secs=$1
    shift
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------------
# Mosquitto: the plain broker ($MQH, port $MQTT_PORT) and the TLS one ($MQT, $MQTT_TLS_PORT)

mq_ready() {
    port_open "$MQTT_PORT" &&
        mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -i "silkgate-probe-$$" \
            -t silkgate/probe -m ok >/dev/null 2>&1
}

mq_tls_ready() {
    port_open "$MQTT_TLS_PORT" &&
        mosquitto_pub -h 127.0.0.1 -p "$MQTT_TLS_PORT" --cafile "$MQT/ca.pem" \
            -u "$MQTT_USER" -P "$MQTT_PASSWORD" -q 1 -i "silkgate-probe-tls-$$" \
            -t silkgate/probe -m ok >/dev/null 2>&1
}

# render_mosquitto DIR PORT OUT: the template, for the broker of DIR on PORT.
render_mosquitto() {
    sed -e "s|@STATE@|$1|g" -e "s|@PORT@|$2|g" "$TEMPLATES/mosquitto.conf" >"$3"
    id mosquitto >/dev/null 2>&1 || sed -i 's/^user mosquitto$/user root/' "$3"
}

# The TLS broker's configuration: the template's, with TLS and a password file on its listener
# and anonymous clients refused (checked, so that a changed template cannot open it).
render_mosquitto_tls() {
    local out=$1
    render_mosquitto "$MQT" "$MQTT_TLS_PORT" "$out"
    sed -i -e "s|^allow_anonymous true\$|allow_anonymous false\\
password_file $MQT/passwd\\
cafile $MQT/ca.pem\\
certfile $MQT/server.pem\\
keyfile $MQT/server.key|" \
        -e "1a # The TLS broker (password, no anonymous clients): see deploy/services.sh." \
        "$out"
    [ "$(grep -c '^allow_anonymous' "$out")" = 1 ] && grep -qx 'allow_anonymous false' "$out" &&
        grep -qx "password_file $MQT/passwd" "$out" && grep -q '^listener ' "$out" ||
        die "the TLS broker's configuration ($out) is not TLS + password only;" \
            "check $TEMPLATES/mosquitto.conf"
}

# openssl with its output in the log; the log is shown on failure.
ossl() {
    openssl "$@" >>"$LOGS/openssl.log" 2>&1 || { show_log "$LOGS/openssl.log"; die "openssl $1"; }
}

# The test CA, the server certificate (127.0.0.1 and localhost) and the password file of the
# TLS broker, made when missing, expiring within 30 days or (passwd) for other credentials.
# Sets MQT_CHANGED=1 when it made something a running broker has not loaded.
MQT_CHANGED=0
mq_tls_files() {
    STEP="start (mosquitto-tls files)"
    MQT_CHANGED=0
    mkdir -p "$MQT"
    local ca=$MQT/ca.pem cakey=$MQT/ca.key crt=$MQT/server.pem key=$MQT/server.key
    : >"$LOGS/openssl.log"
    if [ ! -s "$ca" ] || [ ! -s "$cakey" ] ||
        ! openssl x509 -in "$ca" -noout -checkend 2592000 >/dev/null 2>&1; then
        log "mosquitto-tls: generating a test CA ($ca)"
        rm -f "$crt" "$key"
        (umask 077 && ossl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -sha256 -days 3650 -subj "/O=silkgate/CN=silkgate local test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -keyout "$cakey.tmp" -out "$ca.tmp")
        chmod 644 "$ca.tmp"
        mv -f "$cakey.tmp" "$cakey"
        mv -f "$ca.tmp" "$ca"
        MQT_CHANGED=1
    fi
    if [ ! -s "$crt" ] || [ ! -s "$key" ] ||
        ! openssl x509 -in "$crt" -noout -checkend 2592000 >/dev/null 2>&1 ||
        ! openssl verify -CAfile "$ca" "$crt" >/dev/null 2>&1; then
        log "mosquitto-tls: issuing the server certificate ($crt)"
        (umask 077 && ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -subj "/O=silkgate/CN=localhost" -keyout "$key.tmp" -out "$MQT/server.csr")
        printf '%s\n' "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost" "subjectKeyIdentifier=hash" \
            "authorityKeyIdentifier=keyid,issuer" >"$MQT/server.ext"
        ossl x509 -req -in "$MQT/server.csr" -CA "$ca" -CAkey "$cakey" -CAcreateserial \
            -sha256 -days 825 -extfile "$MQT/server.ext" -out "$crt.tmp"
        rm -f "$MQT/server.csr" "$MQT/server.ext"
        mv -f "$key.tmp" "$key"
        mv -f "$crt.tmp" "$crt"
        MQT_CHANGED=1
    fi
    # The password file is remade when the credentials differ from those it was made for.
    if [ ! -s "$MQT/passwd" ] ||
        [ "$(cat "$MQT/passwd.for" 2>/dev/null)" != "$MQTT_USER:$MQTT_PASSWORD" ]; then
        rm -f "$MQT/passwd.tmp"
        (umask 077 && mosquitto_passwd -b -c "$MQT/passwd.tmp" "$MQTT_USER" "$MQTT_PASSWORD") \
            >>"$LOGS/openssl.log" 2>&1 || { show_log "$LOGS/openssl.log"; die "mosquitto_passwd"; }
        mv -f "$MQT/passwd.tmp" "$MQT/passwd"
        (umask 077 && echo "$MQTT_USER:$MQTT_PASSWORD" >"$MQT/passwd.for")
        MQT_CHANGED=1
    fi
}

# start_broker NAME DIR PORT PORT-VARIABLE NEWCONF RESTART READY-COMMAND: make the Mosquitto of
# state directory DIR run configuration NEWCONF (a rendered file, moved into place) on PORT. A
# broker already running is left alone unless its configuration differs from NEWCONF or RESTART
# is 1 (files it loaded at start changed): then it is restarted.
start_broker() {
    local name=$1 dir=$2 port=$3 portvar=$4 new=$5 restart=$6 ready=$7
    STEP="start ($name)"
    local pid running_port
    pid=$(mq_pid "$dir")
    if [ -n "$pid" ]; then
        running_port=$(awk '$1 == "listener" { print $2 }' "$dir/mosquitto.conf")
        [ "$running_port" = "$port" ] ||
            die "$name runs on port $running_port; 'deploy/services.sh restart' moves it to $port"
        if [ "$restart" = 1 ] || ! cmp -s "$new" "$dir/mosquitto.conf"; then
            log "$name: configuration or TLS files changed: restarting it (pid $pid)"
            stop_broker "$name" "$dir"
            pid=
        fi
    fi
    if [ -z "$pid" ]; then
        ! port_open "$port" ||
            die "127.0.0.1:$port is taken by another process (set $portvar)"
        mkdir -p "$dir/data"
        mv -f "$new" "$dir/mosquitto.conf"
        if id mosquitto >/dev/null 2>&1; then
            chown -R mosquitto: "$dir"
            [ ! -e "$dir/ca.key" ] || chown root: "$dir/ca.key" "$dir/passwd.for"
        fi
        rm -f "$dir/mosquitto.pid"
        (close_fds && exec /usr/sbin/mosquitto -c "$dir/mosquitto.conf" -d) \
            </dev/null >/dev/null 2>"$dir/stderr.log" ||
            {
                show_log "$dir/stderr.log"
                show_log "$dir/mosquitto.log"
                die "$name did not start"
            }
    else
        rm -f "$new"
    fi
    local deadline=$((SECONDS + TIMEOUT)) why=
    until "$ready"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            why="not accepting MQTT on 127.0.0.1:$port after ${TIMEOUT}s"
        elif [ "$SECONDS" -ge $((deadline - TIMEOUT + 3)) ] && [ -z "$(mq_pid "$dir")" ]; then
            why="it exited"
        fi
        if [ -n "$why" ]; then
            show_log "$dir/stderr.log"
            show_log "$dir/mosquitto.log" 10
            die "$name: $why"
        fi
        sleep 0.2
    done
    log "$name: ready on 127.0.0.1:$port (pid $(mq_pid "$dir"))"
}

start_mosquitto() {
    mkdir -p "$MQH" "$MQT"
    render_mosquitto "$MQH" "$MQTT_PORT" "$MQH/mosquitto.conf.new"
    start_broker mosquitto "$MQH" "$MQTT_PORT" SILKGATE_MQTT_PORT "$MQH/mosquitto.conf.new" 0 \
        mq_ready
    mq_tls_files
    render_mosquitto_tls "$MQT/mosquitto.conf.new"
    start_broker mosquitto-tls "$MQT" "$MQTT_TLS_PORT" SILKGATE_MQTT_TLS_PORT \
        "$MQT/mosquitto.conf.new" "$MQT_CHANGED" mq_tls_ready
}

# stop_broker NAME DIR
stop_broker() {
    STEP="stop ($1)"
    local pid
    pid=$(mq_pid "$2")
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 15 not_alive "$pid" mosquitto; then
            log "$1: pid $pid ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "$1: stopped"
    fi
    rm -f "$2/mosquitto.pid"
}

stop_mosquitto() {
    stop_broker mosquitto-tls "$MQT"
    stop_broker mosquitto "$MQH"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

mount_root() {
    if [ "$SILKGATE_NATIVE" = 1 ]; then
        # The package's tmpfiles.d makes it at boot; a fresh install without a reboot may lack it.
        if [ ! -d /run/postgresql ]; then
            install -d -m 2775 -o postgres -g postgres /run/postgresql
        fi
        return 0
    fi
    ensure_mount "$ROOT/proc" -t proc proc
    ensure_mount "$ROOT/dev/shm" --bind /dev/shm
    ensure_mount "$ROOT$PGV" --bind "$PGH"
    mkdir -p "$ROOT/run/postgresql"
    chown "$(pg_ids)" "$ROOT/run/postgresql"
    chmod 2775 "$ROOT/run/postgresql"
}

pg_ready() {
    as_postgres pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -d postgres
}

start_postgres() {
    STEP="start (postgresql)"
    local ids
    if [ "$SILKGATE_NATIVE" = 1 ]; then ids=$(pg_ids /); else ids=$(pg_ids); fi
    mkdir -p "$PGH"
    chown "$ids" "$PGH"
    chmod 700 "$PGH"
    mount_root

    if [ ! -f "$PGH/data/PG_VERSION" ]; then
        STEP="start (initdb)"
        [ ! -e "$PGH/data" ] || die "$PGH/data exists but holds no cluster; move it away"
        safe_rm "$PGH/data.init"
        log "postgresql: initdb (once)"
        as_postgres initdb -D "$PGV/data.init" -U postgres -E UTF8 --locale=C.UTF-8 \
            --data-checksums --auth-local=peer --auth-host=scram-sha-256 \
            >"$LOGS/initdb.log" 2>&1 || { show_log "$LOGS/initdb.log"; die "initdb"; }
        echo "include_if_exists = 'silkgate.conf'" >>"$PGH/data.init/postgresql.conf"
        mv -T "$PGH/data.init" "$PGH/data"
        STEP="start (postgresql)"
    fi

    local pid running_port
    pid=$(pg_pid)
    if [ -n "$pid" ]; then
        running_port=$(awk '$1 == "port" { print $3 }' "$PGH/data/silkgate.conf")
        [ "$running_port" = "$PG_PORT" ] ||
            die "postgresql runs on port $running_port; 'deploy/services.sh restart' moves it to $PG_PORT"
    else
        ! port_open "$PG_PORT" ||
            die "127.0.0.1:$PG_PORT is taken by another process (set SILKGATE_PG_PORT)"
        sed -e "s|@PORT@|$PG_PORT|g" "$TEMPLATES/postgresql.conf" >"$PGH/data/silkgate.conf"
        cp "$TEMPLATES/pg_hba.conf" "$PGH/data/pg_hba.conf"
        chown "$ids" "$PGH/data/silkgate.conf" "$PGH/data/pg_hba.conf"
        chmod 600 "$PGH/data/silkgate.conf" "$PGH/data/pg_hba.conf"
        (close_fds && as_postgres pg_ctl -D "$PGV/data" -l "$PGV/server.log" -w -t "$TIMEOUT" -s start) \
            </dev/null >"$LOGS/pg_ctl.log" 2>&1 ||
            { show_log "$LOGS/pg_ctl.log"; show_log "$PGH/server.log"; die "pg_ctl start"; }
    fi
    if ! wait_for "$TIMEOUT" pg_ready; then
        show_log "$PGH/server.log"
        die "postgresql not accepting connections on 127.0.0.1:$PG_PORT after ${TIMEOUT}s"
    fi

    STEP="start (database $PG_DB)"
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d postgres \
        >"$LOGS/bootstrap.log" 2>&1 <<SQL || { show_log "$LOGS/bootstrap.log"; die "bootstrap SQL"; }
SELECT 'CREATE ROLE $PG_USER LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') \gexec
ALTER ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB') \gexec
\connect $PG_DB
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS timescaledb;
SQL
    log "postgresql: ready on 127.0.0.1:$PG_PORT (pid $(pg_pid), database $PG_DB, timescaledb $(pg_query "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"))"
}

pg_query() { # one value, as postgres over the unix socket, in $PG_DB
    as_postgres psql -X -qAt -h /run/postgresql -d "$PG_DB" -c "$1" 2>/dev/null || true
}

stop_postgres() {
    STEP="stop (postgresql)"
    local pid
    pid=$(pg_pid)
    if [ -n "$pid" ]; then
        if ! as_postgres pg_ctl -D "$PGV/data" -m fast -w -t "$TIMEOUT" -s stop >"$LOGS/pg_ctl.log" 2>&1; then
            log "postgresql: fast shutdown timed out; immediate shutdown"
            as_postgres pg_ctl -D "$PGV/data" -m immediate -w -t "$TIMEOUT" -s stop \
                >>"$LOGS/pg_ctl.log" 2>&1 || { show_log "$LOGS/pg_ctl.log"; die "pg_ctl stop"; }
        fi
        log "postgresql: stopped"
    fi
    if [ "$SILKGATE_NATIVE" != 1 ] && [ -d "$ROOT" ]; then
        unmount_under "$ROOT" || die "cannot unmount everything under $ROOT: $(mounts_under "$ROOT" | tr '\n' ' ')"
    fi
}

# ---------------------------------------------------------------------------------------------
# commands

cmd_start() {
    cmd_install
    start_mosquitto
    start_postgres
    STEP=start
}

cmd_stop() {
    need_root
    stop_mosquitto
    stop_postgres
    STEP=stop
}

cmd_status() {
    STEP=status
    local down=0 pid
    pid=$(mq_pid "$MQH")
    if [ -n "$pid" ] && port_open "$MQTT_PORT"; then
        printf '%-13s running  pid %-7s mqtt://127.0.0.1:%s\n' mosquitto "$pid" "$MQTT_PORT"
    else
        printf '%-13s down\n' mosquitto
        down=1
    fi
    pid=$(mq_pid "$MQT")
    if [ -n "$pid" ] && port_open "$MQTT_TLS_PORT"; then
        printf '%-13s running  pid %-7s mqtts://127.0.0.1:%s  CA %s\n' mosquitto-tls "$pid" \
            "$MQTT_TLS_PORT" "$MQT/ca.pem"
    else
        printf '%-13s down\n' mosquitto-tls
        down=1
    fi
    pid=$(pg_pid 2>/dev/null || true)
    if [ -n "$pid" ] && port_open "$PG_PORT"; then
        printf '%-13s running  pid %-7s 127.0.0.1:%s  data %s\n' postgresql "$pid" "$PG_PORT" "$PGH/data"
    else
        printf '%-13s down\n' postgresql
        down=1
    fi
    if [ "$SILKGATE_NATIVE" != 1 ]; then
        if [ -f "$ROOT/$MARKER" ]; then
            printf '%-13s %s\n' root "$ROOT"
        else
            printf '%-13s not installed (%s)\n' root "$ROOT"
            down=1
        fi
    fi
    exit "$down"
}

cmd_env() {
    echo "SILKGATE_DSN=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
    echo "SILKGATE_MQTT=mqtt://127.0.0.1:$MQTT_PORT"
    echo "SILKGATE_MQTT_TLS=mqtts://127.0.0.1:$MQTT_TLS_PORT"
    echo "SILKGATE_MQTT_TLS_CA=$MQT/ca.pem"
    echo "SILKGATE_MQTT_USER=$MQTT_USER"
    echo "SILKGATE_MQTT_PASSWORD=$MQTT_PASSWORD"
}

usage() {
    sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
    case "${1:-}" in
    install)
        STEP=install
        need_root
        take_lock
        cmd_install
        log "install: done"
        ;;
    browser)
        STEP=browser
        need_root
        take_lock
        cmd_browser
        log "browser: $(command -v chromium-headless-shell || echo 'not found')"
        ;;
    start)
        STEP=start
        need_root
        take_lock
        cmd_start
        ;;
    stop)
        STEP=stop
        need_root
        take_lock
        cmd_stop
        ;;
    restart)
        STEP=restart
        need_root
        take_lock
        cmd_stop
        cmd_start
        ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
