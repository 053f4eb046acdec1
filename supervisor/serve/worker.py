"""The child after fork: an epoll loop over the listeners and open connections.

One request at a time runs the app; everything else (accepting, reading partial
requests, idle keep-alive connections) costs only a registered fd. Listeners are
registered with EPOLLEXCLUSIVE so a new connection wakes one worker, not all of them.
"""
import dataclasses
import faulthandler
import gc
import os
import random
import select
import signal
import sys
import _socket
import time

import setproctitle

from . import accesslog
from .. import exits, hooks
from ..supervise import heartbeat
from .connection import Connection
from .context import Clock, Context
from .meter import Meter
from .threads import Pool, ThreadedConnection
from ..loader import load_logged
from ..supervise.signals import MASTER, WORKER, Command, Signals
from .wsgi import base_environ, http_date, listener_environ, peer_trusted

TICK = 1.0
ACCEPT_BATCH = 8          # connections taken per wake-up at most
ACCEPT_WINDOW = 0.0005    # seconds: past this, leave the queue to other workers
# On a graceful stop, a keep-alive connection idle this long is closed; a busier one gets
# "Connection: close" on its next response instead. Closing a connection the client is
# about to reuse loses its request (RFC 9112 9.6's race), so busy ones are not cut.
STOP_IDLE = 0.5
# Without threads: app time in one loop turn after which the listen queue is looked at
# before the next ready connection (fair order; a hello-world turn never gets near it).
SLICE = 0.01
SETTLE = 0.05     # seconds: after requests, how soon an idle loop clears the cell's work part
SHED_HOLD = 1.0   # seconds a saturated worker keeps answering "Connection: close"
SERVER = "pyfork"


