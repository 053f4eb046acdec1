"""supervisor/supervise/plan.py: the worker table and its actions, as tables and as
scenarios played step by step (h11's style: no processes, no clock)."""
import pytest

from supervisor.supervise import plan
from supervisor.supervise.heartbeat import BOOTING, READY, STOPPING, Beat
from supervisor.supervise.plan import (Booted, Leaving, Overdue, Phase, Reason, Sig, Signal, Slot, Spawn,
                                       Table, Timeouts)

RUNNING, STOPPING_, IDLE = Phase.RUNNING, Phase.STOPPING, Phase.IDLE
OFF = Timeouts(timeout=0.0, boot=0.0, graceful=30.0)
T = Timeouts(timeout=30.0, boot=60.0, graceful=30.0)


def slots(*specs):
    """slots({}, {'pid': 10}) -> [Slot(0), Slot(1, pid=10)]"""
    return [Slot(nr, **spec) for nr, spec in enumerate(specs)]


def beat(at, busy=0, since=0.0, what="", state=READY, pid=0, requests=0):
    return Beat(pid, state, at, requests, 0.0, busy, since, what)


def table(*specs, target=None, timeouts=OFF, **kw):
    kw.setdefault("ever_booted", True)
    return Table(slots(*specs), len(specs) if target is None else target, timeouts, **kw)


def brief(actions):
    """Actions as short tuples, easy to read in a table: ('spawn', 1), ('TERM', 10, 'replaced')."""
    out = []
    for a in actions:
        if isinstance(a, Spawn):
            out.append(("spawn", a.nr))
        elif isinstance(a, Booted):
            out.append(("booted", a.nr, a.pid))
        else:
            out.append((a.sig.name, a.pid, a.reason.value))
    return out


# -- to_spawn ----------------------------------------------------------------------------------

# (slots, target, phase, ever booted, now, slot numbers to fork)
SPAWNS = [
    (slots({}, {}, {}), 3, RUNNING, False, 0.0, [0]),            # only slot 0 until one booted
    (slots({}, {}, {}), 3, RUNNING, True, 0.0, [0, 1, 2]),
    (slots({"pid": 10}, {}, {}), 3, RUNNING, False, 0.0, []),    # slot 0 is booting: wait for it
    (slots({"pid": 10}, {}, {}), 3, RUNNING, True, 0.0, [1, 2]),
    (slots({}, {}, {"pid": 7}), 2, RUNNING, False, 0.0, []),     # any live worker blocks, even above target
    (slots({}, {}, {}), 3, STOPPING_, True, 0.0, []),
    (slots({}, {}, {}), 3, IDLE, True, 0.0, []),
    (slots({}, {}, {}), 3, STOPPING_, False, 0.0, []),
    (slots({"due": 5.0}, {}, {}), 3, RUNNING, True, 4.9, [1, 2]),   # respects due
    (slots({"due": 5.0}, {}, {}), 3, RUNNING, True, 5.0, [0, 1, 2]),
    (slots({"due": 5.0}, {}, {}), 3, RUNNING, False, 4.9, []),
    (slots({"due": 5.0}, {"due": 0.0}), 2, RUNNING, False, 4.9, []),   # not slot 1 instead
    (slots({}, {}, {}), 2, RUNNING, True, 0.0, [0, 1]),             # only below target
    (slots({}), 0, RUNNING, True, 0.0, []),
    (slots({"pid": 10}, {"due": 3.0}), 2, RUNNING, True, 3.0, [1]),
]


@pytest.mark.parametrize("table_, target, phase, ever_booted, now, expected", SPAWNS)
def test_to_spawn(table_, target, phase, ever_booted, now, expected):
    assert plan.to_spawn(Table(table_, target, OFF, phase, ever_booted=ever_booted), now) == expected


# -- retiring slots above the target (TTOU, -w change) ----------------------------------------------

