#!/usr/bin/env python3
"""make-corpus.py: writes the seed corpora of tests/fuzz (tests/fuzz/corpus/NAME/), small inputs
that reach every branch of a parser quickly: a request of every op, replies and pushes of every
kind, config files with every option type, auth_file lines of every credential, and their edge
cases. Run it from anywhere after changing the protocol; it rewrites the seeds it owns and leaves
other files (reproducers of fixed bugs, named crash-*) alone.

msgpack is written by the small encoder below (no module needed), so the bytes are exact."""
import os
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


class Raw(bytes):
    """Bytes put into the output as they are (for malformed msgpack)."""


def mp(v):
    if isinstance(v, Raw):
        return bytes(v)
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if v >= 0:
            for fmt, tag in (("B", 0xCC), (">H", 0xCD), (">I", 0xCE), (">Q", 0xCF)):
                try:
                    return bytes([tag]) + struct.pack(fmt, v)
                except struct.error:
                    pass
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode("utf-8", "surrogateescape")
        n = len(b)
        if n < 32:
            return bytes([0xA0 | n]) + b
        if n < 256:
            return b"\xd9" + bytes([n]) + b
        return b"\xda" + struct.pack(">H", n) + b
    if isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n < 256:
            return b"\xc4" + bytes([n]) + bytes(v)
        return b"\xc5" + struct.pack(">H", n) + bytes(v)
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(v)


def frame(body):
    return struct.pack(">I", len(body)) + body


