"""The master: the loop and the carrying out of the plan's actions. The only caller of
fork, kill and waitpid.

Single-threaded by design: one loop, top to bottom (Unicorn's `join`, tini's `main`):
drain signals -> reap -> decide (plan.actions) -> act -> sleep until the next deadline.
No timer threads, so fork() is always safe. What to do and when is plan.py's and
deaths.py's; this module only forks, signals, reaps, logs and calls hooks.
"""
import os
import random
import select
import signal
import time

import setproctitle

from . import commands, deaths, plan, recycle, reforking, startup, sweep
from .. import exits, hooks
from ..observe import prometheus
from ..config import AUTO
from ..hooks import HookFailed, WorkerInfo
from .pidfile import remove_pidfile
from .plan import Booted, Phase, Recycled, Signal, Spawn, Sweep
from .signals import Command
from .spawn import spawn

SIGNALS = {s: getattr(signal, s.value) for s in plan.Sig}


class Master:
    def __init__(self, cfg, log, environ=os.environ, reload=None, sources=None):
        self.cfg = cfg
        self.sources = sources or {}   # setting -> where its value came from (the boot line says)
        self.see = None                # the ledger, OOM naming, the control socket (observe/see.py)
        self.reload_config = reload
        self.log = log
        self.environ = environ
        self.table = plan.new_table(0 if cfg.workers is AUTO else cfg.workers, commands.timeouts_of(cfg))
        self.limits = commands.limits_of(cfg)
        self.pid = os.getpid()
        self.verdict = None
        self.app = None
        self.preloaded_in = 0.0     # seconds the --preload import took
        self.probe = None           # commands.Probe: new code being imported for a HUP (--preload)
        self.channel = None         # reforking.Channel: pipes to a refork template (--refork-after)
        self.refork = None          # refork.Refork: the generation under way
        self.generation = 0         # reforks done (or given up): the next uses refork_after[generation]
        self.rng = random.Random()
        self.next_guard = 0.0
        self.next_sample = 0.0
        self.sigkilled = set()     # pids we sent SIGKILL: their death is no out-of-memory kill
        self.status = None
        self.waiting_ready = True
        self.reaper = None
        self.listeners = []
        self.binds = ""
        self.ids = None
        self.monitor = None
        self.notifier = None
        self.mserver = None
        self.reloader = None       # --reload: reloader.py, polled from this loop like the servers
        self.signals = None
        self.ready_r = self.ready_w = -1
        self.heartbeat = None
        self.poller = select.poll()
        self.polled = {}           # extra fds polled for their owners (the metrics server): fd -> mask
        self.asleep = self.wake = None   # when the loop last went to sleep, and meant to wake (stall guard)

    @property
    def target(self):
        return self.table.target

    @property
    def num_workers(self):
        """Gunicorn's name, for hooks."""
        return self.table.target

    def title(self):
        """The process title and systemd's STATUS=, when the worker count changed."""
        live = sum(1 for s in self.table.slots if s.pid)
        status = "workers=%d/%d" % (live, self.target)
        if status == self.status:
            return
        setproctitle.setproctitle("pyfork master [%s] %s bind=%s" % (self.cfg.app, status, self.binds))
        if self.notifier:
            self.notifier.status(status)
        self.status = status

    def render_metrics(self):
        """/metrics: the last sample (cheap: no /proc reads during a scrape)."""
        m = self.monitor
        restarts = {(s, r): n for s, r, n in self.see.ledger.metrics()}
        return prometheus.render(m.last_master, list(m.last.values()), m.last_dyno,
                                 m.advice.workers if m.advice else None, restarts, self.target,
                                 (m.utilization, *m.thread_seconds) if m.last_master else None,
                                 None if self.cfg.workers is AUTO else self.cfg.workers)

    def notify_ready(self):
        """READY=1 once every slot has a ready worker (at start, and after a reload)."""
        if self.notifier and self.waiting_ready and \
                sum(1 for s in self.table.slots[:self.target] if s.ready) >= self.target:
            self.waiting_ready = False
            self.notifier.ready(self.status)

    # -- the loop -------------------------------------------------------------------------

    def run(self):
        try:
            return self.loop()
        except HookFailed:
            for pid in plan.pids(self.table):
                self.kill(pid, signal.SIGKILL)
            return exits.HOOK
        finally:
            hooks.call(self.cfg.hooks, self.log, "on_exit", self)

    def loop(self):
        code = startup.start(self)
        if code is not None:
            return code
        try:
            while True:
                try:
                    now = time.monotonic()
                    self.stall_guard(now)
                    for cmd in self.signals.commands():
                        self.command(cmd, now)
                    self.reap(now)
                    if self.verdict is not None:
                        return self.give_up()
                    if self.table.phase is Phase.STOPPING and not plan.pids(self.table) \
                            and not reforking.alive(self):
                        self.log.info("master pid=%d: all workers stopped; exiting", self.pid)
                        return exits.OK
                    beats = self.beats()
                    self.act(plan.actions(self.table, beats, now), now)
                    self.sleep(plan.deadline(self.table, beats, now), now)
                except HookFailed:
                    raise
                except Exception:
                    # the one catch-all: a bug in pyfork must not take the dyno's workers
                    # down with the master; log it, pause a moment, carry on
                    self.log.exception("master pid=%d: unexpected error in the loop; carrying on", self.pid)
                    time.sleep(0.1)
        finally:
            self.close_listeners()
            for server in self.servers():
                server.close()
            if self.cfg.pidfile and self.table.phase is Phase.STOPPING:
                remove_pidfile(self.cfg.pidfile, self.pid)

    def stall_guard(self, now):
        """The dyno was frozen or the master off the CPU: that time is no worker's (plan.stalled)."""
        if self.wake is None:
            return
        gap = plan.stalled(self.table, now, self.asleep, self.wake)
        if gap is not None:
            self.log.warning("master pid=%d: stalled for %.1fs (the dyno frozen, or the master off the CPU or "
                             "busy); that time does not count toward any worker's timeout", self.pid, gap)

    def beats(self):
        """{pid: Beat} of the live workers (a few microseconds each: shared memory)."""
        return {s.pid: self.heartbeat.get(s.cell) for s in self.table.slots if s.pid}

    def deadlines(self, now):
        """When the master's own periodic work falls due: guard, sample, watchdog, scrapes."""
        when = []
        if self.table.phase is not Phase.STOPPING:
            when.append(self.next_guard)
            if self.cfg.metrics_interval:
                when.append(self.next_sample)
        for seconds in [self.notifier and self.notifier.next_watchdog(now)] + \
                [server.next_deadline(now) for server in self.servers()]:
            if seconds is not None:
                when.append(now + seconds)
        return when

    def sleep(self, due, now):
        """Poll the signal and ready pipes, and the fds others ask for, until `due` or the
        master's next periodic deadline, whichever is first."""
        wait = max(0.0, min([due] + self.deadlines(now)) - now)
        want, owner = {}, {}
        for server in self.servers():         # /metrics and the control socket: no thread of their own
            for fd, mask in server.fds().items():
                want[fd], owner[fd] = mask, server
        for fd in self.polled.keys() - want.keys():
            self.poller.unregister(fd)
        for fd, mask in want.items():
            if self.polled.get(fd) != mask:
                self.poller.register(fd, mask)
        self.polled = want
        self.asleep, self.wake = now, now + wait      # this turn, and when the next one is due at the latest
        events = self.poller.poll(wait * 1000.0)
        t = time.monotonic()
        for fd, ev in events:
            if fd in owner:
                owner[fd].handle(fd, ev, t)    # a scrape or a status: bounded, never blocks
            elif fd == self.ready_r:
                self.drain_ready()
            elif self.channel is not None and fd == self.channel.rep_r:
                reforking.on_answer(self)

    def drain_ready(self):
        try:
            while os.read(self.ready_r, 512):
                pass
        except BlockingIOError:
            pass

    def act(self, actions, now):
        # a stuck loop stops pinging: that is what systemd's watchdog is for
        if self.notifier and self.notifier.watchdog_due(now):
            self.notifier.watchdog(now)
        for server in self.servers():
            server.expire(now)
        if self.table.phase is not Phase.STOPPING:
            if now >= self.next_guard:
                self.next_guard = now + self.guard(now)
            if self.cfg.metrics_interval and now >= self.next_sample:
                self.next_sample = now + self.cfg.metrics_interval
                self.sample(now)
        self.carry_out(actions, now)
        if self.refork is not None:
            reforking.turn(self, now)

    def carry_out(self, actions, now):
        for a in actions:
            if type(a) is Signal:
                if a.note:
                    (self.log.warning if a.reason is plan.Reason.GRACE_OVER else self.log.error)("%s", a.note)
                if a.sig is plan.Sig.INT:
                    self.kill_group(a.pid, signal.SIGINT)     # as a terminal's Ctrl-C would have
                else:
                    self.kill(a.pid, SIGNALS[a.sig])
            elif type(a) is Spawn:
                spawn(self, a.nr, now)
            elif type(a) is Recycled:
                self.timed_out(a, now)
            elif type(a) is Sweep:
                sweep.carry_out(self.table, self.log, a, SIGNALS[a.sig])
            elif type(a) is Booted:
                self.log.info("worker=%d pid=%d booted in %.0fms", a.nr, a.pid, a.seconds * 1000)
        self.title()
        self.notify_ready()

    # -- commands -------------------------------------------------------------------------

    def command(self, cmd, now):
        if cmd is Command.REAP:
            return
        if cmd is Command.REOPEN:
            self.log.reopen()     # first, so the line below lands in the new file
        self.log.info("master pid=%d: %s", self.pid, cmd.value)
        if cmd in (Command.STOP, Command.QUICK_STOP, Command.RELOAD, Command.REEXEC, Command.STOP_WORKERS):
            reforking.give_up(self, "the master was told to %s" % cmd.value)
        if cmd in (Command.STOP, Command.QUICK_STOP):
            actions = plan.stop(self.table, now, cmd is Command.QUICK_STOP)
            if actions is not None:
                if self.notifier:
                    self.notifier.stopping(self.status)
                self.close_listeners()
                self.carry_out(actions, now)
        elif cmd is Command.REOPEN:
            self.carry_out(plan.reopen(self.table), now)
        elif self.table.phase is Phase.STOPPING:
            return
        elif cmd is Command.MORE:
            self.set_target(self.target + 1)
        elif cmd is Command.FEWER:
            self.set_target(max(0, self.target - 1))
        elif cmd is Command.STOP_WORKERS:
            self.carry_out(plan.stop_workers(self.table, now), now)
        elif cmd is Command.RELOAD:
            commands.reload(self, now)
        elif cmd is Command.REEXEC:
            commands.reexec(self)

    # -- workers --------------------------------------------------------------------------

    def kill(self, pid, sig):
        if sig == signal.SIGKILL:
            self.sigkilled.add(pid)   # our own doing: its death is no out-of-memory kill
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass     # already dead, to be reaped

    def kill_group(self, pid, sig):
        """Signal a worker and its process group (spawn.py); one that leads none (a worker of
        an older pyfork, inherited on USR2) gets it alone."""
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            self.kill(pid, sig)

    def timed_out(self, a, now):
        """A worker answered 504 to a request past --timeout and left: its slot's new one starts."""
        why = plan.Reason.TIMED_OUT.value
        others = a.busy - 1
        self.log.warning("worker=%d pid=%d %s: a new worker starts now%s", a.nr, a.pid, why,
                         "; this one finishes its %d other request%s within --graceful-timeout %g" % (
                             others, "" if others == 1 else "s", self.table.timeouts.graceful) if others > 0 else "")
        entry = self.table.leaving.get(a.pid)
        beat = self.heartbeat.get(entry.cell) if entry is not None and entry.cell is not None else None
        self.see.recycled(a.nr, a.pid, "timeout", "answered 504, recycled", beat, now)   # "timeout; answered 504, .."

    def workers(self):
        """[(slot, pid, Beat)] of the ready workers."""
        return [(s, s.pid, self.heartbeat.get(s.cell)) for s in self.table.slots if s.pid and s.ready]

    def guard(self, now):
        """About once a second: recycle a worker leaking zombies or threads, or the
        biggest task holder when the dyno nears its task limit. Returns the seconds
        until the next guard: sooner while the task count is past half its limit."""
        self.see.guard(now)
        commands.probe_overdue(self, now)
        reforking.guard(self, now)
        recycle_these, pressure, regrown = self.monitor.guard(self.workers(), self.limits)
        for slot, why, room in recycle_these:
            self.recycle(slot, why, now, room)
        if regrown:
            self.step_down(regrown, now)
        return recycle.guard_interval(pressure)

    def sample(self, now):
        """Every --metrics-interval: the log-runtime-metrics lines, advice, warnings,
        memory recycling and -w auto."""
        recycle_these, target = self.monitor.sample(self.workers(), self.limits, self.target,
                                                    self.cfg.workers is AUTO)
        for slot, why, room in recycle_these:
            self.recycle(slot, why, now, room)
        self.see.sampled()
        if target != self.target:
            self.log.info("master pid=%d: -w auto: workers %d -> %d", self.pid, self.target, target)
            self.set_target(target)

    def set_target(self, target):
        old, self.table.target = self.target, target
        self.title()
        if target != old:
            hooks.call(self.cfg.hooks, self.log, "nworkers_changed", self, target, old)

    def recycle(self, slot, why, now, room=False):
        """Replace a leaking worker: it finishes its request in hand, a new one starts now
        (room: once it is gone, so that its memory is free first)."""
        if slot.pid:
            self.log.warning("worker=%d pid=%d recycled: %s%s", slot.nr, slot.pid, why,
                             "; its replacement starts once it has exited" if room else "")
            self.see.recycled(slot.nr, slot.pid, recycle.category(why), why, self.heartbeat.get(slot.cell), now)
            self.carry_out(plan.recycle(self.table, slot.nr, now, room), now)

    def step_down(self, cause, now):
        """One worker fewer, held until HUP or USR2 (the monitor decides and says why)."""
        configured = None if self.cfg.workers is AUTO else self.cfg.workers
        step = self.monitor.step_down(self.target, configured, self.workers(), cause)
        if step is not None:
            old = self.target
            self.carry_out(plan.step_down(self.table, step.running, now), now)
            hooks.call(self.cfg.hooks, self.log, "nworkers_changed", self, step.running, old)

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
            if pid in self.sigkilled:
                self.sigkilled.discard(pid)
                if code == -signal.SIGKILL:
                    code = exits.KILLED_BY_US
            if reforking.reaped(self, pid, code, exits.exit_description):
                continue
            if self.probe is not None and pid == self.probe.pid:
                commands.probed(self, code, now)
                continue
            who = plan.gone(self.table, pid)
            if who is None:
                self.log.debug("reaped orphan pid=%d (%s)", pid, exits.exit_description(code))
                continue
            beat = self.heartbeat.get(who.cell) if who.cell is not None else None
            if beat is not None:
                self.heartbeat.give_back(who.cell)
                if isinstance(who, plan.Slot) and beat.timed_out:     # it answered 504 and left before we looked
                    self.carry_out(plan.recycle_timed_out(self.table, who, beat, now), now)
                    who = plan.gone(self.table, pid)
            hooks.call(self.cfg.hooks, self.log, "child_exit", self, WorkerInfo(who.nr, pid, self.log, code))
            timed_out = isinstance(who, plan.Leaving) and who.reason is plan.Reason.TIMED_OUT
            sweeps = deaths.sweeps_group(code, getattr(who, "kill_at", 0.0) > 0, timed_out)
            if isinstance(who, plan.Leaving):
                self.log.info("%s pid=%d stopped%s: %s", plan.label(who.nr), pid,
                              " (%s)" % who.reason.value if timed_out else "",
                              exits.exit_description(code, beat is not None and beat.exiting))
            else:
                self.worker_died(deaths.of(who, pid, code, beat, now), who, now)
            if sweeps:
                self.carry_out(plan.sweep(self.table, pid, who.nr, now), now)
            self.title()

    def worker_died(self, death, slot, now):
        """Every death of a slot's worker passes here once, as a Death record."""
        death = deaths.on_death(self.table, slot, death, now, self.rng.random())
        # the ledger files it; a SIGKILL pyfork did not send is named from the kernel's counters
        named = None if self.table.phase is Phase.STOPPING else self.see.died(death, now)
        self.verdict = deaths.verdict(self.table, death)
        if self.table.phase is Phase.STOPPING or self.verdict is not None:
            self.log.info("worker=%d pid=%d exited: %s", death.nr, death.pid,
                          exits.exit_description(death.code, death.ours))
        else:
            memory = self.monitor.last_memory(death.nr, death.pid) if self.monitor else ""
            (self.log.info if death.clean else self.log.warning)("%s%s", deaths.line(death, named), memory)
            if named and self.see.oom_killed:       # a count that does not fit: one fewer, not a loop
                self.step_down("the kernel OOM-killed worker=%d" % death.nr, now)

    def give_up(self):
        code = self.verdict
        self.log.error("master pid=%d: no worker ever booted; giving up: %s", self.pid, exits.MEANING[code])
        for pid in plan.pids(self.table):
            self.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while plan.pids(self.table) and time.monotonic() < deadline:
            self.reap(time.monotonic())
            time.sleep(0.01)
        return code

    def servers(self):
        """The servers polled from this loop: /metrics and the control socket."""
        return [s for s in [self.mserver, self.reloader] + (self.see.servers() if self.see else []) if s]

    def close_listeners(self):
        for sock in self.listeners:
            sock.close()
        for b in self.cfg.bind:
            if b.kind == "unix" and self.table.phase is Phase.STOPPING:
                try:
                    os.unlink(b.path)
                except OSError:
                    pass
        self.listeners = []