# (slots, target, actions, pids leaving afterwards)
RETIRES = [
    (slots({"pid": 1}, {"pid": 2}, {}), 1, [("TERM", 2, "retired")], [2]),
    (slots({"pid": 1}, {"pid": 2}, {}), 0, [("TERM", 1, "retired"), ("TERM", 2, "retired")], [1, 2]),
    (slots({"pid": 1}, {"pid": 2}, {}), 4, [("spawn", 2), ("spawn", 3)], []),
    (slots({"pid": 1}, {"pid": 2}), 2, [], []),
    ([], 0, [], []),
]


@pytest.mark.parametrize("table_, target, expected, leaving", RETIRES)
def test_retire_above_target(table_, target, expected, leaving):
    t = Table(table_, target, OFF, ever_booted=True)
    assert brief(plan.actions(t, {}, 100.0)) == expected
    assert sorted(t.leaving) == leaving
    assert all(e.deadline == 130.0 for e in t.leaving.values())     # SIGKILL after --graceful-timeout
    assert not any(s.pid for s in t.slots[target:])
    assert [a for a in plan.actions(t, {}, 100.5) if not isinstance(a, Spawn)] == []    # told once


def test_a_retired_slot_lets_the_worker_it_was_replacing_go():
    t = table({"pid": 1}, {"replaces": 2}, target=1, leaving={2: Leaving(2, 1, 5)})
    assert brief(plan.actions(t, {}, 10.0)) == [("TERM", 2, "retired")]
    assert t.slots[1].replaces == 0 and t.leaving[2].deadline == 40.0


# -- overdue ----------------------------------------------------------------------------------------

# (slot, its worker's beat, now, timeouts, verdict)
OVERDUE = [
    (Slot(0), None, 1e6, T, None),                                                 # no worker
    (Slot(0, pid=1, ready=True), beat(100.0), 130.0, T, None),                      # exactly at the limit
    (Slot(0, pid=1, ready=True), beat(100.0), 130.5, T, Overdue.ABORT),
    (Slot(0, pid=1, ready=True), beat(0.0), 1e6, Timeouts(0.0, 60.0), None),        # timeout 0: never
    (Slot(0, pid=1, ready=True), beat(999.0), 1000.0, T, None),                     # ready: boot time irrelevant
    (Slot(0, pid=1, ready=True), None, 1000.0, T, None),                            # no beat read: wait
    (Slot(0, pid=1, started=100.0), beat(0.0, state=BOOTING), 159.0, T, None),      # booting: no heartbeat yet
    (Slot(0, pid=1, started=100.0), beat(0.0, state=BOOTING), 160.0, T, None),
    (Slot(0, pid=1, started=100.0), beat(0.0, state=BOOTING), 160.5, T, Overdue.ABORT),
    (Slot(0, pid=1, started=100.0), None, 1e6, Timeouts(30.0, 0.0), None),         # boot timeout 0: never
    (Slot(0, pid=1, started=100.0), None, 160.5, Timeouts(0.0, 60.0), Overdue.ABORT),  # boot limit despite timeout 0
    (Slot(0, pid=1, ready=True, kill_at=202.0), beat(0.0), 201.9, T, None),        # SIGABRT sent: wait ...
    (Slot(0, pid=1, ready=True, kill_at=202.0), beat(0.0), 202.0, T, Overdue.KILL),  # ... then kill
    (Slot(0, pid=1, kill_at=202.0), None, 500.0, T, Overdue.KILL),
    (Slot(0, pid=0, kill_at=202.0), None, 500.0, T, None),
    # issue 11: a request in progress counts from its start, not from the tick before it
    (Slot(0, pid=1, ready=True), beat(99.1, busy=1, since=100.0), 129.9, T, None),  # tick says 30.8 s
    (Slot(0, pid=1, ready=True), beat(99.1, busy=1, since=100.0), 130.0, T, None),
    (Slot(0, pid=1, ready=True), beat(99.1, busy=1, since=100.0), 130.01, T, Overdue.ANSWER),   # issue 24: a 504
    # threads: the loop ticks on, the oldest request in progress is stuck
    (Slot(0, pid=1, ready=True), beat(129.5, busy=3, since=100.0), 130.5, T, Overdue.ANSWER),
    (Slot(0, pid=1, ready=True), beat(129.5, busy=0, since=100.0), 130.5, T, None),   # since is stale when idle
    # a torn read: busy written, since still the idle cell's 0.0 (or older than the worker)
    (Slot(0, pid=1, ready=True, started=50.0), beat(129.5, busy=1, since=0.0), 130.5, T, None),
    (Slot(0, pid=1, ready=True, started=50.0), beat(129.5, busy=1, since=49.0), 130.5, T, None),
    (Slot(0, pid=1, ready=True, started=50.0), beat(99.0, busy=1, since=0.0), 130.5, T, Overdue.ANSWER),  # the tick is late
    (Slot(0, pid=1, ready=True, started=50.0), beat(129.5, busy=1, since=50.0), 130.5, T, Overdue.ANSWER),
    # issue 24: told to answer 504, it has ANSWER_GRACE to say so; no answer: SIGABRT
    (Slot(0, pid=1, ready=True, answer_by=131.0), beat(99.1, busy=1, since=100.0), 130.9, T, Overdue.WAIT),
    (Slot(0, pid=1, ready=True, answer_by=131.0), beat(99.1, busy=1, since=100.0), 131.0, T, Overdue.ABORT),
    (Slot(0, pid=1, ready=True, answer_by=131.0), beat(130.2), 130.5, T, None),      # the request ended: fine
    (Slot(0, pid=1, ready=True, answer_by=131.0), beat(129.5, busy=1, since=130.1), 131.5, T, None),   # another one
    # an idle worker beats once a second: with --timeout 1 its silence counts past 2 s only
    (Slot(0, pid=1, ready=True), beat(100.0), 101.9, Timeouts(1.0, 60.0), None),
    (Slot(0, pid=1, ready=True), beat(100.0), 102.1, Timeouts(1.0, 60.0), Overdue.ABORT),
    (Slot(0, pid=1, ready=True), beat(100.0, busy=1, since=100.0), 101.1, Timeouts(1.0, 60.0), Overdue.ANSWER),
]


