"""The child after fork: an epoll loop over the listeners and open connections.

One request at a time runs the app; everything else (accepting, reading partial
requests, idle keep-alive connections) costs only a registered fd. Listeners are
registered with EPOLLEXCLUSIVE so a new connection wakes one worker, not all of them.
"""
import dataclasses
import errno
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
from ..hooks import HookFailed
from ..supervise import heartbeat
from .connection import Connection
from .context import Clock, Context
from .meter import SERVED, Meter
from .nofds import OutOfFds
from . import proxied, threads, timeouts
from .threads import Pool, ThreadedConnection
from ..loader import load_logged
from ..log import ZONE
from ..supervise.signals import MASTER, WORKER, Command, Signals
from .wsgi import base_environ, framing, http_date, listener_environ, mount_point, peer_trusted, roomy

TICK = 1.0
ACCEPT_BATCH = 8          # connections taken per wake-up at most
ACCEPT_WINDOW = 0.0005    # seconds: past this, leave the queue to other workers
# On a graceful stop, a keep-alive connection idle this long is closed; a busier one gets
# "Connection: close" on its next response instead. Closing a connection the client is
# about to reuse loses its request (RFC 9112 9.6's race), so busy ones are not cut.
STOP_IDLE = 0.5
# Without threads: seconds of one loop turn after which the listen queue is looked at
# before the next ready connection (fair order; a hello-world turn never gets near it).
SLICE = 0.01
# The loop writes the heartbeat cell's `since` once a turn, this far ahead of the turn's
# start: a turn takes its last event before SLICE is up, and an accept batch its last
# connection within ACCEPT_WINDOW, so no request of the turn starts later, and the master's
# timeout never counts from before a request began (it may count from up to LEAD after).
LEAD = SLICE + ACCEPT_WINDOW
SETTLE = 0.05     # seconds: after requests, how soon an idle loop clears the cell's work part
SHED_HOLD = 1.0   # seconds a saturated worker keeps answering "Connection: close"
# Without threads, while shedding: connections taken per wake-up. A saturated worker that
# took a batch held clients an idle worker could serve at once; with one, the rest stay in
# the shared queue for the next free worker (issue 25's mixed load: two slow requests held
# by one worker set the fast p99). Not yet measured under load.
SHED_BATCH = 1
SERVER = "pyfork"


