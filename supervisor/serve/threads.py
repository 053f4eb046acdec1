"""App threads (--threads N > 1): the loop reads and writes sockets, N threads call the app.

The split (Gunicorn's gthread, Puma's reactor): the worker's epoll loop stays the only
reader and writer of sockets. It reads whole requests as before (a slow client costs an
fd, not a thread), queues each complete one as a job, and N threads take jobs first come,
first served. A thread's response goes back to the loop in the connection's outbox; the
loop writes it when the socket has room, so no thread blocks on a slow reader (a streamed
body waits only once more than HIGH_WATER bytes are still unsent).

One request per connection is in a thread at a time, so pipelined requests are answered in
order; the connection is not read while it has requests queued or running (no unbounded
buffering behind a busy app). Per-request state (`plain`, `keep`) is saved when a request
is parsed and restored when its thread starts on it.
"""
import collections
import os
import queue
import select
import threading
import time

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade

from ..supervise.listeners import queued
from .connection import CONTINUE, Connection
from .context import threaded_shed
from .fileparts import FileOut, close_parts, in_order
from .respond import MSG_DONTWAIT, _Gone, refusal
from .wsgi import error_response

# Requests a worker reads beyond its threads: one waiting in the pool lets a thread that
# finishes start on it at once, not after the loop has woken, accepted and read (about
# 0.6 ms a request: the waits load went from 764 to 791 req/s with 8 threads, its p99 from
# 90 to 95 ms, as that request may wait up to one request's time for its thread).
AHEAD = 1
SLOW_WAIT = 0.01         # a request that waited this long for a thread (or ran this long in one)
HIGH_WATER = 1 << 20     # bytes a streamed response may have unsent before its thread waits


