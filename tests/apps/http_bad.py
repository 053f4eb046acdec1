"""Apps that break PEP 3333 on purpose (so no validator: it would catch them first).
The server must answer 500 for each and keep the worker."""
import os

TEXT = [("Content-Type", "text/plain")]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", TEXT + [("Content-Length", str(len(body)))])
        return [body]
    if path == "/str":                 # a str body instead of bytes
        start_response("200 OK", TEXT)
        return ["not bytes"]
    if path == "/str-iter":            # a bare str as the iterable
        start_response("200 OK", TEXT)
        return "not bytes"
    if path == "/crlf":                # header splitting
        start_response("200 OK", TEXT + [("X-Evil", "a\r\nSet-Cookie: injected=1")])
        return [b"evil"]
    if path == "/hop":                 # hop-by-hop: the server owns framing
        start_response("200 OK", TEXT + [("Transfer-Encoding", "chunked")])
        return [b"hop"]
    if path == "/twice":               # start_response twice without exc_info
        start_response("200 OK", TEXT)
        start_response("201 Created", TEXT)
        return [b"twice"]
    start_response("404 Not Found", TEXT)
    return [b"no such route"]