class Worker(OutOfFds):
    TICK = TICK      # for OutOfFds: the idle wait it restores after a rest

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
        self.conns = {}           # fd -> open connection (one that closes removes itself)
        self.stopping = False
        self.molding = False      # told to become the refork template (SIGURG): stopping, listeners kept
        self.refork_fds = None    # (requests in, answers out): the template's ends of the master's pipes
        self.deadline = None
        self.clock = Clock(time.monotonic())
        self.read_timeout = cfg.timeout or 30.0
        self.access_log = bool(cfg.access_logfile) or getattr(log, "routes_access", False)
        self.access_line = accesslog.compile_format(cfg.access_logformat, ZONE) if self.access_log else None
        self.statsd = getattr(log, "statsd", None)    # --statsd-host: observe/statsd.py
        self.turn_end = self.flusher()   # what the loop calls at the end of a turn that served requests
        self.trusted = {}
        self.max_requests = (cfg.max_requests + random.randint(0, cfg.max_requests_jitter)
                             if cfg.max_requests else sys.maxsize)
        self.second = 0
        self.threads = cfg.threads
        self.pool = None
        self.proxied = cfg.proxy_protocol != "off" or bool(cfg.certfile)    # a stage before HTTP: proxied.py
        self.tls = None           # --certfile: the SSLContext (serve/tls.py), made after fork
        if cfg.certfile:
            from . import tls
            self.tls = tls.context(cfg)
        self.timed_out = 0.0      # seconds its timed-out request had run when answered 504 (0: none)
        self.flags = 0            # heartbeat state flags (TIMED_OUT)
        self.extended = {}        # request key -> (its start, which request): extend_timeout's cap
        self.answered = set()     # with threads: the meter's entries of the requests answered 504
        self.strain = None        # out of file descriptors: the episode (fdlimit.Strain), else None
        self.paused = False       # the listeners rest: accept() was refused and nothing could be closed
        self.wait = TICK          # the longest an idle loop sleeps (shorter while the listeners rest)
        self.meter = Meter(beats.mem if beats is not None else None, cell)
        framing(key for key, _ in cfg.secure_scheme_headers)
        self.ctx = self.context()

    @property
    def requests(self):
        """Requests answered, every thread's (the request path counts them in the meter)."""
        return self.meter.requests

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
            hooks=cfg.hooks, hook_worker=self, access=self.reporter(),
            keepalive=cfg.keepalive != 0, meter=self.meter, conns=self.conns,
            refuse_underscores=cfg.header_map == "refuse", forwarders=frozenset(cfg.forwarder_headers),
            scheme_headers={key: value.lower() for key, value in cfg.secure_scheme_headers})

    def reporter(self):
        """What each request reports as it ends: its access log line, its statsd metrics, both, or None."""
        if self.statsd is None:
            return self.access if self.access_log else None
        return self.access_and_statsd if self.access_log else self.statsd.request

    def flusher(self):
        """The end of a loop turn: write the access log lines and send the statsd metrics it made."""
        ends = [f for f in (self.access_log and self.log.flush_access, self.statsd and self.statsd.flush) if f]
        if len(ends) < 2:
            return ends[0] if ends else None
        return lambda: (ends[0](), ends[1]())

    # -- life -----------------------------------------------------------------------------

    def run(self):
        """Boot, serve, return an exit code (see exits.py)."""
        self.signals = Signals(WORKER)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(MASTER) | set(WORKER))   # blocked across fork
        faulthandler.enable(file=self.log.stream, all_threads=True)
        if "worker_abort" in self.cfg.hooks:
            # Gunicorn's way: a Python handler, so the hook can run. It runs only if the
            # interpreter regains control; the master's SIGKILL follows either way.
            signal.signal(signal.SIGABRT, self.on_abort)
        if self.threads <= 1:
            signal.signal(signal.SIGUSR2, self.on_timeout)    # raise in the app (threads: the loop answers)
        self.title()
        if self.app is None:
            gc.freeze()   # the master's objects: the collector must not touch (and so copy) their pages on import
            self.app, code = load_logged(self.cfg.app, self.log, "worker=%d" % self.slot)
            if code is not None:
                return code
            self.ctx = dataclasses.replace(self.ctx, app=self.app)
        hooks.call(self.cfg.hooks, self.log, "post_worker_init", self)
        base = base_environ(SERVER)
        base["wsgi.multithread"] = self.threads > 1
        try:      # read as Gunicorn reads it, after the app's import (which may set it)
            base["SCRIPT_NAME"], mount = mount_point(os.environ.get("SCRIPT_NAME", ""))
        except ValueError as exc:
            self.log.error("worker=%d: %s", self.slot, exc)
            return exits.USAGE
        self.ctx = dataclasses.replace(self.ctx, mount=mount)
        base["pyfork.extend_timeout"] = self.extend_timeout
        self.listeners = [(sock, roomy(listener_environ(base, sock.getsockname()))) for sock in self.listeners]
        gc.freeze()   # what exists now is long-lived: keep the collector off it (and its pages shared)
        self.beats.set(self.cell, os.getpid(), heartbeat.READY, time.monotonic())
        self.wake_master()      # it may be waiting on us (the fd stays open: a timeout wakes it too, and with
                                # refork a worker forked from this one says ready on it)
        if self.threads > 1:
            self.pool = Pool(self.threads, self.meter, self.log)
        self.serve()
        if self.molding:
            from . import mold
            return mold.become(self)
        return exits.OK

    def wake_master(self):
        try:
            os.write(self.ready_fd, b"r")
        except OSError:
            pass

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
        self.next_tick = self.due = now + TICK
        if self.pool is None:
            self.serve_one_at_a_time()
        else:
            ep.register(self.pool.r, select.EPOLLIN)
            try:
                threads.serve(self, TICK, SHED_HOLD, ACCEPT_BATCH)
            finally:
                self.pool.stop(0.1)

    def serve_one_at_a_time(self):
        """The loop without threads: each ready connection's requests are answered in turn.
        Fair order: once a turn has run SLICE seconds (a hello-world turn never gets near
        it), the loop polls again instead of serving the rest of the turn's connections, so
        what became ready meanwhile (a new connection in the listen queue included) is
        served in about the order it became ready (epoll's ready list is in that order),
        after the events the slow turn left (`carry`: after_slow_turn)."""
        lmap, clock, meter = self.lmap, self.clock, self.meter
        monotonic, poll, conn_of = time.monotonic, self.ep.poll, self.conns.get
        times, at, cell = meter.times, meter.at, meter.cell
        turn_end, max_requests, timeout, shed_until = self.turn_end, self.max_requests, TICK, 0.0
        carry = None     # after a slow turn, the events it left (served first next turn: epoll
        while True:      # repeats level-triggered events in the same order, so the first would starve the rest)
            events = poll(timeout)
            clock.now = now = monotonic()
            times[at] = now + LEAD        # `since` for the heartbeat cell: no request of this turn started later (meter.py)
            if carry is not None:
                events, shed_until = self.after_slow_turn(carry, events, now, shed_until)
                carry = None
            if events:
                cell[SERVED] = meter.requests     # the count as of this turn, for a death line (meter.py)
                until = now + SLICE
                timeout = SETTLE  # the cell may say busy until the loop finds nothing to do: then settle
                for fd, ev in events:
                    conn = conn_of(fd)
                    if conn is not None:
                        conn.on_readable()      # a connection that closes leaves `conns` itself
                    elif fd in lmap:
                        if self.stopping:
                            pass
                        elif clock.shed:        # shedding: one new connection a wake-up (SHED_BATCH)
                            self.accept(*lmap[fd], SHED_BATCH)
                        else:                   # (no batch argument here: it cost 0.7% of a close request)
                            self.accept(*lmap[fd])
                    else:
                        self.on_signals()
                    t = monotonic()
                    if t > until:
                        carry = events[events.index((fd, ev)) + 1:]
                        timeout = 0
                        break
                meter.busy_seconds += t - now
            elif timeout != TICK:     # SETTLE, or 0 after a slow turn: settle either way, else
                meter.settle(self.requests)   # poll(0) spins and the cell says busy for ever
                self.rotate()
                timeout = TICK
            if turn_end is not None:
                turn_end()                  # one write for this turn's access lines, one send of its metrics
            if shed_until and now >= shed_until:
                shed_until = 0.0
                clock.shed = False            # no longer saturated: keep-alive again
            if now >= self.due or meter.requests >= max_requests or self.stopping:
                if self.end_turn(now):
                    return
                if timeout > SETTLE:
                    timeout = self.wait

    def after_slow_turn(self, carry, events, now, shed_until):
        """The turn after a slow one: its events are the ones the slow turn left, first, then
        the new ones. If new ones came while the app ran, the worker is saturated: it sheds
        for SHED_HOLD seconds (Clock.shed). -> (events, until when it sheds)."""
        if events and not self.stopping:
            shed_until = now + SHED_HOLD
            self.clock.shed = True
        left = {fd for fd, _ in carry}
        return carry + [e for e in events if e[0] not in left], shed_until

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
        """After a wake-up (the loop without threads calls it only when one of its tests
        holds): count toward max_requests, tick. True when a stopping worker is done."""
        if self.timed_out and not self.stopping:
            timeouts.recycle(self)
        if self.requests >= self.max_requests and not self.stopping:
            self.log.info("worker=%d pid=%d reached max_requests=%d: restarting",
                          self.slot, os.getpid(), self.max_requests)
            self.stop()
        if self.paused:
            self.rest_over(now)
        if now >= self.next_tick:
            self.next_tick = now + TICK
            self.tick(now)
        self.due = now if self.paused else self.next_tick    # while paused, look every turn
        return self.stopping and (not self.conns or now >= self.deadline)

    def accept(self, lsock, tmpl, kind, batch=ACCEPT_BATCH):
        """Take up to `batch` connections per wake-up while they are answered quickly (fewer
        epoll_wait calls: 39 -> 33 us of CPU per Connection: close request). A slow one
        ends the batch at once, so the connections still queued go to idle workers
        instead of waiting behind it. None past max_requests: the worker serves no more than that."""
        until = self.clock.now + ACCEPT_WINDOW
        for _ in range(batch):
            if self.meter.requests >= self.max_requests or not self.accept_one(lsock, tmpl, kind):
                return
            if time.monotonic() > until:
                return

    def accept_one(self, lsock, tmpl, kind):
        # _accept() and the C-level socket type skip socket.socket's Python wrapper,
        # whose enum conversions cost more than the accept syscall itself
        try:
            fd, addr = lsock._accept()
            sock = _socket.socket(*kind, fd)
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return False     # another worker took it
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self.out_of_fds(exc)
            else:
                self.log.error("worker=%d accept failed: %s", self.slot, exc)
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
        if self.proxied:          # --proxy-protocol's header or TLS's handshake first (proxied.py)
            proxied.accept(self, sock, base, trusted, addr)
            return True
        if self.pool is None:
            conn = Connection(self.ctx, sock, base, trusted)
            conn.on_readable()
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
                self.molding = False      # a template told to stop while it drains just stops
                self.stop()
            elif cmd is Command.MOLD and self.refork_fds and not self.stopping:
                self.molding = True       # finish what is in hand, then serve() returns into mold.become
                self.stop()
            elif cmd is Command.REOPEN:
                self.log.reopen()
                faulthandler.enable(file=self.log.stream, all_threads=True)
            elif cmd is Command.TIMEOUT and self.pool is not None:
                timeouts.answer_threads(self, time.monotonic())

    def on_timeout(self, signum, frame):
        """SIGUSR2 without threads (the master: the request passed --timeout): raise
        RequestTimeout in the app, if the app is where the main thread is (timeouts.py)."""
        timeouts.raise_in_app(self, frame)

    def extend_timeout(self, seconds):
        """environ["pyfork.extend_timeout"](seconds): this request may run `seconds` more."""
        return timeouts.extend(self, seconds)

    def on_abort(self, signum, frame):
        faulthandler.dump_traceback(file=self.log.stream, all_threads=True)
        hooks.call(self.cfg.hooks, self.log, "worker_abort", self)
        self.exit(exits.ERROR)

    def exit(self, code):
        """Leave now (INT, abort), still running worker_exit as Gunicorn does."""
        hooks.call(self.cfg.hooks, self.log, "worker_exit", getattr(self, "server", None), self)
        if self.turn_end is not None:
            self.turn_end()
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
        self.beats.set(self.cell, os.getpid(), heartbeat.STOPPING | self.flags, now, self.requests,
                       self.meter.busy_seconds)
        for sock, _ in self.listeners:
            try:
                self.ep.unregister(sock.fileno())
            except (OSError, ValueError):
                pass
            if not self.molding:
                sock.close()          # a template keeps them for the workers it forks
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

    def tick(self, now):
        """Once a second: beat, refresh the Date header, drop idle connections, check the master."""
        self.beats.set(self.cell, os.getpid(), (heartbeat.STOPPING if self.stopping else heartbeat.READY) | self.flags,
                       now, self.requests, self.meter.busy_seconds)
        if self.timed_out and self.pool is not None:
            timeouts.answer_threads(self, now)      # a neighbour past its own deadline since
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.clock.date = ("Date: %s\r\nServer: %s\r\n" % (http_date(second), SERVER)).encode()
        self.close_idle(now, STOP_IDLE if self.stopping else self.cfg.keepalive)
        if self.strain is not None:
            self.strain_tick(now)
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

    def access_and_statsd(self, env, code, headers, sent, seconds):
        self.access(env, code, headers, sent, seconds)
        self.statsd.request(env, code, headers, sent, seconds)