def write(name, files):
    d = os.path.join(ROOT, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith("crash-"):
            os.remove(os.path.join(d, f))
    for fname, data in files.items():
        with open(os.path.join(d, fname), "wb") as fh:
            fh.write(data)


UUID = bytes(range(16))
EV = {"entity_id": "orders-1", "topic": "order.Placed", "payload": b'{"total":10}'}


def requests():
    r = {
        "ping": {"op": "ping", "id": 1},
        "append": {"op": "append", "id": 2, "events": [EV]},
        "append-full": {"op": "append", "id": 3, "events": [
            dict(EV, event_id=UUID, version=0, metadata={"schema": 2, "by": "svc"}),
            dict(EV, entity_id="carts-1", topic="cart.Added", payload=b"", version=7,
                 metadata={"nested": {"a": [1, -2, None, True, 3]}})]},
        "append-empty": {"op": "append", "id": 4, "events": []},
        "get-by-entity": {"op": "get-by-entity", "id": 5, "entity_id": "orders-1",
                          "from_version": 0, "limit": 100, "backwards": True},
        "get-by-topic": {"op": "get-by-topic", "id": 6, "topic": "order.Placed", "after": 0,
                         "limit": 10},
        "get-by-id": {"op": "get-by-id", "id": 7, "event_id": UUID},
        "read-all": {"op": "read-all", "id": 8, "after": 42, "limit": 1000},
        "subscribe": {"op": "subscribe", "id": 9, "after": 16, "topics": ["a", "b.c"],
                      "entity_prefix": "orders-"},
        "subscribe-empty-prefix": {"op": "subscribe", "id": 10, "entity_prefix": ""},
        "unsubscribe": {"op": "unsubscribe", "id": 11, "sub": 1},
        "delete-entity": {"op": "delete-entity", "id": 12, "entity_id": "orders-1"},
        "put-snapshot": {"op": "put-snapshot", "id": 13, "entity_id": "orders-1", "version": 3,
                         "topic": "order.State", "payload": b"\x01\x02"},
        "get-snapshot": {"op": "get-snapshot", "id": 14, "entity_id": "orders-1",
                         "max_version": 3},
        "stats": {"op": "stats", "id": 15},
        "config": {"op": "config", "id": 16},
        "bad-unknown-key": {"op": "ping", "id": 17, "zzz": 1},
        "bad-empty-key": {"op": "ping", "id": 17, "": 1},
        "append-empty-key-metadata": {"op": "append", "id": 2, "events": [
            dict(EV, metadata={"": 1})]},
        "bad-twice": Raw(b"\x83" + mp("op") + mp("ping") + mp("id") + mp(18) + mp("op") +
                         mp("ping")),
        "bad-nul-op": {"op": "ping\x00x", "id": 19},
        "bad-utf8-name": {"op": "get-by-entity", "id": 20,
                          "entity_id": "bad\udcff\udcfename"},
        "bad-long-key": {"op": "ping", "id": 21, "k" * 100 + "\udce9": 1},
        "bad-int-key": Raw(b"\x82" + mp("op") + mp("ping") + mp(5) + mp(1)),
        "bad-id-negative": {"op": "ping", "id": -1},
        "bad-no-op": {"id": 22},
        "bad-deep": Raw(b"\x81" + mp("op") + b"\x91" * 40 + b"\xc0"),
        "bad-huge-array": Raw(b"\x81" + mp("events") + b"\xdd\xff\xff\xff\xff"),
        "bad-huge-str": Raw(b"\x81" + b"\xdb\x7f\xff\xff\xff" + b"op"),
        "bad-0xc1": Raw(b"\x81" + mp("op") + b"\xc1"),
        "bad-not-map": Raw(mp([1, 2, 3])),
        "bad-trailing": Raw(mp({"op": "ping", "id": 1}) + b"\xc0"),
        "bad-ext": Raw(b"\x82" + mp("op") + b"\xd4\x01\x02" + mp("id") + mp(1)),
        "bad-event-not-map": {"op": "append", "id": 23, "events": [1]},
        "bad-event-twice": Raw(b"\x83" + mp("op") + mp("append") + mp("id") + mp(24) +
                               mp("events") + b"\x91\x84" + mp("entity_id") + mp("a") +
                               mp("topic") + mp("t") + mp("payload") + mp(b"") + mp("topic") +
                               mp("t")),
        "bad-metadata": {"op": "append", "id": 25, "events": [dict(EV, metadata=[1])]},
        "bad-topics": {"op": "subscribe", "id": 26, "topics": ["ok", 5]},
    }
    return {k: mp(v) for k, v in r.items()}


def frame_reader(reqs):
    out = {}
    # Byte 0 picks max_frame (7: 16 MiB), bytes 1-8 the pieces (see fuzz_frame_reader.c).
    everything = b"".join(frame(b) for b in reqs.values())
    schedules = {
        "bytewise": bytes([7]) + bytes([0x00] * 8),
        "copy": bytes([7]) + bytes([0x1F, 0x3F, 0x5F, 0x7F, 0x03, 0x20, 0x41, 0x62]),
        "lend": bytes([7]) + bytes([0xFF, 0x80, 0xE0, 0x9F, 0xC1, 0xA2, 0xFF, 0x83]),
    }
    for name, head in schedules.items():
        out["stream-" + name] = head + everything
    out["empty-frames"] = bytes([7]) + bytes([0x05] * 8) + (b"\0\0\0\0" * 3 +
                                                             frame(reqs["ping"]))
    out["too-large"] = bytes([2]) + bytes([0xE3] * 8) + frame(reqs["ping"]) + frame(b"\x80" * 65)
    out["max-1"] = bytes([0]) + bytes([0x81] * 8) + frame(b"\x80") + frame(b"\x80\x80")
    out["partial"] = bytes([5]) + bytes([0x02] * 8) + frame(reqs["append-full"])[:-3]
    return out


def event(i, **kw):
    e = {"event_id": UUID, "entity_id": "orders-%d" % i, "version": i, "topic": "order.Placed",
         "position": 100 + i, "timestamp": 1733140000000000, "payload": b"{}"}
    e.update(kw)
    return e


def client_replies():
    # Byte 0 picks the call whose reply the frames are (0 read, 1 append, 2 get-by-id, 3 config).
    def stream(call, *msgs):
        return bytes([call]) + b"".join(frame(mp(m)) for m in msgs)

    push = {"sub": 1, "events": [event(1), event(2, metadata={"k": "v"})]}
    caught = {"sub": 1, "caught_up": True}
    both = {"sub": 2, "events": [event(3)], "caught_up": True}
    error = {"id": 1, "ok": False, "error": {
        "code": "conflict", "message": "orders-1 is at version 3", "entity_id": "orders-1",
        "version": 2, "current_version": 3, "event_id": UUID}}
    error_nil = {"id": 1, "ok": False, "error": {"code": "conflict", "message": "no events",
                                                  "current_version": None}}
    error_noid = {"ok": False, "error": {"code": "too_large", "message": "frame over 16 MiB"}}
    error_unknown = {"id": 1, "ok": False, "error": {"code": "no_such_code", "message": "?"}}
    cfg = {"id": 1, "ok": True, "config": {"listen": {"value": "127.0.0.1:7433",
                                                      "default": "127.0.0.1:7433",
                                                      "reloadable": False}}}
    return {
        "read": stream(0, {"id": 1, "ok": True, "events": [event(1), event(2)],
                           "truncated": True}),
        "read-empty": stream(0, {"id": 1, "ok": True, "events": []}),
        "read-bad-event": stream(0, {"id": 1, "ok": True, "events": [event(1, topic=5)]}),
        "read-after-pushes": stream(0, push, caught, both, {"id": 1, "ok": True,
                                                            "events": [event(4)]}),
        "append": stream(1, {"id": 1, "ok": True, "positions": [5, 6], "versions": [0, 1]}),
        "append-bad": stream(1, {"id": 1, "ok": True, "positions": [5, 6], "versions": [0]}),
        "get-by-id": stream(2, {"id": 1, "ok": True, "event": event(9, metadata={"a": [1]})}),
        "get-by-id-bad": stream(2, {"id": 1, "ok": True, "event": event(9, event_id=b"short")}),
        "config": stream(3, cfg),
        "errors": stream(0, error, error_nil, error_unknown, error_noid),
        "push-unknown-kind": stream(0, {"sub": 3, "what": 1}, {"sub": "x"}),
        "not-a-map": bytes([0]) + frame(mp([1])),
        "empty-frame": bytes([0]) + b"\0\0\0\0",
        "ok-without-id": stream(0, {"ok": True}),
        "ping": stream(0, {"id": 1, "ok": True, "version": "0.1.0", "store_id":
                           "6f1c1e2a-9d7b-4c1e-8f00-0123456789ab", "head": 42}),
    }


def values():
    f32 = Raw(b"\xca" + struct.pack(">f", 1.5))
    f64 = Raw(b"\xcb" + struct.pack(">d", -0.1))
    nan = Raw(b"\xcb" + struct.pack(">d", float("nan")))
    v = {
        "account": {"owner": "ada", "balance": 120, "debt": -5, "rate": f64, "open": True,
                    "closed_at": None, "tags": ["a", "b"], "photo": b"\x89PNG"},
        "every-int": {"a": 0, "b": 127, "c": 128, "d": 65536, "e": 2**40, "f": 2**64 - 1,
                      "g": -1, "h": -33, "i": -2**15, "j": -2**40, "k": -2**63},
        "floats": {"f32": f32, "f64": f64, "nan": nan},
        "nested": {"a": {"b": {"c": [[{"d": []}], {}]}}},
        "unsorted-keys": Raw(b"\x83" + mp("zz") + mp(1) + mp("a") + mp(2) + mp("m") + mp(3)),
        "long-strings": {"s" * 40: "x" * 300, "bin": bytes(300)},
        "empty": {},
        "empty-key": Raw(b"\x81\xa0\x2c"),  # msgpack-c gives "" as NULL: fixed UB
        "bad-int-key": Raw(b"\x81" + mp(1) + mp(2)),
        "bad-dup-key": Raw(b"\x82" + mp("a") + mp(1) + mp("a") + mp(2)),
        "bad-nul-key": {"a\x00b": 1},
        "bad-ext": Raw(b"\x81" + mp("e") + b"\xd4\x01\x02"),
        "bad-not-map": Raw(mp([1])),
        "bad-deep": Raw(b"\x81" + mp("a") + b"\x91" * 40 + b"\xc0"),
    }
    return {k: mp(x) for k, x in v.items()}


def configs():
    c = {
        "every-option": """# every option, one of each type
listen = 127.0.0.1:7433
unix = /run/evstore/evstored.sock
store = postgresql://evs:s3cret@db.example:5432/evs?sslmode=require
max_frame = 16M
max_event = 1048576
output_limit = 2m
request_timeout = 30s
shutdown_timeout = 10
status_interval = 0
max_subscriptions = 256
max_subscription_topics = 1024
idle_timeout = 3600s
frame_timeout = 30
frame_memory_limit = 1G
memory_limit = 25%
log_level = debug
write_queue_bytes = 64M
write_queue_requests = 10000
""",
        "dashes-quotes-comments": """; a comment
   # another
max-frame = "65536"
listen = "[::1]:7433"
store = "host=db password=my s3cret dbname=evs"
log-level=warn

memory_limit = 100%
""",
        "bad-unknown": "no_such_option = 1\n",
        "bad-no-equals": "listen 127.0.0.1:7433\n",
        "bad-quote": 'listen = "127.0.0.1:7433\n',
        "bad-number": "max_frame = 12x\n",
        "bad-range": "max_frame = 1\n",
        "bad-overflow": "max_frame = 99999999999999999999G\n",
        "bad-percent": "memory_limit = 101%\n",
        "bad-level": "log_level = loud\n",
        "bad-empty-required": "store =\n",
        "bad-count-suffix": "max_subscriptions = 5s\n",
        "bad-listen": "listen = nowhere\n",
        "empty-optional": "unix = \"\"\n",
        "url-password-query": "store = postgresql://u@h/db?password=x&password=y\n",
        "no-newline": "log_level = info",
        "long-line": "store = memory" + " " * 5000 + "\n",
        "nul-byte": "log_level = info\0junk\n",
        "inline-comment": "listen = 127.0.0.1:7433 # the port\nstore = \"memory\" # quoted\n"
                          "unix_group = \"a #b\"\n",
        "bad-store-conninfo": "store = host=db port=notaport sslmode=x connect_timeout=y\n",
        "store-url-multihost": "store = postgresql://u:p@a:1,b:2/db?sslmode=require"
                               "&target_session_attrs=any\n",
        "bad-many": "max_frame = 1\nnope = 2\nlisten = x\nlog_level = y\nstore = \"a\" b\n",
    }
    return {k: v.encode() for k, v in c.items()}


def auth_files():
    hexa = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    hexb = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
    a = {
        "example": f"""# NAME     PERMISSIONS                       CREDENTIALS
orders     read,write:orders-,write:carts-   token-sha256:{hexa}
auditor    read                              token-sha256:{hexb}  cert-cn:auditor.example
ops        admin                             uid:0
""",
        "every-permission": f"all read,write,delete,admin token-sha256:{hexa}\n"
                            "cleaner delete:tmp-,delete:old- uid:1000\n",
        "cert-only": "aud read cert-cn:x.example\n",
        "comments-blank": "\n   \n# only comments\n  # indented\n",
        "tabs": f"orders\tread,write:orders-\ttoken-sha256:{hexa}\n",
        "bad-permission": "x fly uid:1\n",
        "bad-credential": "x read password:hunter2\n",
        "bad-hex": "x read token-sha256:xyz\n",
        "bad-short-hex": "x read token-sha256:9f86\n",
        "bad-uid": "x read uid:-1\n",
        "bad-missing-credentials": "x read\n",
        "bad-duplicate-name": "x read uid:1\nx read uid:2\n",
        "bad-empty-prefix": "x write: uid:3\n",
        "no-newline": "ops admin uid:0",
    }
    return {k: v.encode() for k, v in a.items()}


def write_dict(name, entries):
    """A libFuzzer dictionary (tests/fuzz/dict/NAME.dict): the words a parser looks for, so that
    mutations can put them in whole."""
    d = os.path.join(os.path.dirname(ROOT), "dict")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".dict"), "w") as fh:
        fh.write("# Written by tests/fuzz/make-corpus.py.\n")
        for e in entries:
            b = e if isinstance(e, bytes) else e.encode()
            fh.write('"' + "".join("\\x%02x" % c if c < 0x20 or c >= 0x7F or c in b'"\\'
                                   else chr(c) for c in b) + '"\n')


