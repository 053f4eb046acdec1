"""supervisor/serve/wsgi.py: environ keys, request targets, start_response validation, heads.

Table-driven in the style of h11's tests/test_io.py. The module caches heavily, so every
case that must raise is called twice: a bad value must never be remembered as good.
"""
import ipaddress
import io

import pytest

from supervisor.serve import wsgi
from supervisor.serve.wsgi import (EMPTY_INPUT, LAST_CHUNK, NO_BODY, EmptyInput, FileWrapper, StartResponseError,
                             base_environ, chunk, environ_key, error_response, head_for, header_line,
                             request_line, split_target, status_line, targets_of,
                             validate_head)

# -- environ_key -------------------------------------------------------------------------

ENVIRON_KEYS = [
    (b"Content-Type", "CONTENT_TYPE"),
    (b"content-type", "CONTENT_TYPE"),
    (b"Content-Length", "CONTENT_LENGTH"),
    (b"CONTENT-LENGTH", "CONTENT_LENGTH"),
    (b"X-A", "HTTP_X_A"),
    (b"Host", "HTTP_HOST"),
    (b"x-forwarded-for", "HTTP_X_FORWARDED_FOR"),
    (b"Content-Typ", "HTTP_CONTENT_TYP"),
    (b"Content-Length-X", "HTTP_CONTENT_LENGTH_X"),
    # '_' would alias '-' after the rename: dropped (Gunicorn drops them too)
    (b"Content_Type", ""),
    (b"Content_Length", ""),
    (b"X_A", ""),
    (b"X-Forwarded_For", ""),
]


@pytest.mark.parametrize("name, key", ENVIRON_KEYS)
def test_environ_key(name, key):
    assert environ_key(name) == key
    assert environ_key(name) == key     # again, from the cache


def test_environ_key_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(wsgi, "ENV_KEYS", {})
    for i in range(5000):
        assert environ_key(b"X-%d" % i) == "HTTP_X_%d" % i
    assert len(wsgi.ENV_KEYS) == 4096
    assert environ_key(b"X-4999") == "HTTP_X_4999"     # past the bound: still right, just not kept


# -- split_target / target ------------------------------------------------------------------

# (request target, (PATH_INFO, QUERY_STRING, RAW_URI))
TARGETS = [
    (b"/", ("/", "", "/")),
    (b"/a%20b?x=1", ("/a b", "x=1", "/a%20b?x=1")),
    (b"/caf%C3%A9", ("/caf\xc3\xa9", "", "/caf%C3%A9")),         # PEP 3333: bytes as latin-1
    (b"/caf\xc3\xa9", ("/caf\xc3\xa9", "", "/caf\xc3\xa9")),
    (b"/a%2Fb", ("/a/b", "", "/a%2Fb")),
    (b"/a%zz", ("/a%zz", "", "/a%zz")),
    (b"/p?a=%20&b", ("/p", "a=%20&b", "/p?a=%20&b")),             # the query stays encoded
    (b"/p?", ("/p", "", "/p?")),
    (b"/p?x?y", ("/p", "x?y", "/p?x?y")),
    (b"/p%3Fx?y", ("/p?x", "y", "/p%3Fx?y")),
    (b"/a%23b", ("/a#b", "", "/a%23b")),
    (b"//double", ("//double", "", "//double")),
    (b"http://host/p?q", ("/p", "q", "http://host/p?q")),          # absolute-form
    (b"http://host", ("/", "", "http://host")),
    (b"http://host?x=1", ("/", "x=1", "http://host?x=1")),
    (b"https://host:8443/a%20b?x", ("/a b", "x", "https://host:8443/a%20b?x")),
    (b"*", ("", "", "*")),             # OPTIONS *: no path; the '*' stays in RAW_URI (Gunicorn gives '*')
    (b"example.com:443", ("", "", "example.com:443")),       # authority-form (CONNECT): no path
    (b"p?x", ("", "", "p?x")),         # no form at all: not a path either
    (b"/p#frag", ("/p", "", "/p#frag")),
    (b"/p%20q#frag", ("/p q", "", "/p%20q#frag")),
]


