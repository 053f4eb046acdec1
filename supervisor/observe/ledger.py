"""The restart ledger (pure): per slot, the last KEEP deaths with their cause and evidence.

The master records every worker it loses, whatever the way (a crash, a timeout, a
recycle, a reload, the kernel's OOM killer); `pyfork status`, /metrics
(`pyfork_worker_restarts_total{slot,reason}`) and the log's `restarts` lines read it.
Counts are kept since the master started; the entries themselves are capped, so a
crash-looping slot cannot grow the master's memory.

The log line, one per slot whose count moved since the last one (once a metrics interval):

    restarts worker=0 total=3 timeout=1 oom_kill=1 max_requests=1 last=oom_kill last_pid=812

The report (report.py) reads these lines back to mark restarts on its time axis.
"""
import collections
import dataclasses
import enum
from typing import Optional

KEEP = 20


class Cause(enum.Enum):
    """Why a worker went; the value is the label /metrics and the log use."""
    CRASH = "crash"                 # exited or was killed on its own: the detail says how
    TIMEOUT = "timeout"             # silent past --timeout (or --boot-timeout): aborted by us
    MEMORY = "memory"               # recycled over --max-worker-memory or under memory pressure
    ZOMBIES = "zombies"             # recycled over --max-worker-zombies
    THREADS = "threads"             # recycled over --max-worker-threads
    TASKS = "tasks"                 # recycled as the biggest holder near the task limit
    MAX_REQUESTS = "max_requests"   # served its --max-requests and left cleanly
    RELOAD = "reload"               # replaced on HUP
    OOM_KILL = "oom_kill"           # SIGKILL from the kernel's OOM killer (its counter moved)


@dataclasses.dataclass(frozen=True)
class Entry:
    """One death: when (wall seconds), which pid, the cause, a sentence of detail, and the
    evidence: the request in progress and the worker's last memory sample, as text."""
    when: float
    slot: int
    pid: int
    cause: Cause
    detail: str = ""
    request: str = ""               # "GET /path for 1.20s", or ""
    sample: str = ""                # "rss=.. pss=.. uss=.. threads=.. zombies=..", or ""
    uptime: Optional[float] = None

    def as_dict(self):
        return {"when": self.when, "slot": self.slot, "pid": self.pid, "cause": self.cause.value,
                "detail": self.detail, "request": self.request, "sample": self.sample,
                "uptime": self.uptime}


def cause_of_recycle(category):
    """recycle.category(why) ('memory', 'zombies', 'threads', 'tasks') -> Cause."""
    try:
        return Cause(category)
    except ValueError:
        return Cause.MEMORY if category.startswith("memory") else Cause.TASKS


class Ledger:
    def __init__(self, keep=KEEP):
        self.keep = keep
        self.entries = {}           # slot -> deque of Entry, oldest first
        self.counts = {}            # (slot, cause) -> int
        self.logged = {}            # slot -> its total at the last log line

    def record(self, entry):
        self.entries.setdefault(entry.slot, collections.deque(maxlen=self.keep)).append(entry)
        key = (entry.slot, entry.cause)
        self.counts[key] = self.counts.get(key, 0) + 1

    def last(self, slot):
        q = self.entries.get(slot)
        return q[-1] if q else None

    def recent(self, slot):
        return list(self.entries.get(slot, ()))

    def total(self, slot):
        return sum(n for (s, _), n in self.counts.items() if s == slot)

    def by_reason(self):
        """{reason label: count} over all slots (the unlabelled-by-slot view)."""
        out = {}
        for (_, cause), n in self.counts.items():
            out[cause.value] = out.get(cause.value, 0) + n
        return out

    def slot_counts(self, slot):
        """{reason label: count} for one slot, in Cause order."""
        return {c.value: self.counts[(slot, c)] for c in Cause if (slot, c) in self.counts}

    def metrics(self):
        """[(slot, reason, count)] for pyfork_worker_restarts_total{slot,reason}, sorted."""
        return sorted((s, c.value, n) for (s, c), n in self.counts.items())

    def log_lines(self):
        """The `restarts` lines of the slots whose count moved since the last call."""
        lines = []
        for slot in sorted(self.entries):
            total = self.total(slot)
            if total == self.logged.get(slot, 0):
                continue
            self.logged[slot] = total
            last = self.last(slot)
            parts = ["%s=%d" % kv for kv in self.slot_counts(slot).items()]
            lines.append("restarts worker=%d total=%d %s last=%s last_pid=%d"
                         % (slot, total, " ".join(parts), last.cause.value, last.pid))
        return lines


def parse_log_line(text):
    """A `restarts` line (with or without a log prefix) -> (slot, {reason: count}), or None."""
    at = text.find("restarts worker=")
    if at < 0:
        return None
    fields = dict(p.split("=", 1) for p in text[at + 9:].split() if "=" in p)
    try:
        slot = int(fields.pop("worker"))
    except (KeyError, ValueError):
        return None
    counts = {}
    for k, v in fields.items():
        if v.isdigit() and k not in ("total", "last_pid"):
            counts[k] = int(v)
    return slot, counts