@pytest.mark.parametrize("slot, beat_, now, timeouts, expected", OVERDUE)
def test_overdue(slot, beat_, now, timeouts, expected):
    assert plan.overdue(slot, beat_, now, timeouts) is expected


# -- deadline ---------------------------------------------------------------------------------------

# (table, beats, now, the next moment it needs a look)
DEADLINES = [
    (table(), {}, 100.0, 101.0),
    (table({"pid": 1, "ready": True}), {}, 100.0, 101.0),
    (table({"due": 100.25}), {}, 100.0, 100.25),
    (table({"due": 50.0}), {}, 100.0, 50.0),                      # overdue spawn: at once
    (table({"due": 105.0}), {}, 100.0, 101.0),
    (table({"pid": 1}, {"due": 100.5}, ever_booted=False), {}, 100.0, 101.0),   # slot 1 waits for a boot
    (table({"due": 100.5}, {"due": 100.25}, ever_booted=False), {}, 100.0, 100.5),
    (table({"due": 100.5}, {"due": 100.25}), {}, 100.0, 100.25),
    (table({"pid": 1}, {"due": 100.25}, target=1), {}, 100.0, 101.0),           # above target
    (table({"due": 100.25}, phase=STOPPING_, stop_at=130.0), {}, 100.0, 101.0),
    (table({"due": 100.25}, phase=IDLE), {}, 100.0, 101.0),
    (table({"pid": 1, "kill_at": 100.5}, phase=STOPPING_, stop_at=130.0), {}, 100.0, 100.5),   # the SIGKILL
    (table({"pid": 1, "kill_at": 101.0}), {}, 100.0, 101.0),
    (table({"pid": 1, "kill_at": 92.0}), {}, 100.0, 92.0),
    (table({"pid": 1, "kill_at": 101.5}, {"due": 100.25}), {}, 100.0, 100.25),
    (table(phase=STOPPING_, stop_at=100.4), {}, 100.0, 100.4),
    (table(leaving={7: Leaving(7, 0, 3, 100.3)}), {}, 100.0, 100.3),
    (table(leaving={7: Leaving(7, 0, 3, None)}), {}, 100.0, 101.0),            # waits for its replacement
    # the timeout falls due before the next look: wake for it
    (table({"pid": 1, "ready": True}, timeouts=T), {1: beat(70.5)}, 100.0, 100.5),
    (table({"pid": 1, "ready": True}, timeouts=T), {1: beat(99.0, busy=1, since=70.2)}, 100.0, 100.2),
    (table({"pid": 1, "ready": True}, timeouts=T), {1: beat(99.5)}, 100.0, 101.0),
    (table({"pid": 1, "started": 40.3}, timeouts=T), {}, 100.0, 100.3),        # --boot-timeout
]


