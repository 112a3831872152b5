#!/usr/bin/env bash
# bench-memory.sh: evstore's append throughput on the in-memory store next to redis SET, measured
# in the same run on this machine (figures go to docs/performance.md).
#
#   1. starts $BUILD/bin/evstored (default build/, the optimised non-sanitizer build) on a free
#      loopback port with --store memory;
#   2. runs `evstore bench` against it: 64 connections, one request in flight each, one 100-byte
#      event per request, for $BENCH_SECONDS (default 10) seconds after a 1-second warm-up;
#   3. stops it, then runs ../shared/bench/peers.sh --only redis-set (redis-benchmark -t set
#      -d 100 -c 64 against a throwaway redis-server);
#   4. repeats 1-3 $BENCH_ROUNDS times (default 3), then prints both medians and their ratio, and
#      one JSON line with every figure.
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

# A free loopback port: one the kernel hands out for a bind to port 0.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port

log=$(mktemp /tmp/evstore-bench.XXXXXX)
daemon=""
stop_daemon() {
  if [[ -n $daemon ]]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; daemon=""; fi
}
trap 'stop_daemon; rm -f "$log"' EXIT

# One evstore measurement on a fresh daemon (so every round starts from an empty store).
run_evstore() {
  "$evstored" --listen "$addr" --store memory 2>"$log" &
  daemon=$!
  for _ in $(seq 1 100); do
    "$evstore" -s "$addr" -t 1000 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$evstore" -s "$addr" -t 1000 ping >/dev/null || { echo "bench-memory: evstored did not start:" >&2; cat "$log" >&2; exit 1; }
  local out
  out=$("${cmd[@]}")
  echo "$out" >&2
  stop_daemon
  echo "$out" | tail -n 1
}

num() { echo "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The machine may be shared: alternate the two measurements for $BENCH_ROUNDS rounds (default
# 3) and compare medians, so that a burst of other load does not decide the ratio alone.
rounds=${BENCH_ROUNDS:-3}
cmd=("$evstore" -s "$addr" bench -c 64 -P 1 -e 1 -d 100 -T "$seconds" "$@")
echo "== evstore: ${cmd[*]}   (fresh evstored --store memory each round)"
echo "== redis:   $peers --only redis-set   (redis-benchmark -t set -d 100 -c 64 -n 400000)"
ours_all="" redis_all="" last=""
for r in $(seq 1 "$rounds"); do
  last=$(run_evstore)
  e=$(num "$last" events_per_s)
  # peers.sh's redis-benchmark spins forever if its redis-server dies: bound it.
  t=$(timeout 180 "$peers" --only redis-set | grep '"peer":"redis-set"' | tail -n 1 || true)
  x=$(num "$t" events_per_s)
  if [[ -z $x || $x == 0 ]]; then echo "round $r: redis-set gave no figure; round skipped" >&2; continue; fi
  printf 'round %d: evstore %s events/s (p50 %s us, p99 %s us), redis SET %s requests/s\n' \
    "$r" "$e" "$(num "$last" p50_us)" "$(num "$last" p99_us)" "$x"
  ours_all="$ours_all $e" redis_all="$redis_all $x"
done

ours_eps=$(echo $ours_all | tr ' ' '\n' | median)
redis_rps=$(echo $redis_all | tr ' ' '\n' | median)
[[ -n $ours_eps && -n $redis_rps ]] || { echo "bench-memory: could not read the figures" >&2; exit 1; }
ratio=$(awk -v a="$ours_eps" -v b="$redis_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "== result (median of $rounds rounds)"
printf 'evstore append (memory, 64 conns, 1 x 100 B event/request): %s events/s\n' "$ours_eps"
printf 'redis SET (64 conns, 100 B values):                          %s requests/s\n' "$redis_rps"
printf 'ratio evstore / redis: %s\n' "$ratio"
printf '{"rounds":%s,"evstore_events_per_s":%s,"redis_set_per_s":%s,"ratio":%s,"evstore_rounds":[%s],"redis_rounds":[%s]}\n' \
  "$rounds" "$ours_eps" "$redis_rps" "$ratio" "$(echo $ours_all | tr ' ' ',')" "$(echo $redis_all | tr ' ' ',')"
