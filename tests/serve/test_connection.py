"""supervisor/serve/connection.py without sockets or a Worker: bytes in, bytes out.

A Connection reads a frozen Context and a socket; here the socket is a stand-in that hands
out the reads of a table row and records what is sent (h11's tests/test_io.py is the
model). Each row says what the client sends, read by read, and what comes back: the
responses in order (status, the Connection header, the body), whether the server closed,
and how many requests on_readable reported answered (what the worker counts).

Also: a closed connection must die by refcount. The parser holds the connection's
callbacks and the connection holds bound methods of itself; close() breaks those cycles
so a worker serving many short connections never leaves them for the cyclic collector.
"""
import gc

import pytest

from supervisor.log import Log
from supervisor.serve import connection, wsgi
from supervisor.serve.connection import Connection
from supervisor.serve.context import Clock, Context

DATE = b"Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: pyfork\r\n"


def context(app, **kw):
    limits = dict(limit_line=4094, limit_fields=100, limit_field_size=8190, limit_body=0)
    limits.update(kw)
    return Context(app=app, log=Log("-", "critical"), clock=Clock(0.0, DATE), view=memoryview(bytearray(65536)),
                   send_timeout=1.0, **limits)


class StandInSocket:
    """Hands out one scripted read per recv (then nothing: EAGAIN), records what is sent."""

    def __init__(self, reads):
        self.reads = list(reads)
        self.sent = bytearray()
        self.closed = False

    def fileno(self):
        return 99

    def recv_into(self, buf, size=0, flags=0):
        if not self.reads:
            raise BlockingIOError
        data = self.reads.pop(0)
        buf[:len(data)] = data
        return len(data)

    def send(self, data, flags=0):
        self.sent += data
        return len(data)

    def sendall(self, data):
        self.sent += data

    def settimeout(self, t):
        pass

    def close(self):
        self.closed = True


def parse_responses(data):
    """The bytes sent -> [(status, Connection header or None, body)], framing as HTTP/1.1 does."""
    out = []
    data = bytes(data)
    while data:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, "a response head without its end: %r" % head
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v for k, _, v in (ln.partition(b": ") for ln in lines[1:])}
        if status == 100:
            out.append((100, None, b""))
            continue
        if headers.get(b"transfer-encoding") == b"chunked":
            body = b""
            while data:      # a stream cut short has no last chunk
                size, _, data = data.partition(b"\r\n")
                n = int(size, 16)
                body, data = body + data[:n], data[n + 2:]
                if n == 0:
                    break
        elif status in wsgi.NO_BODY:
            body = b""
        elif b"content-length" in headers:
            n = int(headers[b"content-length"])
            body, data = data[:n], data[n:]
        else:
            body, data = data, b""    # to the end of the connection (or no body)
        out.append((status, headers.get(b"connection"), body))
    return out


# -- the apps --------------------------------------------------------------------------------

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi " + environ["PATH_INFO"].encode()]


def echo(environ, start_response):
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Length", str(len(body))), ("X-Length", environ["CONTENT_LENGTH"])])
    return [body]


def fields(environ, start_response):
    body = " ".join(sorted(k for k in environ if k.startswith("HTTP_"))).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def stream(environ, start_response):
    start_response("200 OK", [])
    yield b"one "
    yield b"two"


def short(environ, start_response):
    start_response("200 OK", [("Content-Length", "10")])
    yield b"only5"


def long_body(environ, start_response):
    start_response("200 OK", [("Content-Length", "3")])
    return [b"abcdef"]


def no_content(environ, start_response):
    start_response("204 No Content", [])
    return [b"ignored"]


def legacy_write(environ, start_response):
    write = start_response("200 OK", [])
    write(b"legacy ")
    return [b"write"]


def raises(environ, start_response):
    raise RuntimeError("boom")


def raises_mid_body(environ, start_response):
    start_response("200 OK", [])
    yield b"partial"
    raise RuntimeError("boom")


def app_closes(environ, start_response):
    start_response("200 OK", [("Content-Length", "2"), ("X-Close", "x")])
    return [b"ok"]


GET = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
GET_B = b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
CLOSE = b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
OK_A = (200, None, b"hi /a")
OK_B = (200, None, b"hi /b")

