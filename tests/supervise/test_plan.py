"""supervisor/supervise/plan.py and supervisor/supervise/backoff.py: the master's decisions as tables."""
import pytest

from supervisor import exits
from supervisor.supervise import backoff, plan
from supervisor.supervise.plan import Death, Phase, Slot

RUNNING, STOPPING, IDLE = Phase.RUNNING, Phase.STOPPING, Phase.IDLE


def slots(*specs):
    """slots({}, {'pid': 10}) -> [Slot(0), Slot(1, pid=10)]"""
    return [Slot(nr, **spec) for nr, spec in enumerate(specs)]


# -- backoff.delay ---------------------------------------------------------------------------

def test_backoff_constants():
    assert (backoff.FIRST, backoff.CAP, backoff.STABLE) == (0.1, 30.0, 10.0)


# (consecutive quick deaths, rnd, delay)
DELAYS = [
    (0, 0.5, 0.0),
    (1, 0.0, 0.0),          # the first restart is immediate, whatever the jitter
    (1, 0.999, 0.0),
    (2, 0.5, 0.1),          # then FIRST, doubling
    (3, 0.5, 0.2),
    (4, 0.5, 0.4),
    (5, 0.5, 0.8),
    (10, 0.5, 25.6),
    (11, 0.5, 30.0),        # capped at CAP
    (12, 0.5, 30.0),
    (60, 0.5, 30.0),
    (2, 0.0, 0.075),        # jitter: -25% at rnd 0 ...
    (2, 0.999, 0.12495),    # ... up to +25% as rnd nears 1
    (7, 0.0, 2.4),
    (7, 0.999, 3.9984),
    (60, 0.0, 22.5),
    (60, 0.999, 37.485),
]


@pytest.mark.parametrize("failures, rnd, expected", DELAYS)
def test_backoff_delay(failures, rnd, expected):
    assert backoff.delay(failures, rnd) == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("rnd", [0.0, 0.25, 0.5, 0.999])
def test_backoff_grows_and_stays_within_jitter(rnd):
    previous = 0.0
    for failures in range(2, 40):
        d = backoff.delay(failures, rnd)
        base = min(backoff.CAP, backoff.FIRST * 2 ** (failures - 2))
        assert 0.75 * base <= d <= 1.25 * base
        assert d >= previous
        previous = d
    assert previous == pytest.approx(backoff.CAP * (0.75 + 0.5 * rnd), rel=1e-12, abs=0)


@pytest.mark.parametrize("failures", [1026, 5000])
def test_backoff_delay_after_many_failures(failures):
    assert backoff.delay(failures, 0.5) == backoff.CAP


def test_backoff_jitter_at_the_cap_stays_within_a_quarter():
    assert backoff.CAP * 0.75 <= backoff.delay(60, 0.0) < backoff.delay(60, 0.999) <= backoff.CAP * 1.25


# -- on_death ----------------------------------------------------------------------------------

# (failures before, uptime of the dead worker, now, rnd, delay, failures after)
DEATHS = [
    (0, 1.0, 100.0, 0.5, 0.0, 1),             # first quick death: respawn at once
    (1, 1.0, 100.0, 0.5, 0.1, 2),
    (2, 9.99, 100.0, 0.5, 0.2, 3),
    (10, 0.0, 100.0, 0.0, 22.5, 11),
    (5, backoff.STABLE, 100.0, 0.5, 0.0, 1),  # up STABLE seconds: history cleared
    (5, 3600.0, 100.0, 0.999, 0.0, 1),
]


@pytest.mark.parametrize("before, uptime, now, rnd, delay, after", DEATHS)
def test_on_death(before, uptime, now, rnd, delay, after):
    slot = Slot(3, pid=1234, started=now - uptime, ready=True, failures=before, aborted=now - 1)
    death = Death(nr=3, code=1, uptime=uptime, ready=True, requests=7)
    got = plan.on_death(slot, death, now, rnd)
    assert got == pytest.approx(delay, rel=1e-12, abs=0)
    assert slot.failures == after
    assert slot.due == pytest.approx(now + delay, rel=1e-12, abs=0)
    assert (slot.nr, slot.pid, slot.aborted, slot.ready) == (3, 0, 0.0, False)


# -- verdict -----------------------------------------------------------------------------------

# (ever booted, boot failures, last exit code, verdict)
VERDICTS = [
    (True, 0, exits.APP_LOAD, None),          # once anything booted, never give up
    (True, 0, exits.USAGE, None),
    (True, 99, 1, None),
    (True, 99, -9, None),
    (False, 1, exits.APP_LOAD, exits.APP_LOAD),    # deterministic failures: at once
    (False, 1, exits.USAGE, exits.USAGE),
    (False, 0, exits.APP_LOAD, exits.APP_LOAD),
    (False, 1, 1, None),                      # anything else: after BOOT_FAILURES
    (False, 2, 1, None),
    (False, plan.BOOT_FAILURES, 1, exits.WORKER_BOOT),
    (False, plan.BOOT_FAILURES, -9, exits.WORKER_BOOT),
    (False, plan.BOOT_FAILURES, 0, exits.WORKER_BOOT),
    (False, plan.BOOT_FAILURES + 5, -11, exits.WORKER_BOOT),
    (False, 2, -11, None),
    (False, 2, exits.WORKER_BOOT, None),
]


