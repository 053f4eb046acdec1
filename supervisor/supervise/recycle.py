"""When to replace a worker that leaks (pure).

The incident pyfork answers: a library forked children and never waited for them; the
zombies filled the dyno's task limit (256) and every new thread or process failed. A
leak of 20 per second fills 256 tasks in about 12 s, far inside one 20 s metrics sample,
so these checks run on the cheap guard sample about once a second. A recycled worker
finishes its request in hand and exits; its zombies are reparented to the master (a
subreaper) and reaped at once.
"""
import dataclasses

TASKS_PRESSURE = 0.75    # of the task limit: recycle the worker holding the most tasks
GUARD_EVERY = 1.0        # seconds between guard checks...
GUARD_HURRY = 0.2        # ...and while the task count is past half its limit


@dataclasses.dataclass(frozen=True)
class Limits:
    memory: object = None      # bytes, or None
    metric: str = "pss"
    zombies: int = 0           # 0: off
    threads: int = 0           # 0: off


def _mb(n):
    return "%.2fMB" % (n / 1048576.0)


def reason(limits, threads, zombies, memory=None):
    """Why this worker must be replaced now, or None."""
    if limits.zombies and zombies >= limits.zombies:
        return "%d unreaped children (--max-worker-zombies %d)" % (zombies, limits.zombies)
    if limits.threads and threads >= limits.threads:
        return "%d threads (--max-worker-threads %d)" % (threads, limits.threads)
    if limits.memory and memory is not None and memory >= limits.memory:
        return "memory_%s=%s over --max-worker-memory %s" % (limits.metric, _mb(memory), _mb(limits.memory))
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


def category(why):
    """A recycle reason -> the label /metrics counts it under."""
    if why.startswith("memory_"):
        return "memory"
    if "unreaped children" in why:
        return "zombies"
    if "threads (" in why:
        return "threads"
    return "tasks"


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
