"""Refork (--refork-after): when a worker becomes the template and which slot is reforked
next, as pure functions of plain data (Pitchfork's "reforking", for Python: a worker that
has served is warm, its lazily built caches, compiled templates and URL maps are there,
and workers forked from it share those pages instead of each building its own).

Rules:
1. Generation g starts when no refork is under way and a ready worker has served
   marks[g] requests: the one that served most becomes the template. It leaves its slot
   (the slot is refilled from the template once the template can fork).
2. The template finishes its requests, stops taking new ones, checks what it holds and
   says it is ready (or refuses, naming what it holds: then reforking stops for the run).
3. Slots are then reforked one at a time, in slot order: the template's own (empty) slot
   first, then each other slot by the reload hand-over (its old worker leaves once the
   reforked one is ready). The next slot starts only when every slot has a ready worker
   and no hand-over is pending, so capacity is down one worker at most (the template's,
   while it drains).
4. When every slot has a worker forked from this template, the generation is done and
   the template exits (an idle template costs about one worker's memory: README,
   "Refork"). The next mark, if any, starts the next generation.
5. A template that is not ready within its deadline, or dies, ends the generation; its
   slots get workers from the master as before.
"""
import dataclasses
import enum


class Phase(enum.Enum):
    DRAINING = "draining"       # told to become the template: finishing its requests
    FORKING = "forking"         # ready: slots are reforked from it
    EXITING = "exiting"         # done (or given up): told to exit


class Step(enum.Enum):
    WAIT = "wait"               # a slot is booting or handing over
    REFORK = "refork"           # refork this slot now
    DONE = "done"               # every slot has a worker forked from the template


@dataclasses.dataclass
class Refork:
    generation: int             # index into the marks
    mark: int                   # requests the template had served (at least marks[generation])
    mold_pid: int
    mold_nr: int                # the slot it came from
    mold_cell: int              # its heartbeat cell, given back when it is reaped
    started: float
    deadline: float             # DRAINING: ready by then, or the generation is given up
    phase: Phase = Phase.DRAINING
    reforked: set = dataclasses.field(default_factory=set)   # pids forked from the template


def choose(marks, generation, workers):
    """workers: [(nr, pid, ready, requests)] -> the slot whose worker becomes the
    template (the ready one that served most, at least marks[generation]), or None."""
    if generation >= len(marks):
        return None
    due = [w for w in workers if w[2] and w[3] >= marks[generation]]
    if not due:
        return None
    return max(due, key=lambda w: (w[3], -w[0]))[0]


def next_slot(slots, reforked):
    """slots: [(nr, pid, ready, replaces)] of the slots in use (below the target) ->
    (Step, nr or None): wait while a slot is empty, booting or handing over, else the
    first slot whose worker did not come from the template, else done."""
    if any(not pid or not ready or replaces for _, pid, ready, replaces in slots):
        return Step.WAIT, None
    for nr, pid, _, _ in slots:
        if pid not in reforked:
            return Step.REFORK, nr
    return Step.DONE, None


def overdue(state, now):
    """True when a draining template missed its deadline."""
    return state.phase is Phase.DRAINING and now >= state.deadline
