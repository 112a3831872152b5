#!/usr/bin/env bash
# bench-ab.sh OLD_EVSTORED NEW_EVSTORED STORE ROUNDS [BENCH OPTIONS...]: two builds of evstored
# against each other, interleaved (the order alternates every round), each daemon started fresh
# on STORE ("memory" or a PostgreSQL URL) and loaded by the same `evstore bench` (this tree's
# build/bin/evstore) with the given options. Prints per run: which build, events/s, p99, and the
# daemon's CPU time (user + system) per event appended, the figure that noise on a shared machine
# moves least.
#
#   scripts/bench-ab.sh /tmp/old/bin/evstored build/bin/evstored memory 6 -c 64 -e 1 -d 100 -T 5
set -u
old=${1:?usage: bench-ab.sh OLD_EVSTORED NEW_EVSTORED STORE ROUNDS [BENCH OPTIONS...]}
new=${2:?} store=${3:?} rounds=${4:?}
shift 4
load=("$@")
cd "$(dirname "$0")/.."
cli=build/bin/evstore
[ -x "$cli" ] || make --no-print-directory all >/dev/null
tck=$(getconf CLK_TCK)
run() {
  local bin=$1 name=$2 port d out ev cpu
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  "$bin" --listen "127.0.0.1:$port" --store "$store" --log-level error & d=$!
  for _ in $(seq 100); do "$cli" -s "127.0.0.1:$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  out=$("$cli" -s "127.0.0.1:$port" bench "${load[@]}" 2>/dev/null | tail -1)
  ev=$("$cli" -s "127.0.0.1:$port" stats | python3 -c 'import json,sys;print(json.load(sys.stdin)["events_appended"])')
  cpu=$(awk '{print $14+$15}' "/proc/$d/stat")
  kill "$d"; wait "$d" 2>/dev/null
  python3 - "$name" "$out" "$ev" "$cpu" "$tck" <<'PY'
import json, sys
name, out, ev, cpu, tck = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
print(f"{name} events/s {out['events_per_s']} p99_us {out['p99_us']} cpu_us_per_event {cpu / tck * 1e6 / max(ev, 1):.2f}")
PY
}
for r in $(seq "$rounds"); do
  if (( r % 2 )); then run "$old" old; run "$new" new; else run "$new" new; run "$old" old; fi
done
