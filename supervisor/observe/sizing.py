"""How many workers fit the dyno, and why; warnings before the platform kills (pure).

The model. After fork, a worker shares the master's pages until it writes to them, so:
- a worker's own cost is its USS (pages only it maps); RSS where USS is unknown, which
  overstates it (RSS counts every shared page again in every worker);
- the shared part is sum(PSS) - sum(USS) over the master and the workers: PSS splits each
  shared page among its sharers, so the sum counts each shared page exactly once;
- fixed cost = master USS + shared; each extra worker adds its private memory.
So fit = floor((quota * (1 - headroom) - fixed) / mean worker private), bounded to
[1, 2 * cpus + 1] (Gunicorn's worker guidance; Heroku's Python buildpack uses the same bound).

Warnings fire on crossing a level upward, and once: a dyno at 81% for an hour says so once,
not 180 times. Back under the lowest level they re-arm (the caller keeps the level).
"""
import dataclasses
import math

from .metrics import MB

LEVELS = (80, 95)              # percent of the memory quota
TASK_LEVEL = 80                # percent of the task limit
AUTO_GUESS = 100 * MB          # per-worker memory assumed by -w auto before any sample


@dataclasses.dataclass(frozen=True)
class Advice:
    workers: int               # advised
    current: int
    used: int                  # bytes: master + workers, shared counted once
    private_per_worker: int    # bytes, mean
    shared: int
    quota: int
    headroom: float
    cpu_bound: int
    limited_by: str            # 'memory' or 'cpu'


def cpu_bound(cpus):
    return 2 * cpus + 1


def _private(p):
    return p.uss if p.uss is not None else p.rss


def advise(quota, master, workers, cpus, headroom=0.10):
    """Advice for this quota from one round of samples; None without worker samples.
    `master` may be None (a log without a master line): its cost then counts as 0."""
    if not workers:
        return None
    procs = ([master] if master is not None else []) + list(workers)
    known = [p for p in procs if p.pss is not None and p.uss is not None]
    shared = max(0, sum(p.pss for p in known) - sum(p.uss for p in known))
    fixed = (_private(master) if master is not None else 0) + shared
    private = sum(_private(w) for w in workers)
    mean = private / len(workers)
    bound = cpu_bound(cpus)
    fit = math.floor((quota * (1 - headroom) - fixed) / mean) if mean > 0 else bound
    return Advice(workers=max(1, min(fit, bound)), current=len(workers), used=fixed + private,
                  private_per_worker=round(mean), shared=shared, quota=quota,
                  headroom=headroom, cpu_bound=bound,
                  limited_by="cpu" if fit > bound else "memory")


def footprint(a, n):
    """Bytes that n workers would use, by the model behind `a`."""
    return a.used + (n - a.current) * a.private_per_worker


def _mb(n):
    return "%dMB" % round(n / MB)