@pytest.mark.parametrize("table_, beats, now, expected", DEADLINES)
def test_deadline(table_, beats, now, expected):
    assert plan.deadline(table_, beats, now) == pytest.approx(expected, abs=1e-9)


# -- scenarios, step by step ---------------------------------------------------------------------

def test_boot_then_ready():
    t = plan.new_table(2, T)
    assert brief(plan.actions(t, {}, 0.0)) == [("spawn", 0)]              # one until something booted
    plan.spawned(t, 0, 10, 0, 0.0)
    assert brief(plan.actions(t, {10: beat(0.0, state=BOOTING)}, 0.1)) == []
    got = plan.actions(t, {10: beat(0.2)}, 0.2)
    assert got == [Booted(0, 10, 0.2), Spawn(1)]
    assert t.ever_booted and t.slots[0].ready
    plan.spawned(t, 1, 11, 1, 0.2)
    assert brief(plan.actions(t, {10: beat(0.2), 11: beat(0.3)}, 0.3)) == [("booted", 1, 11)]
    assert brief(plan.actions(t, {10: beat(0.2), 11: beat(0.3)}, 0.4)) == []     # booted once


def test_reload_hands_over_each_slot_when_its_new_worker_is_ready():
    t = table({"pid": 10, "ready": True, "cell": 0}, {"pid": 11, "ready": True, "cell": 1}, timeouts=T)
    plan.reload(t, 50.0)
    assert t.leaving == {10: Leaving(10, 0, 0, None), 11: Leaving(11, 1, 1, None)}   # untold yet
    assert [s.replaces for s in t.slots] == [10, 11]
    assert brief(plan.actions(t, {}, 50.0)) == [("spawn", 0), ("spawn", 1)]
    plan.spawned(t, 0, 20, 2, 50.0)
    plan.spawned(t, 1, 21, 3, 50.0)
    assert plan.pids(t) == [20, 21, 10, 11]
    # slot 1's new worker is ready first: only its predecessor goes
    assert brief(plan.actions(t, {20: beat(0.0, state=BOOTING), 21: beat(50.4)}, 50.4)) == \
        [("booted", 1, 21), ("TERM", 11, "replaced")]
    assert t.leaving[11].deadline == 80.4 and t.leaving[10].deadline is None
    assert brief(plan.actions(t, {20: beat(50.5), 21: beat(50.4)}, 50.5)) == \
        [("booted", 0, 20), ("TERM", 10, "replaced")]
    # the old ones stop in time; one does not and is killed at its deadline, then every KILL_AGAIN
    assert isinstance(plan.gone(t, 11), Leaving)
    assert brief(plan.actions(t, {}, 80.49)) == []
    assert brief(plan.actions(t, {}, 80.5)) == [("KILL", 10, "grace over")]
    assert brief(plan.actions(t, {}, 81.0)) == []
    assert brief(plan.actions(t, {}, 80.5 + plan.KILL_AGAIN)) == [("KILL", 10, "grace over")]
    assert plan.gone(t, 10) == Leaving(10, 0, 0, 80.5 + 2 * plan.KILL_AGAIN) and t.leaving == {}


def test_reload_after_winch_brings_workers_back():
    t = table({"pid": 10, "ready": True}, {"pid": 11, "ready": True})
    assert brief(plan.stop_workers(t, 5.0)) == [("TERM", 10, "retired"), ("TERM", 11, "retired")]
    assert t.phase is IDLE and plan.actions(t, {}, 6.0) == []
    plan.gone(t, 10)
    plan.gone(t, 11)
    plan.reload(t, 7.0)
    assert brief(plan.actions(t, {}, 7.0)) == [("spawn", 0), ("spawn", 1)]