def live(worker, hook):
    """In a process forked to be `worker`: run the config's `hook` (post_fork, or
    post_refork in a worker forked from a template), the worker, then worker_exit, and
    _exit with its code. Never returns: the parent's stack must not unwind here."""
    code, ours = exits.ERROR, True     # ours: pyfork's code chose the exit code, not the app's
    try:
        hooks.call(worker.cfg.hooks, worker.log, hook, worker.server, worker)
        code = worker.run()
        hooks.call(worker.cfg.hooks, worker.log, "worker_exit", worker.server, worker)
    except HookFailed:
        code = exits.WORKER_BOOT
    except SystemExit as exc:          # the app's sys.exit(): its code
        code, ours = (exc.code, False) if isinstance(exc.code, int) else (exits.ERROR, True)
    except BaseException:
        worker.log.exception("worker=%d crashed", worker.slot)
    finally:
        try:
            if ours:       # say so in the cell: the master labels the code as pyfork's only then
                mark_exiting(worker.beats, worker.cell)
        finally:
            os._exit(code)


def mark_exiting(beats, cell):
    """The cell says the exit code to come is pyfork's own."""
    b = beats.get(cell)
    beats.set(cell, b.pid, b.state | heartbeat.EXITING, b.beat, b.requests, b.busy_seconds)
