"""The master's ring of recent samples, for the live page at `/` of --metrics-bind (pure).

Each sample is kept as a few numbers, not as its log lines: the memory of every process
in one array of machine integers, the slot numbers shared between samples while they stay
the same. Measured at 20 workers: the default KEEP (4 hours at the default 20 s interval)
holds about 0.4 MB (tracemalloc), against 2.2 MB as tuples of Python ints. The page
draws them with report's charts.
"""
import array
import collections

from .report import Data, measure

KEEP = 720


class Ring:
    def __init__(self, keep=KEEP):
        self.samples = collections.deque(maxlen=keep)
        self.slots = ()         # the last sample's slots (-1: the master), shared while unchanged

    def add(self, when, master, workers, dyno, advised):
        """when: wall seconds; master: ProcSample or None; workers: [ProcSample];
        dyno: DynoSample or None; advised: int or None."""
        procs = ([master] if master else []) + sorted(workers, key=lambda p: p.slot)
        slots = tuple(p.slot for p in procs)
        if slots != self.slots:
            self.slots = slots
        mem = (self.slots, array.array("q", (p.pss if p.pss is not None else p.rss for p in procs)))
        only_rss = any(p.pss is None for p in workers)
        self.samples.append((when, mem, only_rss,
                             dyno.quota if dyno else None, dyno.total if dyno else None,
                             dyno.quota_source if dyno else None,
                             dyno.tasks if dyno else None, dyno.tasks_max if dyno else None,
                             sum(p.zombies for p in workers), len(workers), advised))

    def data(self, restarts=()):
        """A report.Data of the kept samples; restarts: [(when, who, reason)]."""
        d = Data()
        rss_samples = 0
        first = self.samples[0][0] if self.samples else 0
        for when, mem, only_rss, quota, total, source, tasks, tasks_max, zombies, workers, advised in self.samples:
            d.quota_from = source or d.quota_from
            # a cgroup's total is the dyno's only when the quota is that cgroup's own limit
            totals = d.dyno_total if source in (None, "cgroup") else d.cgroup_total
            for slot, value in zip(*mem):
                d.memory.setdefault("master" if slot < 0 else "worker %d" % slot, []).append((when, value))
            rss_samples += only_rss
            for series, value in ((d.quota, quota), (totals, total), (d.tasks, tasks),
                                  (d.tasks_max, tasks_max), (d.workers, workers), (d.advised, advised)):
                if value is not None:
                    series.append((when, value))
            d.zombies[when] = zombies
            d.lines += 1
        d.measure = measure(d.lines - rss_samples, rss_samples)
        d.restarts = [r for r in restarts if r[0] >= first]
        return d