class Worker:
    def __init__(self, cfg, slot, cell, listeners, app, beats, log, ppid, ready_fd):
        self.cfg = cfg
        self.slot = slot          # the stable slot number (Unicorn's nr): worker 3 stays worker 3
        self.listening = True     # the listeners are registered with the epoll
        self.rotated = 0          # requests served when the listeners were last registered again
        self.pid = os.getpid()
        self.cell = cell
        self.ready_fd = ready_fd
        self.listeners = listeners
        self.app = app
        self.beats = beats
        self.log = log
        self.ppid = ppid
        self.conns = {}
        self.requests = 0
        self.stopping = False
        self.deadline = None
        self.clock = Clock(time.monotonic())
        self.read_timeout = cfg.timeout or 30.0
        self.access_log = bool(cfg.access_logfile)
        self.access_line = accesslog.compile_format(cfg.access_logformat) if self.access_log else None
        self.trusted = {}
        self.max_requests = (cfg.max_requests + random.randint(0, cfg.max_requests_jitter)
                             if cfg.max_requests else sys.maxsize)
        self.second = 0
        self.threads = cfg.threads
        self.pool = None
        self.meter = Meter(beats.mem, cell) if beats is not None else Meter()
        self.ctx = self.context()

    @property
    def nr(self):
        """Gunicorn's name for the slot number, read by hooks."""
        return self.slot

    age = nr       # Gunicorn's worker.age, which hooks may read too

    def context(self):
        """The frozen Context every connection of this worker reads."""
        cfg = self.cfg
        return Context(
            app=self.app, log=self.log, clock=self.clock, view=memoryview(bytearray(65536)),
            limit_line=cfg.limit_request_line, limit_fields=cfg.limit_request_fields,
            limit_field_size=cfg.limit_request_field_size, limit_body=cfg.limit_request_body,
            send_timeout=max(1.0, cfg.timeout * 0.8) if cfg.timeout else 60.0,
            hooks=cfg.hooks, hook_worker=self, access=self.access if self.access_log else None,
            keepalive=cfg.keepalive != 0, meter=self.meter)

    # -- life -----------------------------------------------------------------------------

    def run(self):
        """Boot, serve, return an exit code (see exits.py)."""
        self.signals = Signals(WORKER)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)   # blocked by the master across fork
        faulthandler.enable(file=self.log.stream, all_threads=True)
        if "worker_abort" in self.cfg.hooks:
            # Gunicorn's way: a Python handler, so the hook can run. It runs only if the
            # interpreter regains control; the master's SIGKILL follows either way.
            signal.signal(signal.SIGABRT, self.on_abort)
        self.title()
        if self.app is None:
            self.app, code = load_logged(self.cfg.app, self.log, "worker=%d" % self.slot)
            if code is not None:
                return code
            self.ctx = dataclasses.replace(self.ctx, app=self.app)
        hooks.call(self.cfg.hooks, self.log, "post_worker_init", self)
        base = base_environ(SERVER)
        base["wsgi.multithread"] = self.threads > 1
        self.listeners = [(sock, listener_environ(base, sock.getsockname())) for sock in self.listeners]
        gc.freeze()   # what exists now is long-lived: keep the collector off it (and its pages shared)
        self.beats.set(self.cell, os.getpid(), heartbeat.READY, time.monotonic())
        try:
            os.write(self.ready_fd, b"r")    # wake the master: it may be waiting on us
        except OSError:
            pass
        os.close(self.ready_fd)
        if self.threads > 1:
            self.pool = Pool(self.threads, self.meter, self.log)
        self.serve()
        return exits.OK

    def title(self):
        setproctitle.setproctitle("pyfork worker %d [%s] requests=%d" % (self.slot, self.cfg.app, self.requests))

    def serve(self):
        ep = self.ep = select.epoll()
        self.lmap = {}
        for sock, tmpl in self.listeners:
            ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
            self.lmap[sock.fileno()] = (sock, tmpl, (int(sock.family), int(sock.type), sock.proto))
        ep.register(self.signals.r, select.EPOLLIN)
        self.clock.now = now = time.monotonic()
        self.tick(now)
        self.next_tick = now + TICK
        if self.pool is None:
            self.serve_one_at_a_time()
        else:
            ep.register(self.pool.r, select.EPOLLIN)
            try:
                self.serve_threads()
            finally:
                self.pool.stop(0.1)

    def serve_one_at_a_time(self):
        """The loop without threads: each ready connection's requests are answered in turn.
        Fair order: once SLICE seconds of app time went by in a turn (a hello-world turn
        never gets near it), the loop polls again instead of serving the rest of the turn's
        connections, so what became ready meanwhile (a new connection in the listen queue
        included) is served in about the order it became ready (epoll's ready list is in
        that order), after the events the slow turn left (`carry`). If something
        was waiting, the worker is saturated: for SHED_HOLD seconds its responses say
        "Connection: close", so clients return to the shared listen queue, which any free
        worker serves first come first (on a keep-alive connection a request would wait
        for this worker even while another one is idle)."""
        conns, lmap, clock, meter = self.conns, self.lmap, self.clock, self.meter
        monotonic = time.monotonic
        poll = self.ep.poll
        shed_until = 0.0
        slow = unsettled = False
        carry = []       # events a slow turn left: served first next turn (epoll repeats its
        while True:      # level-triggered events in the same order, so the first would starve the rest)
            events = poll(0 if slow else SETTLE if unsettled else TICK)
            clock.now = now = monotonic()
            if unsettled and not events:
                meter.settle(self.requests)   # idle now: nothing in progress, the loop alive
                self.rotate()
                unsettled = False
            if slow and events and not self.stopping:
                clock.shed = True             # others became ready while the app ran
                shed_until = now + SHED_HOLD
            if carry:
                left = {fd for fd, _ in carry}
                events = carry + [e for e in events if e[0] not in left]
                carry = []
            slow = False
            turn_busy = meter.busy_seconds
            for fd, ev in events:
                conn = conns.get(fd)
                if conn is not None:
                    self.requests += conn.on_readable()
                    if conn.closed:
                        del conns[fd]
                elif fd in lmap:
                    if not self.stopping:
                        self.accept(*lmap[fd])
                else:
                    self.on_signals()
                if meter.busy_seconds - turn_busy > SLICE:
                    slow = True
                    carry = events[events.index((fd, ev)) + 1:]
                    break
            if meter.busy_seconds != turn_busy:
                unsettled = True      # the cell says busy since the last request's start until
                                      # the loop finds nothing to do (a write per idle, not per turn)
            if clock.shed and now > shed_until:
                clock.shed = False
            if self.end_turn(now):
                return

    def serve_threads(self):
        """The loop with app threads: it reads requests, hands them to the pool, writes the
        responses the threads hand back. While every thread is busy it stops listening, so
        new connections go to a worker with a free thread (or wait in the shared queue)."""
        conns, lmap, clock, pool, ep = self.conns, self.lmap, self.clock, self.pool, self.ep
        monotonic = time.monotonic
        poll = ep.poll
        while True:
            events = poll(TICK)
            clock.now = now = monotonic()
            for fd, mask in events:
                conn = conns.get(fd)
                if conn is not None:
                    if mask & select.EPOLLOUT:
                        conn.on_writable()
                    else:
                        conn.on_readable()
                    self.rearm(conn)
                elif fd == pool.r:
                    for conn in pool.collect():
                        self.requests += conn.drain()
                        self.rearm(conn)
                elif fd in lmap:
                    if not self.stopping:
                        self.accept(*lmap[fd], limit=self.threads - pool.inflight)
                else:
                    self.on_signals()
            # requests waited for a thread lately: answer "Connection: close", so clients go
            # back to the shared listen queue, which workers read only with a thread free
            clock.shed = now - pool.waited_at < SHED_HOLD
            full = pool.inflight >= self.threads
            if full == self.listening and not self.stopping:
                self.listen(not full)
            if self.end_turn(now):
                return

    def rearm(self, conn):
        """Wait for what the connection waits for now; forget it once closed."""
        if conn.closed:
            if self.conns.get(conn.fd) is conn:
                del self.conns[conn.fd]
            return
        wants = conn.wants()
        if wants != conn.mask:
            self.ep.modify(conn.fd, wants)
            conn.mask = wants

    def rotate(self):
        """Spread: EPOLLEXCLUSIVE wakes the first waiter in the listener's queue, so at light
        load one worker took every connection (600 of 600 at 20 req/s, 4 workers:
        scripts/soak.py --leaks none) and a leak or a cache piled up in it alone.
        Registering again puts a worker that has served since at the back of the queue.
        Called when the loop goes idle after serving (so never while saturated: nothing on
        the hot path), and once a second with threads: two epoll_ctl per listener."""
        if self.requests != self.rotated and self.listening and not self.stopping:
            self.rotated = self.requests
            self.listen(False)
            self.listen(True)

    def listen(self, on):
        self.listening = on
        for fd in self.lmap:
            if on:
                self.ep.register(fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
            else:
                self.ep.unregister(fd)

    def end_turn(self, now):
        """After each wake-up: flush the access log, count toward max_requests, tick.
        True when a stopping worker is done."""
        if self.access_log:
            self.log.flush_access()     # one write for this turn's lines
        if self.requests >= self.max_requests and not self.stopping:
            self.log.info("worker=%d pid=%d reached max_requests=%d: restarting",
                          self.slot, os.getpid(), self.max_requests)
            self.stop()
        if now >= self.next_tick:
            self.next_tick = now + TICK
            self.tick(now)
        return self.stopping and (not self.conns or now >= self.deadline)

    def accept(self, lsock, tmpl, kind, limit=ACCEPT_BATCH):
        """Take several connections per wake-up while they are answered quickly (fewer
        epoll_wait calls: 39 -> 33 us of CPU per Connection: close request). A slow one
        ends the batch at once, so the connections still queued go to idle workers
        instead of waiting behind it. None past max_requests: the worker serves no more than that."""
        until = self.clock.now + ACCEPT_WINDOW
        for n in range(min(limit, ACCEPT_BATCH)):
            if self.requests >= self.max_requests or not self.accept_one(lsock, tmpl, kind):
                return n
            if time.monotonic() > until:
                return n + 1
        return min(limit, ACCEPT_BATCH)

    def accept_one(self, lsock, tmpl, kind):
        # _accept() and the C-level socket type skip socket.socket's Python wrapper,
        # whose enum conversions cost more than the accept syscall itself
        try:
            fd, addr = lsock._accept()
            sock = _socket.socket(*kind, fd)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False     # another worker took it
        except OSError as exc:
            self.log.error("accept failed: %s (too many open files? raise ulimit -n)", exc)
            return False
        base = tmpl.copy()
        if type(addr) is tuple:
            peer = addr[0]
            base["REMOTE_ADDR"] = peer
            base["REMOTE_PORT"] = str(addr[1])
            trusted = self.trusted.get(peer)
            if trusted is None:
                trusted = self.trust(peer)
        else:
            trusted = True        # a unix socket: the proxy is on this host
        if self.pool is None:
            conn = Connection(self.ctx, sock, base, trusted)
            self.requests += conn.on_readable()
            if not conn.closed:
                self.conns[conn.fd] = conn
                self.ep.register(conn.fd, select.EPOLLIN)
        else:
            conn = ThreadedConnection(self.ctx, sock, base, trusted, self.pool)
            conn.on_readable()
            if not conn.closed:
                self.conns[conn.fd] = conn
                conn.mask = conn.wants()
                self.ep.register(conn.fd, conn.mask)
        return True

    def trust(self, peer):
        ok = peer_trusted(peer, self.cfg.forwarded_allow_ips)
        if len(self.trusted) < 1024:
            self.trusted[peer] = ok
        return ok

    def on_signals(self):
        for cmd in self.signals.commands():
            if cmd is Command.QUICK_STOP:
                hooks.call(self.cfg.hooks, self.log, "worker_int", self)
                self.exit(exits.OK)
            elif cmd is Command.STOP:
                self.stop()
            elif cmd is Command.REOPEN:
                self.log.reopen()
                faulthandler.enable(file=self.log.stream, all_threads=True)

    def on_abort(self, signum, frame):
        faulthandler.dump_traceback(file=self.log.stream, all_threads=True)
        hooks.call(self.cfg.hooks, self.log, "worker_abort", self)
        self.exit(exits.ERROR)

    def exit(self, code):
        """Leave now (INT, abort), still running worker_exit as Gunicorn does."""
        hooks.call(self.cfg.hooks, self.log, "worker_exit", getattr(self, "server", None), self)
        if self.access_log:
            self.log.flush_access()
        os._exit(code)

    def stop(self):
        """Graceful: stop accepting now, finish requests in hand, close idle connections."""
        if self.stopping:
            return
        self.stopping = True
        self.ctx = dataclasses.replace(self.ctx, keepalive=False)    # "Connection: close" from now on
        for conn in self.conns.values():
            conn.ctx = self.ctx
        now = self.clock.now
        self.deadline = now + self.cfg.graceful_timeout
        self.beats.set(self.cell, os.getpid(), heartbeat.STOPPING, now, self.requests, self.meter.busy_seconds)
        for sock, _ in self.listeners:
            try:
                self.ep.unregister(sock.fileno())
            except (OSError, ValueError):
                pass
            sock.close()
        self.close_idle(now, STOP_IDLE)

    def close_idle(self, now, idle):
        """Close connections idle between requests for `idle` seconds, and those stuck
        mid-request (a client that stopped sending) for the read timeout."""
        for fd, conn in list(self.conns.items()):
            if conn.running:
                continue          # its request is in an app thread: the master's timeout applies
            quiet = now - conn.last
            if quiet >= self.read_timeout or (quiet >= idle and conn.between_requests()):
                conn.close()
                del self.conns[fd]

    def tick(self, now):
        """Once a second: beat, refresh the Date header, drop idle connections, check the master."""
        self.meter.requests = self.requests
        self.beats.set(self.cell, os.getpid(), heartbeat.STOPPING if self.stopping else heartbeat.READY,
                       now, self.requests, self.meter.busy_seconds)
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.clock.date = ("Date: %s\r\nServer: %s\r\n" % (http_date(second), SERVER)).encode()
        self.close_idle(now, STOP_IDLE if self.stopping else self.cfg.keepalive)
        if os.getppid() != self.ppid:
            self.log.warning("worker=%d: the master is gone; exiting", self.slot)
            os._exit(exits.OK)
        if self.pool is not None:
            self.rotate()
        if self.requests != getattr(self, "_titled", 0):
            self._titled = self.requests
            self.title()

    def access(self, env, code, headers, sent, seconds):
        self.log.access(self.access_line(env, code, headers, sent, seconds, time.time(), self.pid))
