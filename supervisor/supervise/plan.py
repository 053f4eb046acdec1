"""The master's decisions, as pure functions of the worker table and `now`.

Rules:
1. Slots are stable: slot 3 keeps its number, backoff history and heartbeat cell
   across restarts (Unicorn's worker `nr`).
2. A worker that dies is respawned after `backoff.delay(...)`: at once the first time,
   then exponentially later, reset once a worker has stayed up for STABLE seconds. A
   clean exit of a worker that served (max-requests, recycling) is no crash: respawn now.
3. Until a worker has ever become ready, only slot 0 is started: a broken app then
   shows its error once, and the verdict comes from one worker, not N at once.
4. A worker that dies before it was ever ready counts toward the crash-loop verdict;
   when nothing has ever booted and the boot keeps failing, the master gives up with
   the worker's own exit code (the error is deterministic: retrying only floods logs).
5. A worker silent past the timeout gets SIGABRT (its stack is dumped), then SIGKILL
   KILL_AFTER seconds later if it is still there.
6. While stopping, nothing is spawned.
"""
import dataclasses
import enum

from . import backoff
from .. import exits


KILL_AFTER = 2.0       # seconds between SIGABRT and SIGKILL for a hung worker
BOOT_FAILURES = 3      # boot failures with nothing ever booted before the master gives up


class Phase(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"       # graceful: waiting for workers to finish
    IDLE = "idle"               # WINCH: no workers, listeners kept


@dataclasses.dataclass
class Slot:
    nr: int
    pid: int = 0
    started: float = 0.0
    ready: bool = False
    failures: int = 0          # consecutive deaths before STABLE uptime
    due: float = 0.0           # earliest respawn time
    aborted: float = 0.0       # when SIGABRT was sent (0: not sent)
    retiring: bool = False     # told to stop; do not respawn this worker
    replaces: int = 0          # pid of the worker this one replaces (HUP): stopped once we are ready


@dataclasses.dataclass(frozen=True)
class Death:
    """What the master learned from waitpid, as plain data."""
    nr: int
    code: int           # exit code, or -signal
    uptime: float
    ready: bool
    requests: int


def restart_reason(death, aborted):
    """The label /metrics counts a worker's death under."""
    if death.code == 0 and death.ready:
        return "max_requests"
    return "timeout" if aborted else "crash"


def on_death(slot, death, now, rnd):
    """Update a slot after its worker died; return the delay before respawning it."""
    slot.pid = 0
    slot.aborted = 0.0
    if death.uptime >= backoff.STABLE or (death.code == 0 and death.ready):
        slot.failures = 0     # a stable run, or a clean exit (max-requests): not a crash
    if not (death.code == 0 and death.ready):
        slot.failures += 1
    delay = backoff.delay(slot.failures, rnd)
    slot.due = now + delay
    slot.ready = False
    return delay


def verdict(ever_booted, boot_failures, last_code):
    """None to keep going, else the exit code the master should give up with."""
    if ever_booted:
        return None
    if last_code in (exits.APP_LOAD, exits.USAGE):
        return last_code
    if boot_failures >= BOOT_FAILURES:
        return exits.WORKER_BOOT
    return None


def to_spawn(slots, target, phase, ever_booted, now):
    """Slot numbers whose worker should be forked now."""
    if phase is not Phase.RUNNING:
        return []
    live = [s for s in slots if s.nr < target]
    if not ever_booted:
        live = live[:1]
        if any(s.pid for s in slots):
            return []
    return [s.nr for s in live if not s.pid and s.due <= now]


def to_retire(slots, target):
    """Workers in slots at or above the target (TTOU, -w change): stop them gracefully."""
    return [s for s in slots if s.nr >= target and s.pid and not s.retiring]


def overdue(slot, beat, now, timeout, boot_timeout):
    """'abort', 'kill' or None for one live worker, given its last heartbeat."""
    if not slot.pid:
        return None
    if slot.aborted:
        return "kill" if now - slot.aborted >= KILL_AFTER else None
    if slot.ready:
        if timeout and now - beat > timeout:
            return "abort"
    elif boot_timeout and now - slot.started > boot_timeout:
        return "abort"
    return None


def next_wakeup(slots, target, phase, now, ever_booted, check_every):
    """Seconds until the loop has something to do unprompted (signals wake it anyway)."""
    when = now + check_every
    if phase is Phase.RUNNING:
        for s in slots:
            if s.nr < target and not s.pid and (ever_booted or s.nr == 0):
                when = min(when, s.due)
    for s in slots:
        if s.aborted:
            when = min(when, s.aborted + KILL_AFTER)
    return max(0.0, when - now)
