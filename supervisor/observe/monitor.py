"""The master's eyes: samples workers and the dyno, writes the metrics lines, warns,
advises and picks workers to recycle. Called from the master loop (no thread): `guard`
about once a second, `sample` every --metrics-interval. Decisions are the pure
functions of recycle.py and sizing.py; this module gathers their inputs and logs.
"""
import os
import resource
import socket
import time

from . import metrics, sizing
from ..supervise import recycle
from .sampler import Gone, Sampler, timed

GROWTH_WINDOW = 3600.0      # seconds of memory history kept per slot for the slope


class Monitor:
    def __init__(self, cfg, log, master_pid):
        self.cfg = cfg
        self.log = log
        self.master_pid = master_pid
        quota, source, tasks_max = cfg.memory_quota, "flag", None
        if cfg.dyno_size:
            from . import dynos
            size = dynos.lookup(cfg.dyno_size)         # ValueError names the known sizes
            if quota is None:
                quota, source = size.quota, "dyno-size"
            tasks_max = size.tasks
            log.info("dyno size %s: memory quota %s, task limit %d", size.name, metrics.mb(size.quota), size.tasks)
        if tasks_max is None:
            soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
            tasks_max = None if soft == resource.RLIM_INFINITY else soft
        self.sampler = Sampler(log, quota, source, tasks_max)
        try:
            self.cpus = len(os.sched_getaffinity(0))
        except AttributeError:
            self.cpus = os.cpu_count() or 1
        self.source = os.environ.get("DYNO") or socket.gethostname()
        self.dyno_id = os.environ.get("HEROKU_DYNO_ID") or socket.gethostname()
        self.history = {}          # slot -> [(t, bytes)]
        self.levels = {"memory": 0, "tasks": 0}
        self.growth_warned = {}
        self.advice = None
        self.said = None
        self.last = {}             # slot -> its worker's last ProcSample
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
        dyno = self.sampler.dyno()
        return sizing.auto_workers(self.cpus, dyno.quota, None, 0, self.cfg.min_workers, self.cfg.max_workers)

    # -- every second ---------------------------------------------------------------

    def guard(self, workers, limits):
        """-> ([(slot, why)] to recycle now, how near the nearest limit is (0.0 to 1.0+):
        the task count against its limit, or a worker's zombies or threads against theirs)."""
        out = []
        held = {}
        by_nr = {}
        near = 0.0
        for slot, pid, _ in workers:
            try:
                threads, kids, zombies = self.sampler.guard(pid)
            except Gone:
                continue
            by_nr[slot.nr] = slot
            held[slot.nr] = threads - 1 + kids
            why = recycle.reason(limits, threads, zombies)
            if why:
                out.append((slot, why))
            near = max(near, recycle.nearness(limits, threads, zombies))
        tasks, tasks_max = self.tasks(held)
        victim = recycle.task_pressure(tasks, tasks_max, held)
        if victim is not None and all(s.nr != victim for s, _ in out):
            out.append((by_nr[victim], "tasks=%d near the task limit %d; it holds %d" % (tasks, tasks_max, held[victim])))
        return out, max(near, tasks / tasks_max if tasks_max and tasks is not None else 0.0)

    def tasks(self, held):
        """(tasks, limit): the pids cgroup's count where there is one, else ours."""
        version_dir = self.sampler.cgroups.get("pids")
        if version_dir:
            from . import cgroup
            current, limit = cgroup.tasks(self.sampler.read_files(
                version_dir[1], cgroup.FILES["v2" if version_dir[0] == "v2" else "v1_pids"]))
            if current is not None:
                return current, limit or self.sampler.tasks_max_flag
        try:
            master_threads = self.sampler.stat(self.master_pid)["threads"]
        except Gone:
            master_threads = 1
        return master_threads + len(held) + sum(held.values()), self.sampler.tasks_max_flag

    # -- every --metrics-interval ---------------------------------------------------

    def sample(self, workers, limits, target, auto):
        """-> ([(slot, why)] to recycle, the worker target for -w auto)."""
        (master, samples, dyno), cost = timed(self.collect, workers)
        slots = {slot.nr: slot for slot, _, _ in workers}
        used = sum(s.pss if s.pss is not None else s.rss for s in [master] + samples)
        advice = sizing.advise(dyno.quota, master, samples, self.cpus) if samples else None
        self.emit(master, samples, dyno, advice)
        self.last = {s.slot: s for s in samples}
        self.last_master, self.last_dyno = master, dyno
        self.log.debug("metrics sample of %d workers took %.2fms", len(samples), cost * 1000)
        if advice is not None:
            self.advice = advice
            text = sizing.sentence(advice)
            if text != self.said:
                self.said = text
                self.log.info("%s", text)
        self.warn(dyno, used, samples)
        out = []
        for s in samples:
            why = recycle.reason(limits, s.threads, s.zombies, recycle.memory_of(s, limits.metric))
            if why and s.slot in slots:
                out.append((slots[s.slot], why))
        if auto:
            target = sizing.auto_workers(self.cpus, dyno.quota, self.advice, target,
                                         self.cfg.min_workers, self.cfg.max_workers)
        return out, target

    def collect(self, workers):
        wall = time.time()
        master = self.sampler.process(-1, self.master_pid, 0, wall)
        samples = []
        for slot, pid, requests in workers:
            try:
                samples.append(self.sampler.process(slot.nr, pid, requests, wall))
            except Gone:
                continue
        dyno = self.sampler.dyno()
        if dyno.tasks is None:
            tasks = master.threads + sum(s.threads + s.children for s in samples)
            dyno = dyno.__class__(**{**dyno.__dict__, "tasks": tasks})
        return master, samples, dyno

    def emit(self, master, samples, dyno, advice):
        lines = metrics.dyno_lines(self.source, self.dyno_id, dyno)
        lines.append(metrics.process_line(self.source, master))
        lines.extend(metrics.process_line(self.source, s) for s in samples)
        lines.append(metrics.tasks_line(self.source, dyno, len(samples), advice.workers if advice else None))
        json_out = self.cfg.metrics_format == "json"
        for line in lines:
            self.log.metric(metrics.as_json(line) if json_out else line)

    def warn(self, dyno, used, samples):
        total = dyno.total if dyno.total is not None else used
        for kind, hit in (("memory", sizing.memory_warning(total, dyno.quota, self.levels["memory"])),
                          ("tasks", sizing.tasks_warning(dyno.tasks, dyno.tasks_max, self.levels["tasks"]))):
            if hit:
                self.levels[kind], message = hit
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