@pytest.mark.parametrize("ever_booted, failures, code, expected", VERDICTS)
def test_verdict(ever_booted, failures, code, expected):
    assert plan.verdict(ever_booted, failures, code) == expected


def test_boot_failures_constant():
    assert plan.BOOT_FAILURES == 3


# -- to_spawn / to_retire ------------------------------------------------------------------------

# (slots, target, phase, ever booted, now, slot numbers to fork)
SPAWNS = [
    (slots({}, {}, {}), 3, RUNNING, False, 0.0, [0]),            # only slot 0 until one booted
    (slots({}, {}, {}), 3, RUNNING, True, 0.0, [0, 1, 2]),
    (slots({"pid": 10}, {}, {}), 3, RUNNING, False, 0.0, []),    # slot 0 is booting: wait for it
    (slots({"pid": 10}, {}, {}), 3, RUNNING, True, 0.0, [1, 2]),
    (slots({}, {}, {"pid": 7}), 2, RUNNING, False, 0.0, []),     # any live worker blocks, even above target
    (slots({}, {}, {}), 3, STOPPING, True, 0.0, []),
    (slots({}, {}, {}), 3, IDLE, True, 0.0, []),
    (slots({}, {}, {}), 3, STOPPING, False, 0.0, []),
    (slots({"due": 5.0}, {}, {}), 3, RUNNING, True, 4.9, [1, 2]),   # respects due
    (slots({"due": 5.0}, {}, {}), 3, RUNNING, True, 5.0, [0, 1, 2]),
    (slots({"due": 5.0}, {}, {}), 3, RUNNING, False, 4.9, []),
    (slots({"due": 5.0}, {"due": 0.0}), 2, RUNNING, False, 4.9, []),   # not slot 1 instead
    (slots({}, {}, {}), 2, RUNNING, True, 0.0, [0, 1]),             # only below target
    (slots({}), 0, RUNNING, True, 0.0, []),
    (slots({"pid": 10}, {"due": 3.0}), 2, RUNNING, True, 3.0, [1]),
]


@pytest.mark.parametrize("table, target, phase, ever_booted, now, expected", SPAWNS)
def test_to_spawn(table, target, phase, ever_booted, now, expected):
    assert plan.to_spawn(table, target, phase, ever_booted, now) == expected


# (slots, target, slot numbers to stop)
RETIRES = [
    (slots({"pid": 1}, {"pid": 2}, {"pid": 3, "retiring": True}, {}), 1, [1]),
    (slots({"pid": 1}, {"pid": 2}, {"pid": 3, "retiring": True}, {}), 0, [0, 1]),
    (slots({"pid": 1}, {"pid": 2}, {"pid": 3, "retiring": True}, {}), 4, []),
    (slots({"pid": 1}, {"pid": 2}), 2, []),
    ([], 0, []),
]


@pytest.mark.parametrize("table, target, expected", RETIRES)
def test_to_retire(table, target, expected):
    got = plan.to_retire(table, target)
    assert [s.nr for s in got] == expected
    assert all(s is table[s.nr] for s in got)


# -- overdue ----------------------------------------------------------------------------------------

# (slot, last heartbeat, now, timeout, boot timeout, verdict)
OVERDUE = [
    (Slot(0), 0.0, 1e6, 30.0, 60.0, None),                                   # no worker
    (Slot(0, pid=1, ready=True, started=0.0), 100.0, 130.0, 30.0, 60.0, None),     # exactly at the limit
    (Slot(0, pid=1, ready=True, started=0.0), 100.0, 130.5, 30.0, 60.0, "abort"),
    (Slot(0, pid=1, ready=True, started=0.0), 0.0, 1e6, 0.0, 60.0, None),          # timeout 0: never
    (Slot(0, pid=1, ready=True, started=0.0), 999.0, 1000.0, 30.0, 60.0, None),    # ready: boot time irrelevant
    (Slot(0, pid=1, ready=False, started=100.0), 0.0, 159.0, 30.0, 60.0, None),    # booting: no heartbeat yet
    (Slot(0, pid=1, ready=False, started=100.0), 0.0, 160.0, 30.0, 60.0, None),
    (Slot(0, pid=1, ready=False, started=100.0), 0.0, 160.5, 30.0, 60.0, "abort"),
    (Slot(0, pid=1, ready=False, started=100.0), 0.0, 1e6, 30.0, 0.0, None),       # boot timeout 0: never
    (Slot(0, pid=1, ready=False, started=100.0), 0.0, 160.5, 0.0, 60.0, "abort"),  # boot limit despite timeout 0
    (Slot(0, pid=1, ready=True, aborted=200.0), 0.0, 201.9, 30.0, 60.0, None),     # SIGABRT sent: wait ...
    (Slot(0, pid=1, ready=True, aborted=200.0), 0.0, 200.0 + plan.KILL_AFTER, 30.0, 60.0, "kill"),  # ... then kill
    (Slot(0, pid=1, ready=False, aborted=200.0), 0.0, 500.0, 30.0, 60.0, "kill"),
    (Slot(0, pid=0, aborted=200.0), 0.0, 500.0, 30.0, 60.0, None),
]


