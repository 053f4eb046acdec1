"""The master's eyes: samples workers and the dyno, writes the metrics lines, warns,
advises, picks workers to recycle, grows -w auto and steps the count down when it does not
fit. Called from the master loop (no thread): `guard` about once a second, `sample` every
--metrics-interval, `step_down` after an OOM kill. Decisions are the pure functions of
recycle.py, sizing.py and fit.py; this module gathers their inputs and logs.
"""
import dataclasses
import os
import resource
import socket
import time

from . import fit, metrics, sizing
from ..supervise import recycle
from .pressure import MemoryGuard
from .sampler import PAGE, Gone, Sampler, timed

GROWTH_WINDOW = 3600.0      # seconds of memory history kept per slot for the slope


def _private(s):
    return s.uss if s.uss is not None else s.rss


QUOTA_SOURCES = {"cgroup": "the cgroup", "cgroup-parent": "a parent cgroup", "flag": "--memory-quota",
                 "machine": "the machine's memory"}


def make_sampler(cfg, log):
    """The Sampler for this configuration: the quota and task limit of --dyno-size or
    --memory-quota where no cgroup says. ValueError names an unknown dyno size."""
    quota, source, tasks_max = cfg.memory_quota, "flag", None
    if cfg.dyno_size:
        from . import dynos
        size = dynos.lookup(cfg.dyno_size)
        if quota is None:
            quota, source = size.quota, "dyno-size"
        tasks_max = size.tasks
    if tasks_max is None:
        soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        tasks_max = None if soft == resource.RLIM_INFINITY else soft
    return Sampler(log, quota, source, tasks_max)


def cpus(cfg, sampler):
    """(CPUs, where from): the dyno size's nominal compute when given or detected (nproc
    shows the host's cores on a shared dyno), else the cgroup's CPU quota, else affinity."""
    if cfg.dyno_size:
        from . import dynos
        size = dynos.lookup(cfg.dyno_size)
        return size.cpus, "dyno size " + size.name
    quota = sampler.cpu_quota()
    if quota is not None:
        return quota, "cgroup cpu quota"
    try:
        return len(os.sched_getaffinity(0)), "affinity"
    except AttributeError:
        return os.cpu_count() or 1, "cpu count"


def inputs(cfg, dyno, cpus_and_source):
    """The advice's inputs from the configuration and one DynoSample."""
    source = QUOTA_SOURCES.get(dyno.quota_source, dyno.quota_source)
    if dyno.quota_source == "dyno-size":
        source = "dyno size " + cfg.dyno_size
    n, cpu_source = cpus_and_source
    return sizing.Inputs(quota=dyno.quota, quota_source=source, cpus=n, cpus_source=cpu_source,
                         tasks_max=dyno.tasks_max, threads=getattr(cfg, "threads", 1))


