#!/usr/bin/env bash
# Local services for silkgate, without a Docker engine: Mosquitto and PostgreSQL 17 + TimescaleDB,
# both bound to 127.0.0.1. Every command is idempotent.
#
#   deploy/services.sh install   host packages (mosquitto, debootstrap) and, on Debian 12, a
#                                Debian 13 root with postgresql-17 + timescaledb, built once
#   deploy/services.sh start     install if needed, then start both and wait until they serve
#   deploy/services.sh stop      stop both, release the root's mounts
#   deploy/services.sh restart   stop, then start
#   deploy/services.sh status    what runs; exits 1 if something is down
#   deploy/services.sh env       SILKGATE_DSN=... and SILKGATE_MQTT=... lines:
#                                  export $(deploy/services.sh env)   or   set -a; eval "$(...)"
#
# Environment: SILKGATE_CACHE (default /var/cache/silkgate: the root in trixie/, data and logs in
# state/), SILKGATE_PG_PORT (55432), SILKGATE_MQTT_PORT (1883), SILKGATE_TIMEOUT (seconds to wait
# for a service, 60), SILKGATE_DEBIAN_MIRROR (default: the Debian mirror apt already uses),
# SILKGATE_NATIVE (1: use the host's own postgresql-17; the default on Debian 13).
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATES=$HERE/local
CACHE=${SILKGATE_CACHE:-/var/cache/silkgate}
ROOT=$CACHE/trixie
STATE=$CACHE/state
LOGS=$CACHE/logs
PG_PORT=${SILKGATE_PG_PORT:-55432}
MQTT_PORT=${SILKGATE_MQTT_PORT:-1883}
TIMEOUT=${SILKGATE_TIMEOUT:-60}
PG_DB=silkgate
PG_USER=silkgate
PG_PASSWORD=silkgate

SUITE=trixie
PG_MAJOR=17
ROOT_PACKAGES="postgresql-$PG_MAJOR postgresql-$PG_MAJOR-timescaledb"
# Written into the root when it is complete; a root without it (or with another recipe) is rebuilt.
RECIPE="silkgate-root v1: $SUITE $ROOT_PACKAGES"
MARKER=.silkgate-root

PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
PGH=$STATE/postgresql   # the cluster's home (data/, server.log) as the host sees it
MQH=$STATE/mosquitto    # the broker's state: rendered config, pid file, log, persistence

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
        apt_install mosquitto mosquitto-clients postgresql-$PG_MAJOR postgresql-$PG_MAJOR-timescaledb
    else
        apt_install mosquitto mosquitto-clients debootstrap
        build_root
    fi
    STEP=install
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

mq_pid() {
    local f=$MQH/mosquitto.pid pid
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
# Mosquitto

mq_ready() {
    port_open "$MQTT_PORT" &&
        mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -i "silkgate-probe-$$" \
            -t silkgate/probe -m ok >/dev/null 2>&1
}

start_mosquitto() {
    STEP="start (mosquitto)"
    local pid running_port
    pid=$(mq_pid)
    if [ -n "$pid" ]; then
        running_port=$(awk '$1 == "listener" { print $2 }' "$MQH/mosquitto.conf")
        [ "$running_port" = "$MQTT_PORT" ] ||
            die "mosquitto runs on port $running_port; 'deploy/services.sh restart' moves it to $MQTT_PORT"
    else
        ! port_open "$MQTT_PORT" ||
            die "127.0.0.1:$MQTT_PORT is taken by another process (set SILKGATE_MQTT_PORT)"
        mkdir -p "$MQH/data"
        sed -e "s|@STATE@|$MQH|g" -e "s|@PORT@|$MQTT_PORT|g" "$TEMPLATES/mosquitto.conf" \
            >"$MQH/mosquitto.conf"
        if id mosquitto >/dev/null 2>&1; then
            chown -R mosquitto: "$MQH"
        else
            sed -i 's/^user mosquitto$/user root/' "$MQH/mosquitto.conf"
        fi
        rm -f "$MQH/mosquitto.pid"
        (close_fds && exec /usr/sbin/mosquitto -c "$MQH/mosquitto.conf" -d) \
            </dev/null >/dev/null 2>"$MQH/stderr.log" ||
            { show_log "$MQH/stderr.log"; show_log "$MQH/mosquitto.log"; die "mosquitto did not start"; }
    fi
    local deadline=$((SECONDS + TIMEOUT)) why=
    until mq_ready; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            why="not accepting MQTT on 127.0.0.1:$MQTT_PORT after ${TIMEOUT}s"
        elif [ "$SECONDS" -ge $((deadline - TIMEOUT + 3)) ] && [ -z "$(mq_pid)" ]; then
            why="it exited"
        fi
        if [ -n "$why" ]; then
            show_log "$MQH/stderr.log"
            show_log "$MQH/mosquitto.log" 10
            die "mosquitto: $why"
        fi
        sleep 0.2
    done
    log "mosquitto: ready on 127.0.0.1:$MQTT_PORT (pid $(mq_pid))"
}

stop_mosquitto() {
    STEP="stop (mosquitto)"
    local pid
    pid=$(mq_pid)
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 15 not_alive "$pid" mosquitto; then
            log "mosquitto: pid $pid ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "mosquitto: stopped"
    fi
    rm -f "$MQH/mosquitto.pid"
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
    pid=$(mq_pid)
    if [ -n "$pid" ] && port_open "$MQTT_PORT"; then
        printf '%-11s running  pid %-7s mqtt://127.0.0.1:%s\n' mosquitto "$pid" "$MQTT_PORT"
    else
        printf '%-11s down\n' mosquitto
        down=1
    fi
    pid=$(pg_pid 2>/dev/null || true)
    if [ -n "$pid" ] && port_open "$PG_PORT"; then
        printf '%-11s running  pid %-7s 127.0.0.1:%s  data %s\n' postgresql "$pid" "$PG_PORT" "$PGH/data"
    else
        printf '%-11s down\n' postgresql
        down=1
    fi
    if [ "$SILKGATE_NATIVE" != 1 ]; then
        if [ -f "$ROOT/$MARKER" ]; then
            printf '%-11s %s\n' root "$ROOT"
        else
            printf '%-11s not installed (%s)\n' root "$ROOT"
            down=1
        fi
    fi
    exit "$down"
}

cmd_env() {
    echo "SILKGATE_DSN=postgresql://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
    echo "SILKGATE_MQTT=mqtt://127.0.0.1:$MQTT_PORT"
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