@pytest.mark.parametrize("raw, expected", TARGETS)
def test_split_target(raw, expected):
    assert split_target(raw) == expected
    cache = {}
    line = request_line(b"GET", raw, cache)
    assert line == ("GET", *expected)
    if raw[:1] == b"/":
        assert cache[raw] is line          # remembered: a repeat is the very same tuple
    else:
        assert cache == {}                 # other forms are checked on every request


@pytest.mark.parametrize("value, expect", [
    ("", ("", b"")), ("/", ("", b"")), ("/app", ("/app", b"/app")), ("/app/", ("/app", b"/app")),
    ("/a/b", ("/a/b", b"/a/b")), ("/caf%C3%A9", ("/caf%C3%A9", b"/caf%C3%A9")),
    ("app", ValueError), ("/a?b", ValueError), ("/a b", ValueError), ("/caf\u00e9x\u0100", ValueError),
])
def test_mount_point(value, expect):
    if expect is ValueError:
        with pytest.raises(ValueError, match="SCRIPT_NAME="):
            wsgi.mount_point(value)
    else:
        assert wsgi.mount_point(value) == expect


@pytest.mark.parametrize("raw, expected", [
    (b"/app", ("", "", "/app")),                          # the mount itself: PATH_INFO empty (PEP 3333)
    (b"/app/", ("/", "", "/app/")),
    (b"/app/x%20y?q=1", ("/x y", "q=1", "/app/x%20y?q=1")),
    (b"/app?q", ("", "q", "/app?q")),
    (b"http://h/app/p", ("/p", "", "http://h/app/p")),    # absolute-form: its path
    (b"*", ("", "", "*")),                                # not a path: left alone
    (b"h:443", ("", "", "h:443")),
    (b"/other", 404), (b"/", 404), (b"/application", 404), (b"/ap", 404),
    (b"/%61pp/x", 404),                                   # compared encoded, as Gunicorn does
])
def test_split_target_under_a_mount(raw, expected):
    if expected == 404:
        with pytest.raises(wsgi.Refused) as err:
            split_target(raw, b"/app")
        assert err.value.status == 404 and "outside SCRIPT_NAME" in str(err.value)
    else:
        assert split_target(raw, b"/app") == expected


@pytest.mark.parametrize("raw, expected", [
    (b"/p?q=1#frag", ("/p", "q=1", "/p?q=1#frag")),
    (b"/p#f?x", ("/p", "", "/p#f?x")),
])
def test_split_target_fragment_after_query(raw, expected):
    assert split_target(raw) == expected


def test_request_line_cache_is_bounded():
    cache = {}
    for i in range(1024):
        request_line(b"GET", b"/%d" % i, cache)
    assert len(cache) == 1024
    assert request_line(b"GET", b"/new?x", cache) == ("GET", "/new", "x", "/new?x")
    assert cache == {b"/new?x": ("GET", "/new", "x", "/new?x")}      # full: cleared, then kept


def test_one_cache_per_method_never_for_connect(monkeypatch):
    monkeypatch.setattr(wsgi, "REQUESTS", {})
    assert targets_of(b"GET") is targets_of(b"GET") is wsgi.REQUESTS[b"GET"]
    assert targets_of(b"POST") is not targets_of(b"GET")
    assert targets_of(b"CONNECT") is not targets_of(b"CONNECT") and b"CONNECT" not in wsgi.REQUESTS
    for i in range(70):
        targets_of(b"M%d" % i)
    assert len(wsgi.REQUESTS) <= 64                                   # bounded


# -- status_line ------------------------------------------------------------------------

