"""Strict HTTP/1.1 over a real socket: raw request bytes -> status, what the app read, close.

One pyfork (scripts/echo.py: the app answers with its reading of the request as JSON)
serves the whole module. Every row is written from RFC 9112 (sections 2.2, 3, 5, 6, 7,
9.3), RFC 9110 where 9112 defers to it, and the findings of issues 10 and 17; none is
copied from another server's corpus. A row sends its bytes on one connection, then:

  keep   the connection must stay usable: a probe request (Connection: close) follows in
         the same send and must be answered 200 as the row's last response;
  close  the server must close after the row's responses; the same probe follows in the
         same send and must NOT be answered (after a closing response nothing more is
         read, so nothing more is answered);
  eof    we half-close after the bytes (an incomplete request): no answer, closed.

`seen` holds, for each 2xx response in order, what the app must have read (keys of the
echo JSON; `headers` compared field by field, None meaning absent). After every row a
new connection is answered by the same worker: a refusal never costs a worker. The rows
run against a worker with one app thread and against one with --threads 4.
"""
import os
import socket
import sys

import pytest

from conftest import APPS, SCRIPTS, Server

sys.path.insert(0, SCRIPTS)
import peers  # noqa: E402   scripts/peers.py: the response parser the corpus and fuzzer use

PROBE = b"GET /probe HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"
H = b"Host: h\r\n"


def req(line, *fields, body=b""):
    """A request: request line, field lines, the empty line, the body."""
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


def chunked(*fields, body):
    return req(b"POST /c HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked", *fields, body=body)


def row(id, data, statuses, mode, seen=(), rfc=""):
    return pytest.param(data, statuses, mode, list(seen), id=id)


OK = {"path": "/"}
LONG = 8190 - len("X-Long: \r\n")        # a field line of exactly 8190 bytes with its CRLF

