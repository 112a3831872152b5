#!/bin/sh
# pg-cluster.sh: a throwaway PostgreSQL cluster for tests and benchmarks.
#
#   pg-cluster.sh start [--durable] DIR   initdb into DIR (created; owned by the postgres user when
#                                         run as root), start it on a free port of 127.0.0.1 and a
#                                         Unix socket in DIR, print its URL. fsync is off unless
#                                         --durable (the benchmark keeps PostgreSQL's defaults).
#   pg-cluster.sh url DIR                 print the URL again
#   pg-cluster.sh stop-server DIR         stop the server (fast), keep the data
#   pg-cluster.sh start-server DIR        start it again on the same port
#   pg-cluster.sh restart DIR             both
#   pg-cluster.sh stop DIR                stop it (immediate) and remove DIR
#   pg-cluster.sh run [--durable] -- CMD  start a cluster in a temporary folder, run CMD with
#                                         EVSTORE_PG_URL set, then stop and remove it whatever
#                                         CMD did; exits with CMD's status
#
# Every login is trusted except that of members of the role evs_password_login over TCP, which
# need a password (scram-sha-256): the tests of a login refused for want of one use it.
#
# The server binaries come from /usr/lib/postgresql/<newest>/bin. initdb and postgres refuse to
# run as root, so as root every server command runs as the postgres user (runuser).
set -eu

pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] || { echo "pg-cluster: no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 2; }
PATH=$pgbin:$PATH

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + $$ % 20000))
}

url_of() { echo "postgresql://postgres@127.0.0.1:$(cat "$1/port")/postgres"; }

start_server() {
    dir=$1
    as_pg pg_ctl -D "$dir/data" -w -t 60 -l "$dir/server.log" \
        -o "-p $(cat "$dir/port") -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
}

start() {
    durable=0
    if [ "${1:-}" = --durable ]; then durable=1; shift; fi
    dir=$1
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; fi
    as_pg initdb -D "$dir/data" -A trust -U postgres -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    if [ $durable = 0 ]; then
        printf 'fsync = off\nfull_page_writes = off\n' >>"$dir/data/postgresql.conf"
    fi
    printf 'max_connections = 300\n' >>"$dir/data/postgresql.conf"
    hba=$(cat "$dir/data/pg_hba.conf")
    printf 'host all +evs_password_login 127.0.0.1/32 scram-sha-256\n%s\n' "$hba" >"$dir/data/pg_hba.conf"
    free_port >"$dir/port"
    start_server "$dir" || { cat "$dir/server.log" >&2; exit 1; }
    url_of "$dir"
}

stop() {
    dir=$1
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_pg pg_ctl -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) start "$@" ;;
url) url_of "$1" ;;
stop-server) as_pg pg_ctl -D "$1/data" -m fast -w stop >/dev/null ;;
start-server) start_server "$1" ;;
restart) as_pg pg_ctl -D "$1/data" -m fast -w stop >/dev/null; start_server "$1" ;;
stop) stop "$1" ;;
run)
    durable=""
    if [ "${1:-}" = --durable ]; then durable=--durable; shift; fi
    [ "${1:-}" = -- ] && shift
    dir=$(mktemp -d /tmp/evstore-pg.XXXXXX)
    trap 'stop "$dir"' EXIT INT TERM
    EVSTORE_PG_URL=$(start $durable "$dir")
    EVSTORE_PG_DIR=$dir
    export EVSTORE_PG_URL EVSTORE_PG_DIR
    status=0
    "$@" || status=$?
    exit $status
    ;;
*) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
