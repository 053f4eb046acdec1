"""When to replace a worker that leaks (pure).

The incident pyfork answers: a library forked children and never waited for them; the
zombies filled the dyno's task limit (256) and every new thread or process failed. A
leak of 20 per second fills 256 tasks in about 12 s, far inside one 20 s metrics sample,
so these checks run on the cheap guard sample about once a second. A recycled worker
finishes its request in hand and exits; its zombies are reparented to the master (a
subreaper) and reaped at once.

Memory is the third leak. At 20 MB/s the last 10% of a 512 MB dyno lasts 2.5 s, so the
memory guard runs on the same cheap sample: past the mark (90% of the quota by default,
--memory-pressure) the worker holding the most private memory is recycled, one at a
time, and only a worker that has grown since it booted: recycling a worker that is as
small as a fresh one frees nothing for long, and would loop. When the master and the
memory shared by all workers alone pass the mark, no recycle can help, and the guard
says so instead.
"""
import dataclasses
import enum

TASKS_PRESSURE = 0.75    # of the task limit: recycle the worker holding the most tasks
GUARD_EVERY = 1.0        # seconds between guard checks...
GUARD_HURRY = 0.2        # ...and while the nearest limit is past half way
MEMORY_PRESSURE = 90     # percent of the quota: the default --memory-pressure
GROWN_SHARE = 0.05       # of the quota: a worker grown less since boot is not a leak's holder


class Category(enum.Enum):
    """Why a worker is recycled: (the label /metrics counts it under, its sentence)."""
    ZOMBIES = ("zombies", "{value} unreaped children (--max-worker-zombies {limit})")
    THREADS = ("threads", "{value} threads (--max-worker-threads {limit})")
    MEMORY = ("memory", "memory_{metric}={value:.2f}MB over --max-worker-memory {limit:.2f}MB")
    TASKS = ("tasks", "tasks={value} near the task limit {limit}; it holds {held}")
    PRESSURE = ("memory", "memory at {value:.0f}MB of {limit:.0f}MB ({pct:.0f}%), past the {mark}% "
                          "mark (--memory-pressure {mark}); it holds the most private memory, "
                          "memory_{metric}={private:.2f}MB, {growth}")

    @property
    def label(self):
        return self.value[0]


@dataclasses.dataclass(frozen=True)
class Why:
    """A recycle reason: its text is made from the category and these numbers."""
    category: Category
    fields: tuple          # ((name, value), ...), frozen

    def __str__(self):
        return self.category.value[1].format(**dict(self.fields))


def why(category, **fields):
    return Why(category, tuple(sorted(fields.items())))


@dataclasses.dataclass(frozen=True)
class Limits:
    memory: object = None      # bytes, or None
    metric: str = "pss"
    zombies: int = 0           # 0: off
    threads: int = 0           # 0: off


MB = 1048576.0


def reason(limits, threads, zombies, memory=None):
    """Why this worker must be replaced now (a Why), or None."""
    if limits.zombies and zombies >= limits.zombies:
        return why(Category.ZOMBIES, value=zombies, limit=limits.zombies)
    if limits.threads and threads >= limits.threads:
        return why(Category.THREADS, value=threads, limit=limits.threads)
    if limits.memory and memory is not None and memory >= limits.memory:
        return why(Category.MEMORY, metric=limits.metric, value=memory / MB, limit=limits.memory / MB)
    return None


def nearness(limits, threads, zombies):
    """How far a worker is toward its zombie or thread limit, 0.0 to 1.0 and past it."""
    return max(zombies / limits.zombies if limits.zombies else 0.0,
               threads / limits.threads if limits.threads else 0.0)


def guard_interval(pressure):
    """Seconds until the next guard, given how near the nearest limit is: a leak of 20 a
    second gains 20 a second, so past half way look five times as often (the recycle
    then comes within a fifth of a second's leak of the limit, not a whole second's)."""
    return GUARD_HURRY if pressure > 0.5 else GUARD_EVERY


def category(reason_):
    """A recycle reason (Why) -> the label /metrics counts it under."""
    return reason_.category.label


def task_pressure(tasks, tasks_max, held):
    """held: {slot: tasks the worker holds beyond itself (threads - 1 + children)}.
    Near the task limit, the slot to recycle (the biggest holder), or None."""
    if not tasks_max or tasks is None or tasks < TASKS_PRESSURE * tasks_max or not held:
        return None
    slot = max(held, key=lambda s: (held[s], -s))
    return slot if held[slot] > 0 else None


def memory_of(sample, metric):
    """The chosen measure of a ProcSample, falling back to RSS when PSS/USS are unknown."""
    value = getattr(sample, metric)
    return sample.rss if value is None else value


# -- memory pressure ----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Held:
    """One worker as the memory guard sees it."""
    slot: int
    pid: int
    private: int           # bytes: USS (RSS where smaps_rollup is unreadable)
    grown: int             # bytes gained since its first look (its boot size)
    rate: float            # bytes per second, over the last few seconds
    age: float = 0.0       # seconds since its first look


