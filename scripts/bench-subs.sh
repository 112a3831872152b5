#!/usr/bin/env bash
# bench-subs.sh: the subscription benchmark, on the memory store and on a
# durable PostgreSQL cluster (figures recorded in docs/performance.md, "Subscriptions").
#
#   scripts/bench-subs.sh [--seconds N] [--events N] [--url POSTGRES_URL]
#
# Without --url it starts a throwaway cluster with PostgreSQL's default settings (fsync on,
# synchronous_commit on) and removes it at exit. For each store, build/bench/bench-subs
# (scripts/bench/subs.c) starts its own evstored and runs:
#   live     100 live subscribers while 10,000 events/s are appended (appends of 10 events):
#            latency from the append's acknowledgement to each subscriber's receipt
#   catchup  one subscriber with "after": 0 catching up --events stored events (1,000,000)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10 events=1000000 url=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench-subs: unknown argument $1" >&2; exit 2 ;;
  esac
done

make --no-print-directory all build/bench/bench-subs >/dev/null
tmp=$(mktemp -d /tmp/evstore-bench-subs.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  [[ -d $tmp/pg ]] && scripts/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if [[ -z $url ]]; then
  url=$(scripts/pg-cluster.sh start --durable "$tmp/pg")
fi
echo "bench-subs: cluster $url (fsync $(psql "$url" -XAtc 'show fsync'), synchronous_commit $(psql "$url" -XAtc 'show synchronous_commit'))" >&2
psql "$url" -XqAtc "DROP DATABASE IF EXISTS evs_bench_live" -c "CREATE DATABASE evs_bench_live" \
  -c "DROP DATABASE IF EXISTS evs_bench_catchup" -c "CREATE DATABASE evs_bench_catchup"
base=${url%/*}
bench=build/bench/bench-subs
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "== memory"
$bench --store memory live --seconds "$seconds"
$bench --store memory catchup --events "$events"
echo "== postgresql"
$bench --store "$base/evs_bench_live" live --seconds "$seconds"
$bench --store "$base/evs_bench_catchup" catchup --events "$events"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