class Pool:
    """The job queue, the threads, and the hand-back to the loop (a pipe that wakes it)."""

    def __init__(self, n, meter, log):
        self.jobs = queue.SimpleQueue()
        self.meter = meter
        self.log = log
        self.lock = threading.Lock()
        self.room = threading.Condition(self.lock)     # streamed responses waiting for the loop
        self.ready = []            # connections with output or a finished request, for the loop
        self.woken = False
        self.inflight = 0          # loop only: requests handed to threads and not yet done
        self.waited_at = 0.0       # when a request last waited SLOW_WAIT or more for a thread
        self.slow_at = 0.0         # when a request last took SLOW_WAIT or more in its thread
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.threads = [threading.Thread(target=self.serve, name="app-%d" % i, daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def serve(self):
        key = threading.get_ident()
        get = self.jobs.get
        while True:
            job = get()
            if job is None:
                return
            conn, env, plain, keep = job
            conn.work(key, env, plain, keep)

    def hand(self, conn, finished=False):
        """From a thread: give the connection's queued output (and, at the end of a request,
        the news that it is done) to the loop."""
        out = conn.out
        with self.lock:
            if out:
                if not conn.timed_out:
                    size = sum(map(len, out))
                    conn.outbox.extend(out)
                    conn.backlog += size
                else:
                    close_parts(out)          # the loop answered 504 already: drop it (a file part's fd too)
                out.clear()
            if finished:
                conn.finished = True
            if not conn.posted:
                conn.posted = True
                self.ready.append(conn)
            if not self.woken:
                self.woken = True
                os.write(self.w, b"x")

    def collect(self):
        """From the loop: the connections that have something for it."""
        try:
            os.read(self.r, 4096)
        except BlockingIOError:
            pass
        with self.lock:
            ready, self.ready = self.ready, []
            self.woken = False
            for conn in ready:
                conn.posted = False
        return ready

    def wait_for_room(self, conn, timeout):
        """From a thread streaming a large body: wait until the loop has written most of it."""
        with self.room:
            if not self.room.wait_for(lambda: conn.backlog <= HIGH_WATER or conn.closed, timeout):
                raise _Gone()
            if conn.closed:
                raise _Gone()

    def wrote(self, conn, n):
        """From the loop: n bytes of the connection's output went out."""
        with self.room:
            conn.backlog -= n
            if conn.backlog <= HIGH_WATER:
                self.room.notify_all()

    def stop(self, timeout):
        for _ in self.threads:
            self.jobs.put(None)
        for t in self.threads:
            t.join(timeout)
        os.close(self.r)
        os.close(self.w)


class ThreadedConnection(FileOut, Connection):
    """A Connection whose requests run in the pool. Loop side: on_readable, drain, on_writable.
    Thread side: work (and flush, which hands output to the loop instead of sending it)."""
    __slots__ = ("pool", "queued", "outbox", "backlog", "finished", "posted", "unsent", "refusal", "mask",
                 "handed_at", "running", "later", "key", "timed_out")

    def __init__(self, ctx, sock, base, trust, pool):
        super().__init__(ctx, sock, base, trust)
        self.pool = pool
        self.running = False      # a request of this connection is in an app thread
        self.queued = collections.deque()     # parsed requests waiting for their turn (tuples), and
                                              # interim responses to send between them (bytes: send_continue)
        self.outbox = []          # bytes a thread produced, not yet taken by the loop (pool lock)
        self.backlog = 0          # bytes handed to the loop, not yet sent (pool lock)
        self.finished = False     # the request in a thread is done (pool lock)
        self.posted = False       # in the pool's ready list (pool lock)
        self.unsent = None        # loop only: what the socket had no room for (bytes, or a FilePart)
        self.later = None         # loop only, with file parts: what follows `unsent` (a deque), else None
        self.refusal = None       # an error response to send once the queued requests are answered
        self.handed_at = 0.0      # when its request went to the pool
        self.mask = 0             # the epoll events registered for it (the worker's)
        self.key = None           # the thread serving its request (the meter's key), while one does
        self.timed_out = False    # its request passed --timeout: the loop answered 504 (pool lock)

    # -- the loop ---------------------------------------------------------------------------

    def on_readable(self):
        """Read and parse; queue complete requests and start the first. Returns 0: requests
        are counted when their thread finishes (drain)."""
        ctx = self.ctx
        try:
            n = self.sock.recv_into(ctx.buf, 0, MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError:
            self.close()
            return 0
        if n == 0:
            self.close()
            return 0
        self.last = ctx.clock.now
        status = why = None
        if self.head_bytes is not None:
            self.head_bytes += n
            self.exact = True
            if self.head_bytes > ctx.head_limit:
                status, why = 431, "request head larger than %d bytes" % ctx.head_limit
        else:
            self.exact = n > ctx.short_read
        if status is None:
            err = None
            try:
                self.parser.feed_data(ctx.view[:n])
            except HttpParserUpgrade as exc:
                # answered as an ordinary request, then closed (Connection.finish_request);
                # a body is read by a parser of its own
                if self.pending is not None:
                    err = self.read_pending(ctx.view[int(exc.args[0]):n])
            except (HttpParserCallbackError, HttpParserError) as exc:
                err = exc
            if err is not None:
                status, why = refusal(err, self.failing_line(ctx.view[:n], self.queued))
                if status is None:
                    self.close()
                    return 0
        if status is not None:
            ctx.log.debug("bad request on fd %d: %d %s", self.fd, status, why)
            self.refusal = error_response(status)
        self.next()
        return 0

    def closing(self):
        """A request pipelined behind a closing one: read on; on_message_complete drops it."""

    def on_message_complete(self):
        env = self.env
        self.env = None
        if not self.keep:
            self.drop_body()
            return            # closing: requests pipelined behind the last one are dropped
        if not self.plain and not self.finish_request(env):
            return            # an Upgrade or CONNECT whose body is still to come
        self.queued.append((env, self.plain, self.keep))

    def wants(self):
        """The epoll events this connection waits for now: room to write, the next
        request, or nothing (its request is in a thread)."""
        if self.unsent is not None:
            return select.EPOLLOUT
        if self.running or self.queued or self.refusal is not None or not self.keep or self.closed:
            return 0
        return select.EPOLLIN

    def next(self):
        """Start the next queued request, or send a refusal and close when none is left."""
        if self.running or self.closed:
            return
        queued = self.queued
        while queued and type(queued[0]) is bytes:     # an interim response (send_continue): its turn now
            self.out.append(queued.popleft())
            self.pool.hand(self)
        if queued:
            env, plain, keep = queued.popleft()
            self.running = True
            self.finished = False
            self.pool.inflight += 1
            self.handed_at = self.ctx.clock.now
            self.pool.jobs.put((self, env, plain, keep))
        elif self.refusal is not None:
            self.out.append(self.refusal)
            self.refusal = None
            self.keep = False
            self.pool.hand(self)
        elif not self.keep and self.unsent is None and not self.outbox:
            self.close()

    def drain(self):
        """The loop's turn with this connection after a thread handed it something: send
        what is ready, and if its request is done, start the next. Returns requests done."""
        pool = self.pool
        with pool.lock:
            out, self.outbox = self.outbox, []
            done, self.finished = self.finished, False
        if out and not self.closed:
            if self.later is None and type(out[-1]) is bytes:   # a FilePart ends its response's output
                data = out[0] if len(out) == 1 else b"".join(out)
                self.unsent = memoryview(data) if self.unsent is None else memoryview(bytes(self.unsent) + data)
            else:
                self.unsent, self.later = in_order(self.unsent, self.later, out)
            self.on_writable()
        elif out:
            pool.wrote(self, sum(map(len, out)))
            close_parts(out)
        if done:
            self.running = False
            pool.inflight -= 1
            self.last = self.ctx.clock.now
            if not self.keep:
                self.queued.clear()     # closing: what was pipelined behind is dropped
                self.refusal = None
            self.next()
        return 1 if done else 0

    def on_writable(self):
        """Send what the socket has room for; close when the last response is out."""
        data = self.unsent
        if data is None or self.closed:
            return
        if self.later is not None:
            return self.write_in_order()
        try:
            n = self.sock.send(data, MSG_DONTWAIT)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            self.pool.wrote(self, len(data))
            return
        self.unsent = data[n:] if n < len(data) else None
        if n:
            self.last = self.ctx.clock.now
        self.pool.wrote(self, n)
        if self.unsent is None and not self.keep and not self.running and not self.queued:
            self.close()

    def between_requests(self):
        return self.env is None and not self.running and not self.queued and self.unsent is None

    def reclaimable(self):
        return (not (self.running or self.queued) and self.unsent is None and self.refusal is None
                and super().reclaimable())

    def cut(self):
        """From a thread: the app failed mid-body; the loop closes after what is queued."""
        self.keep = False

    def close(self):
        super().close()
        if self.later is not None:
            close_parts([self.unsent, *self.later])     # the loop's duplicates of files
        with self.pool.room:
            self.pool.room.notify_all()      # a thread waiting for room learns the client is gone

    # -- an app thread ------------------------------------------------------------------------

    def work(self, key, env, plain, keep):
        """Serve one request in this thread, then hand the response to the loop."""
        ctx = self.ctx
        self.plain, self.keep = plain, keep
        meter = ctx.meter
        self.key = key
        t0 = meter.thread_start(key, env)
        if t0 - self.handed_at > SLOW_WAIT:
            self.pool.waited_at = t0       # requests wait for a thread: the worker is saturated
        try:
            if ctx.wrapped:
                self.run(env)
            else:
                self.serve(env, ctx.app)
        except BaseException:     # SystemExit from the app: never lose the thread, nor hang the client
            self.keep = False
            ctx.log.exception("app thread: error serving %s %s", env.get("REQUEST_METHOD"), env.get("RAW_URI"))
        finally:
            self.key = None
            t1 = meter.thread_end(key, t0)
            if t1 - t0 > SLOW_WAIT:
                self.pool.slow_at = t1
            self.pool.hand(self, True)

    def flush(self):
        """A streamed response: hand what is ready to the loop; wait if the client lags far."""
        if self.closed or self.timed_out:
            raise _Gone()
        pool = self.pool
        pool.hand(self)
        if self.backlog > HIGH_WATER:
            pool.wait_for_room(self, self.ctx.send_timeout)

    def send_continue(self):
        """From the loop: "100 Continue" now when nothing is ahead of it, else queued behind
        the requests ahead (next() hands it out in its turn). It was skipped, and a client
        that waits for it (curl: 1 s) waited behind a pipelined request."""
        if self.running or self.queued or self.unsent is not None:
            self.queued.append(CONTINUE)
        else:
            self._send(CONTINUE)


# -- the worker's loop with threads ---------------------------------------------------------

def serve(w, tick, shed_hold, batch):
    """The loop of a worker `w` with app threads: it reads requests, hands them to the
    pool, writes the responses the threads hand back. While every thread is busy and
    AHEAD requests wait for one, it stops listening, so new connections go to a worker
    with a free thread (or wait in the shared queue). Fair order: context.threaded_shed.
    `tick`, `shed_hold`, `batch`: worker.py's TICK, SHED_HOLD and ACCEPT_BATCH."""
    conns, lmap, clock, pool, ep = w.conns, w.lmap, w.clock, w.pool, w.ep
    monotonic = time.monotonic
    poll = ep.poll
    socks = [sock for sock, _, _ in lmap.values()]

    def waiting():
        return any(map(queued, socks))
    while True:
        events = poll(w.wait)    # `tick`, or shorter while the listeners rest (Worker.out_of_fds)
        clock.now = now = monotonic()
        for fd, mask in events:
            conn = conns.get(fd)
            if conn is not None:
                if mask & select.EPOLLOUT:
                    conn.on_writable()
                else:
                    conn.on_readable()
                rearm(w, conn)
            elif fd == pool.r:
                for conn in pool.collect():
                    w.meter.answered(conn.drain())
                    rearm(w, conn)
            elif fd in lmap:
                if not w.stopping:
                    w.accept(*lmap[fd], min(batch, w.threads + AHEAD - pool.inflight))
            else:
                w.on_signals()
        clock.shed, pool.waited_at = threaded_shed(now, shed_hold, pool.slow_at, pool.waited_at,
                                                   pool.inflight >= w.threads and not w.stopping, waiting)
        room = pool.inflight < w.threads + AHEAD and not w.paused
        if room != w.listening and not w.stopping:
            w.listen(room)
        if w.turn_end is not None:
            w.turn_end()
        if w.end_turn(now):
            return


def rearm(w, conn):
    """Wait for what the connection waits for now; forget it once closed."""
    if conn.closed:
        if w.conns.get(conn.fd) is conn:
            del w.conns[conn.fd]
        return
    wants = conn.wants()
    if wants != conn.mask:
        w.ep.modify(conn.fd, wants)
        conn.mask = wants