ROWS = [
    # -- RFC 9112 2.2: line ends and whitespace --------------------------------------------
    row("crlf line ends", req(b"GET / HTTP/1.1", b"Host: h"), [200], "keep", [OK]),
    row("bare LF line ends: refused", b"GET / HTTP/1.1\nHost: h\n\n", [400], "close"),
    row("bare CR in a field value: refused (MUST)", req(b"GET / HTTP/1.1", H[:-2], b"X: a\rb"), [400], "close"),
    row("whitespace before the first field: refused (MUST)", req(b"GET / HTTP/1.1", b" X: 1", b"Host: h"),
        [400], "close"),
    row("an empty line before the request line is ignored (SHOULD)",
        b"\r\n" + req(b"GET / HTTP/1.1", b"Host: h"), [200], "keep", [OK]),
    # -- 2.3 version ---------------------------------------------------------------------------
    row("HTTP/1.0", req(b"GET / HTTP/1.0"), [200], "close", [{"protocol": "HTTP/1.0"}]),
    row("lower-case version: refused", req(b"GET / http/1.1", b"Host: h"), [400], "close"),
    row("HTTP/2.0 request line: 505", req(b"GET / HTTP/2.0", b"Host: h"), [505], "close"),
    row("HTTP/1.2: 505", req(b"GET / HTTP/1.2", b"Host: h"), [505], "close"),
    row("HTTP/0.9 simple request: 505", b"GET /\r\n\r\n", [505], "close"),
    # -- 3 request line ------------------------------------------------------------------------
    # 3: recipients MAY parse on whitespace-delimited word boundaries (llhttp does)
    row("two spaces after the method: read as one", req(b"GET  /x HTTP/1.1", b"Host: h"), [200], "keep",
        [{"path": "/x"}]),
    row("tab as separator: refused", req(b"GET\t/ HTTP/1.1", b"Host: h"), [400], "close"),
    row("space inside the target: refused", req(b"GET /a b HTTP/1.1", b"Host: h"), [400], "close"),
    row("non-ASCII byte in the target: refused", req(b"GET /\xc3\xa0 HTTP/1.1", b"Host: h"), [400], "close"),
    row("target over --limit-request-line: 414 (MUST)", req(b"GET /" + b"a" * 5000 + b" HTTP/1.1", b"Host: h"),
        [414], "close"),
    # 3.1 method: case-sensitive tokens; one the parser does not know is 501 (RFC 9110 9.1)
    row("unknown method token: 501", req(b"-BLARGH /foo HTTP/1.1", b"Host: h"), [501], "close"),
    row("lower-case method is another token: 501", req(b"get / HTTP/1.1", b"Host: h"), [501], "close"),
    row("method that is not a token: 400", req(b"GE(T / HTTP/1.1", b"Host: h"), [400], "close"),
    # 3.2 Host: MUST 400 when missing in 1.1, repeated, or invalid
    row("HTTP/1.1 without Host: 400 (MUST)", req(b"GET / HTTP/1.1"), [400], "close"),
    row("two Host lines: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: localhost", b"Host: evil.example.com"),
        [400], "close"),
    row("two Host lines, same value: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: h", b"Host: h"), [400], "close"),
    row("Host with a space: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: a b"), [400], "close"),
    row("Host with a slash: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: a/b"), [400], "close"),
    row("Host with userinfo: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: u@a"), [400], "close"),
    row("Host with a bad port: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: a:8x"), [400], "close"),
    row("Host with an open bracket: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host: [::1"), [400], "close"),
    row("Host IPv6 literal and port", req(b"GET / HTTP/1.1", b"Host: [::1]:8080"), [200], "keep",
        [{"headers": {"HTTP_HOST": "[::1]:8080"}}]),
    row("empty Host is valid", req(b"GET / HTTP/1.1", b"Host:"), [200], "keep", [{"headers": {"HTTP_HOST": ""}}]),
    row("HTTP/1.0 without Host", req(b"GET / HTTP/1.0"), [200], "close", [{"headers": {"HTTP_HOST": None}}]),
    # 3.2.1-3.2.4 the four target forms, each only where it belongs
    row("absolute-form", req(b"GET http://h:8080/p?q=1 HTTP/1.1", b"Host: h:8080"), [200], "keep",
        [{"path": "/p", "query": "q=1", "headers": {"HTTP_HOST": "h:8080"}}]),
    row("absolute-form with userinfo: HTTP_HOST without it",
        req(b"GET http://u:p@h/p HTTP/1.1", b"Host: h"), [200], "keep", [{"path": "/p", "headers": {"HTTP_HOST": "h"}}]),
    # 3.2.2: the server MUST ignore Host and use the target's authority
    row("absolute-form, Host without the port: the target's authority (MUST)",
        req(b"GET http://127.0.0.1:8000/abs HTTP/1.1", b"Host: 127.0.0.1"), [200], "keep",
        [{"path": "/abs", "uri": "http://127.0.0.1:8000/abs", "headers": {"HTTP_HOST": "127.0.0.1:8000"}}]),
    row("absolute-form whose authority is not the Host: the authority (MUST)",
        req(b"GET http://example.com/ HTTP/1.1", b"Host: evil.example.com"), [200], "keep",
        [{"path": "/", "headers": {"HTTP_HOST": "example.com"}}]),
    row("absolute-form, then origin-form with the Host that differed: that Host",
        req(b"GET http://a.example/1 HTTP/1.1", b"Host: b.example") + req(b"GET /2 HTTP/1.1", b"Host: b.example"),
        [200, 200], "keep", [{"path": "/1", "headers": {"HTTP_HOST": "a.example"}},
                             {"path": "/2", "headers": {"HTTP_HOST": "b.example"}}]),
    row("absolute-form in HTTP/1.0 without Host: the authority",
        req(b"GET http://h:81/p HTTP/1.0"), [200], "close", [{"headers": {"HTTP_HOST": "h:81"}}]),
    row("absolute-form with a body", req(b"POST http://h/p HTTP/1.1", b"Host: x", b"Content-Length: 2", body=b"hi"),
        [200], "keep", [{"body": "hi", "headers": {"HTTP_HOST": "h"}}]),
    row("absolute-form still needs a Host in HTTP/1.1: 400 (3.2 MUST)",
        req(b"GET http://h/p HTTP/1.1"), [400], "close"),
    row("absolute-form with an invalid Host: 400 (3.2 MUST)",
        req(b"GET http://h/p HTTP/1.1", b"Host: a b"), [400], "close"),
    row("absolute-form with two Host lines: 400 (3.2 MUST)",
        req(b"GET http://h/p HTTP/1.1", b"Host: h", b"Host: h"), [400], "close"),
    row("absolute-form with an empty host: 400 (RFC 9110 4.2.1 MUST)",
        req(b"GET http://:80/p HTTP/1.1", b"Host: h"), [400], "close"),
    row("absolute-form that is no URI: 400", req(b"PUT s://]ufd/: HTTP/1.1", b"Host: h"), [400], "close"),
    row("asterisk-form with OPTIONS: PATH_INFO ''", req(b"OPTIONS * HTTP/1.1", b"Host: h"), [200], "keep",
        [{"method": "OPTIONS", "path": "", "uri": "*"}]),
    row("asterisk-form with GET: 400", req(b"GET * HTTP/1.1", b"Host: h"), [400], "close"),
    row("authority-form with GET: 400", req(b"GET h:80 HTTP/1.1", b"Host: h:80"), [400], "close"),
    row("CONNECT with an origin-form target: 400", req(b"CONNECT /x HTTP/1.1", b"Host: h"), [400], "close"),
    row("CONNECT without a port: 400", req(b"CONNECT h HTTP/1.1", b"Host: h"), [400], "close"),
    row("relative target: 400", req(b"GET a/b HTTP/1.1", b"Host: h"), [400], "close"),
    row("fragment is not part of the path", req(b"GET /p?q#f HTTP/1.1", b"Host: h"), [200], "keep",
        [{"path": "/p", "query": "q"}]),
    # -- RFC 9112 5 / RFC 9110 5: field syntax -----------------------------------------------
    row("whitespace before the colon: 400 (MUST)", req(b"GET / HTTP/1.1", b"Host : h"), [400], "close"),
    row("obs-fold: 400 (MUST reject or replace)", req(b"GET / HTTP/1.1", b"Host: h", b"X: a", b" b"),
        [400], "close"),
    row("field name not a token: 400", req(b"GET / HTTP/1.1", b"Host: h", b"X(: 1"), [400], "close"),
    row("empty field name: 400", req(b"GET / HTTP/1.1", b"Host: h", b": 1"), [400], "close"),
    row("NUL in a value: 400 (RFC 9110 5.5 MUST)", req(b"GET / HTTP/1.1", b"Host: h", b"X: a\0b"), [400], "close"),
    row("BEL in a value: 400", req(b"GET / HTTP/1.1", b"Host: h", b"X: a\x07b"), [400], "close"),
    row("DEL in a value: 400", req(b"GET / HTTP/1.1", b"Host: h", b"X: a\x7fb"), [400], "close"),
    row("obs-text in a value is kept", req(b"GET / HTTP/1.1", b"Host: h", b"X: caf\xe9"), [200], "keep",
        [{"headers": {"HTTP_X": "caf\xe9"}}]),
    row("OWS around a value is not part of it", req(b"GET / HTTP/1.1", b"Host: h", b"X: \t v w \t"),
        [200], "keep", [{"headers": {"HTTP_X": "v w"}}]),
    # RFC 9110 5.3: repeated lines join with ',', whatever the length of the value (issue 17)
    row("repeated one-character values join", req(b"GET / HTTP/1.1", b"Host: h", b"X-A: 1", b"X-A: 1"),
        [200], "keep", [{"headers": {"HTTP_X_A": "1,1"}}]),
    row("repeated empty values join", req(b"GET / HTTP/1.1", b"Host: h", b"X-E:", b"X-E:"),
        [200], "keep", [{"headers": {"HTTP_X_E": ","}}]),
    row("repeated longer values join", req(b"GET / HTTP/1.1", b"Host: h", b"X-B: 12", b"x-b: 12"),
        [200], "keep", [{"headers": {"HTTP_X_B": "12,12"}}]),
    row("repeated X-Forwarded-For joins in order",
        req(b"GET / HTTP/1.1", b"Host: h", b"X-Forwarded-For: 1.1.1.1", b"X-Forwarded-For: 2.2.2.2"),
        [200], "keep", [{"headers": {"HTTP_X_FORWARDED_FOR": "1.1.1.1,2.2.2.2"}}]),
    # singleton fields the app reads: a second line is refused
    row("two Content-Type lines: 400", req(b"GET / HTTP/1.1", b"Host: h", b"Content-Type: a/b", b"Content-Type: c/d"),
        [400], "close"),
    row("two Authorization lines: 400", req(b"GET / HTTP/1.1", b"Host: h", b"Authorization: a", b"Authorization: b"),
        [400], "close"),
    # a name with '_' would map onto the same environ key as '-': dropped, as Gunicorn does
    row("underscore name dropped", req(b"GET / HTTP/1.1", b"Host: h", b"X_Custom: 1"), [200], "keep",
        [{"headers": {"HTTP_X_CUSTOM": None}}]),
    row("Content_Length cannot pose as Content-Length",
        req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 2", b"Content_Length: 9", body=b"ok"),
        [200], "keep", [{"body": "ok", "headers": {"CONTENT_LENGTH": "2"}}]),
    # limits, counted as Gunicorn counts: the whole field line with its CRLF
    row("field line of 8190 bytes with CRLF: accepted",
        req(b"GET / HTTP/1.1", b"Host: h", b"X-Long: " + b"v" * LONG), [200], "keep"),
    row("field line of 8191 bytes with CRLF: 431",
        req(b"GET / HTTP/1.1", b"Host: h", b"X-Long: " + b"v" * (LONG + 1)), [431], "close"),
    row("101 fields: 431", req(b"GET / HTTP/1.1", b"Host: h", *[b"X-%d: 1" % i for i in range(100)]),
        [431], "close"),
    # scheme headers from a trusted peer (127.0.0.1 is trusted by default) must agree
    row("X-Forwarded-Proto https from a trusted peer",
        req(b"GET / HTTP/1.1", b"Host: h", b"X-Forwarded-Proto: https"), [200], "keep", [{"scheme": "https"}]),
    row("scheme headers that disagree: 400",
        req(b"GET / HTTP/1.1", b"Host: h", b"X-Forwarded-Proto: https", b"X-Forwarded-Ssl: off"), [400], "close"),
    # -- RFC 9112 6: body framing -------------------------------------------------------------
    row("Content-Length body", req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 5", body=b"hello"),
        [200], "keep", [{"body": "hello", "headers": {"CONTENT_LENGTH": "5"}}]),
    row("Content-Length with leading zeros", req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 005",
                                                 body=b"hello"), [200], "keep", [{"body": "hello"}]),
    row("GET with a body: read", req(b"GET / HTTP/1.1", b"Host: h", b"Content-Length: 2", body=b"hi"),
        [200], "keep", [{"body": "hi"}]),
    row("no framing: no body, the rest is the next request",
        req(b"POST / HTTP/1.1", b"Host: h") + req(b"GET /2 HTTP/1.1", b"Host: h"), [200, 200], "keep",
        [{"body": ""}, {"path": "/2"}]),
    row("Content-Length not a number: 400 (MUST)", req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 5x"),
        [400], "close"),
    row("Content-Length with a sign: 400 (MUST)", req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: +5"),
        [400], "close"),
    row("Content-Length as a list: 400 (MUST)", req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 5, 5"),
        [400], "close"),
    row("two Content-Length lines: 400 (MUST)",
        req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
        [400], "close"),
    row("Content-Length and Transfer-Encoding: 400, closed (MUST close)",
        req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 5", b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n"), [400], "close"),
    row("Transfer-Encoding in HTTP/1.0: 400, closed (MUST)",
        req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("chunked not the final coding: 400 (MUST)",
        req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked, gzip"), [400], "close"),
    row("gzip alone: 400 (MUST: chunked is not final)",
        req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: gzip"), [400], "close"),
    row("gzip, chunked: 501", req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: gzip, chunked",
                                  body=b"0\r\n\r\n"), [501], "close"),
    row("identity then chunked on two lines: 501",
        req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: identity", b"Transfer-Encoding: chunked",
            body=b"0\r\n\r\n"), [501], "close"),
    row("chunked twice: 400", req(b"POST / HTTP/1.1", b"Host: h", b"Transfer-Encoding: chunked, chunked",
                                  body=b"0\r\n\r\n"), [400], "close"),
    row("body over --limit-request-body: 413", req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 2000"),
        [413], "close"),
    row("body cut short by EOF: never reaches the app",
        req(b"POST / HTTP/1.1", b"Host: h", b"Content-Length: 10", body=b"hello"), [], "eof"),
    row("head cut short by EOF: no answer", b"GET / HTTP/1.1\r\nHost: h\r\n", [], "eof"),
    row("100-continue, then the body", req(b"POST / HTTP/1.1", b"Host: h", b"Expect: 100-continue",
                                           b"Content-Length: 2", body=b"hi"), [200], "keep", [{"body": "hi"}]),
    row("unknown expectation: 417", req(b"POST / HTTP/1.1", b"Host: h", b"Expect: magic", b"Content-Length: 1",
                                        body=b"x"), [417], "close"),
    # -- RFC 9112 7: chunked ------------------------------------------------------------------
    row("chunked body", chunked(body=b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), [200], "keep",
        [{"body": "hello world", "headers": {"CONTENT_LENGTH": "11"}}]),
    row("chunk size upper-case hex with leading zeros", chunked(body=b"000A\r\n0123456789\r\n0\r\n\r\n"),
        [200], "keep", [{"body": "0123456789"}]),
    row("chunk extensions are ignored", chunked(body=b"5;a=b;c=\"d e\"\r\nhello\r\n0;z\r\n\r\n"),
        [200], "keep", [{"body": "hello"}]),
    row("chunk extension with spaces: refused by llhttp (README)", chunked(body=b"5; a=b\r\nhello\r\n0\r\n\r\n"),
        [400], "close"),
    row("chunk size not hex: 400", chunked(body=b"5g\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("chunk size with a sign: 400", chunked(body=b"+5\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("chunk size 0x prefix: 400", chunked(body=b"0x5\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("chunk size overflow: 400", chunked(body=b"1" + b"0" * 17 + b"\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("chunk data longer than its size: 400", chunked(body=b"3\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("chunked body over the limit: 413", chunked(body=b"7d1\r\n" + b"x" * 2001 + b"\r\n0\r\n\r\n"),
        [413], "close"),
    row("no last chunk before EOF: no answer", chunked(body=b"5\r\nhello\r\n"), [], "eof"),
    row("last chunk without the final CRLF before EOF: no answer", chunked(body=b"5\r\nhello\r\n0\r\n"), [], "eof"),
    # trailers never enter the environ; framing, routing and auth fields there are refused
    row("trailer field dropped", chunked(body=b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"), [200], "keep",
        [{"body": "hello", "headers": {"HTTP_X_T": None}}]),
    row("trailer X-Forwarded-For: refused, not merged",
        chunked(b"X-Forwarded-For: 10.0.0.1",
                body=b"5\r\nhello\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n"),
        [400], "close"),
    row("trailer Host: 400", chunked(body=b"5\r\nhello\r\n0\r\nHost: evil.example.com\r\n\r\n"), [400], "close"),
    row("trailer Content-Type: dropped", chunked(b"Content-Type: x/y",
                                                 body=b"5\r\nhello\r\n0\r\nContent-Type: a/b\r\n\r\n"),
        [200], "keep", [{"headers": {"CONTENT_TYPE": "x/y"}}]),
    row("trailer Content-Length: 400", chunked(body=b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"),
        [400], "close"),
    row("trailer Transfer-Encoding: 400", chunked(body=b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
        [400], "close"),
    row("trailer Authorization: 400", chunked(body=b"5\r\nhello\r\n0\r\nAuthorization: x\r\n\r\n"), [400], "close"),
    row("trailer line over the field limit: 431",
        chunked(body=b"5\r\nhello\r\n0\r\nX-Long: " + b"v" * (LONG + 1) + b"\r\n\r\n"), [431], "close"),
    # -- Upgrade and CONNECT: no protocol switch; the body is read; closed after (issue 17) ----
    row("Upgrade with a Content-Length body",
        req(b"POST /up HTTP/1.1", b"Host: h", b"Connection: Upgrade", b"Upgrade: websocket", b"Content-Length: 5",
            body=b"hello"), [200], "close", [{"body": "hello", "headers": {"CONTENT_LENGTH": "5"}}]),
    row("Upgrade with a chunked body",
        req(b"POST /up HTTP/1.1", b"Host: h", b"Connection: Upgrade", b"Upgrade: websocket",
            b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\n\r\n"), [200], "close", [{"body": "hello"}]),
    row("Upgrade with a bad chunk size: 400",
        req(b"POST /up HTTP/1.1", b"Host: h", b"Connection: Upgrade", b"Upgrade: websocket",
            b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n0\r\n\r\n"), [400], "close"),
    row("Upgrade with a Host trailer: 400",
        req(b"POST /up HTTP/1.1", b"Host: h", b"Connection: Upgrade", b"Upgrade: websocket",
            b"Transfer-Encoding: chunked", body=b"5\r\nhello\r\n0\r\nHost: x\r\n\r\n"), [400], "close"),
    row("CONNECT with a body over the limit: 413",
        req(b"CONNECT h:443 HTTP/1.1", b"Host: h:443", b"Transfer-Encoding: chunked",
            body=b"7d1\r\n" + b"x" * 2001 + b"\r\n0\r\n\r\n"), [413], "close"),
    row("Upgrade without a body", req(b"GET /up HTTP/1.1", b"Host: h", b"Connection: Upgrade", b"Upgrade: x"),
        [200], "close", [{"path": "/up", "body": ""}]),
    row("Upgrade header without Connection: upgrade is ordinary",
        req(b"GET /up HTTP/1.1", b"Host: h", b"Upgrade: x"), [200], "keep", [{"headers": {"HTTP_UPGRADE": "x"}}]),
    row("CONNECT reaches the app with its body, then closes",
        req(b"CONNECT h:443 HTTP/1.1", b"Host: h:443", b"Content-Length: 5", body=b"hello"), [200], "close",
        [{"method": "CONNECT", "path": "", "uri": "h:443", "body": "hello"}]),
    # -- RFC 9112 9.3: persistence; close wins in every version ---------------------------------
    row("HTTP/1.0 keep-alive", req(b"GET / HTTP/1.0", b"Connection: keep-alive"), [200], "keep"),
    row("HTTP/1.0 close, keep-alive: closed", req(b"GET / HTTP/1.0", b"Connection: close, keep-alive"),
        [200], "close"),
    row("HTTP/1.1 keep-alive, close: closed", req(b"GET / HTTP/1.1", b"Host: h", b"Connection: keep-alive, close"),
        [200], "close"),
    row("Connection: CLOSE is case-insensitive", req(b"GET / HTTP/1.1", b"Host: h", b"Connection: CLOSE"),
        [200], "close"),
    row("after a closing response, garbage is not answered",
        req(b"GET / HTTP/1.1", b"Host: h", b"Connection: close") + b"\x00garbage\r\n\r\n", [200], "close"),
    row("pipelined requests answered in order",
        req(b"GET /1 HTTP/1.1", b"Host: h") + req(b"POST /2 HTTP/1.1", b"Host: h", b"Content-Length: 1", body=b"x")
        + req(b"GET /3 HTTP/1.1", b"Host: h"), [200, 200, 200], "keep",
        [{"path": "/1"}, {"path": "/2", "body": "x"}, {"path": "/3"}]),
    row("a refusal after a good request: the good one answered first",
        req(b"GET /1 HTTP/1.1", b"Host: h") + req(b"GET * HTTP/1.1", b"Host: h"), [200, 400], "close",
        [{"path": "/1"}]),
]


@pytest.fixture(scope="module", params=["sync", "threads"])
def echo_server(request):
    """One server for all rows; the rows run twice: one app thread, and app threads."""
    env = {"PYTHONPATH": SCRIPTS + os.pathsep + APPS}
    threads = ["--threads", "4"] if request.param == "threads" else []
    s = Server("echo:app", "--limit-request-body", "1000", *threads, env=env)
    try:
        pids = s.worker_pids()
        yield s
        assert s.worker_pids() == pids, "a worker died: %s" % s.log()[-3000:]
        s.stop()
    finally:
        s.close()


def send(port, data, mode):
    """One connection: the row's bytes (and the probe unless mode is eof) in one send."""
    return peers.exchange(port, data if mode == "eof" else data + PROBE, timeout=3.0, shut=(mode == "eof"))


@pytest.mark.parametrize("data, statuses, mode, seen", ROWS)
def test_request(echo_server, data, statuses, mode, seen):
    got = send(echo_server.port, data, mode)
    answered = got.responses
    if mode == "keep":
        assert [r.status for r in answered] == statuses + [200], got.rest[:200]
        assert answered[-1].seen()["path"] == "/probe"
        answered = answered[:-1]
    else:
        assert [r.status for r in answered] == statuses, (answered and answered[-1].body, got.rest[:200])
        assert got.closed, "the server kept the connection open"
        assert not got.rest, "bytes after the last response: %r" % got.rest[:200]
        if answered and mode == "close":
            assert answered[-1].header("connection") == "close"
    readings = [r.seen() for r in answered if 200 <= r.status < 300]
    for want, reading in zip(seen, readings):
        for key, value in want.items():
            if key == "headers":
                for name, field in value.items():
                    assert reading["headers"].get(name) == field, (name, reading["headers"])
            else:
                assert reading[key] == value, (key, reading)
    # the same worker answers the next connection
    again = peers.exchange(echo_server.port, req(b"GET /next HTTP/1.1", b"Host: h", b"Connection: close"))
    assert again.statuses() == [200]


def test_closing_response_reads_nothing_after(echo_server):
    """After Connection: close is answered, a request in the same send is never served,
    and the socket is closed without reading it (no 400 for it either)."""
    data = req(b"GET /1 HTTP/1.1", b"Host: h", b"Connection: close") + req(b"GET /2 HTTP/1.1", b"Host: h")
    got = peers.exchange(echo_server.port, data, timeout=3.0, shut=False)
    assert got.statuses() == [200] and got.closed and not got.rest
    assert got.responses[0].seen()["path"] == "/1"


def test_refusal_on_a_slow_connection_closes_it(echo_server):
    """A bad second read on a kept-alive connection is refused and closed."""
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=3.0) as s:
        s.sendall(req(b"GET /1 HTTP/1.1", b"Host: h"))
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        s.sendall(req(b"GET /2 HTTP/1.1", b"Host: a", b"Host: b"))
        rest = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            rest += b
        assert rest.startswith(b"HTTP/1.1 400") and b"Connection: close" in rest


def test_expect_100_continue_ignored_in_http10(echo_server):
    """RFC 9110 10.1.1: a server MUST ignore a 100-continue expectation in HTTP/1.0."""
    data = req(b"POST / HTTP/1.0", b"Expect: 100-continue", b"Content-Length: 2", body=b"hi")
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=3.0) as s:
        s.sendall(data)
        raw = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            raw += b
    assert raw.startswith(b"HTTP/1.1 200") and b"100 Continue" not in raw, raw[:200]
    assert peers.parse_responses(raw)[0][0].seen()["body"] == "hi"
