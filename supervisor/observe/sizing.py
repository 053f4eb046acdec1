"""How many workers fit the dyno, and why: the one advice function; warnings before the
platform kills (pure).

Every answer pyfork gives about the worker count comes from `advise`: the live line and
`-w auto` (monitor.py), `pyfork advise` on a log (advise.py, one row per dyno size),
`pyfork check-config`, and the numbers the presets in conf/ state. Its inputs are one
`Inputs` record, and the answer names them.

Memory. After fork a worker shares the master's pages until it writes to them, so:
- a worker's own cost is its USS (pages only it maps); RSS where USS is unknown, which
  overstates it (RSS counts every shared page again in every worker);
- the shared part is sum(PSS) - sum(USS) over the master and the workers: PSS splits each
  shared page among its sharers, so the sum counts each shared page exactly once;
- fixed cost = master USS + shared; each extra worker adds the workers' mean private memory.
The memory fit is the largest count whose projected use stays under SHARE (85%) of the
quota. The 15% left is the room for growth: what workers gain after the sample (caches
filling, a request's peak) and the page cache; it sits under the memory guard's 90% mark
(recycle.MEMORY_PRESSURE), so a fleet at the advised size never trips the guard by itself.

CPU. A sync worker waiting on I/O needs no CPU. cpu_busy_share is a worker's CPU seconds
over the seconds it spent inside requests: 1.0 for pure computation, 0.2 for an app that
waits 80% of each request. To keep `cpus` busy takes cpus / (share * threads) workers, plus
one for the moment between requests; with the share unknown it is taken as 0.5, which gives
Gunicorn's 2 x cpus + 1 (Heroku's Python buildpack uses the same bound).

Tasks. Each worker holds its threads and children; the count stays under the 80% task
warning of the dyno's limit.
"""
import dataclasses
import enum
import math
from typing import Optional

from .metrics import MB, ProcSample

LEVELS = (80, 95)              # percent of the memory quota
TASK_LEVEL = 80                # percent of the task limit
AUTO_GUESS = 100 * MB          # per-worker memory assumed before any sample
SHARE = 0.85                   # of the quota: the advised fleet's projected use stays under it
ASSUMED_BUSY_SHARE = 0.5       # cpu_busy_share before it is measured: 2 x cpus + 1
WAITING = 0.5                  # below this busy share, threads are suggested
MAX_THREADS = 8


