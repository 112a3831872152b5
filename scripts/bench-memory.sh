#!/usr/bin/env bash
# bench-memory.sh: evstore's append throughput on the in-memory store next to redis SET, measured
# in the same run on this machine (issue 2, section 6; figures go to docs/performance.md).
#
#   1. starts $BUILD/bin/evstored (default build/, the optimised non-sanitizer build) on a free
#      loopback port with --store memory;
#   2. runs `evstore bench` against it: 64 connections, one request in flight each, one 100-byte
#      event per request, for $BENCH_SECONDS (default 10) seconds after a 1-second warm-up;
#   3. stops it, then runs ../shared/bench/peers.sh --only redis-set (redis-benchmark -t set
#      -d 100 -c 64 against a throwaway redis-server);
#   4. prints both figures and the ratio, and one JSON line with all of it.
#
# Usage: scripts/bench-memory.sh [extra `evstore bench` options, e.g. -P 4]
set -euo pipefail
cd "$(dirname "$0")/.."

build=${BUILD:-build}
seconds=${BENCH_SECONDS:-10}
evstored=$build/bin/evstored
evstore=$build/bin/evstore
peers=../shared/bench/peers.sh
for f in "$evstored" "$evstore"; do
  [[ -x $f ]] || { echo "bench-memory: $f is missing (run make first)" >&2; exit 2; }
done

# A free loopback port: one that nothing answers on.
port=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[[ -n $port ]] || { echo "bench-memory: no free port found" >&2; exit 2; }
addr=127.0.0.1:$port

log=$(mktemp /tmp/evstore-bench.XXXXXX)
"$evstored" --listen "$addr" --store memory 2>"$log" &
daemon=$!
stop_daemon() {
  if [[ -n ${daemon:-} ]]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; daemon=""; fi
}
trap 'stop_daemon; rm -f "$log"' EXIT

for _ in $(seq 1 100); do
  "$evstore" -s "$addr" -t 1000 ping >/dev/null 2>&1 && break
  sleep 0.1
done
"$evstore" -s "$addr" -t 1000 ping >/dev/null || { echo "bench-memory: evstored did not start:" >&2; cat "$log" >&2; exit 1; }

cmd=("$evstore" -s "$addr" bench -c 64 -P 1 -e 1 -d 100 -T "$seconds" "$@")
echo "== evstore: ${cmd[*]}"
out=$("${cmd[@]}")
echo "$out"
ours=$(echo "$out" | tail -n 1)
stop_daemon

echo "== redis: $peers --only redis-set"
theirs=$("$peers" --only redis-set | grep '"peer":"redis-set"' | tail -n 1)
echo "$theirs"

num() { echo "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"; }
ours_eps=$(num "$ours" events_per_s)
redis_rps=$(num "$theirs" events_per_s)
[[ -n $ours_eps && -n $redis_rps ]] || { echo "bench-memory: could not read the figures" >&2; exit 1; }
ratio=$(awk -v a="$ours_eps" -v b="$redis_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "== result"
printf 'evstore append (memory, 64 conns, 1 x 100 B event/request): %s events/s\n' "$ours_eps"
printf 'redis SET (64 conns, 100 B values):                          %s requests/s\n' "$redis_rps"
printf 'ratio evstore / redis: %s\n' "$ratio"
printf '{"evstore_events_per_s":%s,"redis_set_per_s":%s,"ratio":%s,"evstore":%s}\n' \
  "$ours_eps" "$redis_rps" "$ratio" "$ours"
