"""What the request path writes into the worker's heartbeat cell (supervise/heartbeat.py).

The cell's work part says how many requests are in progress, since when the oldest has
run and what it is ("GET /path"): the master's timeout counts from that start, never from
the last tick, and its death line names the request. In a worker without threads a
request costs one pack_into when it starts (the master counts from that start) and a
clock read when it ends (busy_seconds); once per loop turn in which requests ran,
settle() says nothing is in progress and refreshes the beat (the loop could not tick
while the app ran). Until then `since` is the start of the turn's last request, never
earlier than the request truly in progress, so the master never aborts early.

With threads, the app threads write the work part under one lock, so two threads never
interleave their writes; the loop's tick writes the tick part as before.
"""
import struct
import threading
import time

from ..supervise.heartbeat import CELL_SIZE, TICK, WORK

WHAT = 48                  # bytes of "METHOD /path" kept
# The cell from the beat to its end, in one write: beat, requests, busy seconds, then the work part.
_BEAT_AT = struct.calcsize("=qq")
_TAIL = struct.Struct("=dqd" + WORK.format.lstrip("=<>!@"))
assert _BEAT_AT + _TAIL.size == CELL_SIZE and TICK.format.endswith("dqd")   # the layout this relies on


_WHATS = {}                # method -> {path -> b"METHOD /path"}: the common requests pay two lookups
_monotonic = time.monotonic
_pack_work = WORK.pack_into
_WORK_AT = TICK.size


def what(env):
    """b"METHOD /path" of a request (no query string), cut to WHAT bytes; remembered."""
    method, path = env["REQUEST_METHOD"], env["PATH_INFO"]
    paths = _WHATS.get(method)
    if paths is None:
        paths = _WHATS[method] = {} if len(_WHATS) < 64 else _WHATS.clear() or {}
    text = paths.get(path)
    if text is None:
        text = (method + " " + path).encode("latin-1", "replace")[:WHAT]
        if len(paths) >= 1024:
            paths.clear()
        paths[path] = text
    return text


class Meter:
    """One worker's writes to its cell from the request path. `requests` is the count as of
    the loop's last tick (the tick part carries it); `busy_seconds` sums time in requests."""
    __slots__ = ("mem", "base", "requests", "busy_seconds", "starts", "lock")

    def __init__(self, mem=None, cell=0):
        self.mem = mem if mem is not None else bytearray(CELL_SIZE)    # no master: a private cell
        self.base = cell * CELL_SIZE if mem is not None else 0
        self.requests = 0
        self.busy_seconds = 0.0
        self.starts = {}             # with threads: thread id -> (start, what) of its request
        self.lock = threading.Lock()

    # -- one request at a time (no threads) ---------------------------------------------

    def start(self, env):
        t0 = _monotonic()
        paths = _WHATS.get(env["REQUEST_METHOD"])
        text = paths.get(env["PATH_INFO"]) if paths is not None else None
        _pack_work(self.mem, self.base + _WORK_AT, 1, t0, text or what(env))
        return t0

    def end(self, t0):
        """The request is done (the request path inlines this)."""
        self.busy_seconds += _monotonic() - t0

    def settle(self, requests):
        """The loop turn's requests are done: nothing in progress, the loop alive as of now."""
        _TAIL.pack_into(self.mem, self.base + _BEAT_AT, _monotonic(), requests, self.busy_seconds, 0, 0.0, b"")

    # -- app threads ----------------------------------------------------------------------

    def thread_start(self, key, env):
        t0 = time.monotonic()
        with self.lock:
            self.starts[key] = (t0, what(env))
            self._write_work()
        return t0

    def thread_end(self, key, t0):
        t1 = time.monotonic()
        with self.lock:
            del self.starts[key]
            self.busy_seconds += t1 - t0
            self._write_work()

    def _write_work(self):
        starts = self.starts
        if starts:
            since, doing = min(starts.values())
            WORK.pack_into(self.mem, self.base + TICK.size, len(starts), since, doing)
        else:
            WORK.pack_into(self.mem, self.base + TICK.size, 0, 0.0, b"")

    def busy(self):
        """Requests in progress now (threads)."""
        return len(self.starts)