class Bound(enum.Enum):
    MEMORY = "memory"
    CPU = "cpu"
    TASKS = "tasks"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the advice is computed from, each with where it came from."""
    quota: int                       # bytes
    quota_source: str                # 'cgroup', 'dyno size standard-1x', 'flag', 'log', 'machine'
    cpus: float
    cpus_source: str                 # 'dyno size standard-1x', 'cgroup cpu quota', 'affinity', ...
    tasks_max: Optional[int] = None
    threads: int = 1                 # --threads
    share: float = SHARE


@dataclasses.dataclass(frozen=True)
class Advice:
    workers: int                     # advised
    threads: int
    limited_by: Bound
    current: int                     # workers measured (0: none yet, an assumed size)
    used: int                        # bytes: master + workers now, shared counted once
    private_per_worker: int          # bytes, mean
    fixed: int                       # bytes: master private + shared
    memory_fit: int
    cpu_bound: int
    tasks_bound: Optional[int]
    busy_share: Optional[float]      # measured cpu_busy_share, None before
    suggest_threads: Optional[int]
    inputs: Inputs

    @property
    def projected(self):
        """Bytes the advised count would use, by the model."""
        return self.fixed + self.workers * self.private_per_worker

    @property
    def projected_share(self):
        return self.projected / self.inputs.quota


def cpu_bound(cpus, busy_share=None, threads=1):
    """Workers that keep `cpus` busy: cpus / (share * threads), rounded up, plus one."""
    share = ASSUMED_BUSY_SHARE if busy_share is None else min(1.0, max(0.05, busy_share))
    return math.ceil(round(cpus / (share * max(1, threads)), 6)) + 1


def busy_share(cpu_before, busy_before, cpu_now, busy_now, least=0.2):
    """A worker's cpu_busy_share between two samples: CPU seconds over busy seconds, or
    None when it was busy less than `least` seconds (too little to say: CPU seconds come in
    1/100 s ticks, so 0.2 s busy reads the share within 5%)."""
    busy = busy_now - busy_before
    if busy < least:
        return None
    return round(max(0.0, cpu_now - cpu_before) / busy, 2)


def fleet_busy_share(workers):
    """The fleet's share: the mean of the workers' measured shares, None when none is."""
    known = [w.busy_share for w in workers if getattr(w, "busy_share", None) is not None]
    return round(sum(known) / len(known), 2) if known else None


def suggest_threads(share, threads):
    """For a sync fleet whose requests mostly wait: the threads that would fill the CPU
    time a waiting request leaves (a power of two up to 8), else None."""
    if share is None or share >= WAITING or threads > 1:
        return None
    n = 2
    while n * 2 <= min(MAX_THREADS, 1 / max(share, 0.01)):
        n *= 2
    return n


def _private(p):
    return p.uss if p.uss is not None else p.rss


def _tasks_bound(inputs, master, workers):
    if not inputs.tasks_max:
        return None
    each = max([w.threads + w.children for w in workers] + [1 + max(1, inputs.threads)])
    room = inputs.tasks_max * TASK_LEVEL / 100.0 - (master.threads if master is not None else 1)
    return max(1, math.floor(room / each))


def advise(inputs, master, workers):
    """The advice for these inputs and one round of samples. With no worker samples, one
    worker of AUTO_GUESS private memory is assumed (what -w auto starts from, and what
    check-config says before any log). `master` may be None (a log without its line)."""
    measured = list(workers)
    if not measured:
        measured = [ProcSample(0, 0, AUTO_GUESS, AUTO_GUESS, AUTO_GUESS, 0, 1, 0, 0, 0, 0, 0.0, 0.0)]
    procs = ([master] if master is not None else []) + measured
    known = [p for p in procs if p.pss is not None and p.uss is not None]
    shared = max(0, sum(p.pss for p in known) - sum(p.uss for p in known))
    fixed = (_private(master) if master is not None else 0) + shared
    private = sum(_private(w) for w in measured)
    mean = private / len(measured)
    share = fleet_busy_share(measured)
    cpu = cpu_bound(inputs.cpus, share, inputs.threads)
    fit = math.floor((inputs.quota * inputs.share - fixed) / mean) if mean > 0 else cpu
    tasks = _tasks_bound(inputs, master, measured)
    bounds = [(fit, Bound.MEMORY), (cpu, Bound.CPU)] + ([(tasks, Bound.TASKS)] if tasks is not None else [])
    n, by = min(bounds, key=lambda b: b[0])     # ties: memory, then CPU, then tasks
    return Advice(workers=max(1, n), threads=inputs.threads, limited_by=by,
                  current=len(workers), used=fixed + private, private_per_worker=round(mean),
                  fixed=fixed, memory_fit=max(0, fit), cpu_bound=cpu, tasks_bound=tasks,
                  busy_share=share, suggest_threads=suggest_threads(share, inputs.threads),
                  inputs=inputs)


def footprint(a, n):
    """Bytes that n workers would use, by the model behind `a`."""
    return a.fixed + n * a.private_per_worker


def _mb(n):
    return "%dMB" % round(n / MB)


def _cpus(n):
    return ("%d CPU" % n if n == int(n) else "%.2g CPUs" % n) + ("s" if n == int(n) and n != 1 else "")


def reason(a):
    """Why this count: the bound that decided it, with its input and that input's source."""
    pct = round(a.inputs.share * 100)
    if a.limited_by is Bound.MEMORY:
        return "limited by memory: %d fit under %d%% of %s (quota from %s)" % (
            a.workers, pct, _mb(a.inputs.quota), a.inputs.quota_source)
    if a.limited_by is Bound.TASKS:
        return "limited by tasks: %d fit under %d%% of the %d-task limit" % (
            a.workers, TASK_LEVEL, a.inputs.tasks_max)
    share = ("measured cpu_busy_share %.2f" % a.busy_share if a.busy_share is not None
             else "cpu_busy_share not yet measured, taken as %.1f" % ASSUMED_BUSY_SHARE)
    if a.busy_share is not None and a.busy_share > 1:
        share += " (the server's own CPU per request outweighs the app's)"
    return "limited by cpu: %s (%s) keep %d busy, %s" % (
        _cpus(a.inputs.cpus), a.inputs.cpus_source, a.workers, share)


