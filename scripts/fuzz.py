#!/usr/bin/env python3
"""Differential HTTP fuzzer: pyfork against Gunicorn (sync, gthread) and waitress.

    python scripts/fuzz.py --count 3000                  # our seeds, mutated
    python scripts/fuzz.py --count 3000 --corpus /work/.mirror/benoitc+gunicorn/repo

A benchmark-style tool, not a test (the idea is HTTP Garden's). Each server serves
scripts/echo.py, an app that answers with its reading of the request as JSON. Every
input (a seed request mutated by one to three of the operators below) goes to all four
on a connection of its own (then half-closed), and the readings are compared:

  per server: the answers (2xx or the refusal status, or none) and, for each 2xx, the
  method, target, Host, X-Forwarded-* fields, other fields and body the app read.

A case where pyfork's reading is not that of any peer lands in a bucket named by how it
differs (answered where the peers refused, refused where they answered, or which fields
differ, and a "CRITICAL" mark when pyfork answered 2xx and read a different body, Host,
X-Forwarded-* or number of requests than every peer). Each bucket keeps its shortest
reproducer, shrunk by removing lines and bytes while the bucket stays the same. Known
choices (PATH_INFO '' for OPTIONS * and CONNECT on pyfork; SERVER_PROTOCOL; CONTENT_LENGTH
of a dechunked body) are not counted as differences.

Seeds are our own well-formed requests; --corpus adds Gunicorn's tests/requests/valid
files, read from the repository given (never copied here). Every server started is
stopped by PID at the end.
"""
import argparse
import concurrent.futures
import json
import random
import re
import sys
import time

import corpus
import peers

