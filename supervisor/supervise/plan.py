"""The master's decisions: the worker table and what to do next, as pure functions of
the table, the workers' beats and `now`. The master only carries the actions out.

Rules:
1. Slots are stable: slot 3 keeps its number and restart history across restarts
   (Unicorn's worker `nr`). A slot's worker, once told to go (reload, recycle, fewer
   workers), moves to `leaving` with the moment it gets SIGKILL if it is still there.
2. Until a worker has ever become ready, only slot 0 is started: a broken app then
   shows its error once, and the verdict comes from one worker, not N at once.
3. Reload hand-over: each slot's worker moves to `leaving` untold; the slot's new worker
   starts at once and, once ready, its predecessor gets SIGTERM (new ready before old
   stops). Workers inherited from a re-exec'd master go once any of ours is ready.
4. A worker told to stop (SIGTERM) gets SIGKILL at its deadline, --graceful-timeout
   later, and again every KILL_AGAIN seconds until it is reaped.
5. A ready worker without progress for --timeout: while it serves a request, it is told
   (Sig.TIMEOUT) to answer that request 504 and has ANSWER_GRACE seconds to say so in its
   cell (heartbeat.TIMED_OUT); without a request in progress, or if it does not answer
   in time (stuck in C code), it gets SIGABRT (its stack is dumped), then SIGKILL
   KILL_AFTER seconds later if it is still there (and every KILL_AGAIN seconds after that
   until it is reaped). Progress is the start of the oldest request in progress while
   there is one (so it is never aborted before --timeout, with threads too; an app that
   extends its request's timeout moves that start later), else the loop's last tick. A
   booting one gets SIGABRT after --boot-timeout.
6. A worker that answered 504 is recycled at once: it leaves (it stopped taking requests
   by itself: no SIGTERM), its slot's new worker starts now, and it gets SIGKILL if it
   has not finished its other requests within --graceful-timeout.
7. Stall guard (Unicorn's murder_lazy_workers skips a turn the master itself was late
   for): when the master wakes STALL seconds or more after it meant to, the dyno was
   frozen or the master was off the CPU; that whole gap is no worker's time. It is kept
   in `stalls` and left out of every timeout counted across it, and every deadline
   (SIGKILLs, the answer grace, the stop) moves later by it.
8. While stopping, nothing is spawned; at the stop deadline every worker left gets
   SIGKILL. When a worker dies is deaths.py's business; what it left behind (its process
   group) gets SIGTERM, then SIGKILL SWEEP_GRACE later (`sweeps`, deaths.sweeps_group).
9. Room first (issue 27): a worker that leaves to free memory (a memory recycle, a step
   down) is in `room`; no worker starts while one of them is still there, so the old one's
   memory is free before a new one can grow into it.
"""
import dataclasses
import enum
import typing

from . import backoff
from .overdue import Overdue, credit, elapsed, limit, limit_idle, overdue, progress   # noqa: F401 (re-exported)


KILL_AFTER = 2.0       # seconds between SIGABRT and SIGKILL for a hung worker
KILL_AGAIN = 5.0       # seconds between SIGKILLs of a process that has not been reaped yet
CHECK_EVERY = 1.0      # seconds between looks at the table when nothing falls due sooner
ANSWER_GRACE = 1.0     # seconds a worker told to answer 504 has before SIGABRT
STALL = 1.0            # seconds the master may wake late before the gap counts as a stall
STALLS_KEPT = 16       # the master's recent stalls kept (bounded: a throttled dyno stalls often)
SWEEP_GRACE = 2.0      # seconds between SIGTERM and SIGKILL of a dead worker's leftover processes
QUICK_STOP = 1.0       # seconds a quick stop (INT) leaves before SIGKILL


class Phase(enum.Enum):
    RUNNING = "running"
    STOPPING = "stopping"       # graceful or quick: waiting for workers to finish
    IDLE = "idle"               # WINCH: no workers, listeners kept


class Sig(enum.Enum):
    """Signals the plan sends, by name (the master maps them to numbers)."""
    TERM = "SIGTERM"
    INT = "SIGINT"
    KILL = "SIGKILL"
    ABORT = "SIGABRT"
    USR1 = "SIGUSR1"
    TIMEOUT = "SIGUSR2"         # a worker's request passed --timeout: answer it 504 (serve/worker.py)


