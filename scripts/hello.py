"""The benchmark's hello-world WSGI app, served identically by pyfork and Gunicorn.

`X-Worker-Pid` names the worker process that answered, so scripts/bench.py can tell
when a replacement worker serves its first request. The pid is kept in a global and
refreshed after fork (os.register_at_fork), so it stays right when the app is imported
before fork (--preload) without a getpid() syscall per request, which would be the app's
cost, not the server's.
"""
import os

BODY = b"Hello, World!"
LENGTH = str(len(BODY))
PID = str(os.getpid())


def _forked():
    global PID
    PID = str(os.getpid())


os.register_at_fork(after_in_child=_forked)


def app(environ, start_response):
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", LENGTH),
        ("X-Worker-Pid", PID),
    ])
    return [BODY]


application = app
