#!/usr/bin/env bash
# bench-idle.sh [N]: evstored's memory with N idle subscriber connections (default 10,000).
#
# Starts build/bin/evstored on the in-memory store, opens N TCP connections that each send one
# subscribe request and then never read or write again, and prints the daemon's RSS before and
# after (VmRSS from /proc). The target: under 200 MB for 10,000. Build first with `make`.
set -euo pipefail
n=${1:-10000}
cd "$(dirname "$0")/.."
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ulimit -n "$(ulimit -Hn)"
build/bin/evstored --listen 127.0.0.1:$port --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do build/bin/evstore -s "127.0.0.1:$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
build/bin/evstore -s "127.0.0.1:$port" ping >/dev/null || { echo "bench-idle: evstored did not start" >&2; exit 1; }
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
before=$(rss)
python3 - "$port" "$n" "$pid" <<'PY'
import resource, socket, struct, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
def frame(i):
    # {"op": "subscribe", "id": i} in msgpack, by hand
    body = b"\x82\xa2op\xa9subscribe\xa2id\xce" + struct.pack(">I", i)
    return struct.pack(">I", len(body)) + body
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(frame(i + 1))
    socks.append(s)
# every reply read, so that each subscription exists before measuring
for s in socks:
    hdr = s.recv(4, socket.MSG_WAITALL)
    s.recv(struct.unpack(">I", hdr)[0], socket.MSG_WAITALL)
time.sleep(1)
with open(f"/proc/{pid}/status") as f:
    rss = [l.split()[1] for l in f if l.startswith("VmRSS")][0]
print(f"{n} idle subscribers: daemon RSS {int(rss)/1024:.1f} MB")
PY
echo "before any connection: daemon RSS $((before / 1024)) MB"