class Reason(enum.Enum):
    """Why a signal is sent; the ones with a log line carry it in Signal.note."""
    STOP = "stop"                   # TERM (graceful) or INT (quick) to everyone
    STOP_OVERDUE = "stop overdue"   # KILL: the stop deadline passed
    REOPEN = "reopen logs"
    REPLACED = "replaced"           # TERM: its replacement is ready (HUP, re-exec)
    RETIRED = "retired"             # TERM: its slot is above the target (TTOU, WINCH)
    RECYCLED = "recycled"           # TERM: it leaks (the master says what)
    GRACE_OVER = "grace over"       # KILL: it outlived --graceful-timeout
    TIMEOUT = "timeout"             # ABORT: no progress for --timeout
    ANSWER = "answer 504"           # TIMEOUT: its request passed --timeout
    TIMED_OUT = "timeout: answered 504, recycled"    # it left on its own after answering 504
    BOOT_TIMEOUT = "boot timeout"   # ABORT: not ready within --boot-timeout
    HUNG = "hung"                   # KILL: still there after SIGABRT


@dataclasses.dataclass
class Slot:
    nr: int
    pid: int = 0
    cell: int = 0              # its heartbeat cell while pid is set
    started: float = 0.0
    ready: bool = False
    failures: int = 0          # consecutive deaths before it was ready (boot failures)
    due: float = 0.0           # earliest respawn time
    kill_at: float = 0.0       # SIGABRT sent: SIGKILL at this time (0: not sent)
    answer_by: float = 0.0     # told to answer 504: SIGABRT at this time if it has not (0: not told)
    replaces: int = 0          # pid of the leaving worker this one replaces (HUP): stopped once we are ready
    tokens: float = backoff.BURST   # restart tokens left (backoff.paced), as of `refilled`
    refilled: float = 0.0
    deaths: list = dataclasses.field(default_factory=list)   # times of its recent deaths


@dataclasses.dataclass
class Leaving:
    """A worker on its way out."""
    pid: int
    nr: typing.Optional[int]   # its slot; None for a worker inherited from the previous master
    cell: typing.Optional[int] = None        # its heartbeat cell (None: inherited, not ours)
    deadline: typing.Optional[float] = None  # SIGKILL at; None: not told to stop yet (waits for its replacement)
    reason: typing.Optional["Reason"] = None  # why it left, when it matters after (TIMED_OUT: sweep its group)


@dataclasses.dataclass(frozen=True)
class Timeouts:
    timeout: float = 30.0      # --timeout (0: off)
    boot: float = 60.0         # --boot-timeout (0: off)
    graceful: float = 30.0     # --graceful-timeout


@dataclasses.dataclass
class Table:
    slots: list
    target: int
    timeouts: Timeouts = Timeouts()
    phase: Phase = Phase.RUNNING
    leaving: dict = dataclasses.field(default_factory=dict)    # pid -> Leaving
    ever_booted: bool = False
    boot_failures: int = 0
    stop_at: typing.Optional[float] = None      # the stop's SIGKILL deadline
    inherited: list = dataclasses.field(default_factory=list)  # pids from the previous master, not yet told
    stalls: list = dataclasses.field(default_factory=list)     # [(when noticed, seconds)] of the master's stalls
    sweeps: dict = dataclasses.field(default_factory=dict)     # process group of a dead worker -> (nr, SIGKILL at)
    room: set = dataclasses.field(default_factory=set)         # leaving pids no spawn may overlap (rule 9)


@dataclasses.dataclass(frozen=True)
class Spawn:
    nr: int


@dataclasses.dataclass(frozen=True)
class Signal:
    pid: int
    sig: Sig
    reason: Reason
    note: str = ""             # the log line, when this signal deserves one


@dataclasses.dataclass(frozen=True)
class Recycled:
    """A worker answered 504 to a request past --timeout: it left, its slot's new one starts."""
    nr: int
    pid: int
    busy: int                  # requests it still had in progress, the timed-out one included
    what: str                  # the oldest of them, "METHOD /path"
    running: float             # seconds that one had run


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Signal what is left of a dead worker's process group (deaths.sweeps_group)."""
    pgid: int
    nr: typing.Optional[int]
    sig: Sig                   # TERM first, KILL SWEEP_GRACE later


@dataclasses.dataclass(frozen=True)
class Booted:
    nr: int
    pid: int
    seconds: float             # from fork to ready


