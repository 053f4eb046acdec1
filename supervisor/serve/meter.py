"""What the request path writes into the worker's heartbeat cell (supervise/heartbeat.py).

The cell's work part says how many requests are in progress, since when the oldest has
run and what it is ("GET /path"): the master's timeout counts from that start, never
from before it, and its death line names the request.

In a worker without threads the loop writes `since` itself, one float per loop turn: the
turn's start plus worker.LEAD, a bound on how late in a turn a request can start, so the
count never begins before the request did (it may begin up to LEAD after: a timeout is
late by at most that, never early). The request path writes the rest only when it
changes: `start` names the request when its method or target differs from the last one
named (a keep-alive client asking the same URL again costs one identity test), and when a
request of the same read ran before it (pipelining: its `since` is read from the clock).
Once per loop turn in which requests ran, settle() says nothing is in progress and
refreshes the beat (the loop could not tick while the app ran).

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
_SINCE_AT = TICK.size + struct.calcsize("=q")      # the work part's `since`, a float
_LATER = struct.Struct("=d" + WORK.format[3:])      # the work part after `busy`: since, what
SERVED = struct.calcsize("=qqd") // 8               # the tick part's `requests`, as an index of Meter.cell
assert _BEAT_AT + _TAIL.size == CELL_SIZE and TICK.format.endswith("dqd")   # the layout this relies on
assert CELL_SIZE % 8 == 0 and _SINCE_AT % 8 == 0 and WORK.format.startswith("=qd")
assert TICK.format.startswith("=qqdq")                # requests served: the 4th 8-byte field


def what(method, path):
    """b"METHOD /path" of a request (no query string), cut to WHAT bytes."""
    return (method + " " + path).encode("latin-1", "replace")[:WHAT]


class Meter:
    """One worker's writes to its cell from the request path. `requests` counts the requests
    answered (the request path adds to it). The master reads the count in the cell
    (`cell[SERVED]`, the tick part's field) whenever it looks, and after a death the count
    as of that death, so it is written there often: by the loop at the start of each turn
    with events (a worker that served 30 requests back to back on one connection and then
    hung was logged `requests=0` when only ticks and an idle loop wrote it), by start() (so
    a request pipelined behind others, or naming a new target, finds the count exact), and
    with threads each time the loop collects answers (answered()). What a death line can
    miss: requests answered earlier in the very turn that died, on other connections
    asking the same target (not per request: a store into the cell costs 370 instructions
    of CPython, over 1% of a hello-world request).
    `busy_seconds` sums the time the loop spent on turns with events. `times[at]` is the
    cell's `since` (a float view of the cell, for the loop's write once a turn);
    `counts[at - 1]` its `busy`; `line` is the identity of the request the cell names
    (wsgi.request_line hands out one tuple per method and target, so `is` tells a repeat)."""
    __slots__ = ("mem", "base", "requests", "busy_seconds", "starts", "lock", "times", "at", "counts",
                 "line", "cell")

    def __init__(self, mem=None, cell=0):
        self.mem = mem if mem is not None else bytearray(CELL_SIZE)    # no master: a private cell
        self.base = cell * CELL_SIZE if mem is not None else 0
        self.times = memoryview(self.mem).cast("d")
        self.at = (self.base + _SINCE_AT) // 8
        self.counts = memoryview(self.mem).cast("q")
        self.cell = memoryview(self.mem)[self.base:self.base + CELL_SIZE].cast("q")   # this worker's cell
        self.requests = 0
        self.busy_seconds = 0.0
        self.line = None
        self.starts = {}             # with threads: thread id -> (start, what) of its request
        self.lock = threading.Lock()

    def answered(self, n):
        """With threads: the loop collected n answers; the count, in the cell at once."""
        self.requests += n
        self.cell[SERVED] = self.requests

    # -- one request at a time (no threads) ---------------------------------------------

    def start(self, line, since=None):
        """A request that is not the one the cell names starts: `line` is its request line's
        environ fields (method, path, query, target: wsgi.request_line). `since`: when it
        started, or a moment after (monotonic); None: the `since` the loop wrote for this turn."""
        self.line = line
        self.cell[SERVED] = self.requests
        self._work(1, self.times[self.at] if since is None else since, what(line[0], line[1]))

    def settle(self, requests):
        """The loop turn's requests are done: nothing in progress, the loop alive as of now."""
        _TAIL.pack_into(self.mem, self.base + _BEAT_AT, time.monotonic(), requests, self.busy_seconds, 0, 0.0, b"")
        self.line = None      # the next request names itself again

    # -- app threads ----------------------------------------------------------------------

    def thread_start(self, key, env):
        t0 = time.monotonic()
        with self.lock:
            self.starts[key] = (t0, what(env["REQUEST_METHOD"], env["PATH_INFO"]))
            self._write_work()
        return t0

    def thread_end(self, key, t0):
        t1 = time.monotonic()
        with self.lock:
            del self.starts[key]
            self.busy_seconds += t1 - t0
            self._write_work()
        return t1

    def _write_work(self):
        starts = self.starts
        if starts:
            since, doing = min(starts.values())
            self._work(len(starts), since, doing)
        else:
            self._work(0, 0.0, b"")

    def _work(self, busy, since, doing):
        """Write the work part so that the master, reading while this process is
        descheduled halfway through (two reads that agree are no proof then), never sees
        a busy cell with a since that is not a request's: with requests in progress,
        since (one aligned 8-byte store) and what first, then busy; going idle, busy
        first. (pack_into writes field by field, busy first: a busy of 1 over the idle
        cell's since of 0 once had a worker aborted for a request of "24344.1s".)"""
        if busy:
            _LATER.pack_into(self.mem, self.base + _SINCE_AT, since, doing)
            self.counts[self.at - 1] = busy
        else:
            self.counts[self.at - 1] = 0
            _LATER.pack_into(self.mem, self.base + _SINCE_AT, 0.0, b"")

    def busy(self):
        """Requests in progress now (threads)."""
        return len(self.starts)