class Act(enum.Enum):
    CLEAR = "clear"            # under the mark, or no quota, or off
    RECYCLE = "recycle"        # recycle `slot`
    WAIT = "wait"              # past the mark, but a recycled worker is still on its way out
    CANNOT_HELP = "cannot"     # past the mark, and no worker recycle would bring it under


@dataclasses.dataclass(frozen=True)
class Pressure:
    act: Act
    slot: object = None        # for RECYCLE
    why: object = None         # RECYCLE: a Why; CANNOT_HELP: the sentence to log


def memory_nearness(used, quota, mark):
    """How far memory is toward the mark, on guard_interval's scale. The way counts from
    half the quota: below half, no leak reaches the mark within a guard interval."""
    if not quota or not mark or used is None:
        return 0.0
    low, high = quota / 2, quota * mark / 100.0
    return max(0.0, (used - low) / (high - low)) if high > low else 0.0


def _growth(rate):
    return "growing %.1fMB/s" % (rate / MB) if rate >= MB / 10 else "not growing fast"


def memory_pressure(used, quota, mark, workers, master, leaving, metric="uss"):
    """The memory guard's decision.

    used: bytes charged that recycling can free (the dyno's anonymous memory and swap);
    quota: bytes; mark: percent (0: off); workers: [Held]; master: bytes the master holds
    privately; leaving: a worker recycled for memory is still exiting (its memory is
    freed when it is gone, so the next one waits: one at a time)."""
    if not mark or not quota or used is None or used < quota * mark / 100.0:
        return Pressure(Act.CLEAR)
    if leaving:
        return Pressure(Act.WAIT)
    pct = 100.0 * used / quota
    where = "memory at %.0fMB of %.0fMB (%.0f%%), past the %d%% mark" % (used / MB, quota / MB, pct, mark)
    fixed = used - sum(w.private for w in workers)
    if fixed >= quota * mark / 100.0 or not workers:
        return Pressure(Act.CANNOT_HELP, why=(
            "%s: the master (%.0fMB private) and the memory shared by all workers hold %.0fMB of it, "
            "so recycling workers cannot bring it under; look for growth in the master (a preloaded "
            "app's caches) or in shared memory; raise --memory-pressure or use a larger dyno"
            % (where, master / MB, fixed / MB)))
    top = max(workers, key=lambda w: (w.private, -w.slot))
    if top.grown < GROWN_SHARE * quota:
        return Pressure(Act.CANNOT_HELP, why=(
            "%s: no worker has grown since it booted (the biggest, worker=%d, holds %.0fMB private): "
            "too many workers for this quota, and recycling would only start them again; "
            "lower WEB_CONCURRENCY or use a larger dyno" % (where, top.slot, top.private / MB)))
    return Pressure(Act.RECYCLE, top.slot, why(
        Category.PRESSURE, value=used / MB, limit=quota / MB, pct=pct, mark=mark, metric=metric,
        private=top.private / MB, growth=_growth(top.rate)))


# -- when a memory recycle does not help (issue 27) ----------------------------------------

REGROW_WINDOW = 60.0     # seconds after a memory recycle in which growing back means it did not help
REGROW_SHARE = 0.8       # of what its predecessor had grown: "back to the same size"
PLATEAU = MB             # bytes a second: a worker growing slower holds its size


@dataclasses.dataclass(frozen=True)
class Recycled:
    """The last worker recycled for memory pressure: when, its slot and pid, what it had grown."""
    when: float
    slot: int
    pid: int
    grown: int


def regrew(last, workers, now):
    """The Held of the worker that replaced `last` (a Recycled, or None) when it has grown
    back to REGROW_SHARE of its predecessor's growth within REGROW_WINDOW: recycling for
    memory did not help, the same size comes back, and the next recycle would loop. Else None."""
    if last is None or now - last.when > REGROW_WINDOW:
        return None
    for w in workers:
        if w.slot == last.slot and w.pid != last.pid and w.grown >= REGROW_SHARE * last.grown:
            return w
    return None


def will_regrow(top, workers):
    """Whether a recycle of `top` (the Held the guard would recycle) cannot help, seen
    before it is tried: every worker has grown as much as it (REGROW_SHARE) and holds
    there (growing under PLATEAU), and it got there within REGROW_WINDOW of its start. Its
    replacement would grow back as fast: the count does not fit. A leak is still growing
    (recycling it buys time: the soak's 2 MB a request), and a spike is one worker's."""
    return top.age <= REGROW_WINDOW and len(workers) > 1 and \
        all(w.grown >= REGROW_SHARE * top.grown and w.rate < PLATEAU for w in workers)


def needs_room(reason_, used, quota, mark, private):
    """Whether a worker recycled for `reason_` (a Why) must be gone before its replacement
    starts: when the dyno's memory now (`used`, bytes, the old worker in it) and one more
    worker of its `private` size do not fit under the mark. Past the memory-pressure mark
    they never do; a --max-worker-memory recycle, as measured; other leaks hold no memory."""
    if reason_.category is Category.PRESSURE:
        return True
    if reason_.category is not Category.MEMORY or not quota or used is None:
        return False
    return used + private >= quota * (mark or 100) / 100.0