def test_a_reload_whose_new_worker_never_boots_keeps_the_old_one_serving():
    t = table({"pid": 10, "ready": True}, timeouts=T)
    plan.reload(t, 0.0)
    plan.spawned(t, 0, 20, 1, 0.0)
    assert brief(plan.actions(t, {20: beat(0.0, state=BOOTING)}, 59.0)) == []
    assert t.leaving[10].deadline is None


def test_inherited_workers_go_once_one_of_ours_is_ready():
    t = plan.new_table(1, T, inherited=[500, 501])
    plan.actions(t, {}, 0.0)
    plan.spawned(t, 0, 10, 0, 0.0)
    assert brief(plan.actions(t, {10: beat(0.3)}, 0.3)) == \
        [("booted", 0, 10), ("TERM", 500, "replaced"), ("TERM", 501, "replaced")]
    assert t.leaving[500] == Leaving(500, None, None, 30.3) and t.inherited == []
    assert plan.label(t.leaving[500].nr) == "worker=inherited" and plan.label(3) == "worker=3"


@pytest.mark.parametrize("quick, sig, deadline", [(False, "TERM", 130.0), (True, "INT", 100.0 + plan.QUICK_STOP)])
def test_stop_escalates_to_kill_at_the_deadline(quick, sig, deadline):
    t = table({"pid": 10, "ready": True}, {"due": 100.0}, leaving={7: Leaving(7, 0, 3, 200.0)})
    assert brief(plan.stop(t, 100.0, quick)) == [(sig, 10, "stop"), (sig, 7, "stop")]
    assert t.phase is STOPPING_
    assert brief(plan.actions(t, {}, deadline - 0.01)) == []              # nothing spawned while stopping
    assert brief(plan.actions(t, {}, deadline)) == [("KILL", 10, "stop overdue"), ("KILL", 7, "stop overdue")]
    assert brief(plan.actions(t, {}, deadline + 1.0)) == []
    assert brief(plan.actions(t, {}, deadline + plan.KILL_AGAIN)) == \
        [("KILL", 10, "stop overdue"), ("KILL", 7, "stop overdue")]


def test_a_second_term_changes_nothing_and_int_hurries_it():
    t = table({"pid": 10, "ready": True})
    plan.stop(t, 100.0, False)
    assert plan.stop(t, 101.0, False) is None and t.stop_at == 130.0
    assert brief(plan.stop(t, 102.0, True)) == [("INT", 10, "stop")]
    assert t.stop_at == 102.0 + plan.QUICK_STOP


def test_timeout_asks_for_a_504_then_aborts_then_kills():
    t = table({"pid": 10, "ready": True}, timeouts=Timeouts(2.0, 60.0, 30.0))
    beats = {10: beat(99.0, busy=1, since=100.0, what="GET /hang")}
    assert plan.actions(t, beats, 102.0) == []
    got = plan.actions(t, beats, 102.1)
    assert got == [Signal(10, Sig.TIMEOUT, Reason.ANSWER, "worker=0 pid=10 timed out: serving GET /hang for "
                          "2.1s (--timeout 2); answering 504")]
    assert plan.deadline(t, beats, 102.1) == 102.1 + plan.ANSWER_GRACE
    assert plan.actions(t, beats, 102.1 + plan.ANSWER_GRACE - 0.01) == []      # once, then its grace
    got = plan.actions(t, beats, 103.1)         # no answer: stuck in C code
    assert got == [Signal(10, Sig.ABORT, Reason.TIMEOUT, "worker=0 pid=10 did not answer 504 within 1s "
                          "(stuck in C code?); sending SIGABRT, its stack follows")]
    assert plan.actions(t, beats, 103.1 + plan.KILL_AFTER - 0.01) == []
    assert brief(plan.actions(t, beats, 103.1 + plan.KILL_AFTER)) == [("KILL", 10, "hung")]
    assert plan.actions(t, beats, 105.2) == []                            # not again at once
    assert brief(plan.actions(t, beats, 105.1 + plan.KILL_AGAIN)) == [("KILL", 10, "hung")]