STATUS_OK = [
    ("200 OK", 200, b"HTTP/1.1 200 OK\r\n"),
    ("404 Not Found", 404, b"HTTP/1.1 404 Not Found\r\n"),
    ("100 Continue", 100, b"HTTP/1.1 100 Continue\r\n"),
    ("200 ", 200, b"HTTP/1.1 200 \r\n"),                     # an empty reason is allowed
    ("599 Custom Thing", 599, b"HTTP/1.1 599 Custom Thing\r\n"),
    ("999 Top", 999, b"HTTP/1.1 999 Top\r\n"),
    ("200 Caf\xe9", 200, b"HTTP/1.1 200 Caf\xe9\r\n"),
]


@pytest.mark.parametrize("status, code, line", STATUS_OK)
def test_status_line(status, code, line):
    assert status_line(status) == (code, line)
    assert status_line(status) == (code, line)


STATUS_BAD = [
    ("200", "status must look like '200 OK', got '200'"),
    ("abc OK", "status must look like '200 OK', got 'abc OK'"),
    ("", "status must look like '200 OK', got ''"),
    ("20 OK", "status must look like '200 OK', got '20 OK'"),
    ("2000 OK", "status must look like '200 OK', got '2000 OK'"),
    ("200-OK", "status must look like '200 OK', got '200-OK'"),
    ("200\tOK", "status must look like '200 OK', got '200\\tOK'"),
    (" 200 OK", "status must look like '200 OK', got ' 200 OK'"),
    ("099 Low", "status must look like '200 OK', got '099 Low'"),
    ("+20 OK", "status must look like '200 OK', got '+20 OK'"),
    (200, "status must be a str, got 200"),
    (b"200 OK", "status must be a str, got b'200 OK'"),
    (None, "status must be a str, got None"),
    ("200 OK\r\n", "status contains CR or LF: '200 OK\\r\\n'"),
    ("200 OK\r\nSet-Cookie: a=b", "status contains CR or LF: '200 OK\\r\\nSet-Cookie: a=b'"),
    ("200 O\nK", "status contains CR or LF: '200 O\\nK'"),
]


@pytest.mark.parametrize("status, message", STATUS_BAD)
def test_status_line_rejects(status, message):
    for _ in range(2):
        with pytest.raises(StartResponseError) as info:
            status_line(status)
        assert str(info.value) == message


@pytest.mark.parametrize("status", [["200 OK"], "200 \u2713"])
def test_status_line_odd_values_are_start_response_errors(status):
    with pytest.raises(StartResponseError):
        status_line(status)


def test_status_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(wsgi, "_status_lines", {})
    for code in range(100, 400):
        assert status_line("%d X" % code) == (code, b"HTTP/1.1 %d X\r\n" % code)
    assert len(wsgi._status_lines) == 256


# -- header_line ------------------------------------------------------------------------

HEADER_OK = [
    (("Content-Type", "text/plain"), b"Content-Type: text/plain\r\n"),
    (("X-Empty", ""), b"X-Empty: \r\n"),
    (("Set-Cookie", "a=b; Path=/"), b"Set-Cookie: a=b; Path=/\r\n"),
    (("X-Latin", "caf\xe9"), b"X-Latin: caf\xe9\r\n"),
    (("X-Tab", "a\tb"), b"X-Tab: a\tb\r\n"),
    (("Connection", "close"), b"Connection: close\r\n"),       # the one hop-by-hop an app may send
    (("connection", "Close"), b"connection: Close\r\n"),
    (("X-Connection", "keep-alive"), b"X-Connection: keep-alive\r\n"),
]


@pytest.mark.parametrize("header, line", HEADER_OK)
def test_header_line(header, line):
    assert header_line(*header) == line
    assert header_line(*header) == line


