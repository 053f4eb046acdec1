"""supervisor/supervise/deaths.py and backoff.py: what a death means and when its slot
restarts, as tables; exits.py's descriptions of exit codes."""
import pytest

from supervisor import exits
from supervisor.supervise import backoff, deaths
from supervisor.supervise.deaths import Death
from supervisor.supervise.plan import Slot, Table


# -- backoff.delay ---------------------------------------------------------------------------

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
    slot = Slot(3, pid=1234, started=now - uptime, ready=True, failures=before, kill_at=now - 1)
    death = Death(nr=3, pid=1234, code=1, uptime=uptime, ready=True, requests=7)
    got = deaths.on_death(Table([slot], 4), slot, death, now, rnd)
    assert got == pytest.approx(delay, rel=1e-12, abs=0)
    assert slot.failures == after
    assert slot.due == pytest.approx(now + delay, rel=1e-12, abs=0)
    assert (slot.nr, slot.pid, slot.kill_at, slot.ready) == (3, 0, 0.0, False)


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
    (False, deaths.BOOT_FAILURES, 1, exits.WORKER_BOOT),
    (False, deaths.BOOT_FAILURES, -9, exits.WORKER_BOOT),
    (False, deaths.BOOT_FAILURES, 0, exits.WORKER_BOOT),
    (False, deaths.BOOT_FAILURES + 5, -11, exits.WORKER_BOOT),
    (False, 2, -11, None),
    (False, 2, exits.WORKER_BOOT, None),
]


@pytest.mark.parametrize("ever_booted, failures, code, expected", VERDICTS)
def test_verdict(ever_booted, failures, code, expected):
    assert deaths.verdict(Table([], 1, ever_booted=ever_booted, boot_failures=failures), code) == expected


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
    assert Death(0, 10, code, 5.0, ready, 10, aborted).cause.value == label


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
