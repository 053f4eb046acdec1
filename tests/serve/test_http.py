"""End-to-end HTTP/WSGI tests: a real `pyfork run` per test, spoken to over raw sockets.

Every test that sends a request also checks that the worker that answered is the SAME
process afterwards (`/pid` before and after): bad input and broken apps must cost a
response, never a worker. Apps live in tests/apps/http_*.py; the compliant ones run
under wsgiref.validate.validator so a server-side PEP 3333 violation shows up as a 500.
"""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from conftest import APPS, Server, free_port, get, status_of, stop_all, wait_for

T = 3.0   # socket timeout for anything that should be answered at once


# -- a tiny HTTP/1.1 client that shows exactly what went over the wire -------------------

class Resp:
    def __init__(self, status, reason, headers, body, raw_bytes):
        self.status = status
        self.reason = reason
        self.headers = headers           # [(name, value)] as received
        self.body = body                 # decoded (de-chunked) body
        self.raw = raw_bytes             # the exact bytes of this response

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ",".join(values) if values else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Resp %s %r>" % (self.status, self.raw[:300])


class Client:
    """One connection; reads responses one at a time from a buffer."""

    def __init__(self, port, timeout=T, sock=None):
        self.sock = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _more(self):
        if self.eof:
            return False
        try:
            b = self.sock.recv(65536)
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def _take(self, n):
        while len(self.buf) < n:
            if not self._more():
                raise AssertionError("connection ended after %r, wanted %d bytes" % (self.buf[:200], n))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _line(self):
        while b"\r\n" not in self.buf:
            if not self._more():
                raise AssertionError("connection ended mid-line: %r" % self.buf[:200])
        i = self.buf.index(b"\r\n")
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def response(self, head=False):
        """Read one response. head=True: the request was HEAD (no body whatever the headers)."""
        consumed = []
        line = self._line()
        consumed.append(line + b"\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)$", line)
        assert m, "not a status line: %r" % line
        status = int(m.group(1))
        headers = []
        while True:
            h = self._line()
            consumed.append(h + b"\r\n")
            if not h:
                break
            name, _, value = h.partition(b":")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        r = Resp(status, m.group(2).decode("latin-1"), headers, b"", b"")
        te = (r.header("Transfer-Encoding") or "").lower()
        if head or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif te == "chunked":
            parts = []
            while True:
                size_line = self._line()
                consumed.append(size_line + b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                data = self._take(size + 2)
                consumed.append(data)
                assert data.endswith(b"\r\n"), "chunk not followed by CRLF: %r" % data[-20:]
                if size == 0:
                    break
                parts.append(data[:-2])
            body = b"".join(parts)
        elif r.header("Content-Length") is not None:
            body = self._take(int(r.header("Content-Length")))
            consumed.append(body)
        else:
            while self._more():
                pass
            body = bytes(self.buf)
            self.buf.clear()
            consumed.append(body)
        r.body = body
        r.raw = b"".join(consumed)
        return r

    def closed_by_server(self, timeout=T):
        """True if the server closes the connection (EOF/RST) within `timeout`, with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while self._more():
                pass
        except socket.timeout:
            return False
        return True

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def exchange(port, data, timeout=T, shut=False):
    """Send raw bytes; -> (bytes received, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        closed = False
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    closed = True
                    break
                chunks.append(b)
        except ConnectionResetError:
            closed = True
        except socket.timeout:
            pass
        return b"".join(chunks), closed


def req(method, path, headers=(), body=b"", version="1.1", host=True):
    lines = ["%s %s HTTP/%s" % (method, path, version)]
    if host:
        lines.append("Host: test")
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def pid_of(port):
    status, _, body = get(port, "/pid")
    assert status == 200, body
    return int(body)


def start(server, app="http_app:app", *flags, tmp_path=None, **kw):
    """Start a server whose app records its calls to tmp_path/record; -> (server, record path, pid)."""
    env = kw.pop("env", {})
    record = None
    if tmp_path is not None:
        record = str(tmp_path / "record")
        open(record, "w").close()
        env["HTTP_TEST_RECORD"] = record
    s = server(app, *flags, env=env, **kw)
    return s, record, pid_of(s.port)


_SHARED = {}    # app -> Server: one per module run, for the tests that only send requests


@pytest.fixture(scope="module", autouse=True)
def shared_servers():
    """Started on first use by shared(), stopped (and checked for leftovers) after the module."""
    yield
    servers = list(_SHARED.values())
    _SHARED.clear()
    stop_all(servers)


def shared(app="http_app:app"):
    """A server for a test that sends one request per connection (no flags, no record file):
    one per app for the module, as a process per test made this file the suite's slowest.
    The worker must still be the one the module started (assert_same_worker checks it).
    Tests of keep-alive keep a server of their own: on a shared one, an earlier test's
    connection closing beside a request is someone waiting, and fair order may answer
    that request with Connection: close."""
    s = _SHARED.get(app)
    if s is None or s.proc.poll() is not None:
        s = _SHARED[app] = Server(app)
    return s, None, pid_of(s.port)


def recorded(path):
    with open(path) as f:
        return f.read().splitlines()


def assert_same_worker(s, pid):
    assert pid_of(s.port) == pid, "a different worker answered: the old one died\n" + s.log()
    assert s.worker_pids() == [pid]


# -- environ ----------------------------------------------------------------------------

def test_environ_request_line_and_addresses(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("GET", "/env/caf%C3%A9/x%20y?a=1&b=%20&c"))
        r = c.response()
        local_port = c.sock.getsockname()[1]
    assert r.status == 200, r
    e = r.json()
    assert e["REQUEST_METHOD"] == "GET"
    assert e["SCRIPT_NAME"] == ""
    assert e["PATH_INFO"] == "/env/caf\xc3\xa9/x y"      # percent-decoded bytes, as latin-1
    assert e["QUERY_STRING"] == "a=1&b=%20&c"             # left encoded
    assert e["SERVER_NAME"] == "127.0.0.1"
    assert e["SERVER_PORT"] == str(s.port)
    assert e["REMOTE_ADDR"] == "127.0.0.1"
    assert e["REMOTE_PORT"] == str(local_port)
    assert e["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert e["wsgi.url_scheme"] == "http"
    assert e["wsgi.input_terminated"] is True
    assert e["wsgi.version"] == [1, 0]
    assert e["wsgi.multiprocess"] is True and e["wsgi.multithread"] is False
    assert e["wsgi.run_once"] is False
    assert e["http"]["HTTP_HOST"] == "test"
    assert_same_worker(s, pid)


def test_environ_method_and_http10_protocol(server):
    s, _, pid = shared()
    data, closed = exchange(s.port, req("DELETE", "/env", version="1.0"))
    assert status_of(data) == 200, data
    assert closed
    e = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert e["REQUEST_METHOD"] == "DELETE"
    assert e["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert_same_worker(s, pid)


def test_environ_repeated_headers_joined_with_comma(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("GET", "/env", [("X-Multi", "a"), ("X-Other", "o"), ("x-multi", "b"), ("X-MULTI", "c d")]))
        r = c.response()
    assert r.status == 200, r
    h = r.json()["http"]
    assert h["HTTP_X_MULTI"] == "a,b,c d"
    assert h["HTTP_X_OTHER"] == "o"
    assert_same_worker(s, pid)


def test_environ_content_type_and_length_unprefixed(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("POST", "/env", [("Content-Type", "application/x-thing; q=1"), ("Content-Length", "5")], b"hello"))
        r = c.response()
    assert r.status == 200, r
    e = r.json()
    assert e["CONTENT_TYPE"] == "application/x-thing; q=1"
    assert e["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in e["http"] and "HTTP_CONTENT_LENGTH" not in e["http"]
    assert e["body"] == "hello"
    assert_same_worker(s, pid)


INPUT_BODY = b"line1\nline2\nline3"
INPUT_EXPECTED = {
    "read": ["line1\nline2\nline3"],
    "readn": ["lin", "e1\nl", "ine2\nline3", ""],
    "readline": ["line1\n", "li", "ne2\n", "line3"],
    "readlines": ["line1\n", "line2\n", "line3"],
    "iter": ["line1\n", "line2\n", "line3"],
}


@pytest.mark.parametrize("mode", sorted(INPUT_EXPECTED))
def test_wsgi_input_methods(server, mode):
    # read() without a size is legal PEP 3333 but the validator forbids it: run that one bare
    app = "http_app:unvalidated" if mode == "read" else "http_app:app"
    s, _, pid = shared(app)
    with Client(s.port) as c:
        c.send(req("POST", "/input?mode=" + mode, [("Content-Length", str(len(INPUT_BODY)))], INPUT_BODY))
        r = c.response()
    assert r.status == 200, r
    assert r.json() == INPUT_EXPECTED[mode]
    assert_same_worker(s, pid)


def test_url_scheme_from_trusted_proxy(server):
    s, _, pid = start(server)     # default --forwarded-allow-ips: 127.0.0.1
    with Client(s.port) as c:
        c.send(req("GET", "/env", [("X-Forwarded-Proto", "https")]))
        https = c.response()
        c.send(req("GET", "/env"))
        plain = c.response()
    assert https.status == 200 and plain.status == 200
    assert https.json()["wsgi.url_scheme"] == "https"
    assert plain.json()["wsgi.url_scheme"] == "http"
    assert_same_worker(s, pid)


@pytest.mark.parametrize("order", ["connection-first", "connection-last"])
def test_framing_headers_beside_connection_close_still_checked(server, order):
    """A Connection header alone takes a lighter path than the framing headers; with
    both, whichever comes first, the framing checks still run."""
    s, _, pid = shared()
    for extra, check in (
            (("X-Forwarded-Proto", "https"), lambda e: e["wsgi.url_scheme"] == "https"),
            (("Content-Length", "3"), lambda e: e["body"] == "abc")):
        headers = [("Connection", "close"), extra]
        if order == "connection-last":
            headers.reverse()
        with Client(s.port) as c:
            c.send(req("POST", "/env", headers, b"abc" if extra[0] == "Content-Length" else b""))
            r = c.response()
            assert c.closed_by_server()
        assert r.status == 200 and check(r.json()), (headers, r)
    assert_same_worker(s, pid)


def test_connect_reaches_the_app_without_a_path_then_closes(server):
    """CONNECT's authority-form target is not a path (wsgiref's validator would refuse
    it as PATH_INFO); llhttp treats CONNECT as an upgrade, so the connection closes."""
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("CONNECT", "example.com:443"))
        r = c.response()
        assert c.closed_by_server()
    assert r.status == 200, r
    e = r.json()
    assert (e["REQUEST_METHOD"], e["PATH_INFO"], e["RAW_URI"]) == ("CONNECT", "", "example.com:443")
    assert_same_worker(s, pid)


def test_underscore_header_cannot_pose_as_dashed_one(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("POST", "/env", [("X_Forwarded_Proto", "https"), ("Content_Type", "evil/x"),
                                    ("Content-Length", "2")], b"ok"))
        r = c.response()
    assert r.status == 200, r
    e = r.json()
    assert e["wsgi.url_scheme"] == "http"
    assert e["CONTENT_TYPE"] is None and "HTTP_X_FORWARDED_PROTO" not in e["http"]
    assert e["body"] == "ok"
    assert_same_worker(s, pid)


def test_url_scheme_ignored_from_untrusted_peer(server):
    s, _, pid = start(server, "http_app:app", "--forwarded-allow-ips", "10.0.0.1")
    with Client(s.port) as c:
        c.send(req("GET", "/env", [("X-Forwarded-Proto", "https")]))
        r = c.response()
    assert r.status == 200, r
    assert r.json()["wsgi.url_scheme"] == "http"
    assert_same_worker(s, pid)


# -- connections ------------------------------------------------------------------------

def test_request_split_across_packets(server):
    s, _, pid = shared()
    data = req("POST", "/env/split-target?x=1", [("X-Long", "v" * 50), ("Content-Length", "10")], b"0123456789")
    with Client(s.port) as c:
        for piece in (data[:7], data[7:25], data[25:60], data[60:-4], data[-4:]):
            c.send(piece)
            time.sleep(0.05)
        r = c.response()
    assert r.status == 200, r
    e = r.json()
    assert e["PATH_INFO"] == "/env/split-target" and e["QUERY_STRING"] == "x=1"
    assert e["http"]["HTTP_X_LONG"] == "v" * 50 and e["body"] == "0123456789"
    assert_same_worker(s, pid)


def test_keepalive_two_requests_on_one_connection(server):
    s, _, pid = start(server)
    with Client(s.port) as c:
        c.send(req("GET", "/pid"))
        first = c.response()
        c.send(req("GET", "/env?second"))
        second = c.response()
    assert first.status == 200 and int(first.body) == pid
    assert second.status == 200 and second.json()["QUERY_STRING"] == "second"
    assert first.header("Connection") is None or first.header("Connection").lower() != "close"
    assert_same_worker(s, pid)


# The validator returns an iterator wrapper, never a list, so tests of framing also run the
# bare app: its list bodies take the server's separate list fast path.
BOTH = pytest.mark.parametrize("app", ["http_app:app", "http_app:unvalidated"], ids=["validated", "list-path"])


@BOTH
def test_pipelined_requests_answered_in_order(server, app):
    s, _, pid = start(server, app)
    with Client(s.port) as c:
        c.send(req("GET", "/env?n=1") + req("POST", "/env?n=2", [("Content-Length", "3")], b"two")
               + req("GET", "/env?n=3", [("Connection", "close")]))
        rs = [c.response() for _ in range(3)]
        assert c.closed_by_server()
    assert [r.status for r in rs] == [200, 200, 200], rs
    assert [r.json()["QUERY_STRING"] for r in rs] == ["n=1", "n=2", "n=3"]
    assert rs[1].json()["body"] == "two"
    assert rs[2].header("Connection").lower() == "close"
    assert_same_worker(s, pid)


def test_http10_without_keepalive_closes(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("GET", "/pid", version="1.0", host=False))
        r = c.response()
        assert c.closed_by_server()
    assert r.status == 200 and int(r.body) == pid
    assert (r.header("Connection") or "").lower() != "keep-alive"
    assert_same_worker(s, pid)


# (request version, its Connection header) -> (SERVER_PROTOCOL, connection closed after,
# the response's Connection header). Requests with no Connection header that llhttp keeps
# alive skip get_http_version() (connection.py): every other row takes the full path.
PROTOCOL_CASES = [
    ("1.1", None, "HTTP/1.1", False, None),
    ("1.1", "close", "HTTP/1.1", True, "close"),
    ("1.1", "Close", "HTTP/1.1", True, "close"),
    ("1.1", "keep-alive", "HTTP/1.1", False, None),
    ("1.0", None, "HTTP/1.0", True, "close"),
    ("1.0", "keep-alive", "HTTP/1.0", False, "keep-alive"),
    ("1.0", "close", "HTTP/1.0", True, "close"),
]


@BOTH
def test_protocol_and_keepalive_by_version_and_connection_header(server, app):
    s, _, pid = start(server, app)
    for version, connection, protocol, closes, says in PROTOCOL_CASES:
        case = (version, connection)
        with Client(s.port) as c:
            c.send(req("GET", "/env", [("Connection", connection)] if connection else [], version=version))
            r = c.response()
            assert r.status == 200, (case, r)
            assert r.json()["SERVER_PROTOCOL"] == protocol, case
            assert (r.header("Connection") or "").lower() == (says or ""), case
            if closes:
                assert c.closed_by_server(), case
            else:      # still open: a second request is answered on it
                c.send(req("GET", "/env?again", [("Connection", "close")], version=version))
                assert c.response().json()["QUERY_STRING"] == "again", case
    # HTTP/2.0 asking for keep-alive is kept alive by llhttp's rule, and still refused
    data, closed = exchange(s.port, req("GET", "/", [("Connection", "keep-alive")], version="2.0"))
    assert status_of(data) == 505 and closed, data
    assert_same_worker(s, pid)


def test_idle_keepalive_connection_closed_after_keepalive_seconds(server):
    s, _, pid = start(server, "http_app:app", "--keep-alive", "1")
    with Client(s.port) as c:
        c.send(req("GET", "/pid"))
        assert c.response().status == 200
        t0 = time.monotonic()
        assert c.closed_by_server(timeout=4.0), "idle connection not closed"
        idle = time.monotonic() - t0
    assert 0.8 <= idle <= 3.0, idle
    assert_same_worker(s, pid)


def test_expect_100_continue(server):
    s, _, pid = start(server)
    with Client(s.port) as c:
        c.send(req("POST", "/env", [("Content-Length", "11"), ("Expect", "100-continue")]))
        interim = c.response()             # must come before we send any body
        assert interim.status == 100 and interim.raw == b"HTTP/1.1 100 Continue\r\n\r\n", interim
        c.send(b"hello world")
        r = c.response()
    assert r.status == 200, r
    assert r.json()["body"] == "hello world"
    assert_same_worker(s, pid)


# -- bodies and framing -------------------------------------------------------------------

def test_chunked_request_body_decoded(server):
    s, _, pid = start(server)
    body = b"3\r\nhel\r\n6;ext=1\r\nlo wor\r\n2\r\nld\r\n0\r\n\r\n"
    with Client(s.port) as c:
        c.send(req("POST", "/env", [("Transfer-Encoding", "chunked")], body))
        r = c.response()
        c.send(req("GET", "/pid"))          # the connection is still in step
        assert int(c.response().body) == pid
    assert r.status == 200, r
    assert r.json()["body"] == "hello world"
    assert_same_worker(s, pid)


def test_streamed_response_chunked_on_http11(server):
    s, _, pid = start(server)
    with Client(s.port) as c:
        c.send(req("GET", "/stream"))
        r = c.response()
        c.send(req("GET", "/pid"))
        after = c.response()
    assert r.status == 200, r
    assert r.header("Transfer-Encoding").lower() == "chunked"
    assert r.header("Content-Length") is None
    assert r.body == b"abbccc"
    assert r.raw.endswith(b"\r\n0\r\n\r\n")
    assert b"\r\n0\r\n\r\n" not in r.raw[:-7]    # the empty yield did not end the body early
    assert int(after.body) == pid
    assert_same_worker(s, pid)


def test_streamed_response_on_http10_closes_instead(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("GET", "/stream", version="1.0"))
        r = c.response()      # no length, no chunking: the body runs to the close
        assert c.eof
    assert r.status == 200, r
    assert r.header("Transfer-Encoding") is None and r.header("Content-Length") is None
    assert r.body == b"abbccc"
    assert_same_worker(s, pid)


@BOTH
def test_head_has_headers_but_no_body(server, app):
    s, _, pid = start(server, app)     # three pipelined requests: a server of its own (see shared)
    with Client(s.port) as c:
        c.send(req("HEAD", "/hello") + req("HEAD", "/stream") + req("GET", "/pid"))
        fixed = c.response(head=True)
        streamed = c.response(head=True)
        after = c.response()
    assert fixed.status == 200 and fixed.header("Content-Length") == "13"
    assert fixed.body == b"" and fixed.raw.endswith(b"\r\n\r\n")
    assert streamed.status == 200
    assert int(after.body) == pid, "a HEAD response carried a body: %r" % after
    assert_same_worker(s, pid)


@BOTH
@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server, code, app):
    s, _, pid = start(server, app)
    with Client(s.port) as c:
        c.send(req("GET", "/status?code=%d" % code) + req("GET", "/pid"))
        r = c.response()
        after = c.response()
    assert r.status == code, r
    assert r.header("Transfer-Encoding") is None
    assert r.header("Content-Length") in (None, "0")
    assert int(after.body) == pid, "the %d response carried a body: %r" % (code, after.raw)
    assert b"must never be sent" not in r.raw + after.raw
    assert_same_worker(s, pid)


@pytest.mark.parametrize("app", [
    "http_app:app",
    "http_app:unvalidated",
], ids=["validated", "list-path"])
def test_write_callable_body_precedes_iterable(server, app):
    s, _, pid = start(server, app)
    with Client(s.port) as c:
        c.send(req("GET", "/write") + req("GET", "/pid"))
        r = c.response()
        after = c.response()
    assert r.status == 200, r
    assert r.body == b"hello world"
    assert int(after.body) == pid
    assert_same_worker(s, pid)


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.bin"
    data = os.urandom(1 << 20) + b"tail"
    path.write_bytes(data)
    return str(path), data


def test_file_wrapper_sends_whole_file(server, big_file):
    # bare app: under the validator the server cannot see the wrapper (no sendfile path)
    path, data = big_file
    s, _, pid = shared("http_app:unvalidated")
    r = requests.get("http://127.0.0.1:%d/file" % s.port, params={"path": path}, timeout=T)
    assert r.status_code == 200
    assert r.headers.get("Content-Length") == str(len(data))
    assert r.headers.get("Transfer-Encoding") is None
    assert len(r.content) == len(data) and r.content == data
    assert_same_worker(s, pid)


def test_file_wrapper_slow_reader_gets_whole_file(server, tmp_path):
    # more than loopback's socket buffers hold (~3 MB here), so sendfile meets a full buffer
    path = str(tmp_path / "huge.bin")
    data = os.urandom(8 << 20)
    with open(path, "wb") as f:
        f.write(data)
    s, _, pid = shared("http_app:unvalidated")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(T)
    sock.connect(("127.0.0.1", s.port))
    with Client(s.port, sock=sock) as c:
        c.send(req("GET", "/file?path=" + path))
        time.sleep(0.5)                       # the server's socket buffer fills meanwhile
        r = c.response()
    assert r.status == 200, r
    assert r.header("Content-Length") == str(len(data))
    assert r.body == data
    assert_same_worker(s, pid)


def test_large_upload_spooled_intact(server):
    s, _, pid = shared()
    body = os.urandom(3 * (1 << 20) + 123)        # > SPOOL_BYTES: goes through a temp file
    r = requests.post("http://127.0.0.1:%d/hash" % s.port, data=body, timeout=10)
    assert r.status_code == 200, r.text
    assert r.text == "%d %s" % (len(body), hashlib.sha256(body).hexdigest())
    assert_same_worker(s, pid)


# -- bad input --------------------------------------------------------------------------

LIMITS = ("--limit-request-line", "100", "--limit-request-fields", "5",
          "--limit-request-field_size", "100", "--limit-request-body", "1000")


def rejected(server, tmp_path, data, status, *flags):
    """Send `data` raw; assert one `status` response with Connection: close, the connection
    closed, the app never called, and the same worker serving afterwards."""
    s, record, pid = start(server, "http_app:app", *flags, tmp_path=tmp_path)
    before = recorded(record)
    got, closed = exchange(s.port, data)
    assert status_of(got) == status, got
    assert got.count(b"HTTP/1.") == 1, "more than one response: %r" % got
    head = got.split(b"\r\n\r\n", 1)[0].lower()
    assert b"\r\nconnection: close" in head, got
    assert closed, "connection left open after %d" % status
    assert recorded(record) == before, "the app was called"
    assert_same_worker(s, pid)
    return s, got


def test_malformed_request_line_400(server, tmp_path):
    rejected(server, tmp_path, b"THIS IS NOT HTTP\r\n\r\n", 400)


def test_bad_header_name_400(server, tmp_path):
    rejected(server, tmp_path, b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400)


def test_request_line_too_long_414(server, tmp_path):
    rejected(server, tmp_path, req("GET", "/" + "a" * 300), 414, *LIMITS)


def test_too_many_headers_431(server, tmp_path):
    headers = [("X-H%d" % i, "v") for i in range(10)]
    rejected(server, tmp_path, req("GET", "/", headers), 431, *LIMITS)


def test_header_field_too_large_431(server, tmp_path):
    rejected(server, tmp_path, req("GET", "/", [("X-Big", "v" * 300)]), 431, *LIMITS)


def test_body_too_large_content_length_413(server, tmp_path):
    rejected(server, tmp_path, req("POST", "/", [("Content-Length", "2000")], b"x" * 2000), 413, *LIMITS)


def test_body_too_large_chunked_413(server, tmp_path):
    body = b"".join(b"200\r\n" + b"x" * 512 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n"
    rejected(server, tmp_path, req("POST", "/", [("Transfer-Encoding", "chunked")], body), 413, *LIMITS)


def test_body_within_limit_accepted(server):
    s, _, pid = start(server, "http_app:app", *LIMITS)
    with Client(s.port) as c:
        c.send(req("POST", "/env", [("Content-Length", "1000")], b"y" * 1000))
        r = c.response()
    assert r.status == 200 and r.json()["body"] == "y" * 1000
    assert_same_worker(s, pid)


def test_unsupported_transfer_encoding_501(server, tmp_path):
    rejected(server, tmp_path, req("POST", "/", [("Transfer-Encoding", "gzip, chunked")], b"abc"), 501)


def test_chunked_not_the_final_coding_400(server, tmp_path):
    # RFC 9112 6.3: the body length cannot be known; the server MUST answer 400 and close
    rejected(server, tmp_path, req("POST", "/", [("Transfer-Encoding", "gzip")], b"abc"), 400)


@pytest.mark.parametrize("version", ["1.2", "2.0"])
def test_unsupported_http_version_505(server, tmp_path, version):
    rejected(server, tmp_path, req("GET", "/", version=version), 505)


def test_content_length_with_transfer_encoding_400(server, tmp_path):
    rejected(server, tmp_path, req("POST", "/", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
                                   b"5\r\nhello\r\n0\r\n\r\n"), 400)


def test_conflicting_content_lengths_400(server, tmp_path):
    rejected(server, tmp_path, req("POST", "/", [("Content-Length", "5"), ("Content-Length", "6")], b"hello!"), 400)


@pytest.mark.parametrize("value", ["+5", "abc"])
def test_invalid_content_length_400(server, tmp_path, value):
    rejected(server, tmp_path, req("POST", "/", [("Content-Length", value)], b"hello"), 400)


def test_smuggled_request_not_answered(server, tmp_path):
    hidden = req("GET", "/smuggled")
    data = req("POST", "/front", [("Content-Length", str(len(b"0\r\n\r\n") + len(hidden))),
                                  ("Transfer-Encoding", "chunked")], b"0\r\n\r\n" + hidden)
    s, got = rejected(server, tmp_path, data, 400)
    assert b"/smuggled" not in got


def test_truncated_body_never_reaches_app(server, tmp_path):
    s, record, pid = start(server, tmp_path=tmp_path)
    got, closed = exchange(s.port, req("POST", "/short", [("Content-Length", "100")], b"only ten!!"), shut=True)
    assert got == b"" and closed, got
    time.sleep(0.2)
    assert "/short" not in recorded(record)
    assert_same_worker(s, pid)
    assert "/short" not in recorded(record)


# -- application errors -------------------------------------------------------------------

def test_app_exception_500_without_traceback(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("GET", "/raise"))
        r = c.response()
    assert r.status == 500, r
    assert b"Traceback" not in r.raw and b"boom-secret" not in r.raw and b"RuntimeError" not in r.raw
    assert s.wait_log("boom-secret-detail")
    log = s.log()
    assert "Traceback (most recent call last)" in log and "RuntimeError: boom-secret-detail" in log
    assert_same_worker(s, pid)


@pytest.mark.parametrize("path", ["/str", "/str-iter", "/crlf", "/hop", "/twice"])
def test_pep3333_violation_500(server, path):
    s, _, pid = start(server, "http_bad:app")
    with Client(s.port) as c:
        c.send(req("GET", path))
        r = c.response()
    assert r.status == 500, r
    assert b"injected" not in r.raw.lower()
    assert b"not bytes" not in r.raw and b"evil" not in r.raw and b"hop" not in r.raw.split(b"\r\n\r\n", 1)[1]
    assert_same_worker(s, pid)


def test_exc_info_after_headers_sent_reraises(server, tmp_path):
    s, record, pid = start(server, tmp_path=tmp_path)
    with Client(s.port) as c:
        c.send(req("GET", "/exc-after-headers"))
        assert c.closed_by_server(), "connection not cut after a failure mid-body"
        got = bytes(c.buf)
    assert status_of(got) == 200, got
    assert b"part1" in got and b"part2" not in got
    assert not got.endswith(b"0\r\n\r\n"), "the cut body was framed as complete: %r" % got
    assert "exc_info reraised KeyError" in recorded(record)
    assert s.wait_log("KeyError: 'late failure'")
    assert_same_worker(s, pid)


def test_exc_info_before_headers_replaces_status(server):
    s, _, pid = shared()
    with Client(s.port) as c:
        c.send(req("GET", "/exc-before-headers"))
        r = c.response()
    assert r.status == 503 and r.body == b"replaced", r
    assert_same_worker(s, pid)


def test_iterable_close_called_on_success(server, tmp_path):
    s, record, pid = start(server, tmp_path=tmp_path)
    with Client(s.port) as c:
        c.send(req("GET", "/close-ok"))
        r = c.response()
    assert r.status == 200 and r.body == b"closing body", r
    assert wait_for(lambda: "close ok" in recorded(record), 2)
    assert_same_worker(s, pid)


def test_iterable_close_called_when_iteration_raises(server, tmp_path):
    s, record, pid = start(server, tmp_path=tmp_path)
    with Client(s.port) as c:
        c.send(req("GET", "/close-raise"))
        r = c.response()
    assert r.status == 500, r
    assert b"iteration failed" not in r.raw
    assert wait_for(lambda: "close raise" in recorded(record), 2)
    assert s.wait_log("ValueError: iteration failed on purpose")
    assert_same_worker(s, pid)


# -- access log -------------------------------------------------------------------------

def access_lines(path, n):
    def lines():
        try:
            with open(path) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []
    wait_for(lambda: len(lines()) >= n, 3)
    return lines()


def test_access_log_default_format(server, tmp_path):
    log = str(tmp_path / "access.log")
    s, _, pid = start(server, "http_app:app", "--access-logfile", log)
    status, _, body = get(s.port, "/path?q", headers={"User-Agent": "ua-test/1.0"})
    assert status == 200 and body == b"Hello, World!"
    lines = access_lines(log, 2)
    assert len(lines) == 2, lines        # /pid from start(), then ours
    assert re.fullmatch(r'127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                        r'"GET /path\?q HTTP/1\.1" 200 13 "-" "ua-test/1\.0"', lines[1]), lines[1]
    assert_same_worker(s, pid)


def test_access_log_to_stdout_shows_while_the_worker_runs(server):
    """`--access-logfile -`, a Procfile's usual flag: stdout is then a pipe or a file, which
    Python block-buffers. Each line must still appear at once, not 8 KB later."""
    s, _, pid = start(server, "http_app:app", "--access-logfile", "-",
                      env={"PYTHONUNBUFFERED": ""})     # as in most containers: buffered stdout
    for i in range(3):
        get(s.port, "/promptly-%d" % i)
    assert s.wait_log('"GET /promptly-2 HTTP/1.1" 200', timeout=3), s.log()
    assert s.log().count('"GET /promptly-') == 3
    assert_same_worker(s, pid)


def test_access_log_custom_format(server, tmp_path):
    log = str(tmp_path / "access.log")
    s, _, pid = start(server, "http_app:app", "--access-logfile", log,
                      "--access-logformat", "%(h)s %(m)s %(U)s %(s)s %({x-req}i)s %(B)s")
    status, _, _ = get(s.port, "/path?q=1", headers={"X-Req": "abc-123"})
    assert status == 200
    lines = access_lines(log, 2)
    assert lines[1] == "127.0.0.1 GET /path 200 abc-123 13", lines
    assert_same_worker(s, pid)


# -- Flask --------------------------------------------------------------------------------

def flask_server(server):
    s, _, pid = shared("http_flask:app")
    return s, pid, "http://127.0.0.1:%d" % s.port


def test_flask_url_parameters(server):
    s, pid, url = flask_server(server)
    r = requests.get(url + "/users/42/caf%C3%A9", params={"q": "x y"}, timeout=T)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": 42, "name": "caf\u00e9", "q": "x y"}
    assert requests.get(url + "/users/notanint/x", timeout=T).status_code == 404
    assert_same_worker(s, pid)


def test_flask_json_post(server):
    s, pid, url = flask_server(server)
    r = requests.post(url + "/json", json={"numbers": [1, 2, 3.5], "name": "\u00e9t\u00e9"}, timeout=T)
    assert r.status_code == 201, r.text
    assert r.json() == {"got": {"numbers": [1, 2, 3.5], "name": "\u00e9t\u00e9"}, "total": 6.5}
    assert_same_worker(s, pid)


def test_flask_multipart_upload(server):
    s, pid, url = flask_server(server)
    content = os.urandom(200000)
    r = requests.post(url + "/upload", files={"doc": ("report.bin", content, "application/octet-stream")},
                      data={"field": "value"}, timeout=T)
    assert r.status_code == 200, r.text
    assert r.json() == {"filename": "report.bin", "size": len(content),
                        "sha256": hashlib.sha256(content).hexdigest(), "field": "value"}
    assert_same_worker(s, pid)


def test_flask_streamed_response(server):
    s, pid, url = flask_server(server)
    with Client(s.port) as c:
        c.send(req("GET", "/stream?prefix=n"))
        r = c.response()
    assert r.status == 200, r
    assert r.header("Transfer-Encoding").lower() == "chunked"
    assert r.body == b"n0\nn1\nn2\nn3\nn4\n"
    assert_same_worker(s, pid)


def test_flask_send_file(server, big_file):
    path, data = big_file
    s, pid, url = flask_server(server)
    r = requests.get(url + "/download", params={"path": path}, timeout=T)
    assert r.status_code == 200
    assert r.headers.get("Content-Length") == str(len(data))
    assert r.content == data
    assert_same_worker(s, pid)


# -- workers ------------------------------------------------------------------------------

def test_light_load_spreads_over_the_workers(server):
    """At light load each worker takes turns (issue 16): a worker that served in the last
    second goes to the back of the listener's wake-up queue, so a leak or a cache does not
    pile up in one worker. Without it one worker took all 40 requests here."""
    s, _, _ = start(server, "http_app:app", workers=2)
    served = {}
    for _ in range(40):
        pid = pid_of(s.port)
        served[pid] = served.get(pid, 0) + 1
        time.sleep(0.05)
    assert len(served) == 2 and min(served.values()) >= 4, served


def test_killed_worker_is_replaced(server):
    s, _, pid = start(server, "http_app:app")
    os.kill(pid, signal.SIGKILL)
    new = wait_for(lambda: [p for p in s.worker_pids() if p != pid], 10)
    assert new, s.log()
    assert s.wait_log("booted in", count=2)
    assert pid_of(s.port) == new[0]
    assert get(s.port, "/hello")[2] == b"Hello, World!"
    # the test's SIGKILL, not the master's and not the OOM killer's: said so (issue 14)
    assert s.wait_log("killed by SIGKILL from outside pyfork"), s.log()
    assert any("pid=%d" % pid in line and "killed by SIGKILL from outside pyfork" in line
               for line in s.log().splitlines())


# -- command line -------------------------------------------------------------------------

def run_cli(*args, timeout=10):
    env = dict(os.environ)
    env.pop("PORT", None)
    env.pop("WEB_CONCURRENCY", None)
    env["PYTHONPATH"] = APPS + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "supervisor", "run"] + list(args), cwd=APPS, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, text=True)
    return p.returncode, p.stdout, time.monotonic() - t0


@pytest.mark.parametrize("args,problem", [
    (["http_app:app", "-b", "127.0.0.1:notaport"], "notaport"),
    (["http_app:app", "-w", "abc"], "'abc'"),
    (["http_nosuchmodule_xyz:app", "-w", "1"], "no module named 'http_nosuchmodule_xyz'"),
    (["http_app:no_such_attribute", "-w", "1"], "no_such_attribute"),
], ids=["bad-bind", "bad-workers", "missing-module", "missing-attribute"])
def test_cli_error_exit_2_with_one_line(args, problem):
    if "-b" not in args:
        args = args + ["-b", "127.0.0.1:%d" % free_port()]
    code, out, took = run_cli(*args)
    assert code == 2, out
    assert took < 5, took
    naming = [line for line in out.splitlines() if problem in line and "master pid=" not in line]
    assert len(naming) == 1, out
    assert "Traceback" not in out, out


def test_cli_app_import_error_shows_traceback():
    code, out, took = run_cli("http_boom:app", "-w", "2", "-b", "127.0.0.1:%d" % free_port())
    assert code != 0, out
    assert took < 5, took
    assert "Traceback (most recent call last)" in out, out
    assert "RuntimeError: http_boom refuses to import" in out, out
    assert out.count("RuntimeError: http_boom refuses to import") == 1, out   # one worker tried, not N