def test_timeout_without_a_request_counts_from_the_tick():
    t = table({"pid": 10, "ready": True}, timeouts=Timeouts(2.0, 60.0, 30.0))
    assert [a.note for a in plan.actions(t, {10: beat(100.0)}, 102.5)] == \
        ["worker=0 pid=10 timed out: no heartbeat for 2.5s (--timeout 2); sending SIGABRT, its stack follows"]


def test_boot_timeout():
    t = table({"pid": 10, "started": 0.0}, timeouts=T)
    assert [(a.sig, a.reason, a.note) for a in plan.actions(t, {10: beat(0.0, state=BOOTING)}, 60.5)] == \
        [(Sig.ABORT, Reason.BOOT_TIMEOUT, "worker=0 pid=10 did not boot within --boot-timeout 60; sending SIGABRT")]


def test_recycle_replaces_the_worker_at_once():
    t = table({"pid": 10, "ready": True, "cell": 4, "due": 3.0}, {"pid": 11, "ready": True})
    assert brief(plan.recycle(t, 0, 50.0)) == [("TERM", 10, "recycled")]
    assert t.leaving == {10: Leaving(10, 0, 4, 80.0)}
    assert brief(plan.actions(t, {11: beat(50.0)}, 50.0)) == [("spawn", 0)]
    assert plan.recycle(t, 0, 50.0) == []                                 # nothing left to recycle


def test_a_stopping_worker_is_still_ours():
    t = table({"pid": 10, "ready": True})
    assert brief(plan.actions(t, {10: beat(5.0, state=STOPPING)}, 5.0)) == []
    assert plan.gone(t, 10) is t.slots[0] and plan.gone(t, 99) is None


def test_reopen_reaches_every_worker():
    t = table({"pid": 10}, leaving={7: Leaving(7, 0, 3, None)})
    assert brief(plan.reopen(t)) == [("USR1", 10, "reopen logs"), ("USR1", 7, "reopen logs")]


# -- issue 24: a worker that answered 504 is recycled --------------------------------------------

TIMED_OUT = READY | 8       # heartbeat.TIMED_OUT over the state the worker had (STOPPING in practice)
G = Timeouts(timeout=3.0, boot=60.0, graceful=25.0)

# (slot, its beat, actions, leaving afterwards, slot pid and due afterwards)
RECYCLES = [
    # it answered: leaves untold (no SIGTERM: it stopped by itself), replaced now, killed at graceful
    ({"pid": 10, "ready": True, "cell": 2, "answer_by": 104.0}, beat(103.5, busy=4, since=100.0, what="GET /hang",
                                                                   state=STOPPING | 8),
     [("recycled", 10, 4, "GET /hang"), ("spawn", 0)], {10: Leaving(10, 0, 2, 128.5, Reason.TIMED_OUT)}, (0, 103.5)),
    ({"pid": 10, "ready": True, "cell": 2}, beat(103.5, busy=1, since=100.0, state=TIMED_OUT),
     [("recycled", 10, 1, ""), ("spawn", 0)], {10: Leaving(10, 0, 2, 128.5, Reason.TIMED_OUT)}, (0, 103.5)),
    # not ready yet in our table: its cell is not read as a verdict (a booting worker answers nothing)
    ({"pid": 10, "cell": 2, "started": 103.0}, beat(103.5, state=STOPPING | 8), [], {}, (10, 0.0)),
    # the flag without a verdict of ours (a stray USR2 it found late) still means it stopped: replaced
    ({"pid": 10, "ready": True, "cell": 2}, beat(103.5, state=STOPPING | 8),
     [("recycled", 10, 0, ""), ("spawn", 0)], {10: Leaving(10, 0, 2, 128.5, Reason.TIMED_OUT)}, (0, 103.5)),
]


def brief_recycles(actions):
    return [("recycled", a.pid, a.busy, a.what) if isinstance(a, plan.Recycled) else brief([a])[0]
            for a in actions]


