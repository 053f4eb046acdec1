"""Refork, the master's side (--refork-after; the decisions are refork.py's): two pipes
to whichever worker is the template, SIGURG to make one, a worker forked from it for a
slot, the template's death, and giving a generation up.

The pipes are made once, before the first fork, so that every worker holds the
template's ends (any may become the template, a reforked one too): requests go down
`req` ("NR CELL\\n": fork a worker for slot NR with heartbeat cell CELL), answers come up
`rep` ("ready", or the new worker's pid). A request is answered within milliseconds (two
forks), so the master waits for it; "ready" comes while the master loops, and wakes it. A
template that refuses (it holds what cannot be shared) says why in the log and exits
with exits.REFORK_REFUSED: reforking is then off for the run.

A worker forked from the template is the master's child: the template forks, that child
forks the worker and exits, and the worker is reparented to the master, a child subreaper
(tini and Pitchfork do the same double fork). Without a subreaper, reforking is off.
"""
import os
import select
import signal
import time

from . import heartbeat, plan, refork
from .. import exits
from .refork import Phase, Step

ANSWER_WITHIN = 5.0     # seconds the master waits for the template to answer a fork request
READY_WITHIN = 10.0     # seconds a template may take to get ready beyond --graceful-timeout
HOLD = 1.0              # seconds an empty slot waits between looks while the template drains


class Channel:
    def __init__(self):
        self.req_r, self.req_w = os.pipe2(os.O_CLOEXEC)
        self.rep_r, self.rep_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def worker_ends(self):
        """In a worker after fork: close the master's ends -> (requests in, answers out)."""
        os.close(self.req_w)
        os.close(self.rep_r)
        return self.req_r, self.rep_w


def open_channel(master):
    if not master.cfg.refork_after:
        return
    if not master.reaper:
        master.log.warning("--refork-after: off, as the master is no child subreaper here "
                           "(workers forked from a template could not be its children)")
        return
    master.channel = Channel()
    master.poller.register(master.channel.rep_r, select.POLLIN)


def guard(master, now):
    """About once a second: start a generation, or give up a template that is late."""
    state = master.refork
    if master.channel is None or master.table.phase is not plan.Phase.RUNNING:
        return
    if state is None:
        workers = [(s.nr, s.pid, s.ready, b.requests) for s, _, b in master.workers()]
        nr = refork.choose(master.cfg.refork_after, master.generation, workers)
        if nr is not None:
            begin(master, nr, next(requests for n, _, _, requests in workers if n == nr), now)
    elif refork.overdue(state, now):
        give_up(master, "the template pid=%d was not ready within %.0fs" % (state.mold_pid, now - state.started))


def turn(master, now):
    """Every loop turn while a template forks: the next slot as soon as the last is ready."""
    if master.refork is not None and master.refork.phase is Phase.FORKING \
            and master.table.phase is plan.Phase.RUNNING:
        step(master, now)


def begin(master, nr, requests, now):
    pid, cell = plan.detach(master.table, nr, now)
    master.refork = refork.Refork(master.generation, requests, pid, nr, cell, now,
                                  now + master.cfg.graceful_timeout + READY_WITHIN)
    master.log.info("refork: worker=%d pid=%d served %d requests (--refork-after %s): it becomes the template; "
                    "its slot and then every other is forked from it, one at a time", nr, pid, requests,
                    ",".join(str(m) for m in master.cfg.refork_after))
    master.kill(pid, signal.SIGURG)


def step(master, now):
    state = master.refork
    slots = [(s.nr, s.pid, s.ready, s.replaces) for s in master.table.slots[:master.target]]
    what, nr = refork.next_slot(slots, state.reforked)
    if what is Step.REFORK:
        plan.replace(master.table, nr, now)      # the plan spawns it now (from the template)
    elif what is Step.DONE:
        master.log.info("refork: generation %d done in %.1fs: %d workers forked from the template; "
                        "the template pid=%d exits", state.generation + 1, now - state.started,
                        len(state.reforked), state.mold_pid)
        master.generation += 1
        state.phase = Phase.EXITING
        master.kill(state.mold_pid, signal.SIGTERM)


def on_answer(master):
    """The template's "ready", read while the master loops."""
    state = master.refork
    try:
        data = os.read(master.channel.rep_r, 512)
    except BlockingIOError:
        return
    for word in data.split():
        if state is None or state.phase is not Phase.DRAINING:
            master.log.warning("refork: unexpected word from a template: %r", word)
        elif word == b"ready":
            state.phase = Phase.FORKING
            now = time.monotonic()
            for slot in master.table.slots[:master.target]:
                if not slot.pid:
                    plan.defer(master.table, slot.nr, now)     # the waiting slots: now
            master.log.info("refork: the template pid=%d is ready (%.2fs after it was asked)", state.mold_pid,
                            now - state.started)


def holds(master):
    """True while spawns wait for a draining template."""
    return master.refork is not None and master.refork.phase is Phase.DRAINING


def spawn(master, nr, now):
    """Fork slot `nr`'s worker from the template. True when done; False: fork it as before."""
    state = master.refork
    if state is None or state.phase is not Phase.FORKING:
        return False
    cell = master.heartbeat.take()
    master.heartbeat.set(cell, 0, heartbeat.BOOTING, now)
    pid = ask(master, b"%d %d\n" % (nr, cell))
    if not pid:
        master.heartbeat.give_back(cell)
        give_up(master, "the template pid=%d did not fork worker=%d" % (state.mold_pid, nr))
        return False
    state.reforked.add(pid)
    plan.spawned(master.table, nr, pid, cell, now)
    master.log.debug("worker=%d pid=%d forked from the template pid=%d", nr, pid, state.mold_pid)
    return True


def ask(master, request):
    """Write a request, wait for its answer -> the pid, or 0."""
    ch = master.channel
    try:
        os.write(ch.req_w, request)
    except OSError:
        return 0
    poller = select.poll()
    poller.register(ch.rep_r, select.POLLIN)
    data = b""
    deadline = time.monotonic() + ANSWER_WITHIN
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            return 0
        try:
            chunk = os.read(ch.rep_r, 64)
        except BlockingIOError:
            continue
        if not chunk:
            return 0
        data += chunk
    text = data.strip()
    return int(text) if text.isdigit() else 0


def give_up(master, why):
    state = master.refork
    if state is None or state.phase is Phase.EXITING:
        return
    master.log.warning("refork: %s; giving generation %d up (slots not yet reforked keep their workers)",
                       why, state.generation + 1)
    state.phase = Phase.EXITING
    master.generation += 1
    master.kill(state.mold_pid, signal.SIGTERM)


def reaped(master, pid, code, describe):
    """True when `pid` was the template (its death handled here)."""
    state = master.refork
    if state is None or pid != state.mold_pid:
        return False
    master.heartbeat.give_back(state.mold_cell)
    master.refork = None
    if code == exits.REFORK_REFUSED:
        master.generation = len(master.cfg.refork_after)     # its line said why: no more tries
        master.log.warning("refork: off for this run (the template's line above says why); its slot's "
                           "worker starts from the master")
    elif state.phase is not Phase.EXITING:
        master.log.warning("refork: the template pid=%d died (%s); generation %d given up",
                           pid, describe(code), state.generation + 1)
        master.generation += 1
    else:
        master.log.info("refork: the template pid=%d exited (%s)", pid, describe(code))
    return True


def alive(master):
    return master.refork is not None
