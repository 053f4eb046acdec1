"""Out of file descriptors: what a process that accepts connections does when accept()
fails with EMFILE (its own limit, `ulimit -n`) or ENFILE (the system's).

Pure: the worker (serve/worker.py) and the master's own servers (observe/metricsserver.py,
the control socket) hand in `now` and plain data, and carry out what comes back.

The hazard (issue 25): a listener whose queue holds a client stays readable while
accept() fails, so a worker at `ulimit -n 64` holding 150 idle connections spun at a whole
CPU and logged "accept failed" 160,000 times a second, and served no new client until
idle ones left. What is done instead, after nginx (src/event/ngx_event_accept.c stops
accepting for accept_mutex_delay on EMFILE; src/core/ngx_connection.c
ngx_drain_connections closes reusable connections, oldest first):

- make room: connections that may be closed (idle between requests, or still reading a
  request head) and have sent nothing for QUIET seconds are closed, oldest first, a few
  per refused accept (`choose`); the next wake-up accepts into the room made. A connection
  is never closed the moment it arrived, so each one accepted gets QUIET seconds to speak;
- with nothing to close, stop polling the listeners until a connection of one's own
  closes, or BACKOFF seconds (`resumes`): one refused accept per BACKOFF at most, no spin;
- say so once (Say.START) with the limit and the connections open, then at most once
  every EVERY seconds while refusals go on (Say.STILL), and once when none came for
  EVERY seconds (Say.OVER): a handful of lines however long it lasts.
"""
import dataclasses
import enum

QUIET = 1.0         # seconds without a byte after which a connection may be closed to make room
RECLAIM_MAX = 8     # connections closed per refused accept at most (nginx: 32, or an 8th)
BACKOFF = 0.5       # seconds the listeners rest when nothing could be closed (nginx: 500 ms)
EVERY = 10.0        # seconds between lines while it lasts, and of calm before it is over


class Say(enum.Enum):
    START = "start"     # the first refused accept of an episode
    STILL = "still"     # a summary, every EVERY seconds while accepts are refused
    OVER = "over"       # EVERY seconds without a refused accept


@dataclasses.dataclass(frozen=True, slots=True)
class Strain:
    """One episode of refused accepts."""
    since: float
    last: float                  # the last refused accept
    said: float                  # when a line was last logged
    why: str = ""                # the error, as accept() gave it
    refused: int = 1             # accepts refused in this episode
    reclaimed: int = 0           # connections closed to make room in it
    paused_until: float = None   # not polling the listeners until then (or a close): None, polling
    open_at_pause: int = 0       # connections open when polling stopped


@dataclasses.dataclass(frozen=True, slots=True)
class Refusal:
    """What to do about a refused accept: the new state, the connections to close now
    (their keys, oldest first) and the line to log, if any."""
    strain: Strain
    close: tuple
    say: Say = None


def choose(closable, now, quiet=QUIET, most=RECLAIM_MAX):
    """`closable`: (last byte's time, key) of the connections that may be closed. -> the
    keys to close, oldest first: an 8th of those quiet for `quiet` seconds, between 1 and
    `most` (nginx's share), so that room is made without emptying the worker at once."""
    old = sorted((c for c in closable if now - c[0] >= quiet), key=lambda c: c[0])
    if not old:
        return ()
    return tuple(key for _, key in old[:max(1, min(most, len(old) // 8))])


def refused(strain, now, closable, open_conns, why=""):
    """An accept failed for lack of descriptors. `strain`: the episode so far, or None.
    `open_conns`: connections open now. -> Refusal: it closes some (and polls on), or
    pauses the listeners when none may be closed."""
    close = choose(closable, now)
    if strain is None:
        strain, say = Strain(since=now, last=now, said=now, why=why, reclaimed=len(close)), Say.START
    else:
        strain, say = dataclasses.replace(strain, last=now, refused=strain.refused + 1,
                                          reclaimed=strain.reclaimed + len(close)), None
    if not close:
        strain = dataclasses.replace(strain, paused_until=now + BACKOFF, open_at_pause=open_conns)
    return Refusal(strain, close, say)


def resumes(strain, now, open_conns):
    """True when paused listeners are to be polled again: one of the connections open at
    the pause has closed, or the back-off is over."""
    return (strain is not None and strain.paused_until is not None
            and (open_conns < strain.open_at_pause or now >= strain.paused_until))


def resumed(strain):
    return dataclasses.replace(strain, paused_until=None)


def tick(strain, now):
    """Once in a while (a second): -> (the episode, or None once over; the line to log)."""
    if strain is None:
        return None, None
    if now - strain.last >= EVERY and strain.paused_until is None:
        return None, Say.OVER
    if now - strain.said >= EVERY:
        return dataclasses.replace(strain, said=now), Say.STILL
    return strain, None


def next_due(strain):
    """When `resumes` or `tick` next has work to do for an episode (for a loop that sleeps
    until its next deadline)."""
    due = min(strain.said, strain.last) + EVERY
    return due if strain.paused_until is None else min(due, strain.paused_until)


def line(say, strain, now, who, limit, open_conns):
    """The log line for `say`; `who` leads it ("worker=1 pid=42", "metrics server")."""
    if say is Say.START:
        return ("%s out of file descriptors: accept failed: %s; limit=%s open_connections=%d; "
                "closing connections quiet for %gs, oldest first, and accepting as room is made "
                "(raise ulimit -n, or add workers)" % (who, strain.why, limit, open_conns, QUIET))
    if say is Say.STILL:
        return ("%s still out of file descriptors: for=%ds refused=%d reclaimed=%d limit=%s open_connections=%d"
                % (who, now - strain.since, strain.refused, strain.reclaimed, limit, open_conns))
    return ("%s out of file descriptors no more: lasted=%.1fs refused=%d reclaimed=%d open_connections=%d"
            % (who, strain.last - strain.since, strain.refused, strain.reclaimed, open_conns))
