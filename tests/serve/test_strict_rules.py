"""supervisor/serve/strict.py as tables: each rule's verdict on plain values, no sockets.
(tests/serve/test_strict.py sends the same rules as raw bytes to a running server.)"""
import pytest

from supervisor.serve import strict
from supervisor.serve.strict import Refused


def verdict(fn, *args):
    try:
        return fn(*args)
    except Refused as exc:
        return exc.status


@pytest.mark.parametrize("host, ok", [
    ("example.com", True), ("example.com:8080", True), ("", True), ("EXAMPLE.com:", True),
    ("[::1]", True), ("[::1]:443", True), ("[v1.fe]", True), ("0.0.0.0=5000", True), ("a%20b", True),
    ("a b", False), ("a/b", False), ("u@a", False), ("a:8x", False), ("[::1", False), ("a%2", False),
    ("a:1:2", False), ("caf\xe9", False), ("a,b", True),
])
def test_host(host, ok):
    assert verdict(strict.check_host_value, host) == (None if ok else 400)


@pytest.mark.parametrize("host, protocol, status", [
    (None, "HTTP/1.1", 400), (None, "HTTP/1.0", None), ("h", "HTTP/1.1", None), ("a b", "HTTP/1.0", 400),
])
def test_host_required_in_1_1(host, protocol, status):
    assert verdict(strict.check_host, host, protocol) == status
    assert (host in strict.HOSTS) == (status is None and host is not None)


@pytest.mark.parametrize("target, method, expect", [
    ("/p", "GET", None), ("/p", "CONNECT", 400),
    ("*", "OPTIONS", None), ("*", "GET", 400),
    ("h:443", "CONNECT", None), ("[::1]:443", "CONNECT", None), ("h", "CONNECT", 400),
    ("h:", "CONNECT", 400), ("http://h/", "CONNECT", 400),
    ("h:80", "GET", 400), ("a/b", "GET", 400), ("s://]ufd/:", "PUT", 400),
    # absolute-form -> the authority that becomes HTTP_HOST (RFC 9112 3.2.2), whatever Host said
    ("http://h/p", "GET", "h"), ("http://h:80/p", "GET", "h:80"), ("http://H/p", "GET", "H"),
    ("https://h/p", "GET", "h"), ("http://127.0.0.1:8000/abs", "GET", "127.0.0.1:8000"),
    ("http://u:p@h:8080/p", "GET", "h:8080"), ("http://example.com/", "GET", "example.com"),
    ("http://h?q", "GET", "h"), ("http://h#f", "GET", "h"), ("http://[::1]:8080/", "GET", "[::1]:8080"),
    ("HTTP://h/", "POST", "h"),
    # ... refused only where the authority itself is invalid
    ("http:///p", "GET", 400), ("http://:80/p", "GET", 400), ("http://u@/p", "GET", 400),
    ("http://a b/", "GET", 400), ("http://h:8x/", "GET", 400), ("http://[::1/", "GET", 400),
    ("1http://h/", "GET", 400),
])
def test_target(target, method, expect):
    assert verdict(strict.check_target, target, method) == expect


@pytest.mark.parametrize("te, protocol, status", [
    ("chunked", "HTTP/1.1", None), ("Chunked", "HTTP/1.1", None), ("chunked", "HTTP/1.0", 400),
    ("gzip", "HTTP/1.1", 400), ("chunked, gzip", "HTTP/1.1", 400), ("chunked, chunked", "HTTP/1.1", 400),
    ("gzip, chunked", "HTTP/1.1", 501), ("identity,chunked", "HTTP/1.1", 501), ("xchunked", "HTTP/1.1", 400),
])
def test_transfer_coding(te, protocol, status):
    assert verdict(strict.check_transfer_coding, te, protocol) == status


@pytest.mark.parametrize("line, status", [
    (b"-BLARGH /foo HTTP/1.1\r\n", 501), (b"get / HTTP/1.1\r\n", 501), (b"\r\nFOO / HTTP/1.0\r\n", 501),
    (b"GE(T / HTTP/1.1\r\n", 400), (b"THIS IS NOT HTTP\r\n", 400), (b"\x00\x01 x\r\n", 400), (b"FOO /\r\n", 400),
])
def test_unknown_method(line, status):
    assert strict.unknown_method_status(line) == status


@pytest.mark.parametrize("name, status", [
    (b"X-T", None), (b"Vary", None), (b"Content-Type", None), (b"Host", 400), (b"content-length", 400),
    (b"Transfer-Encoding", 400), (b"Authorization", 400), (b"X-Forwarded-For", 400), (b"Trailer", 400),
])
def test_trailer(name, status):
    assert verdict(strict.check_trailer, name) == status


@pytest.mark.parametrize("value, close", [
    ("close", True), ("Close", True), ("keep-alive, close", True), ("close,keep-alive", True),
    ("keep-alive", False), ("closed", False), ("upgrade", False), (" \tCLOSE ", True),
])
def test_asks_close(value, close):
    assert strict.asks_close(value) is close


@pytest.mark.parametrize("env, scheme", [
    ({}, None), ({"HTTP_X_FORWARDED_PROTO": "https"}, "https"), ({"HTTP_X_FORWARDED_PROTO": "http"}, "http"),
    ({"HTTP_X_FORWARDED_SSL": "on"}, "https"), ({"HTTP_X_FORWARDED_PROTOCOL": "ssl"}, "https"),
    ({"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_SSL": "on"}, "https"),
    ({"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_SSL": "off"}, 400),
    ({"HTTP_X_FORWARDED_PROTO": "http", "HTTP_X_FORWARDED_PROTOCOL": "ssl"}, 400),
])
def test_forwarded_scheme(env, scheme):
    assert verdict(strict.forwarded_scheme, env) == scheme


@pytest.mark.parametrize("expect, status", [
    ("100-continue", None), ("100-Continue", None), ("100-continue,100-continue", None), ("magic", 417),
    ("100-continue, magic", 417),
])
def test_expect(expect, status):
    assert verdict(strict.check_expect, expect) == status
