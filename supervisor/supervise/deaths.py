"""A worker's death, as plain data: what it was (a Death record with its cause and the
evidence), when its slot restarts, and when the master gives up (pure).

Rules:
1. A dead worker is respawned after `backoff.delay(...)`: at once the first time, then
   exponentially later, reset once a worker has stayed up for backoff.STABLE seconds. A
   clean exit of a worker that served (max-requests, recycling) is no crash: respawn now.
2. A worker that dies before it was ever ready counts toward the crash-loop verdict;
   when nothing has ever booted and the boot keeps failing, the master gives up with
   the worker's own exit code (the error is deterministic: retrying only floods logs).
"""
import dataclasses
import enum

from . import backoff
from .. import exits

BOOT_FAILURES = 3      # boot failures with nothing ever booted before the master gives up


class Cause(enum.Enum):
    """The label /metrics counts a death under."""
    CRASH = "crash"
    TIMEOUT = "timeout"                 # it was aborted by the master (--timeout)
    MAX_REQUESTS = "max_requests"       # a clean exit after serving


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

    @property
    def cause(self):
        if self.code == 0 and self.ready:
            return Cause.MAX_REQUESTS
        return Cause.TIMEOUT if self.aborted else Cause.CRASH


def on_death(table, slot, death, now, rnd):
    """Update the table after a slot's worker died; return the delay before respawning it."""
    slot.pid = 0
    slot.kill_at = 0.0
    slot.ready = False
    if not death.ready:
        table.boot_failures += 1
    clean = death.code == 0 and death.ready
    if death.uptime >= backoff.STABLE or clean:
        slot.failures = 0     # a stable run, or a clean exit (max-requests): not a crash
    if not clean:
        slot.failures += 1
    delay = backoff.delay(slot.failures, rnd)
    slot.due = now + delay
    return delay


def fork_failed(slot, now, rnd):
    """fork() failed (the task limit, or memory): try again later, with the slot's backoff."""
    slot.failures += 1
    slot.due = now + max(0.1, backoff.delay(slot.failures, rnd))
    return slot.due - now


def verdict(table, last_code):
    """None to keep going, else the exit code the master should give up with."""
    if table.ever_booted:
        return None
    if last_code in (exits.APP_LOAD, exits.USAGE):
        return last_code
    if table.boot_failures >= BOOT_FAILURES:
        return exits.WORKER_BOOT
    return None
