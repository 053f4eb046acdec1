"""The master: binds, forks, reaps, signals. The only caller of fork, kill and waitpid.

Single-threaded by design: one loop, top to bottom (Unicorn's `join`, tini's `main`):
drain signals -> reap -> note readiness -> decide -> act -> sleep until the next
deadline. No timer threads, so fork() is always safe.
"""
import dataclasses
import errno
import gc
import os
import random
import select
import signal
import sys
import time

import setproctitle

from . import backoff, heartbeat, notify, plan, recycle
from .. import exits, hooks
from ..exits import StartError
from ..observe import prometheus
from ..config import AUTO, ConfigError
from ..hooks import HookFailed, WorkerInfo
from .heartbeat import Heartbeat
from .listeners import LISTEN_FDS_START, bind, inherited_fds
from .pidfile import remove_pidfile, write_pidfile
from .privileges import drop_privileges, make_subreaper, user_ids
from ..loader import load_logged
from ..log import Log
from ..observe.metricsserver import MetricsServer
from .plan import Death, Phase, Slot
from .signals import MASTER, Command, Signals
from ..serve.worker import Worker

CHECK_EVERY = 1.0       # seconds between heartbeat checks when nothing else is due


class Master:
    def __init__(self, cfg, log, environ=os.environ, reload=None):
        self.cfg = cfg
        self.reload_config = reload
        self.log = log
        self.environ = environ
        self.target = cfg.workers
        self.slots = [Slot(i) for i in range(cfg.workers)]
        self.phase = Phase.RUNNING
        self.by_pid = {}            # pid -> Slot for current workers
        self.old = {}               # pid -> [slot nr, SIGKILL deadline or None] of workers on their way out
        self.cells = {}             # pid -> heartbeat cell
        self.ever_booted = False
        self.boot_failures = 0
        self.verdict = None
        self.deadline = None
        self.app = None
        self.rng = random.Random()
        self.next_guard = 0.0
        self.next_sample = 0.0
        self.sigkilled = set()
        self.notifier = None
        self.mserver = None
        self.status = None
        self.waiting_ready = True
        self.restarts = {}
        self.monitor = None
        self.limits = recycle.Limits(memory=cfg.max_worker_memory, metric=cfg.memory_metric,
                                     zombies=cfg.max_worker_zombies, threads=cfg.max_worker_threads)

    # -- start ----------------------------------------------------------------------------

    @property
    def num_workers(self):
        """Gunicorn's name, for hooks."""
        return self.target

    def start(self):
        """Bind, preload, set up signals. Returns None, or an exit code to stop with."""
        self.pid = os.getpid()
        hooks.call(self.cfg.hooks, self.log, "on_starting", self)
        self.reaper = make_subreaper()
        old = os.environ.pop("PYFORK_OLD_WORKERS", "")
        self.inherited_workers = [int(p) for p in old.split(",") if p.isdigit()]
        try:
            self.listeners = bind(self.cfg, inherited_fds(self.environ))
        except StartError as exc:
            self.log.error("%s", exc)
            return exits.USAGE
        if self.cfg.preload:
            self.app, code = load_logged(self.cfg.app, self.log, "the master (--preload)")
            if code is not None:
                return code
            gc.collect()
            gc.freeze()   # keep the collector from touching (and so copying) shared pages
        try:
            self.ids = user_ids(self.cfg.user, self.cfg.group)
            if self.cfg.pidfile:
                write_pidfile(self.cfg.pidfile, self.pid)
        except StartError as exc:
            self.log.error("%s", exc)
            return exits.USAGE
        from ..observe.monitor import Monitor
        try:
            self.monitor = Monitor(self.cfg, self.log, self.pid)
        except ValueError as exc:
            self.log.error("%s", exc)
            return exits.USAGE
        if self.cfg.workers == AUTO:
            self.target = self.monitor.initial_workers()
            self.slots = [Slot(i) for i in range(self.target)]
        try:
            self.notifier = notify.Notifier.from_environ(os.environ)      # None outside systemd
            self.mserver = (MetricsServer(self.cfg.metrics_bind, self.render_metrics, self.log)
                            if self.cfg.metrics_bind else None)
        except (ValueError, OSError) as exc:
            self.log.error("%s", exc)
            return exits.USAGE
        self.polled = {}
        self.signals = Signals(MASTER)
        self.ready_r, self.ready_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.beats = Heartbeat()
        self.poller = select.poll()
        self.poller.register(self.signals.r, select.POLLIN)
        self.poller.register(self.ready_r, select.POLLIN)
        self.binds = " ".join(str(b) for b in self.cfg.bind)
        for b, sock in zip(self.cfg.bind, self.listeners):
            where = sock.getsockname()
            if isinstance(where, tuple):     # the real port, also for -b 127.0.0.1:0
                where = "http://%s:%d" % (("[%s]" % where[0]) if ":" in where[0] else where[0], where[1])
            self.log.info("listening at %s (pid %d)", where or b, self.pid)
        self.log.info("master pid=%d app=%s workers=%d reaper=%s", self.pid, self.cfg.app, self.target,
                      self.reaper or "none (orphans go to pid 1)")
        # the first sample after one interval: by then the workers have booted
        self.next_sample = time.monotonic() + self.cfg.metrics_interval
        self.title()
        hooks.call(self.cfg.hooks, self.log, "nworkers_changed", self, self.target, None)   # as Gunicorn does
        hooks.call(self.cfg.hooks, self.log, "when_ready", self)
        return None

    def title(self):
        live = sum(1 for s in self.slots if s.pid)
        status = "workers=%d/%d" % (live, self.target)
        setproctitle.setproctitle("pyfork master [%s] %s bind=%s" % (self.cfg.app, status, self.binds))
        if self.notifier and status != self.status:
            self.notifier.status(status)
        self.status = status

    def render_metrics(self):
        """/metrics: the last sample (cheap: no /proc reads during a scrape)."""
        m = self.monitor
        return prometheus.render(m.last_master, list(m.last.values()), m.last_dyno,
                                 m.advice.workers if m.advice else None, self.restarts, self.target)

    def notify_ready(self):
        """READY=1 once every slot has a ready worker (at start, and after a reload)."""
        if self.notifier and self.waiting_ready and \
                sum(1 for s in self.slots[:self.target] if s.ready) >= self.target:
            self.waiting_ready = False
            self.notifier.ready(self.status)

    # -- the loop -------------------------------------------------------------------------

    def run(self):
        try:
            return self.loop()
        except HookFailed:
            for pid in list(self.by_pid) + list(self.old):
                self.kill(pid, signal.SIGKILL)
            return exits.HOOK
        finally:
            hooks.call(self.cfg.hooks, self.log, "on_exit", self)

    def loop(self):
        code = self.start()
        if code is not None:
            return code
        try:
            while True:
                try:
                    now = time.monotonic()
                    for cmd in self.signals.commands():
                        self.command(cmd, now)
                    self.reap(now)
                    self.note_ready(now)
                    if self.verdict is not None:
                        return self.give_up()
                    if self.phase is Phase.STOPPING and not self.by_pid and not self.old:
                        self.log.info("master pid=%d: all workers stopped; exiting", self.pid)
                        return exits.OK
                    self.act(now)
                    self.sleep(now)
                except HookFailed:
                    raise
                except Exception:
                    # the one catch-all: a bug in pyfork must not take the dyno's workers
                    # down with the master; log it, pause a moment, carry on
                    self.log.exception("master pid=%d: unexpected error in the loop; carrying on", self.pid)
                    time.sleep(0.1)
        finally:
            self.close_listeners()
            if self.mserver:
                self.mserver.close()
            if self.cfg.pidfile and self.phase is Phase.STOPPING:
                remove_pidfile(self.cfg.pidfile, self.pid)

    def sleep(self, now):
        wait = plan.next_wakeup(self.slots, self.target, self.phase, now, self.ever_booted, CHECK_EVERY)
        deadlines = [k for _, k in self.old.values() if k is not None]
        if self.phase is Phase.RUNNING:
            deadlines.append(self.next_guard)
            if self.cfg.metrics_interval:
                deadlines.append(self.next_sample)
        if self.deadline is not None:
            deadlines.append(self.deadline)
        for seconds in (self.notifier and self.notifier.next_watchdog(now),
                        self.mserver and self.mserver.next_deadline(now)):
            if seconds is not None:
                deadlines.append(now + seconds)
        if deadlines:
            wait = min(wait, max(0.0, min(deadlines) - now))
        if self.mserver:
            want = self.mserver.fds()
            for fd in self.polled.keys() - want.keys():
                self.poller.unregister(fd)
            for fd, mask in want.items():
                if self.polled.get(fd) != mask:
                    self.poller.register(fd, mask)
            self.polled = want
        events = self.poller.poll(wait * 1000.0)
        if self.mserver:
            t = time.monotonic()
            for fd, ev in events:
                if fd in self.polled:
                    self.mserver.handle(fd, ev, t)    # a scrape: bounded, never blocks

    def act(self, now):
        # a stuck loop stops pinging: that is what systemd's watchdog is for
        if self.notifier and self.notifier.watchdog_due(now):
            self.notifier.watchdog(now)
        if self.mserver:
            self.mserver.expire(now)
        for pid, entry in self.old.items():
            if entry[1] is not None and now >= entry[1]:
                self.log.warning("worker=%d pid=%d did not stop within --graceful-timeout %g; sending SIGKILL",
                                 entry[0], pid, self.cfg.graceful_timeout)
                self.kill(pid, signal.SIGKILL)
                entry[1] = now + 5.0
        if self.phase is Phase.STOPPING:
            if now >= self.deadline:
                for pid in list(self.by_pid) + list(self.old):
                    self.kill(pid, signal.SIGKILL)
                self.deadline = now + 5.0
            return
        while len(self.slots) < self.target:
            self.slots.append(Slot(len(self.slots)))
        for slot in plan.to_retire(self.slots, self.target):
            self.retire(slot)
        self.check_timeouts(now)
        if now >= self.next_guard:
            self.next_guard = now + self.guard(now)
        if self.cfg.metrics_interval and now >= self.next_sample:
            self.next_sample = now + self.cfg.metrics_interval
            self.sample(now)
        for nr in plan.to_spawn(self.slots, self.target, self.phase, self.ever_booted, now):
            self.spawn(self.slots[nr], now)

    # -- commands -------------------------------------------------------------------------

    def command(self, cmd, now):
        if cmd is Command.REAP:
            return
        if cmd is Command.REOPEN:
            self.log.reopen()     # first, so the line below lands in the new file
        self.log.info("master pid=%d: %s", self.pid, cmd.value)
        if cmd in (Command.STOP, Command.QUIT):
            quick = cmd is Command.QUIT
            if self.phase is Phase.STOPPING and not quick:
                return
            self.phase = Phase.STOPPING
            if self.notifier:
                self.notifier.stopping(self.status)
            self.close_listeners()
            self.deadline = now + (1.0 if quick else self.cfg.graceful_timeout)
            for pid in list(self.by_pid) + list(self.old):
                self.kill(pid, signal.SIGINT if quick else signal.SIGTERM)
        elif cmd is Command.REOPEN:
            for pid in list(self.by_pid) + list(self.old):
                self.kill(pid, signal.SIGUSR1)
        elif self.phase is Phase.STOPPING:
            return
        elif cmd is Command.MORE:
            self.set_target(self.target + 1)
        elif cmd is Command.FEWER:
            self.set_target(max(0, self.target - 1))
        elif cmd is Command.STOP_WORKERS:
            self.phase = Phase.IDLE
            for slot in self.slots:
                if slot.pid:
                    self.retire(slot)
        elif cmd is Command.RELOAD:
            self.reload(now)
        elif cmd is Command.REEXEC:
            self.reexec()

    def reload(self, now):
        """HUP: re-read the configuration (flags and environment as at start, the config
        file afresh), then replace every worker, each new one ready before its old one
        stops. New workers import the app afresh unless it was preloaded."""
        if self.reload_config is not None:
            try:
                cfg, _, notes = self.reload_config()
            except ConfigError as exc:
                self.log.error("reload: %s; keeping the configuration in use", exc)
            else:
                for note in notes:
                    self.log.warning("%s", note)
                if cfg.bind != self.cfg.bind:
                    self.log.warning("reload: a change of bind needs a restart or USR2; listening as before")
                logs = ("error_logfile", "loglevel", "access_logfile", "access_logformat", "metrics_log")
                if any(getattr(cfg, n) != getattr(self.cfg, n) for n in logs):
                    self.new_log(cfg)
                self.cfg = dataclasses.replace(cfg, bind=self.cfg.bind)
                self.limits = recycle.Limits(memory=cfg.max_worker_memory, metric=cfg.memory_metric,
                                             zombies=cfg.max_worker_zombies, threads=cfg.max_worker_threads)
                if cfg.workers != AUTO:
                    self.set_target(cfg.workers)
        hooks.call(self.cfg.hooks, self.log, "on_reload", self)
        if self.notifier:
            self.notifier.reloading(self.status)
        self.waiting_ready = True
        self.count_restart("reload")
        self.phase = Phase.RUNNING
        for slot in self.slots:
            if slot.pid:
                self.old[slot.pid] = [slot.nr, None]
                del self.by_pid[slot.pid]
                slot.replaces = slot.pid
                slot.pid = 0
                slot.ready = False
                slot.failures = 0
                slot.due = now

    def new_log(self, cfg):
        """The log settings changed on reload: open the new files; new workers inherit them."""
        try:
            log = Log(cfg.error_logfile, cfg.loglevel, cfg.access_logfile, cfg.access_logformat, cfg.metrics_log)
        except OSError as exc:
            self.log.error("reload: cannot open log file %s: %s; logging as before", exc.filename, exc.strerror)
            return
        old, self.log = self.log, log
        if self.monitor:
            self.monitor.log = self.monitor.sampler.log = log
        if self.mserver:
            self.mserver.log = log
        old.close()
        self.log.info("reload: logging to %s at level %s", cfg.error_logfile, cfg.loglevel)

    def reexec(self):
        """USR2: exec a fresh pyfork in this very process (same PID), handing over the
        listeners as LISTEN_FDS; the new master stops our workers once its own are ready."""
        fds = []
        for i, sock in enumerate(self.listeners):
            fd = LISTEN_FDS_START + i
            if sock.fileno() != fd:
                os.dup2(sock.fileno(), fd, inheritable=True)
            else:
                os.set_inheritable(fd, True)
            fds.append(fd)
        env = dict(os.environ)
        env["LISTEN_FDS"] = str(len(fds))
        env["LISTEN_PID"] = str(self.pid)
        env["PYFORK_OLD_WORKERS"] = ",".join(str(p) for p in list(self.by_pid) + list(self.old))
        argv = [sys.executable, "-m", "supervisor"] + sys.argv[1:]
        hooks.call(self.cfg.hooks, self.log, "pre_exec", self)
        if self.notifier:
            self.notifier.reloading(self.status)
        self.log.info("master pid=%d: re-executing %s", self.pid, " ".join(argv))
        signal.set_wakeup_fd(-1)
        try:
            os.execve(sys.executable, argv, env)
        except OSError as exc:
            self.log.error("re-exec failed: %s; carrying on", exc)
            self.signals = Signals(MASTER)

    # -- workers --------------------------------------------------------------------------

    def spawn(self, slot, now):
        hooks.call(self.cfg.hooks, self.log, "pre_fork", self, WorkerInfo(slot.nr, 0, self.log))
        cell = self.beats.take()
        self.beats.set(cell, 0, heartbeat.BOOTING, now)
        # Block signals across fork: until the child has its own handlers and wake-up
        # pipe, a SIGTERM aimed at it would land in the master's pipe and be lost to it.
        # The child unblocks them (worker.py) once it can record them itself.
        signal.pthread_sigmask(signal.SIG_BLOCK, MASTER)
        try:
            pid = os.fork()
        except OSError as exc:
            # EAGAIN: the task limit (pids.max, RLIMIT_NPROC) is full; ENOMEM: no memory.
            # The master must live through it: try again later, with the slot's backoff.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
            self.beats.give_back(cell)
            slot.failures += 1
            slot.due = now + max(0.1, backoff.delay(slot.failures, self.rng.random()))
            self.log.error("cannot fork worker=%d: %s (%s); retrying in %.2fs", slot.nr, exc.strerror,
                           "the task limit is full: zombies or threads?" if exc.errno == errno.EAGAIN
                           else "out of memory?", slot.due - now)
            return
        except BaseException:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
            raise
        if pid == 0:
            self.child(slot.nr, cell)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
        slot.pid = pid
        slot.started = now
        slot.ready = False
        slot.retiring = False
        self.by_pid[pid] = slot
        self.cells[pid] = cell
        self.log.debug("worker=%d pid=%d spawned", slot.nr, pid)
        self.title()

    def child(self, nr, cell):
        """After fork, in the worker. Never returns: the master's stack must not unwind here."""
        code = exits.ERROR
        try:
            self.signals.close()
            os.close(self.ready_r)
            if self.mserver:
                self.mserver.close_after_fork()   # not close(): that would cut the master's scrapes
            if self.notifier:
                self.notifier.close()
            for name in notify.SYSTEMD_ONLY:      # the app's own children are not systemd's business
                os.environ.pop(name, None)
            if self.ids:
                drop_privileges(*self.ids)
            worker = Worker(self.cfg, nr, cell, self.listeners, self.app, self.beats, self.log,
                            self.pid, self.ready_w)
            worker.server = self      # for worker_exit when the worker ends itself (INT, abort)
            hooks.call(self.cfg.hooks, self.log, "post_fork", self, worker)
            code = worker.run()
            hooks.call(self.cfg.hooks, self.log, "worker_exit", self, worker)
        except HookFailed:
            code = exits.WORKER_BOOT
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else exits.ERROR
        except BaseException:
            self.log.exception("worker=%d crashed", nr)
        finally:
            os._exit(code)

    def retire(self, slot):
        """Stop this slot's worker gracefully and do not respawn it."""
        pid = slot.pid
        self.old[pid] = [slot.nr, None]
        del self.by_pid[pid]
        slot.pid = 0
        slot.ready = False
        self.stop_old(pid, time.monotonic())
        self.title()

    def stop_old(self, pid, now):
        """SIGTERM a worker on its way out; SIGKILL it if it outlives the graceful timeout."""
        self.old[pid][1] = now + self.cfg.graceful_timeout
        self.kill(pid, signal.SIGTERM)

    def kill(self, pid, sig):
        if sig == signal.SIGKILL:
            self.sigkilled.add(pid)   # our own doing: its death is no out-of-memory kill
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass     # already dead, to be reaped

    def note_ready(self, now):
        try:
            while os.read(self.ready_r, 512):
                pass
        except BlockingIOError:
            pass
        for pid, slot in self.by_pid.items():
            if not slot.ready and self.beats.get(self.cells[pid]).state == heartbeat.READY:
                slot.ready = True
                self.log.info("worker=%d pid=%d booted in %.0fms", slot.nr, pid, (now - slot.started) * 1000)
                if not self.ever_booted:
                    self.ever_booted = True
                    self.adopt_old_workers(now)
                old = slot.replaces
                if old:
                    slot.replaces = 0
                    if old in self.old:
                        self.stop_old(old, now)
        self.notify_ready()

    def adopt_old_workers(self, now):
        """After a USR2 re-exec: the previous image's workers are our children still;
        now that ours serve, let theirs finish and go."""
        for pid in self.inherited_workers:
            self.old[pid] = [-1, None]
            self.stop_old(pid, now)
        self.inherited_workers = []

    def workers(self):
        """[(slot, pid, Beat)] of the ready workers."""
        return [(slot, pid, self.beats.get(self.cells[pid])) for pid, slot in self.by_pid.items() if slot.ready]

    def guard(self, now):
        """About once a second: recycle a worker leaking zombies or threads, or the
        biggest task holder when the dyno nears its task limit. Returns the seconds
        until the next guard: sooner while the task count is past half its limit."""
        recycle_these, pressure = self.monitor.guard(self.workers(), self.limits)
        for slot, why in recycle_these:
            self.recycle(slot, why, now)
        return recycle.guard_interval(pressure)

    def sample(self, now):
        """Every --metrics-interval: the log-runtime-metrics lines, advice, warnings,
        memory recycling and -w auto."""
        recycle_these, target = self.monitor.sample(self.workers(), self.limits, self.target,
                                                    self.cfg.workers == AUTO)
        for slot, why in recycle_these:
            self.recycle(slot, why, now)
        if target != self.target:
            self.log.info("master pid=%d: -w auto: workers %d -> %d", self.pid, self.target, target)
            self.set_target(target)

    def set_target(self, target):
        old, self.target = self.target, target
        self.title()
        if target != old:
            hooks.call(self.cfg.hooks, self.log, "nworkers_changed", self, target, old)

    def recycle(self, slot, why, now):
        """Replace a leaking worker: it finishes its request in hand, a new one starts now."""
        pid = slot.pid
        if not pid:
            return
        self.log.warning("worker=%d pid=%d recycled: %s", slot.nr, pid, why)
        self.count_restart(recycle.category(why))
        self.old[pid] = [slot.nr, None]
        del self.by_pid[pid]
        slot.pid = 0
        slot.ready = False
        slot.due = now
        self.stop_old(pid, now)

    def check_timeouts(self, now):
        for pid, slot in list(self.by_pid.items()):
            beat = self.beats.get(self.cells[pid]).beat
            what = plan.overdue(slot, beat, now, self.cfg.timeout, self.cfg.boot_timeout)
            if what == "abort":
                slot.aborted = now
                if slot.ready:
                    self.log.error("worker=%d pid=%d timed out: no heartbeat for %.1fs (--timeout %g); "
                                   "sending SIGABRT, its stack follows", slot.nr, pid, now - beat, self.cfg.timeout)
                else:
                    self.log.error("worker=%d pid=%d did not boot within --boot-timeout %g; sending SIGABRT",
                                   slot.nr, pid, self.cfg.boot_timeout)
                self.kill(pid, signal.SIGABRT)
            elif what == "kill":
                self.log.error("worker=%d pid=%d still alive after SIGABRT; sending SIGKILL", slot.nr, pid)
                self.kill(pid, signal.SIGKILL)

    def reap(self, now):
        """waitpid(-1) until nothing is left: workers, and orphans reparented to us."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            requests = 0
            if pid in self.sigkilled:
                self.sigkilled.discard(pid)
                if code == -signal.SIGKILL:
                    code = exits.KILLED_BY_US
            slot = self.by_pid.pop(pid, None)
            cell = self.cells.pop(pid, None)
            if cell is not None:
                requests = self.beats.get(cell).requests
                self.beats.give_back(cell)
            if slot is not None or pid in self.old:
                nr = slot.nr if slot is not None else self.old[pid][0]
                hooks.call(self.cfg.hooks, self.log, "child_exit", self, WorkerInfo(nr, pid, self.log, code))
            if slot is not None:
                self.worker_died(slot, pid, code, now, requests)
            elif pid in self.old:
                nr, _ = self.old.pop(pid)
                self.log.info("worker=%d pid=%d stopped: %s", nr, pid, exits.exit_description(code))
                self.title()
            else:
                self.log.debug("reaped orphan pid=%d (%s)", pid, exits.exit_description(code))

    def count_restart(self, reason):
        self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def worker_died(self, slot, pid, code, now, requests):
        death = Death(slot.nr, code, now - slot.started, slot.ready, requests)
        if not slot.ready:
            self.boot_failures += 1
        self.count_restart(plan.restart_reason(death, bool(slot.aborted)))
        self.verdict = plan.verdict(self.ever_booted, self.boot_failures, code)
        delay = plan.on_death(slot, death, now, self.rng.random())
        if self.phase is Phase.STOPPING or self.verdict is not None:
            self.log.info("worker=%d pid=%d exited: %s", slot.nr, pid, exits.exit_description(code))
        else:
            self.log.warning("worker=%d pid=%d exited: %s uptime=%.1fs requests=%d;%s restarting in %.2fs",
                             slot.nr, pid, exits.exit_description(code), death.uptime, requests,
                             self.monitor.last_memory(slot.nr, pid) if self.monitor else "", delay)
        self.title()

    def give_up(self):
        code = self.verdict
        self.log.error("master pid=%d: no worker ever booted; giving up: %s", self.pid, exits.MEANING[code])
        for pid in list(self.by_pid) + list(self.old):
            self.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while (self.by_pid or self.old) and time.monotonic() < deadline:
            self.reap(time.monotonic())
            time.sleep(0.01)
        return code

    def close_listeners(self):
        for sock in getattr(self, "listeners", []):
            sock.close()
        for b in self.cfg.bind:
            if b.kind == "unix" and self.phase is Phase.STOPPING:
                try:
                    os.unlink(b.path)
                except OSError:
                    pass
        self.listeners = []