def new_table(target, timeouts=Timeouts(), inherited=()):
    return Table([Slot(i) for i in range(target)], target, timeouts, inherited=list(inherited))


def pids(table):
    """Every worker pid: current ones, then leaving ones."""
    return [s.pid for s in table.slots if s.pid] + list(table.leaving)


def label(nr):
    """A worker's slot for log lines: 'worker=3', or 'worker=inherited' (the previous master's)."""
    return "worker=%s" % ("inherited" if nr is None else nr)


# -- every turn of the loop -------------------------------------------------------------

def actions(table, beats, now):
    """What to do now: [Booted | Signal | Spawn]. beats: {pid: Beat} of the live workers
    (a missing one counts as not yet beating)."""
    out = _note_ready(table, beats, now)
    for pgid, (nr, at) in list(table.sweeps.items()) if table.sweeps else ():
        if now >= at:
            del table.sweeps[pgid]
            out.append(Sweep(pgid, nr, Sig.KILL))
    for entry in table.leaving.values():
        if entry.deadline is not None and now >= entry.deadline:
            out.append(Signal(entry.pid, Sig.KILL, Reason.GRACE_OVER,
                              "%s pid=%d did not stop within --graceful-timeout %g; sending SIGKILL"
                              % (label(entry.nr), entry.pid, table.timeouts.graceful)))
            entry.deadline = now + KILL_AGAIN
    if table.phase is Phase.STOPPING:
        if now >= table.stop_at:
            out += [Signal(pid, Sig.KILL, Reason.STOP_OVERDUE) for pid in pids(table)]
            table.stop_at = now + KILL_AGAIN
        return out
    while len(table.slots) < table.target:
        table.slots.append(Slot(len(table.slots)))
    for slot in table.slots[table.target:]:
        if slot.replaces:          # its replacement will never come: let the old one go
            out += _tell_to_go(table, slot.replaces, Reason.RETIRED, now)
            slot.replaces = 0
        if slot.pid:
            out += leave(table, slot, now, Reason.RETIRED)
    for slot in table.slots:
        if slot.pid:
            beat = beats.get(slot.pid)
            if slot.ready and beat is not None and beat.timed_out:
                out += recycle_timed_out(table, slot, beat, now)
            else:
                out += _timeout(slot, beat, now, table.timeouts, table.stalls)
    return out + [Spawn(nr) for nr in to_spawn(table, now)]


def _note_ready(table, beats, now):
    out = []
    for slot in table.slots:
        if slot.ready or not slot.pid:
            continue
        pid = slot.pid
        beat = beats.get(pid)
        if beat is None or not beat.ready:
            continue
        slot.ready = True
        out.append(Booted(slot.nr, pid, now - slot.started))
        if not table.ever_booted:
            table.ever_booted = True
            for old in table.inherited:       # ours serve now: the previous master's go
                table.leaving[old] = Leaving(old, None)
                out += _tell_to_go(table, old, Reason.REPLACED, now)
            table.inherited = []
        if slot.replaces:
            out += _tell_to_go(table, slot.replaces, Reason.REPLACED, now)
            slot.replaces = 0
    return out


def _tell_to_go(table, pid, reason, now):
    """SIGTERM a leaving worker; SIGKILL it at the deadline (rule 4)."""
    entry = table.leaving.get(pid)
    if entry is None:
        return []
    entry.deadline = now + table.timeouts.graceful
    return [Signal(pid, Sig.TERM, reason)]


def recycle_timed_out(table, slot, beat, now):
    """The worker answered 504 (rule 6): it leaves untold, with --graceful-timeout to finish
    its other requests; a new worker starts in its slot now."""
    pid = _to_leaving(table, slot, Reason.TIMED_OUT)
    table.leaving[pid].deadline = now + table.timeouts.graceful
    slot.due = now
    return [Recycled(slot.nr, pid, beat.busy, beat.what, beat.running(now))]


