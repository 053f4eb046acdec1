#!/usr/bin/env python3
"""A closed-loop HTTP/1.1 load for the slow-app benchmark (scripts/bench.py --slow).

Like wrk: `conns` connections, each sending its next GET as soon as the previous response
arrived, for `duration` seconds, all from one selectors loop. Unlike wrk it tells request
kinds apart: with slow_every=10, every 10th request of a connection asks for /slow (the
phase differs per connection), and latencies are kept per kind, so the fast requests'
p99 can be read on its own. The phases are i % slow_every for connection i, or, with a
seed, drawn at random: one fixed pattern is one deterministic trajectory per server (its
fast p99 sits at 400 or 600 ms, run after run), so a comparison should sample several. A response with "Connection: close" (Gunicorn sync, or a
server sending clients back to the shared queue) is followed by a new connection, whose
connect time counts in the next request's latency.

    python scripts/slowload.py PORT [--conns 64] [--duration 8] [--slow-every 0] [--seed N]
"""
import argparse
import json
import random
import selectors
import socket
import time

HOST = "127.0.0.1"


class Client:
    __slots__ = ("sock", "buf", "sent_at", "kind", "count", "phase")

    def __init__(self, phase):
        self.sock = None
        self.buf = b""
        self.sent_at = 0.0
        self.kind = "fast"
        self.count = 0
        self.phase = phase


def _request(path):
    return b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path.encode(), HOST.encode())


def _complete(buf):
    """-> (response length, server closes) once a whole response is in buf, else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buf[:end].lower()
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
    if len(buf) < end + 4 + length:
        return None
    return end + 4 + length, b"connection: close" in head or head.startswith(b"http/1.0")


def phases(conns, slow_every, seed=None):
    """Each connection's phase: where in its cycle of slow_every requests the slow one falls."""
    if not slow_every:
        return [0] * conns
    if seed is None:
        return [i % slow_every for i in range(conns)]
    rnd = random.Random(seed)
    return [rnd.randrange(slow_every) for _ in range(conns)]


def drive(port, conns, duration, slow_every=0, seed=None):
    """-> {"fast": [seconds], "slow": [seconds], "errors": n, "seconds": elapsed}."""
    sel = selectors.DefaultSelector()
    lat = {"fast": [], "slow": []}
    errors = 0
    clients = [Client(phase) for phase in phases(conns, slow_every, seed)]

    def send(c, now):
        c.count += 1
        c.kind = "slow" if slow_every and (c.count + c.phase) % slow_every == 0 else "fast"
        if c.sock is None:
            c.sock = socket.socket()
            c.sock.setblocking(False)
            c.sock.connect_ex((HOST, port))
            c.buf = b""
            sel.register(c.sock, selectors.EVENT_WRITE, c)
            c.sent_at = now
            return
        c.sent_at = now
        c.sock.send(_request("/" + c.kind if c.kind == "slow" else "/"))

    def drop(c):
        sel.unregister(c.sock)
        c.sock.close()
        c.sock = None

    t0 = time.monotonic()
    end = t0 + duration
    for c in clients:
        send(c, t0)
    while True:
        now = time.monotonic()
        if now >= end:
            break
        for key, events in sel.select(end - now):
            c = key.data
            now = time.monotonic()
            try:
                if events & selectors.EVENT_WRITE:        # connected: now send
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    c.sock.send(_request("/" + c.kind if c.kind == "slow" else "/"))
                    continue
                data = c.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                errors += 1
                drop(c)
                c.count -= 1
                send(c, now)
                continue
            c.buf += data
            done = _complete(c.buf)
            if done is None:
                continue
            size, closes = done
            lat[c.kind].append(now - c.sent_at)
            c.buf = c.buf[size:]
            if closes:
                drop(c)
            send(c, now)
    for c in clients:
        if c.sock is not None:
            c.sock.close()
    sel.close()
    return dict(lat, errors=errors, seconds=time.monotonic() - t0)


def summary(latencies, seconds):
    """-> {"requests", "rps", "p50_ms", "p99_ms", "max_ms"}."""
    xs = sorted(latencies)
    if not xs:
        return {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    pick = lambda q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000   # noqa: E731
    return {"requests": len(xs), "rps": len(xs) / seconds, "p50_ms": pick(0.5), "p99_ms": pick(0.99),
            "max_ms": xs[-1] * 1000}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("port", type=int)
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--duration", type=float, default=8)
    p.add_argument("--slow-every", type=int, default=0)
    p.add_argument("--seed", type=int, default=None, help="draw the phases at random with this seed")
    a = p.parse_args()
    r = drive(a.port, a.conns, a.duration, a.slow_every, a.seed)
    print(json.dumps({kind: summary(r[kind], r["seconds"]) for kind in ("fast", "slow")} | {"errors": r["errors"]}))


if __name__ == "__main__":
    main()