@pytest.mark.parametrize("slot, beat, now, timeout, boot_timeout, expected", OVERDUE)
def test_overdue(slot, beat, now, timeout, boot_timeout, expected):
    assert plan.overdue(slot, beat, now, timeout, boot_timeout) == expected


def test_kill_after():
    assert plan.KILL_AFTER == 2.0


# -- next_wakeup ------------------------------------------------------------------------------------

# (slots, target, phase, now, ever booted, check_every, seconds to sleep)
WAKEUPS = [
    ([], 0, RUNNING, 100.0, True, 1.0, 1.0),
    (slots({"pid": 1}), 1, RUNNING, 100.0, True, 1.0, 1.0),
    (slots({"due": 100.25}), 1, RUNNING, 100.0, True, 1.0, 0.25),
    (slots({"due": 50.0}), 1, RUNNING, 100.0, True, 1.0, 0.0),          # overdue spawn: no sleep
    (slots({"due": 105.0}), 1, RUNNING, 100.0, True, 1.0, 1.0),
    (slots({"pid": 1}, {"due": 100.5}), 2, RUNNING, 100.0, False, 1.0, 1.0),   # slot 1 waits for a boot
    (slots({"due": 100.5}, {"due": 100.25}), 2, RUNNING, 100.0, False, 1.0, 0.5),
    (slots({"due": 100.5}, {"due": 100.25}), 2, RUNNING, 100.0, True, 1.0, 0.25),
    (slots({"pid": 1}, {"due": 100.25}), 1, RUNNING, 100.0, True, 1.0, 1.0),   # above target
    (slots({"due": 100.25}), 1, STOPPING, 100.0, True, 1.0, 1.0),
    (slots({"due": 100.25}), 1, IDLE, 100.0, True, 1.0, 1.0),
    (slots({"pid": 1, "aborted": 99.5}), 1, STOPPING, 100.0, True, 5.0, 1.5),   # the SIGKILL deadline
    (slots({"pid": 1, "aborted": 99.0}), 1, RUNNING, 100.0, True, 5.0, 1.0),
    (slots({"pid": 1, "aborted": 90.0}), 1, RUNNING, 100.0, True, 5.0, 0.0),
    (slots({"pid": 1, "aborted": 99.5}, {"due": 100.25}), 2, RUNNING, 100.0, True, 5.0, 0.25),
]


@pytest.mark.parametrize("table, target, phase, now, ever_booted, check_every, expected", WAKEUPS)
def test_next_wakeup(table, target, phase, now, ever_booted, check_every, expected):
    assert plan.next_wakeup(table, target, phase, now, ever_booted, check_every) == expected


# -- exit_description ---------------------------------------------------------------------------------

DESCRIPTIONS = [
    (-9, "killed by SIGKILL: out of memory?"),
    (-15, "killed by SIGTERM"),
    (-6, "killed by SIGABRT"),
    (-11, "killed by SIGSEGV"),
    (-200, "killed by signal 200"),
    (0, "exit code 0"),
    (1, "exit code 1 (internal error)"),
    (2, "exit code 2 (bad configuration)"),
    (3, "exit code 3 (workers failed to boot)"),
    (4, "exit code 4 (the app failed to load)"),
    (77, "exit code 77"),
]


@pytest.mark.parametrize("code, text", DESCRIPTIONS)
def test_exit_description(code, text):
    assert exits.exit_description(code) == text


# (exit code, was ready, SIGABRT sent, label)
RESTART_REASONS = [
    (0, True, False, "max_requests"),
    (0, False, False, "crash"),          # exited before it ever served: a boot failure
    (1, True, False, "crash"),
    (-9, True, False, "crash"),
    (-6, True, True, "timeout"),
    (exits.KILLED_BY_US, True, True, "timeout"),
]


@pytest.mark.parametrize("code, ready, aborted, label", RESTART_REASONS)
def test_restart_reason(code, ready, aborted, label):
    assert plan.restart_reason(plan.Death(0, code, 5.0, ready, 10), aborted) == label


@pytest.mark.parametrize("pressure, seconds", [(0.0, 1.0), (0.5, 1.0), (0.51, 0.2), (0.9, 0.2)])
def test_guard_interval(pressure, seconds):
    from supervisor.supervise import recycle
    assert recycle.guard_interval(pressure) == seconds


@pytest.mark.parametrize("zombies_limit, threads_limit, threads, zombies, near", [
    (32, 0, 1, 0, 0.0),
    (32, 0, 50, 16, 0.5),
    (32, 100, 80, 8, 0.8),
    (0, 0, 500, 500, 0.0),        # both off
    (32, 0, 1, 40, 1.25),
])
def test_nearness(zombies_limit, threads_limit, threads, zombies, near):
    from supervisor.supervise import recycle
    limits = recycle.Limits(zombies=zombies_limit, threads=threads_limit)
    assert recycle.nearness(limits, threads, zombies) == near