def _timeout(slot, beat, now, timeouts, stalls=()):
    what = overdue(slot, beat, now, timeouts, stalls)
    if what is None:
        if slot.answer_by:
            slot.answer_by = 0.0     # it made progress after all (the request ended as it was told)
        return ()
    if what is Overdue.WAIT:
        return ()
    if what is Overdue.ANSWER:
        slot.answer_by = now + ANSWER_GRACE
        return [Signal(slot.pid, Sig.TIMEOUT, Reason.ANSWER,
                       "worker=%d pid=%d timed out: serving %s for %.1fs (--timeout %g); answering 504"
                       % (slot.nr, slot.pid, beat.what or "a request", beat.running(now), timeouts.timeout))]
    if what is Overdue.KILL:
        slot.kill_at = now + KILL_AGAIN
        return [Signal(slot.pid, Sig.KILL, Reason.HUNG,
                       "worker=%d pid=%d still alive after SIGABRT; sending SIGKILL" % (slot.nr, slot.pid))]
    slot.kill_at = now + KILL_AFTER
    if slot.answer_by:
        slot.answer_by = 0.0
        return [Signal(slot.pid, Sig.ABORT, Reason.TIMEOUT,
                       "worker=%d pid=%d did not answer 504 within %gs (stuck in C code?); sending SIGABRT, "
                       "its stack follows" % (slot.nr, slot.pid, ANSWER_GRACE))]
    if not slot.ready:
        return [Signal(slot.pid, Sig.ABORT, Reason.BOOT_TIMEOUT,
                       "worker=%d pid=%d did not boot within --boot-timeout %g; sending SIGABRT"
                       % (slot.nr, slot.pid, timeouts.boot))]
    if beat.busy:
        doing = "serving %s for %.1fs" % (beat.what or "a request", beat.running(now))
    else:
        doing = "no heartbeat for %.1fs" % (now - beat.beat)
    return [Signal(slot.pid, Sig.ABORT, Reason.TIMEOUT,
                   "worker=%d pid=%d timed out: %s (--timeout %g); sending SIGABRT, its stack follows"
                   % (slot.nr, slot.pid, doing, timeouts.timeout))]


def stalled(table, now, asleep, wake):
    """The stall guard (rule 7). The master went to sleep at `asleep` meaning to wake by
    `wake` and runs again at `now`: if that is STALL seconds late or more, all of
    now - asleep is a stall (the dyno frozen, the master off the CPU), forgiven to every
    worker: -> its seconds (every deadline moved by them), else None."""
    if now - wake < STALL:
        return None
    gap = now - asleep
    table.stalls = table.stalls[-(STALLS_KEPT - 1):] + [(now, gap)]
    for slot in table.slots:
        if slot.kill_at:
            slot.kill_at += gap
        if slot.answer_by:
            slot.answer_by += gap
    for entry in table.leaving.values():
        if entry.deadline is not None:
            entry.deadline += gap
    if table.stop_at is not None:
        table.stop_at += gap
    for pgid, (nr, at) in table.sweeps.items():
        table.sweeps[pgid] = (nr, at + gap)
    return gap


def to_spawn(table, now):
    """Slot numbers whose worker should be forked now."""
    if table.phase is not Phase.RUNNING or table.room:
        return []
    slots = table.slots[:table.target]
    if not table.ever_booted:
        if any(s.pid for s in table.slots):
            return []
        slots = slots[:1]
    return [s.nr for s in slots if not s.pid and s.due <= now]


def deadline(table, beats, now):
    """The next moment the table needs a look, CHECK_EVERY away at most: a respawn, a
    timeout, a SIGKILL (signals and readiness wake the loop by themselves)."""
    when = [now + CHECK_EVERY]
    if table.stop_at is not None:
        when.append(table.stop_at)
    when += [e.deadline for e in table.leaving.values() if e.deadline is not None]
    when += [at for _, at in table.sweeps.values()]
    running = table.phase is Phase.RUNNING and not table.room
    stalls = table.stalls      # none, nearly always: then no credit to work out per slot
    timeout = table.timeouts.timeout
    busy_limit, idle_limit = timeout, (limit_idle(timeout) if timeout else 0.0)   # overdue.limit's two answers
    for s in table.slots:
        if not s.pid:
            if running and s.nr < table.target and (table.ever_booted or s.nr == 0):
                when.append(s.due)
        elif s.kill_at:
            when.append(s.kill_at)
        elif s.answer_by:
            when.append(s.answer_by)
        elif s.ready:
            beat = beats.get(s.pid)
            if timeout and beat is not None:
                since = progress(beat, s.started)
                when.append(since + (busy_limit if beat.busy > 0 else idle_limit)
                            + (credit(since, stalls) if stalls else 0.0))
        elif table.timeouts.boot:
            when.append(s.started + table.timeouts.boot + (credit(s.started, stalls) if stalls else 0.0))
    return min(when)


