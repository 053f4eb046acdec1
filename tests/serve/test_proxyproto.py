"""The PROXY protocol header, v1 and v2, hand-made: proxyproto.parse as a table (pure), then
a real worker reading it before HTTP (REMOTE_ADDR from the header, a header from a peer
outside --proxy-allow-from closed with one debug line, plain HTTP still served)."""
import socket
import struct

import pytest

from supervisor.serve.proxyproto import V2_SIGNATURE, Verdict, environ, parse

from conftest import Server, get


def v2(command=1, family=1, transport=1, body=b"", version=2, length=None):
    return (V2_SIGNATURE + bytes([version << 4 | command, family << 4 | transport])
            + struct.pack(">H", len(body) if length is None else length) + body)


IPV4 = socket.inet_pton(socket.AF_INET, "203.0.113.7") + socket.inet_pton(socket.AF_INET, "10.0.0.1") + \
    struct.pack(">HH", 51000, 443)
IPV6 = socket.inet_pton(socket.AF_INET6, "2001:db8::7") + socket.inet_pton(socket.AF_INET6, "2001:db8::1") + \
    struct.pack(">HH", 51000, 443)
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
V1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n"

# (the connection's first bytes, mode, verdict, header length, protocol, source)
CASES = [
    (V1 + GET, "auto", Verdict.OK, len(V1), "TCP4", ("203.0.113.7", 51000)),
    (V1, "v1", Verdict.OK, len(V1), "TCP4", ("203.0.113.7", 51000)),
    (b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n", "auto", Verdict.OK, 46, "TCP6", ("2001:db8::7", 51000)),
    (b"PROXY UNKNOWN\r\n" + GET, "auto", Verdict.OK, 15, "UNKNOWN", None),
    (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", "v1", Verdict.OK, 35, "UNKNOWN", None),
    (V1, "v2", Verdict.NONE, 0, "", None),             # v2 only: text is HTTP (and fails there)
    (GET, "auto", Verdict.NONE, 0, "", None),
    (b"POST / HTTP/1.1\r\n", "auto", Verdict.NONE, 0, "", None),
    (b"P", "auto", Verdict.MORE, 6, "", None),           # PUT? POST? PROXY?: read on
    (b"PROXY TCP4 203.0.113.7", "auto", Verdict.MORE, 23, "", None),
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443", "auto", Verdict.MORE, 42, "", None),
    (b"PROXY TCP4 " + b"1" * 100, "auto", Verdict.BAD, 0, "", None),       # no CRLF in 107 bytes
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 51000\r\n", "auto", Verdict.BAD, 0, "", None),
    (b"PROXY TCP4 2001:db8::7 10.0.0.1 51000 443\r\n", "auto", Verdict.BAD, 0, "", None),
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 65536 443\r\n", "auto", Verdict.BAD, 0, "", None),
    (b"PROXY TCP4 203.0.113.7 10.0.0.1 -1 443\r\n", "auto", Verdict.BAD, 0, "", None),
    (b"PROXY UDP4 203.0.113.7 10.0.0.1 1 443\r\n", "auto", Verdict.BAD, 0, "", None),
    (b"PROXY TCP4 203.0.113.999 10.0.0.1 1 443\r\n", "auto", Verdict.BAD, 0, "", None),
    # v2
    (v2(body=IPV4) + GET, "auto", Verdict.OK, 28, "TCP4", ("203.0.113.7", 51000)),
    (v2(body=IPV4 + b"\x04\x00\x01x"), "v2", Verdict.OK, 32, "TCP4", ("203.0.113.7", 51000)),   # a TLV, skipped
    (v2(family=2, body=IPV6), "auto", Verdict.OK, 52, "TCP6", ("2001:db8::7", 51000)),
    (v2(command=0), "auto", Verdict.OK, 16, "LOCAL", None),                  # the proxy's health check
    (v2(command=0, body=IPV4), "auto", Verdict.OK, 28, "LOCAL", None),
    (v2(family=0, transport=0), "auto", Verdict.OK, 16, "UNSPEC", None),
    (v2(family=3, body=b"\0" * 216), "auto", Verdict.OK, 232, "UNSPEC", None),  # AF_UNIX: no address to give
    (v2(body=IPV4), "v1", Verdict.NONE, 0, "", None),
    (V2_SIGNATURE[:5], "auto", Verdict.MORE, 12, "", None),
    (v2(body=IPV4)[:14], "auto", Verdict.MORE, 16, "", None),
    (v2(body=IPV4)[:20], "auto", Verdict.MORE, 28, "", None),
    (v2(length=600)[:16], "auto", Verdict.MORE, 616, "", None),
    (v2(version=1, body=IPV4), "auto", Verdict.BAD, 0, "", None),
    (v2(command=2, body=IPV4), "auto", Verdict.BAD, 0, "", None),
    (v2(transport=2, body=IPV4), "auto", Verdict.BAD, 0, "", None),          # UDP
    (v2(family=4, body=IPV4), "auto", Verdict.BAD, 0, "", None),
    (v2(body=IPV4[:8]), "auto", Verdict.BAD, 0, "", None),                   # addresses cut short
    (v2(family=2, body=IPV4), "auto", Verdict.BAD, 0, "", None),
]


@pytest.mark.parametrize("data, mode, verdict, length, protocol, source", CASES)
def test_parse(data, mode, verdict, length, protocol, source):
    h = parse(data, mode)
    assert (h.verdict, h.length, h.protocol, h.source) == (verdict, length, protocol, source), h
    assert bool(h.why) == (verdict is Verdict.BAD)


def test_environ_names_as_gunicorn():
    assert environ(parse(V1)) == {"PROXY_PROTOCOL": "TCP4", "REMOTE_ADDR": "203.0.113.7", "REMOTE_PORT": "51000",
                                  "PROXY_ADDR": "10.0.0.1", "PROXY_PORT": "443"}
    assert environ(parse(v2(command=0))) == {"PROXY_PROTOCOL": "LOCAL"}


# -- a real worker ----------------------------------------------------------------------------

def exchange(port, *pieces, wait=0.05):
    """Send `pieces` (apart, so a header may come in parts), read to the close -> bytes."""
    import time
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(wait)
            s.sendall(piece)
        out = b""
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:                      # already reset by the server
            return out
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:     # closed with the request unread: a reset
                return out
            if not data:
                return out
            out += data


CLOSE = b"GET /env HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 3])
def test_worker_reads_the_header_before_http(threads):
    with Server("proxy_app:app", "--proxy-protocol", "--threads", threads, "--log-level", "debug") as s:
        body = exchange(s.port, V1 + CLOSE)
        assert b"REMOTE_ADDR=203.0.113.7" in body and b"REMOTE_PORT=51000" in body, body
        assert b"PROXY_PROTOCOL=TCP4" in body and b"PROXY_ADDR=10.0.0.1" in body
        body = exchange(s.port, v2(family=2, body=IPV6) + CLOSE)
        assert b"REMOTE_ADDR=2001:db8::7" in body and b"PROXY_PROTOCOL=TCP6" in body, body
        # in pieces: the signature's first bytes, then the rest, then HTTP
        body = exchange(s.port, v2(body=IPV4)[:5], v2(body=IPV4)[5:20], v2(body=IPV4)[20:], CLOSE)
        assert b"REMOTE_ADDR=203.0.113.7" in body, body
        # LOCAL (a health check) and no header at all: the connection's own address
        for first in (v2(command=0), b""):
            body = exchange(s.port, first + CLOSE)
            assert b"REMOTE_ADDR=127.0.0.1" in body and body.startswith(b"HTTP/1.1 200"), body
        # malformed: closed, nothing answered, one debug line
        assert exchange(s.port, b"PROXY TCP4 203.0.113.7 nowhere 1 2\r\n" + CLOSE) == b""
        assert s.wait_log("proxy protocol header refused on fd")
        status, _, _ = get(s.port, "/")
        assert status == 200


@pytest.mark.timeout(60)
def test_header_from_a_peer_not_allowed_is_closed():
    with Server("proxy_app:app", "--proxy-protocol", "v1", "--proxy-allow-from", "10.9.9.9",
                "--log-level", "debug") as s:
        assert exchange(s.port, V1 + CLOSE) == b""
        assert s.wait_log("proxy protocol header refused on fd")
        assert "127.0.0.1 is not in --proxy-allow-from" in s.log()
        body = exchange(s.port, CLOSE)          # plain HTTP from it is served, as in Gunicorn
        assert b"REMOTE_ADDR=127.0.0.1" in body, body