HOP = "hop-by-hop header %r is the server's to set (PEP 3333)"
HEADER_BAD = [
    # response splitting / injection
    (("X-A", "a\r\nSet-Cookie: x=1"), "header X-A has CR, LF or NUL in its value"),
    (("X-A", "a\nb"), "header X-A has CR, LF or NUL in its value"),
    (("X-A", "a\rb"), "header X-A has CR, LF or NUL in its value"),
    (("X-A", "a\0b"), "header X-A has CR, LF or NUL in its value"),
    (("X-A\r\nX-B", "v"), "invalid header name 'X-A\\r\\nX-B'"),
    (("X-A\n", "v"), "invalid header name 'X-A\\n'"),
    (("X A", "v"), "invalid header name 'X A'"),
    (("X:A", "v"), "invalid header name 'X:A'"),
    (("X-A:", "v"), "invalid header name 'X-A:'"),
    (("", "v"), "invalid header name ''"),
    (("X(A)", "v"), "invalid header name 'X(A)'"),
    # hop-by-hop: the server owns framing
    (("Transfer-Encoding", "chunked"), HOP % "Transfer-Encoding"),
    (("transfer-encoding", "identity"), HOP % "transfer-encoding"),
    (("Connection", "keep-alive"), HOP % "Connection"),
    (("Connection", "upgrade"), HOP % "Connection"),
    (("Connection", "close, upgrade"), HOP % "Connection"),
    (("Keep-Alive", "timeout=5"), HOP % "Keep-Alive"),
    (("Upgrade", "websocket"), HOP % "Upgrade"),
    (("TE", "trailers"), HOP % "TE"),
    (("Trailer", "X-Sum"), HOP % "Trailer"),
    (("Trailers", "X-Sum"), HOP % "Trailers"),
    (("Proxy-Authenticate", "Basic"), HOP % "Proxy-Authenticate"),
    (("Proxy-Authorization", "Basic eA=="), HOP % "Proxy-Authorization"),
    # not str
    ((b"X-A", "v"), "header name and value must be str, got (b'X-A', 'v')"),
    (("X-A", b"v"), "header name and value must be str, got ('X-A', b'v')"),
    (("X-A", 1), "header name and value must be str, got ('X-A', 1)"),
    (("X-A", None), "header name and value must be str, got ('X-A', None)"),
    ((None, "v"), "header name and value must be str, got (None, 'v')"),
    # not latin-1
    (("X-A", "\u2603"), "header X-A is not latin-1"),
    (("X-\u2603", "v"), "invalid header name 'X-\u2603'"),
]


@pytest.mark.parametrize("header, message", HEADER_BAD)
def test_header_line_rejects(header, message):
    for _ in range(2):
        with pytest.raises(StartResponseError) as info:
            header_line(*header)
        assert str(info.value) == message


@pytest.mark.parametrize("name", ["X-A\0", "X-\x01A", "X-\x7fA"])
def test_header_name_with_control_character(name):
    with pytest.raises(StartResponseError):
        header_line(name, "v")


@pytest.mark.parametrize("header", [("X-A", ["v"]), (["X-A"], "v")])
def test_header_line_unhashable_is_start_response_error(header):
    with pytest.raises(StartResponseError):
        header_line(*header)


# -- validate_head / head_for -------------------------------------------------------------------