def sentence(a):
    """The advice as one line an operator can act on; every way to ask gives this line."""
    if a.current:
        head = "%d workers use %s of %s; each costs about %s private, master and shared %s" % (
            a.current, _mb(a.used), _mb(a.inputs.quota), _mb(a.private_per_worker), _mb(a.fixed))
    else:
        head = "no workers measured yet: each assumed to cost %s private" % _mb(a.private_per_worker)
    text = "%s; %s; projected %s (%d%% of the quota): set WEB_CONCURRENCY=%d" % (
        head, reason(a), _mb(a.projected), round(100 * a.projected_share), a.workers)
    if a.threads > 1:
        text += " with --threads %d" % a.threads
    if a.current and a.workers < a.current and a.limited_by is Bound.MEMORY:
        text += " or use a larger dyno, before an R14 (memory quota exceeded)"
    if a.suggest_threads:
        text += "; requests spend %d%% of their time waiting: --threads %d would serve %dx the requests " \
                "in the same memory" % (round(100 * (1 - a.busy_share)), a.suggest_threads, a.suggest_threads)
    elif a.busy_share is not None and a.limited_by is Bound.CPU:
        text += "; requests keep a CPU busy %d%% of their time, so the CPU bound stays" % round(100 * min(1, a.busy_share))
    return text


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


def memory_warning(used, quota, level_seen, top=None, dyno_rate=0.0):
    """(level, message) when memory crosses 80% or 95% of the quota upward past
    `level_seen`, (0, message) when it is back under 80% after a warning, else None.

    top: the worker holding the most, (slot, pid, private bytes, growth bytes/s), named
    in the message with how soon the quota comes; dyno_rate: all the workers' growth
    (bytes/s), which sets that time when the leak is spread over several workers."""
    if not quota:
        return None
    where = "memory at %s of %s (%.0f%%)" % (_mb(used), _mb(quota), 100.0 * used / quota)
    if top is not None:
        slot, pid, private, rate = top
        where += ": worker=%d pid=%d holds %s private" % (slot, pid, _mb(private))
        if rate >= MB / 10:
            where += ", growing %.0fMB/s" % (rate / MB)
        if max(rate, dyno_rate) >= MB / 10:
            where += "; the quota is %.0f s away at %s" % (
                max(0.0, quota - used) / max(rate, dyno_rate),
                "this rate" if dyno_rate < rate + MB / 10 else "the workers' %.0fMB/s together" % (dyno_rate / MB))
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


# The advice said: held until the workers have a settled measure, then moved only past noise.
# At start every measure moves (workers warm up, cpu_busy_share is first unknown, then read
# over a few requests), and the advice went 3 -> 9 -> 5 workers in 8 s, -w auto after it.
SETTLE_REQUESTS = 20       # requests each worker has served before its measure counts ...
SETTLE_SAMPLES = 3         # ... or this many samples, for a fleet that serves little
HOLD = 2                   # samples in a row a move must be asked for before the advice moves
NOISE = 0.2                # a move smaller than this share of the count (and than 2) is noise


@dataclasses.dataclass(frozen=True)
class Steady:
    """What the advice says over time: `advice` (None while the measure settles), the
    samples seen, and the move asked for in the last samples (its direction and how many
    samples in a row asked for it)."""
    advice: Optional[Advice] = None
    samples: int = 0
    direction: int = 0
    asked: int = 0


def settled(samples, requests_each):
    """Whether the fleet's measure has settled: every worker has served SETTLE_REQUESTS
    requests (and two samples are in, so a CPU share can be read), or SETTLE_SAMPLES
    samples are in."""
    if samples >= SETTLE_SAMPLES:
        return True
    return samples >= 2 and bool(requests_each) and min(requests_each) >= SETTLE_REQUESTS


def noise(held, fresh):
    """The smallest move of the worker count that is not noise: one worker when the memory
    bound asks for fewer (staying would risk the quota), else max(2, NOISE of the count)."""
    if fresh.limited_by is Bound.MEMORY and fresh.workers < held.workers:
        return 1
    return max(2, math.ceil(NOISE * held.workers))


def steady(state, fresh, requests_each):
    """The next Steady after one sample. fresh: this sample's advise() (None: no workers
    sampled); requests_each: the requests each sampled worker has served. The first
    answer waits for settled(); then a fresh advice with the same count, bound and threads
    replaces the held one (its numbers are newer), and a different one replaces it only
    when its count moves by noise() or more, the same way, HOLD samples in a row."""
    seen = state.samples + 1
    held = state.advice
    if fresh is None:
        return dataclasses.replace(state, samples=seen)
    if held is None:
        return Steady(fresh if settled(seen, requests_each) else None, seen)
    if (fresh.workers, fresh.limited_by, fresh.suggest_threads) == (held.workers, held.limited_by, held.suggest_threads):
        return Steady(fresh, seen)
    step = fresh.workers - held.workers
    if abs(step) < noise(held, fresh):
        return Steady(held, seen)
    direction = 1 if step > 0 else -1
    asked = state.asked + 1 if direction == state.direction else 1
    if asked >= HOLD:
        return Steady(fresh, seen)
    return Steady(held, seen, direction, asked)
