"""PEP 3333-compliant routes for tests/serve/test_http.py.

`app` is wrapped in wsgiref.validate.validator, so a server-side PEP 3333 violation
raises inside the worker (and the test sees a 500 instead of a 200). `unvalidated` is
the same router bare: the validator hides a wsgi.file_wrapper object from the server
(no sendfile path) and forbids wsgi.input.read() without a size, so the few tests that
need either use it.

Every call appends its PATH_INFO to the file named by $HTTP_TEST_RECORD (when set), and
close() / exc_info outcomes are recorded there too, so tests can see what the app saw.
"""
import hashlib
import json
import os
import sys
from urllib.parse import parse_qs
from wsgiref.validate import validator

TEXT = [("Content-Type", "text/plain")]


def record(line):
    path = os.environ.get("HTTP_TEST_RECORD")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def text(start_response, body, status="200 OK"):
    body = body if isinstance(body, bytes) else body.encode("latin-1")
    start_response(status, TEXT + [("Content-Length", str(len(body)))])
    return [body]


def as_json(start_response, obj):
    body = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def read_all(inp, size=65536):
    """read(n) until EOF: the validator only allows read() with a size."""
    parts = []
    while True:
        b = inp.read(size)
        if not b:
            return b"".join(parts)
        parts.append(b)


class Closing:
    """An iterable that records close(); optionally raises while being iterated."""

    def __init__(self, name, fail):
        self.name = name
        self.fail = fail

    def __iter__(self):
        if self.fail:
            raise ValueError("iteration failed on purpose")
        yield b"closing body"

    def close(self):
        record("close " + self.name)


def main(environ, start_response):
    path = environ["PATH_INFO"]
    record(path)
    qs = parse_qs(environ.get("QUERY_STRING", ""))

    if path == "/pid":
        return text(start_response, str(os.getpid()))

    if path.startswith("/env") or path == "":     # "": OPTIONS *, CONNECT host:port
        keys = ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "RAW_URI", "SERVER_NAME",
                "SERVER_PORT", "REMOTE_ADDR", "REMOTE_PORT", "SERVER_PROTOCOL", "CONTENT_TYPE",
                "CONTENT_LENGTH", "wsgi.url_scheme", "wsgi.input_terminated", "wsgi.multiprocess",
                "wsgi.multithread", "wsgi.run_once")
        out = {k: environ.get(k) for k in keys}
        out["wsgi.version"] = list(environ["wsgi.version"])
        out["http"] = {k: v for k, v in environ.items() if k.startswith("HTTP_")}
        out["body"] = read_all(environ["wsgi.input"]).decode("latin-1")
        return as_json(start_response, out)

    if path == "/hash":
        body = read_all(environ["wsgi.input"])
        return text(start_response, "%d %s" % (len(body), hashlib.sha256(body).hexdigest()))

    if path == "/input":
        inp = environ["wsgi.input"]
        mode = qs.get("mode", ["readn"])[0]
        if mode == "read":           # no size: only allowed outside the validator
            out = [inp.read().decode()]
        elif mode == "readn":
            out = [inp.read(3).decode(), inp.read(4).decode(), read_all(inp, 5).decode(), inp.read(2).decode()]
        elif mode == "readline":
            out = [inp.readline().decode(), inp.readline(2).decode(), inp.readline().decode(),
                   inp.readline().decode()]
        elif mode == "readlines":
            out = [line.decode() for line in inp.readlines()]
        elif mode == "iter":
            out = [line.decode() for line in inp]
        else:
            raise ValueError(mode)
        return as_json(start_response, out)

    if path == "/stream":
        start_response("200 OK", TEXT)

        def gen():
            yield b"a"
            yield b"bb"
            yield b""
            yield b"ccc"
        return gen()

    if path == "/status":
        code = int(qs["code"][0])
        start_response("%d Whatever" % code, [])   # 204/304: no Content-Type (validator)
        return [b"this body must never be sent"]

    if path == "/file":
        f = open(qs["path"][0], "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)

    if path == "/raise":
        raise RuntimeError("boom-secret-detail")

    if path == "/close-ok":
        start_response("200 OK", TEXT)
        return Closing("ok", fail=False)

    if path == "/close-raise":
        start_response("200 OK", TEXT)
        return Closing("raise", fail=True)

    if path == "/exc-after-headers":
        start_response("200 OK", TEXT)

        def gen():
            yield b"part1"
            try:
                raise KeyError("late failure")
            except KeyError:
                try:
                    start_response("500 Internal Server Error", TEXT, sys.exc_info())
                except KeyError:
                    record("exc_info reraised KeyError")
                    raise
                except BaseException as exc:
                    record("exc_info raised %s" % type(exc).__name__)
                    raise
                record("exc_info did not raise")
            yield b"part2"
        return gen()

    if path == "/exc-before-headers":
        start_response("200 OK", TEXT)
        try:
            raise KeyError("early failure")
        except KeyError:
            start_response("503 Service Unavailable", TEXT + [("Content-Length", "8")], sys.exc_info())
        return [b"replaced"]

    if path == "/write":
        write = start_response("200 OK", TEXT)
        write(b"hello ")
        return [b"world"]

    return text(start_response, "Hello, World!")


app = validator(main)
unvalidated = main