# (status, headers, (code, head, Content-Length, app asked to close, fast length))
HEADS = [
    ("200 OK", [], (200, b"HTTP/1.1 200 OK\r\n", None, False, -1)),
    ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")],
     (200, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n", 13, False, 13)),
    ("204 No Content", [("content-length", "0")], (204, b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n", 0, False, -1)),
    ("200 OK", [("CONTENT-LENGTH", "007")], (200, b"HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 007\r\n", 7, False, 7)),
    ("200 OK", [("Connection", "close")], (200, b"HTTP/1.1 200 OK\r\nConnection: close\r\n", None, True, -1)),
    ("301 Moved Permanently", [("Location", "/x"), ("Content-Length", "0"), ("connection", "CLOSE")],
     (301, b"HTTP/1.1 301 Moved Permanently\r\nLocation: /x\r\nContent-Length: 0\r\nconnection: CLOSE\r\n", 0, True, -1)),
    ("200 OK", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
     (200, b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n", None, False, -1)),
    ("200 OK", [("Content-Length", "18446744073709551616")],
     (200, b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n", 18446744073709551616, False, 18446744073709551616)),
]


@pytest.mark.parametrize("status, headers, expected", HEADS)
def test_validate_head(status, headers, expected):
    assert validate_head(status, headers) == expected


@pytest.mark.parametrize("status, headers, expected", HEADS)
def test_head_for_matches_validate_head(status, headers, expected):
    first = head_for(status, headers)
    assert first == expected
    again = head_for(status, [tuple(h) for h in headers])     # an equal, fresh list
    assert again is first


HEADS_BAD = [
    ("200 OK", [("Content-Length", "-1")], "Content-Length '-1' is not a number"),
    ("200 OK", [("Content-Length", "abc")], "Content-Length 'abc' is not a number"),
    ("200 OK", [("Content-Length", "")], "Content-Length '' is not a number"),
    ("200 OK", [("Content-Length", " 13")], "Content-Length ' 13' is not a number"),
    ("200 OK", [("Content-Length", "1.5")], "Content-Length '1.5' is not a number"),
    ("200 OK", [("Content-Length", "0x10")], "Content-Length '0x10' is not a number"),
    ("200 OK", (("A", "b"),), "headers must be a list, got 'tuple'"),
    ("200 OK", None, "headers must be a list, got 'NoneType'"),
    ("200 OK", {"A": "b"}, "headers must be a list, got 'dict'"),
    ("200 OK", [["A", "b"]], "each header must be a (name, value) tuple, got ['A', 'b']"),
    ("200 OK", [("A", "b", "c")], "each header must be a (name, value) tuple, got ('A', 'b', 'c')"),
    ("200 OK", ["A: b"], "each header must be a (name, value) tuple, got 'A: b'"),
    ("200 OK", [("A",)], "each header must be a (name, value) tuple, got ('A',)"),
    ("200", [], "status must look like '200 OK', got '200'"),
    (200, [], "status must be a str, got 200"),
    ("200 OK", [("Transfer-Encoding", "chunked")], HOP % "Transfer-Encoding"),
    ("200 OK", [("X-A", "1"), ("X-B", "a\r\nb")], "header X-B has CR, LF or NUL in its value"),
]


@pytest.mark.parametrize("status, headers, message", HEADS_BAD)
def test_validate_head_rejects(status, headers, message):
    with pytest.raises(StartResponseError) as info:
        validate_head(status, headers)
    assert str(info.value) == message
    for _ in range(2):      # head_for: the same error, every time
        with pytest.raises(StartResponseError) as info:
            head_for(status, headers)
        assert str(info.value) == message


def test_head_for_tuple_after_equal_list_still_raises():
    headers = [("X-Tuple-Case", "1")]
    head_for("200 OK", headers)
    with pytest.raises(StartResponseError):
        head_for("200 OK", tuple(headers))


def test_head_for_unhashable_value():
    with pytest.raises(StartResponseError):
        head_for("200 OK", [("X-A", ["v"])])


def test_content_length_unicode_digit():
    with pytest.raises(StartResponseError):
        validate_head("200 OK", [("Content-Length", "\u00b2")])


def test_conflicting_content_lengths():
    with pytest.raises(StartResponseError):
        validate_head("200 OK", [("Content-Length", "1"), ("Content-Length", "2")])


def test_head_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(wsgi, "HEADS", {})
    for i in range(1024):
        head_for("200 OK", [("X-N", str(i))])
    assert len(wsgi.HEADS) == 1024
    assert head_for("200 OK", [("X-N", "new")]) == (200, b"HTTP/1.1 200 OK\r\nX-N: new\r\n", None, False, -1)
    assert list(wsgi.HEADS) == [("200 OK", ("X-N", "new"))]


# -- bodies and server-made responses ---------------------------------------------------------

CHUNKS = [
    (b"hello", b"5\r\nhello\r\n"),
    (b"\r\n", b"2\r\n\r\n\r\n"),
    (b"x" * 16, b"10\r\n" + b"x" * 16 + b"\r\n"),
    (b"y" * 255, b"ff\r\n" + b"y" * 255 + b"\r\n"),
    (b"z" * 4096, b"1000\r\n" + b"z" * 4096 + b"\r\n"),
]


@pytest.mark.parametrize("data, wire", CHUNKS)
def test_chunk(data, wire):
    assert chunk(data) == wire


def test_last_chunk():
    assert LAST_CHUNK == b"0\r\n\r\n"


ERRORS = [
    (400, True, b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 16\r\n"
                b"Connection: close\r\n\r\n400 Bad Request\n"),
    (431, True, b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 36\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large\n"),
    (500, True, b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n"
                b"Connection: close\r\n\r\n500 Internal Server Error\n"),
    (503, False, b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n"
                 b"\r\n503 Service Unavailable\n"),
    (599, False, b"HTTP/1.1 599 Error\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n599 Error\n"),
]


@pytest.mark.parametrize("code, close, wire", ERRORS)
def test_error_response(code, close, wire):
    assert error_response(code, close) == wire
    head, body = wire.split(b"\r\n\r\n", 1)
    assert b"Content-Length: %d" % len(body) in head


def test_error_response_closes_by_default():
    assert error_response(400) == error_response(400, True)


NO_BODY_CASES = [(100, True), (101, True), (199, True), (204, True), (304, True),
                 (200, False), (205, False), (302, False), (404, False)]


@pytest.mark.parametrize("code, empty", NO_BODY_CASES)
def test_no_body(code, empty):
    assert (code in NO_BODY) is empty


# (method, args, result)
EMPTY_READS = [
    ("read", (), b""),
    ("read", (10,), b""),
    ("read", (-1,), b""),
    ("readline", (), b""),
    ("readline", (5,), b""),
    ("readlines", (), []),
    ("readlines", (3,), []),
    ("close", (), None),
]


@pytest.mark.parametrize("method, args, result", EMPTY_READS)
def test_empty_input(method, args, result):
    for stream in (EMPTY_INPUT, EmptyInput()):
        assert getattr(stream, method)(*args) == result
        assert getattr(stream, method)(*args) == result     # stateless


def test_empty_input_iterates_nothing():
    assert list(EMPTY_INPUT) == []
    assert isinstance(EMPTY_INPUT, EmptyInput)


def test_file_wrapper():
    f = io.BytesIO(b"abcdefghij")
    w = FileWrapper(f, 4)
    assert list(w) == [b"abcd", b"efgh", b"ij"]
    w.close()
    assert f.closed


def test_base_environ():
    env = base_environ("pyfork/0.1.0")
    assert {k: env[k] for k in ("wsgi.version", "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
                                "wsgi.input_terminated", "SERVER_SOFTWARE", "SCRIPT_NAME")} == {
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.input_terminated": True, "SERVER_SOFTWARE": "pyfork/0.1.0",
        "SCRIPT_NAME": ""}
    assert env["wsgi.file_wrapper"] is FileWrapper


# -- listener environ and trusted peers ----------------------------------------------------------

@pytest.mark.parametrize("name, server", [
    (("127.0.0.1", 8000), ("127.0.0.1", "8000")),
    (("::1", 9000, 0, 0), ("::1", "9000")),
    ("/run/app.sock", ("localhost", "0")),
])
def test_listener_environ(name, server):
    env = wsgi.listener_environ({"X": "1"}, name)
    assert (env["SERVER_NAME"], env["SERVER_PORT"], env["wsgi.url_scheme"], env["X"]) == server + ("http", "1")


NETS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize("peer, allowed, ok", [
    ("10.1.2.3", NETS, True),
    ("11.1.2.3", NETS, False),
    ("::1", NETS, True),
    ("not-an-ip", NETS, False),
    ("192.0.2.1", ("*",), True),
    ("192.0.2.1", (), False),
])
def test_peer_trusted(peer, allowed, ok):
    assert wsgi.peer_trusted(peer, allowed) is ok
