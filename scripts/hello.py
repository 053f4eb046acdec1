"""The benchmark's hello-world WSGI app, served identically by pyfork and Gunicorn.

`X-Worker-Pid` names the worker process that answered, so scripts/bench.py can tell
when a replacement worker serves its first request. It is worked out per request
(os.getpid() is cheap) so it stays right when the app is imported before fork (--preload).
"""
import os

BODY = b"Hello, World!"
LENGTH = str(len(BODY))


def app(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", LENGTH),
        ("X-Worker-Pid", str(os.getpid())),
    ])
    return [BODY]


application = app
