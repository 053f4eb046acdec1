"""Apps whose responses are shaped like Django's, for the status tests: an iterable with
close() (HttpResponse), a file wrapper (FileResponse) and a generator (StreamingHttpResponse),
each after a short wait (a query to the database), so the loop's turn is a slow one."""
import os
import time

WAIT = 0.03        # seconds, over the worker's SLICE: the turn that serves it is a slow one


class Response:
    """Django's HttpResponse as the server sees it: an iterable of bytes with close()."""

    def __init__(self, body):
        self.body = body
        self.closed = False

    def __iter__(self):
        return iter([self.body])

    def close(self):
        self.closed = True


def _chunks():
    yield b"streamed "
    yield b"body"


def app(environ, start_response):
    """/iter, /file, /gen: the three shapes; any other path: a list."""
    time.sleep(WAIT)
    path = environ["PATH_INFO"]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(os.path.abspath(__file__), "rb"))
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _chunks()
    body = b"%d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return Response(body) if path == "/iter" else [body]