@pytest.mark.parametrize("slot, beat_, expected, leaving, after", RECYCLES)
def test_recycle_after_timeout(slot, beat_, expected, leaving, after):
    t = table(slot, timeouts=G)
    assert brief_recycles(plan.actions(t, {10: beat_}, 103.5)) == expected
    assert t.leaving == leaving
    assert (t.slots[0].pid, t.slots[0].due) == after


def test_a_recycled_worker_that_will_not_finish_is_killed_at_graceful():
    t = table({"pid": 10, "ready": True, "cell": 2}, timeouts=G)
    plan.actions(t, {10: beat(103.5, busy=2, since=100.0, state=STOPPING | 8)}, 103.5)
    plan.spawned(t, 0, 11, 3, 103.5)
    assert plan.deadline(t, {}, 128.0) == 128.5
    assert brief(plan.actions(t, {}, 128.5)) == [("KILL", 10, "grace over")]
    assert isinstance(plan.gone(t, 10), Leaving)


# -- issue 24: the stall guard -------------------------------------------------------------------

# (the master's last turn, when it meant to wake at the latest, now, stall seconds or None)
STALLS = [
    (100.0, 101.0, 101.0, None),          # on time
    (100.0, 101.0, 101.9, None),          # late, but less than STALL: a loaded box
    (100.0, 101.0, 102.0, 2.0),           # STALL late: the whole gap since the last turn
    (100.0, 100.2, 109.0, 9.0),           # frozen 9 s (docker pause, a frozen cgroup)
    (100.0, 100.0, 100.5, None),          # a wait of 0 (something was due): half a second of work is no stall
]


@pytest.mark.parametrize("asleep, wake, now, expected", STALLS)
def test_stalled(asleep, wake, now, expected):
    t = table({"pid": 10, "ready": True})
    assert plan.stalled(t, now, asleep, wake) == expected
    assert t.stalls == ([] if expected is None else [(now, expected)])


# (the worker's last progress, the stalls [(noticed at, seconds)], now, seconds that count)
ELAPSED = [
    (100.0, [], 105.0, 5.0),
    (100.0, [(109.0, 9.0)], 109.0, 0.0),            # frozen since before its progress: none counts
    (100.0, [(109.0, 6.0)], 109.0, 3.0),            # it ran 3 s, then 6 s frozen: 3 s are its own
    (100.0, [(99.0, 9.0)], 105.0, 5.0),             # a stall before its progress changes nothing
    (100.0, [(104.0, 2.0), (110.0, 3.0)], 111.0, 6.0),
    (108.0, [(109.0, 9.0)], 110.0, 1.0),            # progress inside the stall: at most the time since it
]


@pytest.mark.parametrize("since, stalls, now, expected", ELAPSED)
def test_elapsed_leaves_the_stalls_out(since, stalls, now, expected):
    assert plan.elapsed(since, now, stalls) == pytest.approx(expected)


def test_after_a_freeze_no_worker_is_judged_on_the_frozen_time():
    """Issue 24: 2 workers, --timeout 4, the whole dyno frozen 9 s. One serves a request that
    had run 2 s of its own, the other is idle. Before the guard both were aborted."""
    t = table({"pid": 10, "ready": True}, {"pid": 11, "ready": True}, timeouts=Timeouts(4.0, 60.0, 30.0))
    beats = {10: beat(99.5, busy=1, since=98.0, what="GET /slow"), 11: beat(99.6)}
    assert plan.actions(t, beats, 100.0) == []
    assert plan.stalled(t, 109.0, 100.0, 100.5) == 9.0        # woke 8.5 s late: 9 s forgiven
    assert plan.actions(t, beats, 109.0) == []
    assert plan.deadline(t, beats, 109.0) == 110.0            # CHECK_EVERY; the request is due at 111
    assert brief(plan.actions(t, beats, 111.1)) == [("TIMEOUT", 10, "answer 504")]   # its own 2 s + 2.1 s
    assert brief(plan.actions(t, beats, 114.0)) == [("ABORT", 10, "timeout"), ("ABORT", 11, "timeout")]