# -- what the master tells the table --------------------------------------------------------

def spawned(table, nr, pid, cell, now):
    slot = table.slots[nr]
    slot.pid, slot.cell, slot.started, slot.ready, slot.kill_at, slot.answer_by = pid, cell, now, False, 0.0, 0.0


def _to_leaving(table, slot, reason=None):
    """Move a slot's worker to `leaving`, untold yet -> its pid."""
    pid = slot.pid
    table.leaving[pid] = Leaving(pid, slot.nr, slot.cell, reason=reason)
    slot.pid = 0
    slot.ready = False
    slot.kill_at = slot.answer_by = 0.0
    return pid


def leave(table, slot, now, reason):
    """Stop a slot's worker gracefully: [Signal]. Its slot may get a new one (recycle)."""
    return _tell_to_go(table, _to_leaving(table, slot), reason, now)


def sweep(table, pgid, nr, now):
    """A dead worker left processes in its group: SIGTERM now, SIGKILL SWEEP_GRACE later."""
    table.sweeps[pgid] = (nr, now + SWEEP_GRACE)
    return [Sweep(pgid, nr, Sig.TERM)]


def recycle(table, nr, now, room=False):
    """Replace a leaking worker: it finishes its request in hand, a new one starts now,
    or, with `room`, once it is gone (rule 9)."""
    slot = table.slots[nr]
    if not slot.pid:
        return []
    slot.due = now
    if room:
        table.room.add(slot.pid)
    return leave(table, slot, now, Reason.RECYCLED)


def step_down(table, target, now):
    """Run `target` workers: those above it leave now, and no worker starts until they
    are gone (rule 9): a slot emptied by an OOM kill waits for their memory."""
    table.target = target
    out = []
    for slot in table.slots[target:]:
        if slot.pid:
            table.room.add(slot.pid)
            out += leave(table, slot, now, Reason.RETIRED)
    return out


def replace(table, nr, now):
    """The reload hand-over for one slot (refork): its worker leaves once its replacement,
    started now, is ready."""
    slot = table.slots[nr]
    if slot.pid:
        slot.replaces = _to_leaving(table, slot)
        slot.failures = 0
        slot.due = now


def detach(table, nr, now):
    """A slot's worker leaves the table without being told to go (it becomes the refork
    template, which the master watches itself): -> (pid, cell). The slot is refilled."""
    slot = table.slots[nr]
    pid, cell = slot.pid, slot.cell
    slot.pid, slot.ready, slot.kill_at, slot.due = 0, False, 0.0, now
    return pid, cell


def defer(table, nr, until):
    """Spawn slot `nr` no sooner than `until` (it waits for a refork template)."""
    table.slots[nr].due = until


def reload(table, now):
    """HUP: every slot's worker leaves once its replacement, started now, is ready."""
    table.phase = Phase.RUNNING
    for slot in table.slots:
        if slot.pid:
            slot.replaces = _to_leaving(table, slot)
            slot.failures = 0
            slot.due = now


def stop(table, now, quick):
    """TERM (graceful) or INT (quick): [Signal] to every worker, or None when a graceful
    stop is already under way (a second TERM changes nothing; INT hurries it)."""
    if table.phase is Phase.STOPPING and not quick:
        return None
    table.phase = Phase.STOPPING
    table.stop_at = now + (QUICK_STOP if quick else table.timeouts.graceful)
    sig = Sig.INT if quick else Sig.TERM
    return [Signal(pid, sig, Reason.STOP) for pid in pids(table)]


def stop_workers(table, now):
    """WINCH: every worker leaves; the master and its listeners stay (HUP brings them back)."""
    table.phase = Phase.IDLE
    out = []
    for slot in table.slots:
        if slot.pid:
            out += leave(table, slot, now, Reason.RETIRED)
    return out


def reopen(table):
    return [Signal(pid, Sig.USR1, Reason.REOPEN) for pid in pids(table)]


def gone(table, pid):
    """A reaped pid -> its Slot (still holding the worker's details until deaths.on_death
    clears them), its Leaving record (removed), or None (an orphan, not ours)."""
    entry = table.leaving.pop(pid, None)
    if entry is not None:
        table.room.discard(pid)
        return entry
    for slot in table.slots:
        if slot.pid == pid:
            return slot
    return None