REQUEST_KEYS = ["op", "id", "events", "entity_id", "topic", "payload", "event_id", "version",
                "metadata", "from_version", "limit", "backwards", "after", "topics", "sub",
                "entity_prefix", "max_version"]
OPS = ["ping", "append", "get-by-entity", "get-by-topic", "get-by-id", "read-all", "subscribe",
       "unsubscribe", "delete-entity", "put-snapshot", "get-snapshot", "stats", "config"]
REPLY_KEYS = ["id", "ok", "error", "code", "message", "entity_id", "version", "current_version",
              "event_id", "sub", "caught_up", "events", "truncated", "positions", "versions",
              "event", "position", "timestamp", "topic", "payload", "metadata", "config", "stats",
              "store_id", "head"]
CODES = ["bad_request", "too_large", "conflict", "not_found", "unavailable", "internal",
         "limit_exceeded"]
HEADERS = [b"\xc4\x10", b"\xdc\x00", b"\xdd\x00\x00", b"\xde\x00", b"\xdf\x00\x00",
           b"\xcf", b"\xd3", b"\xc3", b"\xc2", b"\xc0", b"\x00\x00\x00"]


def main():
    write_dict("request", [mp(k) for k in REQUEST_KEYS + OPS] + HEADERS)
    write_dict("frame_reader", [mp(k) for k in REQUEST_KEYS + OPS] + HEADERS)
    write_dict("client_reply", [mp(k) for k in REPLY_KEYS + CODES] + HEADERS)
    write_dict("value", HEADERS + [b"\xca", b"\xcb", b"\xd4", b"\xc7", b"\xd9", b"\xda",
                                   b"\xc5"])
    write_dict("config", ["listen", "unix", "store", "max_frame", "max_event", "output_limit",
                          "request_timeout", "shutdown_timeout", "status_interval",
                          "max_subscriptions", "max_subscription_topics", "idle_timeout",
                          "frame_timeout", "frame_memory_limit", "memory_limit", "log_level",
                          "write_queue_bytes", "write_queue_requests", " = ", "%", "\"", "#",
                          "k", "M", "G", "s", "debug", "postgresql://", "password=", "@", "[::1]:",
                          "127.0.0.1:", "memory", "\n", " #", "host=", "port=",
                          "sslmode=", "connect_timeout=", ","])
    write_dict("auth_file", ["read", "write", "delete", "admin", "write:", "delete:", ",",
                             "token-sha256:", "uid:", "cert-cn:", "#", "\n", " ", "\t",
                             "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"])
    reqs = requests()
    write("request", reqs)
    write("frame_reader", frame_reader(reqs))
    write("client_reply", client_replies())
    write("value", values())
    write("config", configs())
    write("auth_file", auth_files())
    return 0


if __name__ == "__main__":
    sys.exit(main())