# (id, app, context limits, reads, [(status, Connection header, body)], closed, answered)
CASES = [
    # keep-alive and pipelining
    ("keep-alive", hello, {}, [GET], [OK_A], False, 1),
    ("two reads, two requests", hello, {}, [GET, GET_B], [OK_A, OK_B], False, 2),
    ("pipelined in one read, in order", hello, {}, [GET + GET_B + GET], [OK_A, OK_B, OK_A], False, 3),
    ("pipelined, cut mid-head", hello, {}, [GET + GET_B[:9], GET_B[9:]], [OK_A, OK_B], False, 2),
    ("head in pieces", hello, {}, [GET[:5], GET[5:20], GET[20:]], [OK_A], False, 1),
    ("Connection: close", hello, {}, [CLOSE], [(200, b"close", b"hi /a")], True, 1),
    # after a closing response nothing more is read or answered (not even a 400)
    ("close drops what is pipelined behind", hello, {}, [CLOSE + GET_B], [(200, b"close", b"hi /a")], True, 1),
    ("HTTP/1.0 closes", hello, {}, [b"GET /a HTTP/1.0\r\n\r\n"], [(200, b"close", b"hi /a")], True, 1),
    ("HTTP/1.0 keep-alive", hello, {}, [b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"],
     [(200, b"keep-alive", b"hi /a")], False, 1),
    ("EOF mid-request never reaches the app", hello, {}, [GET[:10], b""], [], True, 0),
    # request bodies
    ("body", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"],
     [(200, None, b"abc")], False, 1),
    ("body in pieces", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc", b"def"],
     [(200, None, b"abcdef")], False, 1),
    ("chunked body", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"],
     [(200, None, b"abcde")], False, 1),
    ("100-continue", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", b"hi"],
     [(100, None, b""), (200, None, b"hi")], False, 1),
    ("body cut short", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", b""], [], True, 0),
    # refusals: answered, then closed so nothing can be smuggled behind them
    ("target too long", hello, {"limit_line": 10}, [b"GET /" + b"x" * 20 + b" HTTP/1.1\r\n\r\n"],
     [(414, b"close", b"414 Request-URI Too Long\n")], True, 0),
    ("too many fields", hello, {"limit_fields": 2}, [b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"],
     [(431, b"close", b"431 Request Header Fields Too Large\n")], True, 0),
    ("field too long", hello, {"limit_field_size": 20}, [b"GET / HTTP/1.1\r\nA: " + b"v" * 30 + b"\r\n\r\n"],
     [(431, b"close", b"431 Request Header Fields Too Large\n")], True, 0),
    ("head too large", hello, {"limit_line": 10, "limit_fields": 1, "limit_field_size": 10},
     [b"GET / HTTP/1.1\r\n", b"X" * 40], [(431, b"close", b"431 Request Header Fields Too Large\n")], True, 0),
    ("declared body over the limit", echo, {"limit_body": 5}, [b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n"],
     [(413, b"close", b"413 Request Entity Too Large\n")], True, 0),
    ("chunked body over the limit", echo, {"limit_body": 5},
     [b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n0\r\n\r\n"],
     [(413, b"close", b"413 Request Entity Too Large\n")], True, 0),
    ("unknown transfer coding", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"],
     [(501, b"close", b"501 Not Implemented\n")], True, 0),
    ("unknown expectation", echo, {}, [b"POST / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\nContent-Length: 1\r\n\r\nx"],
     [(417, b"close", b"417 Expectation Failed\n")], True, 0),
    ("HTTP/2.0 request line", hello, {}, [b"GET / HTTP/2.0\r\n\r\n"],
     [(505, b"close", b"505 HTTP Version Not Supported\n")], True, 0),
    ("garbage", hello, {}, [b"\x00\x01 nonsense\r\n\r\n"], [(400, b"close", b"400 Bad Request\n")], True, 0),
    ("Content-Length with Transfer-Encoding", echo, {},
     [b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
     [(400, b"close", b"400 Bad Request\n")], True, 0),
    ("two different Content-Lengths", echo, {},
     [b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"],
     [(400, b"close", b"400 Bad Request\n")], True, 0),
    ("a name with '_': dropped", fields, {}, [b"GET / HTTP/1.1\r\nHost: t\r\nX_A: 1\r\nX-B: 2\r\n\r\n"],
     [(200, None, b"HTTP_HOST HTTP_X_B")], False, 1),
    ("a name with '_', --header-map refuse: 400", fields, {"refuse_underscores": True},
     [b"GET / HTTP/1.1\r\nHost: t\r\nX_A: 1\r\n\r\n"], [(400, b"close", b"400 Bad Request\n")], True, 0),
    ("a good request, then a bad one", hello, {}, [GET + b"\x00bad\r\n\r\n"],
     [OK_A, (400, b"close", b"400 Bad Request\n")], True, 1),
    # response framing
    ("streamed on 1.1: chunked", stream, {}, [GET], [(200, None, b"one two")], False, 1),
    ("streamed on 1.0: to the close", stream, {}, [b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"],
     [(200, b"close", b"one two")], True, 1),
    ("write() callable: chunked", legacy_write, {}, [GET], [(200, None, b"legacy write")], False, 1),
    ("shorter than its Content-Length: closed", short, {}, [GET], [(200, None, b"only5")], True, 1),
    ("longer than its Content-Length: cut", long_body, {}, [GET + GET], [(200, None, b"abc")] * 2, False, 2),
    ("204 has no body", no_content, {}, [GET + GET], [(204, None, b"")] * 2, False, 2),
    ("app raises: 500, closed", raises, {}, [GET + GET_B], [(500, b"close", b"500 Internal Server Error\n")], True, 1),
    ("app raises mid-body: cut", raises_mid_body, {}, [GET], [(200, None, b"partial")], True, 1),
]


def exchange(app, limits, reads, keepalive=True):
    sock = StandInSocket(reads)
    conn = Connection(context(app, keepalive=keepalive, **limits), sock, wsgi.base_environ("pyfork"), True)
    while sock.reads and not conn.closed:
        conn.on_readable()
    return sock, conn, conn.ctx.meter.requests


@pytest.mark.parametrize("case, app, limits, reads, responses, closed, answered", CASES, ids=[c[0] for c in CASES])
def test_bytes_in_bytes_out(case, app, limits, reads, responses, closed, answered):
    sock, conn, n = exchange(app, limits, reads)
    assert parse_responses(sock.sent) == responses
    assert (conn.closed, sock.closed) == (closed, closed)
    assert n == answered


def test_head_has_no_body_but_its_length():
    sock, conn, n = exchange(hello, {}, [b"HEAD /a HTTP/1.1\r\nHost: t\r\n\r\n" + GET])
    head, _, rest = bytes(sock.sent).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 5" in head
    assert rest.startswith(b"HTTP/1.1 200 OK")      # the next response follows at once
    assert n == 2 and not conn.closed


def test_keepalive_off_closes_after_each_response():
    sock, conn, n = exchange(hello, {}, [GET + GET_B], keepalive=False)
    assert parse_responses(sock.sent) == [(200, b"close", b"hi /a")]
    assert conn.closed and n == 1


def test_date_comes_from_the_clock():
    sock, conn, n = exchange(hello, {}, [GET])
    assert DATE in bytes(sock.sent)


# -- a closed connection dies by refcount -------------------------------------------------------

class EndlessSocket(StandInSocket):
    """Returns the same request on every recv, swallows what is sent."""

    def __init__(self, request):
        super().__init__([])
        self.request = request

    def recv_into(self, buf, size=0, flags=0):
        buf[:len(self.request)] = self.request
        return len(self.request)


def list_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


POST = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
PARTIAL = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"   # the client went away


def live_connections():
    return sum(type(o) is connection.Connection for o in gc.get_objects())


# (app, the request each read returns, reads, requests answered): the server closes after
# a close request; a body cut short is closed by us after one read, as on the client's EOF
REFCOUNT = [
    (list_app, GET, 2, 2), (list_app, CLOSE, 1, 1), (legacy_write, GET, 2, 2), (echo, POST, 2, 2),
    (echo, PARTIAL, 1, 0),
]


@pytest.mark.parametrize("app, request_bytes, reads, answered", REFCOUNT,
                         ids=["keep-alive", "close", "write-callable", "body", "body-cut-short"])
def test_closed_connection_dies_by_refcount(app, request_bytes, reads, answered):
    ctx = context(app)
    gc.collect()
    before = live_connections()
    gc.disable()
    try:
        for _ in range(20):
            conn = Connection(ctx, EndlessSocket(request_bytes), wsgi.base_environ("pyfork"), True)
            for _ in range(reads):
                conn.on_readable()
            conn.close()
        del conn
        assert ctx.meter.requests == 20 * answered
        assert live_connections() == before
    finally:
        gc.enable()
