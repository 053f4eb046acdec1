"""Apps for tests/serve/test_threads.py: requests that wait, hang, or tell what they saw."""
import json
import os
import threading
import time


def _reply(start_response, body, status="200 OK"):
    body = body if isinstance(body, bytes) else str(body).encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    """/wait?0.2 sleeps that long; /hang never returns (in stuck_in_this_thread); /env the
    flags; /thread the serving thread; anything else: path and pid."""
    path = environ["PATH_INFO"]
    if path == "/wait":
        time.sleep(float(environ["QUERY_STRING"] or 0.2))
    elif path == "/hang":
        stuck_in_this_thread()
    elif path == "/env":
        return _reply(start_response, json.dumps({k: environ[k] for k in ("wsgi.multithread", "wsgi.multiprocess")}))
    elif path == "/thread":
        return _reply(start_response, threading.current_thread().name)
    return _reply(start_response, "%s %d" % (path, os.getpid()))


def stuck_in_this_thread():
    while True:
        time.sleep(1)
