"""Was that SIGKILL the kernel's OOM killer? Its own counters say (parsing is pure).

Gunicorn's "Perhaps out of memory?" is a guess. The kernel counts its OOM kills:

- cgroup v1: `memory.oom_control` has `oom_kill N` (kernel 4.13+) for the cgroup;
- cgroup v2: `memory.events` has `oom_kill N` for the cgroup and its children;
- the host: `/proc/vmstat` has `oom_kill N` for every kill on the machine (4.13+).

The master keeps the counters' values from its last look (about once a second, and
after every death); when a worker dies of a SIGKILL it did not send, it looks again. If
the counter moved, the kernel killed it (the cgroup's counter when there is one, else the
host's, which is weaker evidence: another process on the host may have been the one). If
it did not move, someone outside pyfork sent the SIGKILL.

`Counters` reads through the Sampler (the one reader of /proc and /sys), so this module
opens no file itself.
"""
from . import cgroup, metrics

FILES = {"v1": "memory.oom_control", "v2": "memory.events"}


def count(text):
    """The `oom_kill N` of one of those files; None where the file or the line is missing."""
    if text is None:
        return None
    return cgroup.parse_stat(text).get("oom_kill")


def counters(version, cgroup_files, vmstat_text):
    """{'cgroup': n or None, 'host': n or None}. version: 'v1', 'v2' or None (no memory cgroup)."""
    name = FILES.get(version)
    return {"cgroup": count(cgroup_files.get(name)) if name else None, "host": count(vmstat_text)}


def moved(before, after):
    """Which counter moved: ('cgroup' or 'host', old, new), or None.

    The kernel counts every OOM kill in the victim's own memory cgroup too, whether the
    cgroup's limit or the machine ran out (mm/oom_kill.c: memcg_memory_event_mm). So where
    the cgroup's counter is readable it alone decides: the host's counter also moves for
    every other process killed on the machine, and would blame them on our worker."""
    before, after = before or {}, after or {}
    for where in ("cgroup", "host"):
        old, new = before.get(where), after.get(where)
        if old is not None and new is not None:
            return (where, old, new) if new > old else None
    return None


def evidence(sample, quota):
    """' at USS 410.00MB of quota 512.00MB' from a worker's last ProcSample, or ''."""
    if sample is None:
        return ""
    for name in ("uss", "pss", "rss"):
        value = getattr(sample, name)
        if value is not None:
            text = " at %s %s" % (name.upper(), metrics.mb(value))
            return text + (" of quota %s" % metrics.mb(quota) if quota else "")
    return ""


def sentence(slot, pid, move, sample=None, quota=None):
    """The death line for a SIGKILL pyfork did not send."""
    if move is None:
        return "worker=%d pid=%d killed by SIGKILL from outside pyfork (no OOM kill counter moved)" % (slot, pid)
    where, old, new = move
    return "worker=%d pid=%d killed by the kernel's OOM killer (%s oom_kill %d->%d)%s" % (
        slot, pid, where, old, new, evidence(sample, quota))


PENDING = 10.0      # seconds a move seen by `refresh` waits for the death it belongs to


class Counters:
    """The counters as the kernel shows them now, read through a Sampler.

    Hazard: the kernel counts the kill when it sends SIGKILL; the victim then unwinds and
    is reaped a moment later. A `refresh` in between sees the move first, so it keeps it
    for PENDING seconds for the death that follows, instead of swallowing it."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.version, self.dir = sampler.cgroups.get("memory", (None, None))
        self.last = self.read()
        self.pending = None         # (when, move) seen by refresh, not yet given to a death

    def read(self):
        """The counters now. /proc/vmstat (some 180 lines: about 0.1 ms) is read only where
        the cgroup has no counter, since the cgroup's alone decides where it has one."""
        files = self.sampler.read_files(self.dir, [FILES[self.version]]) if self.dir else {}
        if count(files.get(FILES.get(self.version))) is not None:
            return counters(self.version, files, None)
        return counters(self.version, files, self.sampler.read_files("/proc", ["vmstat"]).get("vmstat"))

    def refresh(self, now):
        """The new baseline (about once a second); a move is kept for the death to come."""
        current = self.read()
        move = moved(self.last, current)
        if move is not None:
            self.pending = (now, move)
        self.last = current

    def check(self, now):
        """-> what moved since the baseline, or a recent move `refresh` kept (see `moved`)."""
        current = self.read()
        move, self.last = moved(self.last, current), current
        if move is None and self.pending is not None and now - self.pending[0] <= PENDING:
            move = self.pending[1]
        self.pending = None
        return move