class Monitor:
    def __init__(self, cfg, log, master_pid):
        self.cfg = cfg
        self.log = log
        self.master_pid = master_pid
        self.sampler = make_sampler(cfg, log)          # ValueError names the known sizes
        if cfg.dyno_size:
            d = self.sampler.dyno()
            log.info("dyno size %s: memory quota %s, task limit %s", cfg.dyno_size, metrics.mb(d.quota), d.tasks_max)
        self.steps = not getattr(cfg, "no_step_down", False)
        self.memory = MemoryGuard(self.sampler, log, getattr(cfg, "memory_pressure", recycle.MEMORY_PRESSURE),
                                  master_pid, step_down=self.steps)
        self.cpus = cpus(cfg, self.sampler)
        self.source = os.environ.get("DYNO") or socket.gethostname()
        self.dyno_id = os.environ.get("HEROKU_DYNO_ID") or socket.gethostname()
        self.history = {}          # slot -> [(t, bytes)]
        self.levels = {"tasks": 0}
        self.growth_warned = {}
        self.advice = None
        self.steady = sizing.Steady()
        self.said = None           # the advice line last said ...
        self.said_key = None       # ... as (fit.advice_key, when)
        self.fresh = None          # the last sample's own advice (not held)
        self.cap = None            # the count a step down holds, until HUP or USR2
        self.stepped = None        # (when, its line): the last step down
        self.seen = {}             # pid -> (samples it was in, its private bytes at the last)
        self.use = ({}, None)      # ({pid: busy seconds}, when) at the last sample
        self.utilization = None    # the last interval's, 0.0 to 1.0
        self.thread_seconds = [0.0, 0.0]   # busy, total: since the master started
        self.last = {}             # slot -> its worker's last ProcSample
        self.busy = {}             # pid -> ((cpu seconds, busy seconds) anchor, last cpu_busy_share)
        self.last_master = None
        self.last_dyno = None

    def last_memory(self, slot, pid):
        """'memory_rss=..MB memory_pss=..MB at the last sample' for a worker that died, or ''."""
        s = self.last.get(slot)
        if s is None or s.pid != pid:
            return ""
        parts = ["memory_%s=%s" % (k, metrics.mb(getattr(s, k))) for k in ("rss", "pss", "uss")
                 if getattr(s, k) is not None]
        return " last sample: " + " ".join(parts)

    def initial_workers(self):
        """-w auto's first count: its floor, where it cannot overshoot (fit.py); said with
        the capacity it serves with while it measures."""
        a = sizing.advise(inputs(self.cfg, self.sampler.dyno(), self.cpus), None, [])
        n = min(max(1, self.cfg.min_workers), self.cfg.max_workers)
        self.log.info("%s", fit.start_line(n, getattr(self.cfg, "threads", 1), a, self.cfg.metrics_interval))
        return n

    # -- every second ---------------------------------------------------------------

    def guard(self, workers, limits):
        """-> ([(slot, why, room)] to recycle now (room: its replacement waits until it is
        gone), how near the nearest limit is (0.0 to 1.0+): the task count against its
        limit, a worker's zombies or threads against theirs, or the dyno's memory against
        the --memory-pressure mark; and why to step down (a recycle did not help), or None)."""
        out = []
        held, by_nr, looks = {}, {}, []
        near = 0.0
        for slot, pid, _ in workers:
            try:
                st = self.sampler.stat(pid)
                threads, kids, zombies = self.sampler.guard(pid, st)
            except Gone:
                continue
            by_nr[slot.nr] = slot
            held[slot.nr] = threads - 1 + kids
            looks.append((slot.nr, pid, st["rss_pages"] * PAGE))
            why = recycle.reason(limits, threads, zombies)
            if why:
                out.append((slot, why, False))
            near = max(near, recycle.nearness(limits, threads, zombies))
        dyno = self.sampler.dyno()
        try:
            master = self.sampler.stat(self.master_pid)
        except Gone:
            master = {"threads": 1, "rss_pages": 0}
        tasks, tasks_max = dyno.tasks, dyno.tasks_max
        if tasks is None:
            tasks = master["threads"] + len(held) + sum(held.values())
        victim = recycle.task_pressure(tasks, tasks_max, held)
        if victim is not None and all(s.nr != victim for s, _, _ in out):
            out.append((by_nr[victim], recycle.why(recycle.Category.TASKS, value=tasks, limit=tasks_max,
                                                   held=held[victim]), False))
        nr, why, memory_near = self.memory.check(dyno, master["rss_pages"] * PAGE, looks, time.monotonic())
        if nr is not None and all(s.nr != nr for s, _, _ in out):
            out.append((by_nr[nr], why, True))
        return out, max(near, memory_near, tasks / tasks_max if tasks_max else 0.0), self.regrown()

    def regrown(self):
        """Why to step down when the memory guard found that a recycle did not help, or
        would not, else None."""
        if self.memory.regrown is None:
            return None
        (back, last), self.memory.regrown = self.memory.regrown, None
        if last is None:
            return ("recycling for memory would not help: every worker grew by %s or more, worker=%d within %.0fs "
                    "of its start" % (metrics.mb(back.grown * recycle.REGROW_SHARE), back.slot, back.age))
        return ("recycling for memory did not help: worker=%d grew back %s within %.0fs of its "
                "predecessor's recycle (it had grown %s)" % (back.slot, metrics.mb(back.grown),
                                                           time.monotonic() - last.when, metrics.mb(last.grown)))

    # -- every --metrics-interval ---------------------------------------------------

    def sample(self, workers, limits, target, auto):
        """-> ([(slot, why, room)] to recycle, the worker target for -w auto)."""
        (master, samples, dyno), cost = timed(self.collect, workers)
        slots = {slot.nr: slot for slot, _, _ in workers}
        fresh = sizing.advise(inputs(self.cfg, dyno, self.cpus), master, samples) if samples else None
        self.fresh = fresh or self.fresh
        self.steady = sizing.steady(self.steady, fresh, [s.requests for s in samples])
        advice = self.steady.advice          # held until the measure settles, moved past noise only
        self.emit(master, samples, dyno, advice)
        self.last = {s.slot: s for s in samples}
        self.last_master, self.last_dyno = master, dyno
        self.log.debug("metrics sample of %d workers took %.2fms", len(samples), cost * 1000)
        now = time.monotonic()
        if advice is not None:
            self.advice = advice
            if fit.say_advice(self.said_key, advice, now):
                self.said, self.said_key = sizing.sentence(advice), (fit.advice_key(advice), now)
                self.log.info("%s", self.said)
        self.warn(dyno, samples)
        out = []
        for s in samples:
            why = recycle.reason(limits, s.threads, s.zombies, recycle.memory_of(s, limits.metric))
            if why and s.slot in slots:
                room = recycle.needs_room(why, self.memory.used, dyno.quota, self.memory.mark, _private(s))
                out.append((slots[s.slot], why, room))
        measures = self.measures(samples)
        if auto:
            target, why = fit.grow(target, advice, measures, self.cfg.min_workers, self.cfg.max_workers, self.cap)
            if why:
                self.log.info("-w auto: one more worker fits by measurement: %s", why)
        return out, target

    def measures(self, samples):
        """[fit.Measure] of the sampled workers, from what the last samples held of each."""
        seen, out = {}, []
        for s in samples:
            count, before = self.seen.get(s.pid, (0, None))
            private = _private(s)
            seen[s.pid] = (count + 1, private)
            out.append(fit.Measure(private, 0 if before is None else private - before, count + 1, s.requests))
        self.seen = seen
        return out

    def step_down(self, running, configured, workers, cause):
        """After an OOM kill (or a recycle that did not help): the StepDown to carry out, said
        in one line with the sizes measured now, or None (--no-step-down, at the floor, or
        within fit.SETTLE of the last one: a kill in the same squeeze)."""
        now = time.monotonic()
        if not self.steps or (self.stepped and now - self.stepped[0] < fit.SETTLE):
            return None
        wall = time.time()
        procs = []
        for slot, pid, beat in workers:
            try:
                procs.append(self.sampler.process(slot.nr, pid, beat.requests, wall))
            except Gone:
                pass
        last = [_private(s) for s in self.last.values()]
        each = max([_private(p) for p in procs] + last, default=None)
        try:
            master = self.sampler.process(-1, self.master_pid, 0, wall)
        except Gone:
            master = self.last_master
        a = sizing.advise(inputs(self.cfg, self.sampler.dyno(), self.cpus), master, procs) if procs else self.fresh
        floor = self.cfg.min_workers if configured is None else 1
        step = fit.step_down(running, configured, floor, cause, each, a.fixed if a else 0,
                             a.inputs.quota if a else None, self.memory.mark or recycle.MEMORY_PRESSURE)
        if step is not None:
            self.memory.hold_until = now + fit.SETTLE     # the retired worker's memory comes back first
            self.stepped = (now, step.line)
            self.cap = step.running
            self.log.warning("%s", step.line)
        return step

    def configured(self):
        """-w N while a step down holds fewer (the metrics show both), else None."""
        return self.cfg.workers if self.cap is not None and isinstance(self.cfg.workers, int) else None

    def try_again(self, cfg):
        """HUP: the configuration as reloaded, and the configured count tried again (a
        USR2 starts a new master, which holds nothing). -> whether a step down held."""
        self.cfg = cfg
        held, self.cap, self.stepped = self.cap is not None, None, None
        if held:
            self.log.info("reload: the step down is lifted; trying %s workers again",
                          cfg.workers if isinstance(cfg.workers, int) else "more (-w auto)")
        return held

    def collect(self, workers):
        wall = time.time()
        master = self.sampler.process(-1, self.master_pid, 0, wall)
        samples, busy, fleet = [], {}, []
        for slot, pid, beat in workers:
            try:
                s = self.sampler.process(slot.nr, pid, beat.requests, wall)
            except Gone:
                continue
            # the share is measured from an anchor kept until enough busy time has passed
            # (fast requests at light load take several samples), then it is held until the next
            anchor, share = self.busy.get(pid, ((s.cpu, beat.busy_seconds), None))
            now = sizing.busy_share(*anchor, s.cpu, beat.busy_seconds)
            busy[pid] = ((s.cpu, beat.busy_seconds), now) if now is not None else (anchor, share)
            samples.append(dataclasses.replace(s, busy_share=busy[pid][1]))
            fleet.append((pid, beat.busy_seconds, beat.beat, s.uptime))
        self.busy = busy
        self.used_by(fleet, time.monotonic())
        dyno = self.sampler.dyno()
        if dyno.tasks is None:
            tasks = master.threads + sum(s.threads + s.children for s in samples)
            dyno = dyno.__class__(**{**dyno.__dict__, "tasks": tasks})
        return master, samples, dyno

    def used_by(self, fleet, now):
        """The interval's utilization, and the thread-seconds counters, from the workers'
        cells: [(pid, busy seconds, beat, uptime)]."""
        before, when = self.use
        if when is not None:
            busy, total = fit.interval_use(before, fleet, when, getattr(self.cfg, "threads", 1))
            self.utilization = fit.utilization(busy, total)
            self.thread_seconds = [self.thread_seconds[0] + busy, self.thread_seconds[1] + total]
        self.use = ({pid: (b, at) for pid, b, at, _ in fleet}, now)

    def emit(self, master, samples, dyno, advice):
        lines = metrics.dyno_lines(self.source, self.dyno_id, dyno)
        lines.append(metrics.process_line(self.source, master))
        lines.extend(metrics.process_line(self.source, s) for s in samples)
        lines.append(metrics.tasks_line(self.source, dyno, len(samples), advice.workers if advice else None,
                                        getattr(self.cfg, "threads", 1), self.utilization, self.configured()))
        json_out = self.cfg.metrics_format == "json"
        for line in lines:
            self.log.metric(metrics.as_json(line) if json_out else line)
        if self.log.statsd is not None:
            self.log.statsd.sampled(samples)

    def warn(self, dyno, samples):
        # memory warnings come from the guard (self.memory), seconds apart, naming the worker
        hit = sizing.tasks_warning(dyno.tasks, dyno.tasks_max, self.levels["tasks"])
        if hit:
            self.levels["tasks"], message = hit
            self.log.warning("%s", message)
        now = time.monotonic()
        for s in samples:
            points = self.history.setdefault(s.slot, [])
            if points and s.uptime < now - points[-1][0]:
                points.clear()          # a new worker in this slot: its own history
            points.append((now, s.pss if s.pss is not None else s.rss))
            while points and points[0][0] < now - GROWTH_WINDOW:
                points.pop(0)
            message = sizing.growth_warning(s.slot, points, dyno.quota)
            if message and self.growth_warned.get(s.slot, 0) < now - 600:
                self.growth_warned[s.slot] = now
                self.log.warning("%s", message)
