#!/usr/bin/python3
"""scrape.py: the metrics endpoint as the service tests see it (tests/service/test_metrics.sh).

  scrape.py list URL     scrapes URL, parses it with prometheus_client (as Prometheus would),
                         checks every histogram (buckets cumulative, +Inf equal to _count), and
                         prints one line per family ("family NAME TYPE") and per sample
                         ("NAME{k=v,...} VALUE", labels sorted, integral values without ".0")
  scrape.py raw PORT     sends stdin's bytes to 127.0.0.1:PORT and prints the response's status
                         line, or "closed" when the connection ends without one
  scrape.py idle PORT    connects, prints "connected", sends nothing, then prints as raw does
"""
import socket
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def value(v):
    return str(int(v)) if v == int(v) else repr(v)


def check_histogram(fam):
    series = {}
    for s in fam.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "count": None})
        if s.name.endswith("_bucket"):
            series[key]["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_count"):
            series[key]["count"] = s.value
    for key, h in series.items():
        buckets = sorted(h["buckets"])
        counts = [c for _, c in buckets]
        if counts != sorted(counts):
            sys.exit(f"{fam.name}{key}: buckets not cumulative: {buckets}")
        if not buckets or buckets[-1][0] != float("inf") or buckets[-1][1] != h["count"]:
            sys.exit(f"{fam.name}{key}: +Inf bucket is not _count: {buckets}, {h['count']}")


def list_metrics(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        ctype = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    if not ctype.startswith("text/plain; version=0.0.4"):
        sys.exit(f"Content-Type {ctype!r}")
    for fam in text_string_to_metric_families(text):
        print(f"family {fam.name} {fam.type}")
        if fam.type == "histogram":
            check_histogram(fam)
        for s in fam.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            print(f"{s.name}{{{labels}}} {value(s.value)}")


def raw(port, data):
    with socket.create_connection(("127.0.0.1", int(port)), timeout=60) as s:
        if data is None:
            print("connected", flush=True)
        try:
            s.sendall(data or b"")
        except OSError:
            pass  # the server may close before it has read everything
        got = b""
        try:
            while b"\r\n" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
    print(got.split(b"\r\n")[0].decode("latin-1") if b"\r\n" in got else "closed")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "list":
        list_metrics(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "raw":
        raw(sys.argv[2], sys.stdin.buffer.read())
    elif len(sys.argv) == 3 and sys.argv[1] == "idle":
        raw(sys.argv[2], None)
    else:
        sys.exit(__doc__)