def test_a_stall_moves_every_deadline():
    t = table({"pid": 10, "ready": True, "kill_at": 102.0}, {"pid": 11, "ready": True, "answer_by": 101.0},
              leaving={7: Leaving(7, 0, 3, 120.0)}, stop_at=130.0, sweeps={50: (0, 102.0)})
    plan.stalled(t, 105.0, 100.0, 100.5)
    assert (t.slots[0].kill_at, t.slots[1].answer_by) == (107.0, 106.0)
    assert (t.leaving[7].deadline, t.stop_at, t.sweeps[50]) == (125.0, 135.0, (0, 107.0))


def test_stalls_kept_are_bounded():
    t = table({"pid": 10, "ready": True})
    for i in range(40):
        plan.stalled(t, 100.0 + 10 * i + 5, 100.0 + 10 * i, 100.0 + 10 * i)
    assert len(t.stalls) == plan.STALLS_KEPT and t.stalls[-1] == (495.0, 5.0)


# -- issue 24: what a dead worker left in its group ------------------------------------------------

def test_sweep_terms_now_and_kills_later():
    t = table({"pid": 10, "ready": True})
    assert plan.sweep(t, 812, 0, 50.0) == [plan.Sweep(812, 0, Sig.TERM)]
    assert plan.deadline(t, {}, 50.0) == min(50.0 + plan.SWEEP_GRACE, 50.0 + plan.CHECK_EVERY)
    assert plan.deadline(t, {}, 51.5) == 50.0 + plan.SWEEP_GRACE
    assert plan.actions(t, {10: beat(50.0)}, 50.0 + plan.SWEEP_GRACE - 0.01) == []
    assert plan.actions(t, {10: beat(52.0)}, 50.0 + plan.SWEEP_GRACE) == [plan.Sweep(812, 0, Sig.KILL)]
    assert t.sweeps == {}


# -- room first (rule 9) --------------------------------------------------------------------

def test_a_recycle_for_memory_starts_the_replacement_once_the_old_worker_is_gone():
    t = table({"pid": 10, "ready": True, "cell": 4}, {"pid": 11, "ready": True})
    assert brief(plan.recycle(t, 0, 50.0, room=True)) == [("TERM", 10, "recycled")]
    assert brief(plan.actions(t, {11: beat(50.0)}, 50.0)) == []           # 10 still holds its memory
    assert plan.deadline(t, {11: beat(50.0)}, 50.0) == 51.0                # no spin on slot 0's past due
    assert plan.gone(t, 10) == Leaving(10, 0, 4, 80.0) and t.room == set()
    assert brief(plan.actions(t, {11: beat(50.5)}, 50.5)) == [("spawn", 0)]


def test_a_step_down_retires_the_top_slot_and_holds_every_start_until_it_is_gone():
    # worker 1 was OOM-killed (its slot is empty, due now); one fewer: worker 2 leaves,
    # and worker 1 starts only once worker 2's memory is free
    t = table({"pid": 10, "ready": True}, {"due": 5.0}, {"pid": 12, "ready": True, "cell": 6})
    assert brief(plan.step_down(t, 2, 5.0)) == [("TERM", 12, "retired")]
    assert t.target == 2 and t.room == {12}
    beats = {10: beat(5.0)}
    assert brief(plan.actions(t, beats, 5.0)) == []
    assert plan.gone(t, 12) == Leaving(12, 2, 6, 35.0)
    assert brief(plan.actions(t, beats, 5.1)) == [("spawn", 1)]
    plan.spawned(t, 1, 13, 7, 5.1)
    assert brief(plan.actions(t, beats, 5.2)) == []                       # slot 2 stays empty


def test_a_step_down_from_the_top_slot_itself_retires_nothing():
    t = table({"pid": 10, "ready": True}, {"pid": 11, "ready": True}, {"due": 5.0})
    assert plan.step_down(t, 2, 5.0) == [] and t.room == set()
    assert brief(plan.actions(t, {10: beat(5.0), 11: beat(5.0)}, 5.0)) == []
