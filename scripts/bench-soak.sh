#!/usr/bin/env bash
# bench-soak.sh: the soak benchmark (figures recorded in docs/performance.md, "Soak").
#
#   scripts/bench-soak.sh [--seconds N] [--store memory|pg|URL] [--rate N] [--only LOAD | --none]
#
# Runs build/bench/bench-soak (scripts/bench/soak.c): evstored with its default options (built
# without sanitizers, `make all`), a mixed hostile load (clients that send read-all limit=10000
# and never read, subscribers from after=0 that never read, slow senders of a 16 MiB frame,
# frames of millions of tiny objects, appends over max_event, one connection with hundreds of
# 1024-topic subscriptions, 256 KiB appends at a steady rate) next to 8 well-behaved clients
# (--rate requests/s each, appends and get-by-entity), for --seconds (60). It prints one JSON
# line: the well-behaved clients' p50/p99/max latency and errors, the daemon's peak RSS, and
# whether the goals (p99 < 20 ms, peak RSS < 300 MB) were met.
#
# --store memory (the default), a PostgreSQL URL, or pg: a throwaway durable cluster
# (scripts/pg-cluster.sh) removed at exit. --only LOAD runs one hostile load (readall, subs,
# slow, tiny, oversized, manysubs, large), --none none: to find which one costs what.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60 store=memory args=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --rate|--only) args+=("$1" "$2"); shift 2 ;;
    --none) args+=("$1"); shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "bench-soak: unknown argument $1" >&2; exit 2 ;;
  esac
done

make --no-print-directory all build/bench/bench-soak >/dev/null
tmp=$(mktemp -d /tmp/evstore-bench-soak.XXXXXX)
chmod 755 "$tmp"
cleanup() {
  [[ -d $tmp/pg ]] && scripts/pg-cluster.sh stop "$tmp/pg" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if [[ $store == pg ]]; then
  url=$(scripts/pg-cluster.sh start --durable "$tmp/pg")
  psql "$url" -XqAtc "DROP DATABASE IF EXISTS evs_bench_soak" -c "CREATE DATABASE evs_bench_soak"
  store=${url%/*}/evs_bench_soak
  echo "bench-soak: cluster $url (fsync $(psql "$url" -XAtc 'show fsync'), synchronous_commit $(psql "$url" -XAtc 'show synchronous_commit'))" >&2
fi
echo "bench-soak: load before $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
build/bench/bench-soak --store "$store" --seconds "$seconds" ${args[@]+"${args[@]}"}
echo "bench-soak: load after $(cut -d' ' -f1-3 /proc/loadavg)" >&2
