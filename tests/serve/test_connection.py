"""supervisor/serve/connection.py without sockets: a closed connection must die by refcount.

The parser holds the connection's callbacks and the connection holds bound methods of
itself; close() breaks those cycles so that a worker serving many short connections
never leaves them for the cyclic collector (the issue's "breaking reference cycles when a
connection closes"). Checked with the collector off, counting live Connection objects.
"""
import gc

import pytest

from supervisor.serve import connection, worker, wsgi
from supervisor.config import resolve
from supervisor.log import Log


class StandInSocket:
    """Returns one request per recv, swallows what is sent."""

    def __init__(self, request):
        self.request = request

    def fileno(self):
        return 99

    def recv_into(self, buf, size=0, flags=0):
        buf[:len(self.request)] = self.request
        return len(self.request)

    def send(self, data, flags=0):
        return len(data)

    def close(self):
        pass


def list_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def write_app(environ, start_response):
    write = start_response("200 OK", [])
    write(b"legacy ")
    return [b"write"]


def post_app(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
PARTIAL = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"   # the client went away


def live_connections():
    return sum(type(o) is connection.Connection for o in gc.get_objects())


# (app, the request each read returns, reads, requests answered): the server closes after
# a close request; a body cut short is closed by us after one read, as on the client's EOF
CASES = [
    (list_app, GET, 2, 2), (list_app, CLOSE, 1, 1), (write_app, GET, 2, 2), (post_app, POST, 2, 2),
    (post_app, PARTIAL, 1, 0),
]


@pytest.mark.parametrize("app, request_bytes, reads, answered", CASES,
                         ids=["keep-alive", "close", "write-callable", "body", "body-cut-short"])
def test_closed_connection_dies_by_refcount(app, request_bytes, reads, answered):
    cfg = resolve("x:app", {}, {})
    w = worker.Worker(cfg, 0, 0, [], app, None, Log("-", "critical"), 0, -1)
    w.date_server = b"Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: pyfork\r\n"
    gc.collect()
    before = live_connections()
    gc.disable()
    try:
        for _ in range(20):
            conn = connection.Connection(w, StandInSocket(request_bytes), wsgi.base_environ("pyfork"), True)
            for _ in range(reads):
                conn.on_readable()
            conn.close()
        del conn
        assert w.requests == 20 * answered
        assert live_connections() == before
    finally:
        gc.enable()