def sentence(a):
    """The advice as one line an operator can act on."""
    head = "%d workers use %s of %s; each new worker costs about %s private; " % (
        a.current, _mb(a.used), _mb(a.quota), _mb(a.private_per_worker))
    pct = round(a.headroom * 100)
    if a.limited_by == "cpu":
        return head + "memory has room for more, but %d CPUs bound it at %d: set WEB_CONCURRENCY=%d" % (
            (a.cpu_bound - 1) // 2, a.cpu_bound, a.workers)
    if a.workers < a.current:
        return head + ("only %d fit with %d%% headroom: set WEB_CONCURRENCY=%d "
                       "or use a larger dyno, before an R14 (memory quota exceeded)") % (
            a.workers, pct, a.workers)
    return head + "%d fit with %d%% headroom: set WEB_CONCURRENCY=%d" % (a.workers, pct, a.workers)


def slope(points):
    """Least-squares growth of [(t seconds, bytes)] in bytes per hour; 0.0 below 2 points."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return 0.0             # all at one instant: no rate to speak of
    return sum((t - mt) * (v - mv) for t, v in points) / var * 3600.0


def time_to(limit, current, slope_per_hour):
    """Hours until `current` reaches `limit` at this rate; None when not growing."""
    if slope_per_hour <= 0:
        return None
    return max(0.0, (limit - current) / slope_per_hour)


def _level(value, limit, levels):
    pct = 100.0 * value / limit
    return max([lv for lv in levels if pct >= lv], default=0)


def _crossing(value, limit, levels, level_seen, where, advice):
    """The rule both warnings share: (level, where + advice) on crossing upward past
    `level_seen`, (0, 'back under') once below the lowest level after a warning, else None."""
    level = _level(value, limit, levels)
    if level > level_seen:
        return level, "%s: %s" % (where, advice)
    if level == 0 and level_seen > 0:
        return 0, "%s: back under %d%%" % (where, levels[0])
    return None


def memory_warning(used, quota, level_seen, top=None):
    """(level, message) when memory crosses 80% or 95% of the quota upward past
    `level_seen`, (0, message) when it is back under 80% after a warning, else None.

    top: the worker holding the most, (slot, pid, private bytes, growth bytes/s), named
    in the message with how soon the quota comes at that rate."""
    if not quota:
        return None
    where = "memory at %s of %s (%.0f%%)" % (_mb(used), _mb(quota), 100.0 * used / quota)
    if top is not None:
        slot, pid, private, rate = top
        where += ": worker=%d pid=%d holds %s private" % (slot, pid, _mb(private))
        if rate >= MB / 10:
            where += ", growing %.0fMB/s; the quota is %.0f s away at this rate" % (
                rate / MB, max(0.0, quota - used) / rate)
    return _crossing(used, quota, LEVELS, level_seen, where,
                     "past the quota the dyno swaps and Heroku logs R14 (memory quota exceeded), "
                     "further past it R15 restarts the dyno; lower WEB_CONCURRENCY, set "
                     "--max-worker-memory to recycle big workers, or use a larger dyno")


def tasks_warning(tasks, tasks_max, level_seen):
    """(80, message) when tasks (processes + threads) pass 80% of the limit, (0, message)
    when back under after a warning, else None."""
    if tasks is None or not tasks_max:
        return None
    where = "tasks at %d of %d (%.0f%%)" % (tasks, tasks_max, 100.0 * tasks / tasks_max)
    return _crossing(tasks, tasks_max, (TASK_LEVEL,), level_seen, where,
                     "at the task limit fork and thread creation fail (EAGAIN) for every process "
                     "in the dyno; look for zombies (unreaped children) and threads in the worker "
                     "lines, or set --max-worker-zombies / --max-worker-threads")


def growth_warning(slot, points, quota, min_span_seconds=600, threshold_mb_per_hour=10.0):
    """A message when worker `slot`'s memory, [(t seconds, bytes)], has grown at least
    `threshold_mb_per_hour` over at least `min_span_seconds`; else None.

    Hazard: a short window mistakes warm-up (imports, caches filling) for a leak, hence
    the minimum span."""
    if len(points) < 2 or points[-1][0] - points[0][0] < min_span_seconds:
        return None
    rate = slope(points)
    if rate < threshold_mb_per_hour * MB:
        return None
    now = points[-1][1]
    msg = "worker %d memory grows %.1fMB/hour over %d minutes (now %s)" % (
        slot, rate / MB, (points[-1][0] - points[0][0]) // 60, _mb(now))
    hours = time_to(quota, now, rate) if quota else None
    if hours is not None:
        msg += "; at that rate it alone reaches the %s quota in %.1f hours" % (_mb(quota), hours)
    return msg + "; look for a leak, or set --max-worker-memory to recycle it"


def auto_workers(cpus, quota, advice, current, min_workers=1, max_workers=None):
    """The worker count for `-w auto`.

    Before any advice: the CPU bound, capped by the quota at AUTO_GUESS per worker.
    After: one step per call from `current` toward advice.workers, so a noisy sample
    moves the count by one worker, not by many. Always within [min_workers, max_workers]."""
    hi = max_workers if max_workers is not None else math.inf
    if advice is None:
        n = cpu_bound(cpus)
        if quota:
            n = min(n, quota // AUTO_GUESS)
    else:
        n = current + (advice.workers > current) - (advice.workers < current)
    return int(max(min_workers, min(max(1, n), hi)))
