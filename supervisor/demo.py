"""The bundled demo app: `pyfork run supervisor.demo` serves it with nothing else installed."""
import os

PAGE = b"""<!doctype html>
<title>pyfork</title>
<h1>pyfork is serving</h1>
<p>worker pid %d. Try <a href="/hello">/hello</a>, <a href="/environ">/environ</a>, POST to /echo.</p>
"""


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hello":
        body = b"Hello, World!"
        ctype = "text/plain"
    elif path == "/echo":
        body = environ["wsgi.input"].read()
        ctype = environ.get("CONTENT_TYPE") or "application/octet-stream"
    elif path == "/environ":
        body = "".join("%s=%r\n" % kv for kv in sorted(environ.items())).encode()
        ctype = "text/plain"
    elif path == "/":
        body = PAGE % os.getpid()
        ctype = "text/html"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]


app = application
