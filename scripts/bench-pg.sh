#!/usr/bin/env bash
# bench-pg.sh: the PostgreSQL store's benchmark next to its peers, on one durable cluster, in one
# run (figures recorded in docs/performance.md).
#
#   scripts/bench-pg.sh [--seconds N] [--url POSTGRES_URL]
#
# Without --url it starts a throwaway cluster with PostgreSQL's default settings (fsync on,
# synchronous_commit on) and removes it at exit. Then, on that cluster:
#   1. ../shared/bench/peers.sh --only row-commit,copy,message-db (the anchors)
#   2. evstored --store URL, and `evstore bench`: 64 connections x 1 event of 100 bytes, the same
#      with a tracking on each append (--tracking), then 16 connections x 100 events per request
#   3. get-by-entity of a 1,000-event entity (p50) and read-all paging by 1,000 (events/s)
#   4. (between the two append runs, the daemon stopped) the anchor: the statements the writer
#      sends for one 64-event group (scripts/bench/anchor-64.sql), one pgbench client in a loop,
#      no daemon; events/s = transactions/s x 64
# and prints every figure as one JSON line, then the ratios against the targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10 url=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) seconds=$2; shift 2 ;;
    --url) url=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "bench-pg: unknown argument $1" >&2; exit 2 ;;
  esac
done

make --no-print-directory all build/bench/bench-reads >/dev/null
tmp=$(mktemp -d /tmp/evstore-bench-pg.XXXXXX)
chmod 755 "$tmp"
daemon=""
cleanup() {
  [[ -n $daemon ]] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  [[ -d $tmp/pg ]] && scripts/pg-cluster.sh stop "$tmp/pg" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
if [[ -z $url ]]; then
  url=$(scripts/pg-cluster.sh start --durable "$tmp/pg")
fi
echo "bench-pg: cluster $url (fsync $(psql "$url" -XAtc 'show fsync'), synchronous_commit $(psql "$url" -XAtc 'show synchronous_commit'))" >&2

# peers.sh draws row-commit's entity ids at random from 2e9 values with version 0, so a long run
# can hit the unique (entity_id, version) key and pgbench aborts; each peer is therefore run on
# its own, for at most 5 s, and retried up to 3 times.
peers=$tmp/peers.json
: >"$peers"
peer_seconds=$(( seconds < 5 ? seconds : 5 ))
for peer in row-commit copy message-db; do
  for attempt in 1 2 3; do
    if out=$(../shared/bench/peers.sh --url "$url" --seconds "$peer_seconds" --only "$peer"); then
      echo "$out" | tee -a "$peers"
      break
    fi
    echo "bench-pg: peers.sh --only $peer failed (attempt $attempt)" >&2
  done
done

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_daemon() {
  build/bin/evstored --listen "127.0.0.1:$port" --store "$url" --log-level warn &
  daemon=$!
  for _ in $(seq 100); do build/bin/evstore -s "127.0.0.1:$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
}
start_daemon

b1=$(build/bin/evstore -s "127.0.0.1:$port" bench -c 64 -e 1 -d 100 -T "$seconds" | tail -n 1)
echo "$b1"
bt=$(build/bin/evstore -s "127.0.0.1:$port" bench -c 64 -e 1 -d 100 -T "$seconds" --tracking | tail -n 1)
echo "$bt"
# The anchor runs on the same table right after, with the daemon stopped (its live feed would
# otherwise read every anchor event, on the same cores), and the daemon started again after it.
kill "$daemon"
wait "$daemon" 2>/dev/null || true
daemon=""
anchor_tps=$(pgbench -n -M prepared -f scripts/bench/anchor-64.sql -c 1 -T "$seconds" "$url" 2>&1 |
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1)
anchor=$(printf '{"measure":"anchor-64","events_per_s":%.0f,"transactions_per_s":%s}' \
  "$(awk -v t="${anchor_tps:-0}" 'BEGIN { print t * 64 }')" "${anchor_tps:-0}")
echo "$anchor"
start_daemon
b100=$(build/bin/evstore -s "127.0.0.1:$port" bench -c 16 -e 100 -d 100 -T "$seconds" | tail -n 1)
echo "$b100"
# The reads are measured on a settled database: the append runs leave ~800,000 new rows that
# autovacuum and the checkpointer would otherwise be processing during the read measure.
psql "$url" -XqAtc "VACUUM (ANALYZE) evs_events" -c "CHECKPOINT" >/dev/null
reads=$(build/bench/bench-reads "127.0.0.1:$port")
echo "$reads"

python3 - "$peers" "$b1" "$b100" "$reads" "$anchor" "$bt" <<'PY'
import json, sys
peers = {}
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        p = json.loads(line); peers[p["peer"]] = p["events_per_s"]
b1, b100 = json.loads(sys.argv[2]), json.loads(sys.argv[3])
reads = [json.loads(l) for l in sys.argv[4].splitlines() if l.startswith("{")]
gbe = next(r for r in reads if r["measure"] == "get-by-entity-1000")
ra = next(r for r in reads if r["measure"] == "read-all-by-1000")
row, copy, mdb = peers.get("row-commit", 0), peers.get("copy", 0), peers.get("message-db", 0)
anchor = json.loads(sys.argv[5])["events_per_s"]
bt = json.loads(sys.argv[6])
def ratio(a, b): return a / b if b else float("nan")
print()
print("| measure | evstore | anchor | ratio | target |")
print("| --- | --- | --- | --- | --- |")
print("| append 64 conn x 1 event | %d ev/s | row-commit %d | %.1fx | >= 5x |" % (b1["events_per_s"], row, ratio(b1["events_per_s"], row)))
print("| append 64 conn x 1 event | %d ev/s | copy %d | %.2fx | - |" % (b1["events_per_s"], copy, ratio(b1["events_per_s"], copy)))
print("| append 64 conn x 1 event, p99 | %.2f ms | - | - | < 10 ms |" % (b1["p99_us"] / 1000))
print("| append 64 conn x 1 event | %d ev/s | message-db %d | %.1fx | - |" % (b1["events_per_s"], mdb, ratio(b1["events_per_s"], mdb)))
print("| append 64 conn x 1 event | %d ev/s | same-SQL anchor %d | %.2fx | >= 0.8x |" % (b1["events_per_s"], anchor, ratio(b1["events_per_s"], anchor)))
print("| append 64 conn x 1 event, tracking | %d ev/s | without tracking %d | cost %+.0f %% | <= +15 %% |" % (bt["events_per_s"], b1["events_per_s"], (ratio(b1["events_per_s"], bt["events_per_s"]) - 1) * 100))
print("| append 16 conn x 100 events | %d ev/s | copy %d | %.2fx | >= 0.7x |" % (b100["events_per_s"], copy, ratio(b100["events_per_s"], copy)))
print("| get-by-entity, 1,000 events | p50 %.2f ms (p99 %.2f) | - | - | p50 < 2 ms |" % (gbe["p50_us"] / 1000, gbe["p99_us"] / 1000))
print("| read-all by 1,000 | %d ev/s | - | - | >= 200,000 |" % ra["events_per_s"])
PY