PEERS = ("gunicorn-sync", "gunicorn-gthread", "waitress")

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: fuzz\r\nAccept: */*\r\n\r\n",
    b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"POST /t HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 10.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    b"GET /p1 HTTP/1.1\r\nHost: example.com\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
    b"GET http://example.com/abs?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\n\r\n",
    b"POST /e HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody",
    b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"POST /up HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\nGET /after HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"PUT /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"DELETE /d HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
]

FIELDS = [
    b"Transfer-Encoding: chunked", b"Transfer-Encoding:  chunked", b"Transfer-Encoding: chunked ",
    b"Transfer-Encoding: Chunked", b"Transfer-Encoding: xchunked", b"Transfer-Encoding: chunked, identity",
    b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: identity", b"Transfer_Encoding: chunked",
    b"Transfer-Encoding:\tchunked", b"Transfer-Encoding\t: chunked", b"Transfer-Encoding: \x0bchunked",
    b"Content-Length: 5", b"Content-Length: 05", b"Content-Length: +5", b"Content-Length: 5 ",
    b"Content-Length: 5, 5", b"Content-Length: -1", b"Content-Length: 0x5", b"Content-Length: 99999999999999999999",
    b"Content-Length: 0", b"Content_Length: 3", b"Content-Length : 5",
    b"Host: evil.example.com", b"Host: a b", b"Host: ", b"Host: example.com:80", b"Host: [::1]", b"host: EXAMPLE.com",
    b"Connection: close", b"Connection: keep-alive", b"Connection: close, keep-alive", b"Connection: Upgrade",
    b"Upgrade: websocket", b"Expect: 100-continue", b"Expect: nonsense",
    b"X-Forwarded-For: 6.6.6.6", b"X-Forwarded-Proto: https", b"X-Forwarded-Host: evil.example.com",
    b"X_Forwarded_For: 7.7.7.7", b"X-Forwarded-Ssl: on", b"Content-Type: a/b", b"Authorization: Basic x",
    b"X-A: 1", b"X-Empty:", b"Trailer: X-Forwarded-For",
]
TRAILERS = [b"X-Forwarded-For: 6.6.6.6", b"Host: evil.example.com", b"Content-Length: 5", b"X-T: 1",
            b"Content-Type: evil/x", b"Transfer-Encoding: chunked", b"Authorization: x", b"X-Forwarded-Proto: https"]
CHUNK_SIZES = [b"5", b"05", b"0005", b"5;a=b", b"5; a=b", b"5 ", b" 5", b"5\t", b"+5", b"-5", b"0x5", b"5g",
               b"fffffffffffffffff", b"5;a=\"b c\"", b"5;", b"6", b"4"]
VERSIONS = [b"HTTP/1.0", b"HTTP/1.1", b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.10", b"HTTP/0.9", b"HTTP/1.1 "]
METHODS = [b"GET", b"get", b"POST", b"FOO", b"-BLARGH", b"G ET", b"CONNECT", b"OPTIONS", b"HEAD", b"PUT", b"GE\x00T"]
TARGETS = [b"*", b"/", b"//x", b"/a b", b"/%00", b"/\xc3\xa0", b"http://example.com/", b"http://evil.example.com/x",
           b"example.com:80", b"s://]ufd/:", b"/p#frag", b"/p?q=1#f", b"a/b", b"/.."]
JUNK = [b"\x00", b"\x07", b"\x7f", b"\x80", b"\xff", b"\r", b"\n", b" ", b"\t", b"\r\n", b"\x0b", b"\x0c"]


# -- mutations: each takes (rng, data) and returns new bytes ------------------------------------

def _split(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n"), sep, body


def _join(lines, sep, body):
    return b"\r\n".join(lines) + sep + body


def line_ends(rng, data):
    ends = [m.start() for m in re.finditer(b"\r\n", data)]
    if not ends:
        return data
    i = rng.choice(ends)
    return data[:i] + rng.choice([b"\n", b"\r", b"\n\r", b"\r\r\n", b"\r\n\r\n", b""]) + data[i + 2:]


def add_field(rng, data):
    lines, sep, body = _split(data)
    lines.insert(rng.randint(1, len(lines)), rng.choice(FIELDS))
    return _join(lines, sep, body)


def _field(rng, data):
    """(head lines, sep, body, index of a random field line), or None without fields."""
    lines, sep, body = _split(data)
    return None if len(lines) < 2 else (lines, sep, body, rng.randint(1, len(lines) - 1))


def dup_or_drop_field(rng, data):
    picked = _field(rng, data)
    if picked is None:
        return data
    lines, sep, body, i = picked
    if rng.random() < 0.5:
        lines.insert(i, lines[i])
    else:
        del lines[i]
    return _join(lines, sep, body)


def field_whitespace(rng, data):
    picked = _field(rng, data)
    if picked is None:
        return data
    lines, sep, body, i = picked
    name, colon, value = lines[i].partition(b":")
    ws = rng.choice([b" ", b"\t", b"  ", b"\r\n ", b"\r\n\t"])     # the last two: obs-fold
    where = rng.randrange(4)
    lines[i] = [ws + lines[i], name + ws + colon + value, name + colon + value + ws,
                name + colon + value[:len(value) // 2] + ws + value[len(value) // 2:]][where]
    return _join(lines, sep, body)


def request_line(rng, data):
    lines, sep, body = _split(data)
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return data
    k = rng.randrange(4)
    if k == 0:
        parts[0] = rng.choice(METHODS)
    elif k == 1:
        parts[1] = rng.choice(TARGETS)
    elif k == 2:
        parts[2] = rng.choice(VERSIONS)
    else:
        lines[0] = rng.choice([b" ", b"  ", b"\t"]).join(parts)
        return _join(lines, sep, body)
    lines[0] = b" ".join(parts)
    return _join(lines, sep, body)


def chunking(rng, data):
    """Make the body chunked if it is not, then bend its framing or add trailer fields."""
    lines, sep, body = _split(data)
    if not any(ln.lower().startswith(b"transfer-encoding") for ln in lines):
        lines = [ln for ln in lines if not ln.lower().startswith(b"content-length")]
        lines.append(b"Transfer-Encoding: chunked")
        body = b"5\r\nhello\r\n0\r\n\r\n"
    k = rng.randrange(3)
    if k == 0:
        body = body.replace(b"5\r\n", rng.choice(CHUNK_SIZES) + b"\r\n", 1)
    elif k == 1:
        body = body.replace(b"0\r\n\r\n", b"0\r\n" + rng.choice(TRAILERS) + b"\r\n\r\n", 1)
    else:
        body = rng.choice([body[:-2], body + b"\r\n", body.replace(b"hello\r\n", b"hello"), body + b"junk"])
    return _join(lines, sep, body)


def junk_byte(rng, data):
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice(JUNK) + data[i:]


def truncate_or_append(rng, data):
    if rng.random() < 0.5:
        return data[:rng.randrange(len(data) + 1)]
    return data + rng.choice(SEEDS[:4] + [b"GARBAGE\r\n\r\n", b"\r\n", b"GET /x HTTP/1.1\r\n\r\n"])


def body_length(rng, data):
    lines, sep, body = _split(data)
    lines = [ln for ln in lines if not ln.lower().startswith(b"content-length")]
    lines.append(b"Content-Length: %d" % max(0, len(body) + rng.choice([-3, -1, 1, 5])))
    return _join(lines, sep, body)


MUTATIONS = [line_ends, add_field, add_field, dup_or_drop_field, field_whitespace, request_line, chunking,
             chunking, junk_byte, truncate_or_append, body_length]


# -- readings and buckets ------------------------------------------------------------------------

class Reading:
    """What one server made of one input: answers (status per response) and, for each
    2xx, the app's reading reduced to the fields compared."""

    def __init__(self, got):
        self.statuses = got.statuses()
        self.readings = [self.reduce(r.seen()) for r in got.responses if 200 <= r.status < 300]

    @staticmethod
    def reduce(seen):
        if seen is None:
            return {"body": "<not the echo app's JSON>"}
        # a dechunked body's length and coding, and ", " or "," between joined lines: choices
        headers = {k: re.sub(r",[ \t]+", ",", v) for k, v in seen["headers"].items()
                   if k not in ("CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING")}
        host = headers.pop("HTTP_HOST", None)
        forwarded = {k: headers.pop(k) for k in sorted(headers) if k.startswith("HTTP_X_FORWARDED_")}
        path = seen["path"]
        if (seen["method"] == "OPTIONS" and seen["uri"] == "*") or seen["method"] == "CONNECT":
            path = seen["uri"]      # pyfork's documented PATH_INFO '' for OPTIONS * and CONNECT
        return {"method": seen["method"], "target": (path, seen["query"]), "host": host,
                "forwarded": forwarded, "headers": headers, "body": seen["body"]}

    def answered(self):
        return len(self.readings)

    def summary(self):
        if not self.statuses:
            return "none"
        return "/".join("2xx" if 200 <= s < 300 else str(s) for s in self.statuses)


CRITICAL_FIELDS = ("requests", "body", "host", "forwarded")


def differing(a, b):
    """The fields in which pyfork's reading `a` differs from a peer's `b` (requests: the
    number of 2xx answers). When pyfork read the first requests alike and then refused
    one the peer answered, that is a refusal ("refused later"), not another reading."""
    out = set()
    for x, y in zip(a.readings, b.readings):
        out |= {k for k in x if x[k] != y.get(k)}
    if a.answered() < b.answered() and not out and len(a.statuses) > a.answered():
        return {"refused later"}
    if a.answered() != b.answered():
        out.add("requests")
    return out


def bucket(data, pyfork, others):
    """None when pyfork reads as some peer does; else the bucket's name."""
    diffs = {name: differing(pyfork, r) for name, r in others.items()}
    if any(not d for d in diffs.values()):
        return None
    p = pyfork.answered()
    peers_answered = [n for n, r in others.items() if r.answered()]
    if p and not peers_answered:
        kind = "pyfork answers, every peer refuses"
    elif not p and len(peers_answered) == len(others):
        kind = "pyfork refuses, every peer answers"
    elif not p:
        kind = "pyfork refuses, like some peers"
    else:
        common = set.intersection(*diffs.values())
        kind = "pyfork answers, reading differs: " + (",".join(sorted(common)) or "each peer differently")
    critical = p and all(d & set(CRITICAL_FIELDS) for d in diffs.values())
    why = explain(data) if len(pyfork.statuses) > p else None
    return ("CRITICAL " if critical else "") + kind + " [pyfork %s%s]" % (
        pyfork.summary(), ": " + why if why else "")


class _Log:
    """A log that keeps the reason of pyfork's last refusal."""
    why = None

    def debug(self, fmt, *args):
        if fmt.startswith("bad request"):
            self.why = args[-1]

    def exception(self, *args, **kw):
        pass

    info = warning = error = exception


class _Socket:
    def __init__(self, data):
        self.data = data

    def fileno(self):
        return 99

    def recv_into(self, buf, size=0, flags=0):
        data, self.data = self.data[:len(buf)], self.data[len(buf):]
        if not data and self.data is None:
            raise BlockingIOError
        buf[:len(data)] = data
        return len(data)

    def send(self, data, flags=0):
        return len(data)

    sendall = send

    def settimeout(self, t):
        pass

    def close(self):
        pass


def explain(data):
    """Why pyfork refuses `data`, in the words of its debug log (numbers and quoted values
    blanked so that one reason makes one bucket): the same code, run in this process."""
    from supervisor.serve import connection, context, wsgi    # the pyfork the fuzzer runs
    log = _Log()
    ctx = context.Context(app=lambda env, start: start("200 OK", []) or [b""], log=log,
                          clock=context.Clock(0.0, b""), view=memoryview(bytearray(65536)),
                          limit_line=4094, limit_fields=100, limit_field_size=8190, limit_body=0,
                          send_timeout=1.0)
    conn = connection.Connection(ctx, _Socket(data), wsgi.base_environ("pyfork"), True)
    while not conn.closed and conn.sock.data:
        conn.on_readable()
    if log.why is None:
        return None
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"|b'[^']*'", "'…'", log.why))


# -- running -------------------------------------------------------------------------------------

class Fleet:
    def __init__(self, python):
        self.servers = {}
        try:
            for kind in ("pyfork",) + PEERS:
                self.servers[kind] = peers.Peer(kind, python=python)
        except BaseException:
            self.stop()
            raise
        self.pool = concurrent.futures.ThreadPoolExecutor(len(self.servers))

    def read(self, data, timeout):
        futures = {k: self.pool.submit(peers.exchange, s.port, data, timeout) for k, s in self.servers.items()}
        return {k: Reading(f.result()) for k, f in futures.items()}

    def check_alive(self):
        dead = [k for k, s in self.servers.items() if not s.alive()]
        if dead:
            raise RuntimeError("server(s) died: %s" % ", ".join(dead))

    def stop(self):
        for s in self.servers.values():
            s.stop()


def classify(fleet, data, timeout):
    got = fleet.read(data, timeout)
    return bucket(data, got["pyfork"], {k: got[k] for k in PEERS}), got


def shrink(fleet, data, name, timeout, budget=80):
    """Remove lines, then byte runs, while the input stays in the same bucket."""
    def same(candidate):
        nonlocal budget
        if budget <= 0 or not candidate:
            return False
        budget -= 1
        return classify(fleet, candidate, timeout)[0] == name
    lines = data.split(b"\r\n")
    i = 1
    while i < len(lines):
        candidate = b"\r\n".join(lines[:i] + lines[i + 1:])
        if same(candidate):
            lines, data = lines[:i] + lines[i + 1:], candidate
        else:
            i += 1
    step = max(1, len(data) // 4)
    while step >= 1:
        i = 0
        while i < len(data):
            candidate = data[:i] + data[i + step:]
            if same(candidate):
                data = candidate
            else:
                i += step
        step //= 2
    return data


def inputs(rng, seeds, count):
    for _ in range(count):
        data = rng.choice(seeds)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data = rng.choice(MUTATIONS)(rng, data)
        yield data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="inputs to send (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--corpus", help="Gunicorn's repository: add its tests/requests/valid files as seeds")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds of silence that end a reading")
    parser.add_argument("--python", default=sys.executable, help="interpreter the servers run with")
    parser.add_argument("--json", help="also write the buckets here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    seeds = list(SEEDS)
    if args.corpus:
        seeds += [c["data"] for c in corpus.load(corpus.Source(args.corpus)) if c["kind"] == "valid"]
    fleet = Fleet(args.python)
    buckets = {}
    t0 = time.monotonic()
    try:
        for n, data in enumerate(inputs(rng, seeds, args.count), 1):
            name, got = classify(fleet, data, args.timeout)
            if name is not None:
                b = buckets.setdefault(name, {"count": 0, "example": data})
                b["count"] += 1
                if len(data) < len(b["example"]):
                    b["example"] = data
            if n % 250 == 0:
                fleet.check_alive()
                print("%d inputs, %d buckets, %.0fs" % (n, len(buckets), time.monotonic() - t0), file=sys.stderr)
        for name, b in buckets.items():
            b["example"] = shrink(fleet, b["example"], name, args.timeout)
            b["readings"] = {k: (r.summary(), r.readings) for k, r in classify(fleet, b["example"], args.timeout)[1].items()}
        fleet.check_alive()
    finally:
        fleet.stop()
    report(buckets, args)
    return 1 if any(name.startswith("CRITICAL") for name in buckets) else 0


def report(buckets, args):
    total = sum(b["count"] for b in buckets.values())
    print("\n# %d inputs (seed %d): %d where pyfork reads as no peer does, in %d buckets"
          % (args.count, args.seed, total, len(buckets)))
    print("\n| count | bucket |\n| ---: | --- |")
    for name, b in sorted(buckets.items(), key=lambda kv: -kv[1]["count"]):
        print("| %d | %s |" % (b["count"], name))
    for name, b in sorted(buckets.items(), key=lambda kv: -kv[1]["count"]):
        print("\n## %s (%d)\n  %r" % (name, b["count"], b["example"]))
        for server, (summary, readings) in b["readings"].items():
            print("  %-17s %-12s %s" % (server, summary, json.dumps(readings)[:300]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({k: {"count": b["count"], "example": b["example"].decode("latin-1"), "readings": b["readings"]}
                       for k, b in buckets.items()}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
