"""One shared-memory cell per worker, made before the first fork: the worker writes, the
master reads.

A cell has two parts, each written with one struct.pack_into on an anonymous shared
mapping (no file and no syscall per write):

- the tick part, written by the worker's loop about once a second: its pid, state, last
  beat (CLOCK_MONOTONIC, the same clock in every process), requests served, and the
  seconds it has spent inside requests so far (for the CPU-per-busy-second ratio);
- the work part, written when a request starts or ends: how many requests are in
  progress, since when the oldest of them has run, and what it is ("GET /path",
  truncated). The master's timeout counts from `since` while `busy` > 0, and its death
  line names `what`.
"""
import mmap
import struct
import typing

TICK = struct.Struct("=qqdqd")      # pid, state, last beat, requests served, busy seconds
WORK = struct.Struct("=qd64s")      # requests in progress, start of the oldest, its "METHOD /path"
WHAT = WORK.size - 16               # bytes of `what`
CELL_SIZE = TICK.size + WORK.size
BOOTING, READY, STOPPING = 0, 1, 2
EXITING = 4      # a flag added to the state just before pyfork's own os._exit: the code is pyfork's
TIMED_OUT = 8    # a flag: a request passed --timeout, the worker answered it 504 and is leaving (recycled)

CELLS = 1024   # enough for any worker count plus replacements during a reload


class Beat(typing.NamedTuple):
    """One read of a worker's cell."""
    pid: int
    state: int
    beat: float            # the loop's last tick
    requests: int
    busy_seconds: float
    busy: int              # requests in progress now
    since: float           # start (or last progress) of the oldest request in progress, or a moment after
    what: str              # that request, "METHOD /path" (no query string), or ""

    def running(self, now):
        """Seconds the oldest request in progress has run, as far as the cell says (0 while
        its `since` lies ahead: a worker without threads writes it a little ahead, so that
        a timeout is never early: serve/meter.py)."""
        return max(0.0, now - self.since) if self.busy else 0.0

    @property
    def ready(self):
        return self.state == READY

    @property
    def served(self):
        """The worker got as far as serving (the master may not have seen it ready yet)."""
        return self.state & ~(EXITING | TIMED_OUT) in (READY, STOPPING) or self.busy > 0

    @property
    def timed_out(self):
        """The worker answered a request that passed --timeout with 504 and stops taking new
        ones: the master replaces it (plan.actions)."""
        return bool(self.state & TIMED_OUT)

    @property
    def exiting(self):
        """The worker left through pyfork's own exit (its code is pyfork's, not the app's)."""
        return bool(self.state & EXITING)


class Heartbeat:
    """Cells are handed out per forked worker (not per slot), so a slot's old and new
    worker can both beat while a reload overlaps them."""

    def __init__(self, cells=CELLS):
        self.mem = mmap.mmap(-1, cells * CELL_SIZE, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.free = list(range(cells - 1, -1, -1))

    def take(self):
        cell = self.free.pop()
        self.mem[cell * CELL_SIZE:(cell + 1) * CELL_SIZE] = bytes(CELL_SIZE)
        return cell

    def give_back(self, cell):
        self.free.append(cell)

    def set(self, cell, pid, state, beat, requests=0, busy_seconds=0.0):
        """The tick part."""
        TICK.pack_into(self.mem, cell * CELL_SIZE, pid, state, beat, requests, busy_seconds)

    def work(self, cell, busy, since, what=b""):
        """The work part: `busy` requests in progress, the oldest started at `since`
        (monotonic), described by `what` (bytes, cut to fit)."""
        WORK.pack_into(self.mem, cell * CELL_SIZE + TICK.size, busy, since, what[:WHAT])

    def get(self, cell):
        """-> Beat. The worker may be writing the cell at this very moment (pack_into is
        a plain copy, not atomic): a torn read could show a beat of 0 and get a healthy
        worker killed, so read until two reads agree."""
        offset = cell * CELL_SIZE
        first = self.mem[offset:offset + CELL_SIZE]
        while True:
            again = self.mem[offset:offset + CELL_SIZE]
            if again == first:
                break
            first = again
        busy, since, what = WORK.unpack_from(first, TICK.size)
        return Beat(*TICK.unpack_from(first, 0), busy, since,
                    what.rstrip(b"\0").decode("latin-1"))
