"""The memory guard's shell: gathers what recycle.memory_pressure decides on, at the
guard's pace (1 to 5 times a second), and keeps the little state it needs.

Cheap by construction. Every look reads what the guard reads anyway (each worker's
/proc/PID/stat, for its RSS, and the cgroup's memory.stat); smaps_rollup, which walks
every page table, is read only when memory is past the mark or crosses a warning level,
and then once per process. Per worker it keeps a few seconds of RSS points (for the
growth rate a fast leak needs: 16 MB/s shows within 2 s) and its first RSS (its boot
size, to tell a grown worker from a fresh one).

A recycle that does not help (the replacement grows back to its predecessor's size within
a minute, recycle.regrew) is not repeated: the guard keeps `regrown` for the monitor,
which steps the worker count down instead (fit.step_down), unless --no-step-down.
"""
from . import sizing
from ..supervise import recycle
from .sampler import Gone

RATE_WINDOW = 5.0          # seconds of points behind a worker's growth rate


class MemoryGuard:
    def __init__(self, sampler, log, mark, master_pid, metric="uss", step_down=True):
        self.sampler = sampler
        self.master_pid = master_pid
        self.log = log
        self.mark = mark               # percent of the quota; 0: off
        self.metric = metric
        self.first = {}                # pid -> (RSS, time) at its first look
        self.points = {}               # pid -> [(t, RSS)] over RATE_WINDOW
        self.leaving = 0               # pid recycled for memory, until it is gone
        self.level = 0                 # the warning level last said
        self.said = False              # the cannot-help sentence said since the last clear
        self.step_down = step_down     # a recycle that did not help steps down, not again
        self.recycled = None           # recycle.Recycled: the last pressure recycle
        self.regrown = None            # (Held, Recycled): it did not help; the monitor takes it
        self.used = None               # bytes, at the last check
        self.hold_until = 0.0          # no recycle before: a step down's workers are leaving

    def rate(self, pid):
        return sizing.slope(self.points.get(pid, [])) / 3600.0

    def remember(self, looks, now):
        """looks: [(slot, pid, rss)] of the ready workers, read just now."""
        alive = set()
        for _, pid, rss in looks:
            alive.add(pid)
            self.first.setdefault(pid, (rss, now))
            pts = self.points.setdefault(pid, [])
            pts.append((now, rss))
            while pts and pts[0][0] < now - RATE_WINDOW:
                pts.pop(0)
        for pid in list(self.points):
            if pid not in alive:
                del self.points[pid]
                self.first.pop(pid, None)

    def still_leaving(self):
        if not self.leaving:
            return False
        try:
            if self.sampler.stat(self.leaving)["state"] != "Z":
                return True
        except Gone:
            pass
        self.leaving = 0
        return False

    def private(self, pid, rss):
        m = self.sampler.memory(pid)
        return rss if m is None else m[self.metric] if m[self.metric] is not None else m["rss"]

    def measure(self, dyno, master_rss, looks, precise):
        """Bytes a recycle can free: the cgroup's anonymous memory and swap (its page cache
        is reclaimed by the kernel before any kill, so it is no pressure); without a cgroup,
        the processes' RSS sum, or, when `precise`, their PSS sum (shared pages once)."""
        if dyno.rss is not None and dyno.quota_source == "cgroup":
            return dyno.rss + (dyno.swap or 0)
        if not precise:
            return master_rss + sum(rss for _, _, rss in looks)
        total = 0
        for pid, rss in [(self.master_pid, master_rss)] + [(p, r) for _, p, r in looks]:
            m = self.sampler.memory(pid)
            total += rss if m is None or m["pss"] is None else m["pss"]
        return total

    def check(self, dyno, master_rss, looks, now):
        """-> (slot to recycle or None, its Why, nearness for guard_interval)."""
        self.remember(looks, now)
        quota = dyno.quota if dyno.quota_source != "machine" else None
        if not quota:
            return None, None, 0.0
        used = self.used = self.measure(dyno, master_rss, looks, False)
        level = sizing._level(used, quota, sizing.LEVELS)
        past = self.mark and used >= quota * self.mark / 100.0
        if (past or level > self.level) and dyno.quota_source != "cgroup":
            used = self.used = self.measure(dyno, master_rss, looks, True)      # RSS overstates: confirm
        self.warn(used, quota, looks)
        near = recycle.memory_nearness(used, quota, self.mark)
        if not past or used < quota * self.mark / 100.0:
            self.said = False
            return None, None, near
        held = [recycle.Held(slot, pid, self.private(pid, rss), rss - self.first.get(pid, (rss, now))[0],
                             self.rate(pid), now - self.first.get(pid, (rss, now))[1]) for slot, pid, rss in looks]
        master = self.private(self.master_pid, master_rss)
        leaving = self.still_leaving() or now < self.hold_until
        p = recycle.memory_pressure(used, quota, self.mark, held, master, leaving, self.metric)
        if p.act is recycle.Act.RECYCLE:
            top = next(h for h in held if h.slot == p.slot)
            back = recycle.regrew(self.recycled, held, now)
            if self.step_down and (back is not None or recycle.will_regrow(top, held)):
                self.regrown, self.recycled = (back or top, self.recycled), None
                return None, None, near
            self.leaving = top.pid
            self.recycled = recycle.Recycled(now, top.slot, top.pid, top.grown)
            return p.slot, p.why, near
        if p.act is recycle.Act.CANNOT_HELP and not self.said:
            self.said = True
            self.log.warning("%s", p.why)
        return None, None, near

    def warn(self, used, quota, looks):
        hit = sizing.memory_warning(used, quota, self.level)
        if hit is None:
            return
        top = None
        if hit[0] and looks:
            slot, pid, rss = max(looks, key=lambda x: (x[2], -x[0]))
            top = (slot, pid, self.private(pid, rss), self.rate(pid))
        together = sum(max(0.0, self.rate(pid)) for _, pid, _ in looks)
        self.level, message = sizing.memory_warning(used, quota, self.level, top, together)
        self.log.warning("%s", message)
