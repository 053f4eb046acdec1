#!/usr/bin/env python3
"""The Python cost of pyfork's request path alone, without the kernel: one keep-alive
GET (the benchmark's request) fed to a Connection whose socket is a stand-in that
returns the request bytes and swallows the response. Best of 7 rounds of 50,000. The
same is measured for scripts/floor.py's check-free WSGI server, for scale.

    python scripts/request_path.py
"""
import gc
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import floor  # noqa: E402
import hello  # noqa: E402
from supervisor.config import resolve  # noqa: E402
from supervisor.log import Log  # noqa: E402
from supervisor.serve import connection, worker, wsgi  # noqa: E402

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"


class StandInSocket:
    def fileno(self):
        return 99

    def recv_into(self, buf, size=0, flags=0):
        buf[:len(REQUEST)] = REQUEST
        return len(REQUEST)

    def send(self, data, flags=0):
        return len(data)

    def close(self):
        pass


class Listener:
    def getsockname(self):
        return ("127.0.0.1", 8000)


def main():
    cfg = resolve("hello:app", {}, {})
    w = worker.Worker(cfg, 0, 0, [], hello.app, None, Log("-", "critical"), 0, -1)
    w.clock.date = b"Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: pyfork\r\n"
    base = wsgi.listener_environ(wsgi.base_environ("pyfork"), Listener().getsockname())
    base.update(REMOTE_ADDR="127.0.0.1", REMOTE_PORT="50000")
    conn = connection.Connection(w.ctx, StandInSocket(), base, True)
    floor_conn = floor.WsgiConn(StandInSocket())
    buf = bytearray(65536)
    view = memoryview(buf)
    gc.freeze()
    print("%.2f us of Python per keep-alive request (best of 7 x 50,000)" % best_of(conn.on_readable))
    print("%.2f us for the check-free WSGI floor's path (scripts/floor.py --wsgi)"
          % best_of(lambda: floor.answer(floor_conn, buf, view)))


def best_of(one):
    best = float("inf")
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(50000):
            one()
        best = min(best, (time.perf_counter() - t0) / 50000)
    return best * 1e6


if __name__ == "__main__":
    main()
