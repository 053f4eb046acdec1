"""A worker's death, as plain data: what it was (a Death record with its cause and the
evidence: exit code and whose it was, the request it was serving), when its slot
restarts, the line that says so, and when the master gives up (pure).

Rules:
1. A worker that died before it was ready (a boot failure) will most likely fail again:
   exponential backoff (backoff.delay), reset once a worker stayed up backoff.STABLE
   seconds. With several workers, one slot at least stays on a fast schedule (FAST):
   when the cause goes away (a database back up), capacity comes back within a second,
   not after the longest backoff.
2. A worker that was serving and died is restarted at once, paced per slot by a token
   bucket (backoff.paced): a request that kills its worker every time must not take
   the slot away for tens of seconds, nor make the master fork as fast as it can.
3. A clean exit of a worker that served (pyfork's own exit 0: max-requests) is no
   crash: respawn now, no token taken.
4. A worker that dies before it was ever ready counts toward the crash-loop verdict;
   when nothing has ever booted and the boot keeps failing, the master gives up with
   the worker's own exit code (the error is deterministic: retrying only floods logs).
"""
import dataclasses
import enum

from . import backoff
from .. import exits

BOOT_FAILURES = 3      # boot failures with nothing ever booted before the master gives up
FAST = 1.0             # seconds: the longest wait of the one slot kept on the fast schedule
WINDOW = 10.0          # seconds of a slot's deaths counted in its death line


class Cause(enum.Enum):
    """The label /metrics counts a death under."""
    CRASH = "crash"
    TIMEOUT = "timeout"                 # it was aborted by the master (--timeout)
    MAX_REQUESTS = "max_requests"       # pyfork's own clean exit after serving


@dataclasses.dataclass(frozen=True)
class Death:
    """What the master learned from waitpid and the worker's last Beat."""
    nr: int
    pid: int
    code: int           # exit code, or -signal (exits.KILLED_BY_US for the master's own SIGKILL)
    uptime: float
    ready: bool
    requests: int
    aborted: bool = False     # the master had sent SIGABRT
    ours: bool = False        # pyfork's code chose the exit code (the worker said so in its cell)
    busy: int = 0             # requests it had in progress
    what: str = ""            # the oldest of them, "METHOD /path"
    running: float = 0.0      # seconds that request had run
    delay: float = None       # seconds until its slot restarts (set by on_death)
    recent: int = 0           # its slot's deaths in the last WINDOW seconds, this one included

    @property
    def clean(self):
        return self.code == 0 and self.ours and self.ready

    @property
    def cause(self):
        if self.clean:
            return Cause.MAX_REQUESTS
        return Cause.TIMEOUT if self.aborted else Cause.CRASH


def of(slot, pid, code, beat, now):
    """The Death of a slot's worker, from its exit code and its last Beat. It was ready if
    its cell says it served, even if the master had not seen it ready yet (a request that
    kills its worker can arrive the moment the worker is up)."""
    return Death(slot.nr, pid, code, now - slot.started, slot.ready or beat.served, beat.requests, bool(slot.kill_at),
                 beat.exiting, beat.busy, beat.what, beat.running(now))


def on_death(table, slot, death, now, rnd):
    """Update the table after a slot's worker died -> the Death with its delay and count."""
    slot.pid = 0
    slot.kill_at = 0.0
    slot.ready = False
    slot.deaths = [t for t in slot.deaths if now - t < WINDOW]
    if death.clean:
        slot.failures = 0
        delay = 0.0
    elif death.ready:                       # it was serving: at once, paced
        slot.failures = 0
        slot.deaths.append(now)
        delay, slot.tokens = backoff.paced(slot.tokens, slot.refilled, now)
        slot.refilled = now
    else:                                   # a boot failure: back off
        slot.deaths.append(now)
        table.boot_failures += 1
        if death.uptime >= backoff.STABLE:
            slot.failures = 0
        slot.failures += 1
        delay = keep_one_fast(table, slot, backoff.delay(slot.failures, rnd), now)
    slot.due = now + delay
    return dataclasses.replace(death, delay=delay, recent=len(slot.deaths))


def keep_one_fast(table, slot, delay, now):
    """With several workers, never all in a long backoff: when no other slot has a
    worker or is due within FAST, this one waits FAST at most."""
    if delay <= FAST or table.target < 2 or not table.ever_booted:
        return delay
    for other in table.slots[:table.target]:
        if other is not slot and (other.pid or other.due <= now + FAST):
            return delay
    return FAST


def sweeps_group(code, aborted=False, timed_out=False):
    """Whether what a dead worker started (its process group: spawn.py) goes with it: after
    a death by a signal (our SIGABRT or SIGKILL, the kernel's OOM killer, anyone's kill), an
    abort, or a worker that left after answering a timed-out request 504 (its stuck request's
    children are still waiting: a hung `ffmpeg` or `sleep 3600`). Not after a clean exit
    (max-requests, a reload, a stop): a process the app meant to outlive its worker stays,
    and the master still reaps it."""
    return code < 0 or aborted or timed_out


def fork_failed(slot, now, rnd):
    """fork() failed (the task limit, or memory): try again later, with the slot's backoff."""
    slot.failures += 1
    slot.due = now + max(0.1, backoff.delay(slot.failures, rnd))
    return slot.due - now


def verdict(table, death):
    """None to keep going, else the exit code the master should give up with."""
    if table.ever_booted:
        return None
    if death.ours and death.code in (exits.APP_LOAD, exits.USAGE):
        return death.code
    if table.boot_failures >= BOOT_FAILURES:
        return exits.WORKER_BOOT
    return None


def line(death, named=None):
    """The death line: 'worker=0 pid=123 died (signal 11, SIGSEGV) while serving POST
    /upload for 0.02s; restarting in 0.50s (5 deaths in 10 s); uptime=3.1s requests=12'.
    named: what killed it, when the kernel's counters say (observe/oom.py), in place of
    'died (...)': 'killed by the kernel's OOM killer (cgroup oom_kill 3->4) at USS ..'."""
    if death.clean:
        head = "worker=%d pid=%d exited (%s); restarting in %.2fs" % (
            death.nr, death.pid, exits.death_cause(death.code, death.ours), death.delay)
    else:
        if not death.ready:
            doing = " while booting"
        elif death.busy:
            doing = " while serving %s for %.2fs" % (death.what or "a request", death.running)
        else:
            doing = ""
        head = "worker=%d pid=%d %s%s; restarting in %.2fs (%d death%s in %g s)" % (
            death.nr, death.pid, named or "died (%s)" % exits.death_cause(death.code, death.ours), doing, death.delay,
            death.recent, "" if death.recent == 1 else "s", WINDOW)
    return "%s; uptime=%.1fs requests=%d" % (head, death.uptime, death.requests)
