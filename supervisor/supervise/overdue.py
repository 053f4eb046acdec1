"""When a worker is overdue (pure): the master's timeout judgement, from the worker's last
progress, `now`, the timeouts and the master's own stalls (plan.py's rules 5 and 7; the
plan acts on the verdict).
"""
import enum

# A worker's loop beats once a second (serve/worker.py TICK), so an idle worker is silent
# for up to a second between beats, more on a loaded box: with --timeout 1 the master
# aborted idle workers between two beats ("no heartbeat for 1.0s", 2 of 4 runs with the
# CPU busy). Silence without a request in progress counts only past this, whatever --timeout.
IDLE_SILENCE = 2.0


class Overdue(enum.Enum):
    ANSWER = "answer"           # Sig.TIMEOUT: answer the request 504, then leave
    ABORT = "abort"             # SIGABRT: dump the stack, then die
    WAIT = "wait"               # told to answer 504: its grace is not over yet
    KILL = "kill"               # still there KILL_AFTER after SIGABRT


def progress(beat, started=0.0):
    """The last sign of progress: the start of the oldest request in progress while
    there is one (the tick is then up to a second older than the request: counting from
    it would abort early), else the loop's last tick. A `since` from before the worker
    was forked (`started`) is no request's start: the master read the cell while the
    worker, descheduled, was halfway through writing it (a busy of 1 over the idle
    cell's since of 0: "serving a request for 24344.1s", once in 11 bench runs); the tick
    stands in for it."""
    return beat.since if beat.busy > 0 and beat.since >= started else beat.beat


def credit(since, stalls):
    """Seconds of the master's stalls noticed after `since` (rule 7), each counted for no
    more than the time from `since` to when it was noticed: no worker's time."""
    if not stalls:          # the usual case, every loop turn and every slot: no generator
        return 0.0
    return sum(min(seconds, at - since) for at, seconds in stalls if at > since)


def elapsed(since, now, stalls=()):
    """Seconds from `since` to `now` that count toward a timeout."""
    return now - since - credit(since, stalls)


def limit(beat, timeout):
    """Seconds without progress a ready worker is allowed: --timeout, or IDLE_SILENCE at
    least when it serves nothing (progress is then its loop's beat)."""
    return timeout if beat.busy > 0 else limit_idle(timeout)


def limit_idle(timeout):
    """limit() for a worker that serves nothing."""
    return timeout if timeout >= IDLE_SILENCE else IDLE_SILENCE


def overdue(slot, beat, now, timeouts, stalls=()):
    """Overdue.ANSWER, Overdue.ABORT, Overdue.KILL or None for one slot, given its worker's
    Beat: None also while a worker told to answer 504 still has time to."""
    if not slot.pid:
        return None
    if slot.kill_at:
        return Overdue.KILL if now >= slot.kill_at else None
    if slot.ready:
        if not timeouts.timeout or beat is None:
            return None
        since, allowed = progress(beat, slot.started), limit(beat, timeouts.timeout)
        # the stalls' credit only lowers the time elapsed: within the limit without it, within with it
        if now - since > allowed and elapsed(since, now, stalls) > allowed:
            if slot.answer_by:
                return Overdue.ABORT if now >= slot.answer_by else Overdue.WAIT
            return Overdue.ANSWER if beat.busy else Overdue.ABORT
    elif timeouts.boot and elapsed(slot.started, now, stalls) > timeouts.boot:
        return Overdue.ABORT
    return None
