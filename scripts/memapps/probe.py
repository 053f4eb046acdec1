"""The WSGI wrapper both measurement apps wear: it tells scripts/memory.py who answered.

Every response gets `X-Worker-Pid` (the process that ran the app) and `X-Served` (how many
requests this process has answered, this one included). The count is kept per pid, so a
process forked from one that served (a refork template) starts again at 1, and the first
request of every process is plainly `X-Served: 1`.

With MEMAPP_STATS naming a file, each process appends one JSON line when it answers its
first request: {"pid", "path", "ms"} where ms is the time spent inside the app. That is
how memory.py learns the first request of workers it never addressed (those forked during
the load, by a refork) without having to route a request to them.
"""
import json
import os
import time


class Probe:
    def __init__(self, app):
        self.app = app
        self.pid = None
        self.served = 0
        self.stats = os.environ.get("MEMAPP_STATS")

    def __call__(self, environ, start_response):
        pid = os.getpid()
        if pid != self.pid:             # first request in this process (fork, preload or refork)
            self.pid, self.served = pid, 0
        self.served += 1
        served = self.served
        extra = [("X-Worker-Pid", str(pid)), ("X-Served", str(served))]

        def start(status, headers, exc_info=None):
            return start_response(status, list(headers) + extra, exc_info)

        t0 = time.perf_counter()
        body = self.app(environ, start)
        if served == 1 and self.stats:
            self.record(pid, environ.get("PATH_INFO", ""), time.perf_counter() - t0)
        return body

    def record(self, pid, path, seconds):
        line = json.dumps({"pid": pid, "path": path, "ms": round(seconds * 1000, 2)}) + "\n"
        fd = os.open(self.stats, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())     # one write under O_APPEND: lines never interleave
        finally:
            os.close(fd)
