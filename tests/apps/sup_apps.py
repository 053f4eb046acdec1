"""Apps for the supervision tests: slow, hanging, crashing and forking handlers."""
import os
import time


def _reply(start_response, body, status="200 OK"):
    body = body if isinstance(body, bytes) else str(body).encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    """/ -> the worker pid; /slow?1.5 sleeps; /hang never returns; /hang-in-c never returns
    from one C call that holds the GIL (no 504 can be written: the worker is aborted)."""
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or 1))
    elif path == "/hang":
        hang_here()
    elif path == "/hang-in-c":
        sum(range(10 ** 14))
    return _reply(start_response, os.getpid())


def hang_here():
    while True:
        time.sleep(1)


def crash(environ, start_response):
    """Every request kills the worker, as a segfaulting C extension would."""
    os._exit(13)


def forker(environ, start_response):
    """Forks a child per request and never waits for it: the incident's library."""
    if os.fork() == 0:
        os._exit(0)
    return _reply(start_response, os.getpid())


def doublefork(environ, start_response):
    """Daemonizes a grandchild (double fork): it is orphaned and must be reaped by the master."""
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            time.sleep(0.05)
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
    return _reply(start_response, os.getpid())


def query_of_death(environ, start_response):
    """/crash kills its worker (os._exit, as a segfaulting C extension would); anything
    else -> the worker pid; /slow?2.5 sleeps first."""
    path = environ["PATH_INFO"]
    if path == "/crash":
        os._exit(13)
    if path == "/slow":
        time.sleep(float(environ["QUERY_STRING"] or 1))
    return _reply(start_response, os.getpid())


def children(environ, start_response):
    """/run waits on a `sleep 3600` child (a PDF renderer or ffmpeg that hangs); /spawn?N
    starts `sleep N` and answers its pid without waiting for it; anything else: the pid."""
    import subprocess
    path = environ["PATH_INFO"]
    if path == "/run":
        subprocess.run(["sleep", "3600"])
    elif path == "/spawn":
        child = subprocess.Popen(["sleep", environ["QUERY_STRING"] or "30"])
        return _reply(start_response, child.pid)
    return _reply(start_response, os.getpid())
