"""The incident's app: a request handler that leaks zombies, as the library did.

    /            calls `leaky_library.check()`, which forks a child that exits at once
                 and is never waited for: one zombie per request, held by the worker
                 until the worker exits. When the dyno's task limit is reached the fork
                 fails (EAGAIN) and the exception reaches the server, as in the incident.
    /ok          a plain 200, no fork
    /hog?mb=N    this worker holds N MB, allocated and every page touched (written), and
                 keeps it: later requests grow it to N if N is larger, and touch it again
                 (so it stays resident). `&add=1` grows by N MB on every request instead:
                 a steady memory leak, for --max-worker-memory.
    /thread      starts a thread that sleeps for an hour and is never joined: a thread
                 leak, one task per request
    /status      this worker's pid, MB held and zombies made so far, as text
    /sleep?s=N   sleeps N seconds (a request stuck past --timeout)

Every response names the worker (`X-Worker-Pid`), like scripts/hello.py.

    python -m supervisor run leaky_app:app -w 4 -b 127.0.0.1:8000      (from scripts/)
    python -m gunicorn -w 4 -b 127.0.0.1:8000 leaky_app:app
"""
import os
import threading
import time
from urllib.parse import parse_qs

MB = 1024 * 1024
PAGE = os.sysconf("SC_PAGE_SIZE")

HELD = []           # this worker's bytearrays from /hog: kept for its lifetime
LEAKED = [0]        # children forked and never waited for, in this worker


class leaky_library:
    """Stands in for the third-party library: it shells out by fork and forgets the child."""

    @staticmethod
    def check():
        pid = os.fork()
        if pid == 0:
            os._exit(0)          # the child is done at once; nobody calls waitpid() for it
        LEAKED[0] += 1
        return pid


def _held():
    return sum(len(b) for b in HELD)


def _touch(buf):
    # one byte per page, written through a slice: makes every page resident (calloc'd
    # memory is not, until written) at C speed
    n = len(range(0, len(buf), PAGE))
    buf[::PAGE] = b"\x01" * n


def hog(mb, add):
    want = int(mb * MB)
    if add:
        grow = want
    else:
        grow = max(0, want - _held())
    if grow:
        buf = bytearray(grow)
        _touch(buf)
        HELD.append(buf)
    for buf in HELD:
        _touch(buf)
    return _held()


def _respond(start_response, status, text):
    body = text.encode()
    start_response(status, [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Worker-Pid", str(os.getpid())),
    ])
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        child = leaky_library.check()
        return _respond(start_response, "200 OK", "checked (child %d left unreaped)\n" % child)
    if path == "/ok":
        return _respond(start_response, "200 OK", "ok\n")
    if path == "/hog":
        q = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            mb = float(q.get("mb", ["0"])[0])
        except ValueError:
            return _respond(start_response, "400 Bad Request", "mb must be a number\n")
        held = hog(mb, q.get("add", ["0"])[0] not in ("", "0"))
        return _respond(start_response, "200 OK", "holding %.1fMB\n" % (held / MB))
    if path == "/thread":
        threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
        return _respond(start_response, "200 OK", "threads: %d\n" % threading.active_count())
    if path == "/sleep":
        time.sleep(float(parse_qs(environ.get("QUERY_STRING", "")).get("s", ["1"])[0]))
        return _respond(start_response, "200 OK", "slept\n")
    if path == "/status":
        return _respond(start_response, "200 OK", "pid=%d held_mb=%.1f leaked=%d\n"
                        % (os.getpid(), _held() / MB, LEAKED[0]))
    return _respond(start_response, "404 Not Found", "not found\n")


application = app
