"""Apps that leak: memory, zombies, threads (for the metrics and recycling tests)."""
import os
import threading
import time

HELD = []
GROWN = []
GROW = int(os.environ.get("GROW_MB") or 0)
WAIT = float(os.environ.get("WAIT_MS") or 0) / 1000.0


def _reply(start_response, body):
    body = str(body).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    """/hog?MB keeps MB more of touched memory; /zombie leaves an unreaped child;
    /thread starts a thread that sleeps; anything else: the pid."""
    path, qs = environ["PATH_INFO"], environ["QUERY_STRING"]
    if GROW and not GROWN:          # GROW_MB: a worker that reaches its size on its first request
        GROWN.append(bytearray(os.urandom(16)) * (GROW * 65536))
    if WAIT:
        time.sleep(WAIT)            # WAIT_MS: a request that waits (on a database, an API)
    if path == "/hog":
        HELD.append(bytearray(os.urandom(16)) * (int(qs or 10) * 65536))   # touched: not a lazy zero page
    elif path == "/zombie":
        if os.fork() == 0:
            os._exit(0)
    elif path == "/thread":
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    return _reply(start_response, os.getpid())


# With HOG_MB set, each worker importing this module (no --preload) keeps that much
# private, touched memory: a worker of a known size for the dyno tests.
if os.environ.get("HOG_MB"):
    HELD.append(bytearray(os.urandom(16)) * (int(os.environ["HOG_MB"]) * 65536))
