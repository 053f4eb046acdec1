"""supervisor/supervise/deaths.py and backoff.py: what a death means and when its slot
restarts, as tables; exits.py's descriptions of exit codes."""
import pytest

from supervisor import exits
from supervisor.supervise import backoff, deaths
from supervisor.supervise.deaths import Death
from supervisor.supervise.heartbeat import BOOTING, EXITING, READY, STOPPING, Beat
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


# -- backoff.paced: the token bucket ------------------------------------------------------------

# (tokens, refilled, now, delay, tokens after)
PACED = [
    (3.0, 0.0, 100.0, 0.0, 2.0),             # a full bucket: at once
    (2.0, 100.0, 100.0, 0.0, 1.0),
    (1.0, 100.0, 100.0, 0.0, 0.0),           # the last token of the burst
    (0.0, 100.0, 100.0, 1.0, -1.0),          # then one a second (RATE)
    (0.0, 100.0, 100.25, 0.75, -0.75),
    (-1.0, 100.0, 101.0, 1.0, -1.0),         # a restart paid for at 101: the next waits a second
    (0.0, 100.0, 100.0 + 10, 0.0, 2.0),      # refilled, never past BURST
    (1.5, 100.0, 100.5, 0.0, 1.0),
]


@pytest.mark.parametrize("tokens, refilled, now, delay, after", PACED)
def test_paced(tokens, refilled, now, delay, after):
    got, left = backoff.paced(tokens, refilled, now)
    assert (got, left) == (pytest.approx(delay, abs=1e-12), pytest.approx(after, abs=1e-12))


def test_paced_restarts_stay_within_the_burst_and_rate():
    tokens, refilled, t, restarts = backoff.BURST, 0.0, 1000.0, []
    while t < 1010.0:                        # a worker that dies the moment it is restarted
        delay, tokens = backoff.paced(tokens, refilled, t)
        refilled = t
        t += delay
        restarts.append(t)
        t += 0.004                           # it boots, takes a request, dies
    assert len(restarts) <= backoff.BURST + 10 * backoff.RATE + 1
    assert restarts[backoff.BURST - 1] - restarts[0] < 0.05     # the burst is immediate


# -- on_death ----------------------------------------------------------------------------------

# A boot failure: (failures before, uptime of the dead worker, now, rnd, delay, failures after)
BOOT_DEATHS = [
    (0, 1.0, 100.0, 0.5, 0.0, 1),             # first quick death: respawn at once
    (1, 1.0, 100.0, 0.5, 0.1, 2),
    (2, 9.99, 100.0, 0.5, 0.2, 3),
    (10, 0.0, 100.0, 0.0, 22.5, 11),
    (5, backoff.STABLE, 100.0, 0.5, 0.0, 1),  # up STABLE seconds: history cleared
    (5, 3600.0, 100.0, 0.999, 0.0, 1),
]


@pytest.mark.parametrize("before, uptime, now, rnd, delay, after", BOOT_DEATHS)
def test_a_boot_failure_backs_off(before, uptime, now, rnd, delay, after):
    slot = Slot(3, pid=1234, started=now - uptime, failures=before, kill_at=now - 1)
    t = Table([slot], 1, ever_booted=True)
    got = deaths.on_death(t, slot, Death(3, 1234, 1, uptime, False, 0), now, rnd)
    assert got.delay == pytest.approx(delay, rel=1e-12, abs=0)
    assert (got.recent, t.boot_failures) == (1, 1)
    assert slot.failures == after
    assert slot.due == pytest.approx(now + delay, rel=1e-12, abs=0)
    assert (slot.nr, slot.pid, slot.kill_at, slot.ready) == (3, 0, 0.0, False)


# A worker that was serving: (code, ours, tokens before, delay, tokens after, failures after)
SERVED_DEATHS = [
    (1, False, 3.0, 0.0, 2.0, 0),             # a crash: at once, a token taken
    (-11, False, 1.0, 0.0, 0.0, 0),
    (-9, False, 0.0, 1.0, -1.0, 0),           # the bucket is empty: paced
    (exits.KILLED_BY_US, True, 0.5, 0.5, -0.5, 0),
    (0, False, 0.0, 1.0, -1.0, 0),            # the app's own os._exit(0) mid-request: paced too
    (0, True, 0.0, 0.0, 0.0, 0),              # pyfork's clean exit (max-requests): now, no token
]


@pytest.mark.parametrize("code, ours, before, delay, after, failures", SERVED_DEATHS)
def test_a_worker_that_served_restarts_at_once_paced(code, ours, before, delay, after, failures):
    slot = Slot(0, pid=9, ready=True, failures=4, tokens=before, refilled=50.0)
    t = Table([slot], 1, ever_booted=True)
    got = deaths.on_death(t, slot, Death(0, 9, code, 1.0, True, 3, ours=ours), 50.0, 0.5)
    assert (got.delay, slot.tokens, slot.failures, t.boot_failures) == (delay, after, failures, 0)
    assert slot.due == 50.0 + delay


def test_deaths_are_counted_over_the_window():
    slot = Slot(0, ready=True, deaths=[80.0, 91.0, 95.0])
    got = deaths.on_death(Table([slot], 1, ever_booted=True), slot, Death(0, 9, 1, 1.0, True, 3), 100.0, 0.5)
    assert got.recent == 3 and slot.deaths == [91.0, 95.0, 100.0]


# (other slots, target, ever booted, the delay backoff gives, the delay kept)
FAST = [
    ([{}], 1, True, 30.0, 30.0),                            # one worker: plain backoff
    ([{"due": 130.0}, {"due": 125.0}], 3, True, 30.0, deaths.FAST),   # all others far off: this one stays fast
    ([{"due": 130.0}, {"due": 100.5}], 3, True, 30.0, 30.0),          # another is due soon
    ([{"due": 130.0}, {"pid": 4}], 3, True, 30.0, 30.0),              # another has a worker
    ([{"due": 130.0}, {"due": 125.0}], 3, True, 0.8, 0.8),            # short already
    ([{"due": 130.0}, {"due": 125.0}], 3, False, 30.0, 30.0),         # nothing booted yet: the verdict's business
    ([{"due": 130.0}, {"pid": 4}], 2, True, 30.0, deaths.FAST),       # slot 2 is above the target
]


@pytest.mark.parametrize("others, target, ever_booted, delay, kept", FAST)
def test_keep_one_fast(others, target, ever_booted, delay, kept):
    slot = Slot(0)
    t = Table([slot] + [Slot(i + 1, **o) for i, o in enumerate(others)], target, ever_booted=ever_booted)
    assert deaths.keep_one_fast(t, slot, delay, 100.0) == kept


def test_with_several_workers_failing_to_boot_one_stays_fast():
    t = Table([Slot(i) for i in range(4)], 4, ever_booted=True)
    now, longest = 0.0, []
    for _ in range(12):                      # every slot fails to boot, again and again
        for slot in t.slots:
            if slot.due <= now:
                deaths.on_death(t, slot, Death(slot.nr, 1, 1, 0.1, False, 0), now, 0.5)
        soonest = min(s.due for s in t.slots) - now
        longest.append(soonest)
        now += 1.0
    assert max(longest) <= deaths.FAST
    assert max(s.due for s in t.slots) - now > 5.0       # the others do back off


# -- verdict -----------------------------------------------------------------------------------

# (ever booted, boot failures, last exit code, pyfork's code, verdict)
VERDICTS = [
    (True, 0, exits.APP_LOAD, True, None),          # once anything booted, never give up
    (True, 0, exits.USAGE, True, None),
    (True, 99, 1, False, None),
    (True, 99, -9, False, None),
    (False, 1, exits.APP_LOAD, True, exits.APP_LOAD),    # deterministic failures: at once
    (False, 1, exits.USAGE, True, exits.USAGE),
    (False, 0, exits.APP_LOAD, True, exits.APP_LOAD),
    (False, 1, exits.APP_LOAD, False, None),        # the app's own exit 4 is no load failure of ours
    (False, 1, 1, False, None),                     # anything else: after BOOT_FAILURES
    (False, 2, 1, False, None),
    (False, deaths.BOOT_FAILURES, 1, False, exits.WORKER_BOOT),
    (False, deaths.BOOT_FAILURES, -9, False, exits.WORKER_BOOT),
    (False, deaths.BOOT_FAILURES, 0, True, exits.WORKER_BOOT),
    (False, deaths.BOOT_FAILURES + 5, -11, False, exits.WORKER_BOOT),
    (False, 2, -11, False, None),
    (False, 2, exits.WORKER_BOOT, True, None),
]


@pytest.mark.parametrize("ever_booted, failures, code, ours, expected", VERDICTS)
def test_verdict(ever_booted, failures, code, ours, expected):
    t = Table([], 1, ever_booted=ever_booted, boot_failures=failures)
    assert deaths.verdict(t, Death(0, 1, code, 0.1, False, 0, ours=ours)) == expected


# -- what the log says ---------------------------------------------------------------------------

# (exit code, pyfork's own, description)
DESCRIPTIONS = [
    (-9, False, "killed by SIGKILL: out of memory?"),
    (-15, False, "killed by SIGTERM"),
    (-6, False, "killed by SIGABRT"),
    (-11, False, "killed by SIGSEGV"),
    (-200, False, "killed by signal 200"),
    (exits.KILLED_BY_US, False, "killed by SIGKILL from the master (it would not stop in time)"),
    (0, False, "exit code 0"),
    (0, True, "exit code 0"),
    (1, True, "exit code 1 (internal error)"),
    (1, False, "exit code 1 (from the app, or a library it called)"),
    (2, True, "exit code 2 (bad configuration)"),
    (3, True, "exit code 3 (workers failed to boot)"),
    (4, True, "exit code 4 (the app failed to load)"),
    (4, False, "exit code 4 (from the app, or a library it called)"),
    (77, False, "exit code 77 (from the app, or a library it called)"),
]


@pytest.mark.parametrize("code, ours, text", DESCRIPTIONS)
def test_exit_description(code, ours, text):
    assert exits.exit_description(code, ours) == text


# (a Death, its line)
LINES = [
    (Death(0, 123, -11, 3.14, True, 12, busy=1, what="POST /upload", running=0.02, delay=0.5, recent=5),
     "worker=0 pid=123 died (signal 11, SIGSEGV) while serving POST /upload for 0.02s; "
     "restarting in 0.50s (5 deaths in 10 s); uptime=3.1s requests=12"),
    (Death(2, 9, 13, 0.5, True, 1, busy=1, what="GET /crash", running=0.0012, delay=0.0, recent=1),
     "worker=2 pid=9 died (exit code 13, from the app, or a library it called) while serving GET /crash "
     "for 0.00s; restarting in 0.00s (1 death in 10 s); uptime=0.5s requests=1"),
    (Death(1, 9, -9, 60.0, True, 400, delay=1.0, recent=2),
     "worker=1 pid=9 died (signal 9, SIGKILL: out of memory?); restarting in 1.00s (2 deaths in 10 s); "
     "uptime=60.0s requests=400"),
    (Death(1, 9, exits.KILLED_BY_US, 33.0, True, 4, aborted=True, busy=1, what="GET /hang", running=32.0,
           delay=0.0, recent=1),
     "worker=1 pid=9 died (signal 9, SIGKILL from the master) while serving GET /hang for 32.00s; "
     "restarting in 0.00s (1 death in 10 s); uptime=33.0s requests=4"),
    (Death(0, 9, exits.APP_LOAD, 0.2, False, 0, ours=True, delay=0.1, recent=2),
     "worker=0 pid=9 died (exit code 4, the app failed to load) while booting; restarting in 0.10s "
     "(2 deaths in 10 s); uptime=0.2s requests=0"),
    (Death(0, 9, 0, 80.0, True, 1000, ours=True, delay=0.0, recent=0),
     "worker=0 pid=9 exited (exit code 0); restarting in 0.00s; uptime=80.0s requests=1000"),
    (Death(0, 9, 0, 8.0, True, 10, ours=False, busy=1, what="GET /bye", running=0.5, delay=0.0, recent=1),
     "worker=0 pid=9 died (exit code 0, from the app, or a library it called) while serving GET /bye for "
     "0.50s; restarting in 0.00s (1 death in 10 s); uptime=8.0s requests=10"),
]


@pytest.mark.parametrize("death, text", LINES)
def test_death_line(death, text):
    assert deaths.line(death) == text


def test_a_death_from_a_beat():
    beat = Beat(9, 1, 99.5, 12, 3.0, 2, 99.9, "GET /x")
    got = deaths.of(Slot(1, pid=9, started=90.0, ready=True, kill_at=101.0), 9, -6, beat, 100.0)
    assert got == Death(1, 9, -6, 10.0, True, 12, aborted=True, ours=False, busy=2, what="GET /x",
                        running=pytest.approx(0.1))
    assert got.cause is deaths.Cause.TIMEOUT
    idle = deaths.of(Slot(1, started=90.0, ready=True), 9, 0, Beat(9, READY | EXITING, 99.5, 12, 3.0, 0, 0.0, ""),
                     100.0)
    assert idle.ours and idle.running == 0.0 and idle.cause is deaths.Cause.MAX_REQUESTS


# (the worker's state in its cell, requests in progress, exit code, ready, pyfork's code)
UNSEEN = [
    (READY, 1, 13, True, False),        # up and killed by its first request before the master looked
    (READY, 0, 13, True, False),
    (STOPPING, 0, -9, True, False),
    (READY | EXITING, 0, 0, True, True),
    (BOOTING, 0, 13, False, False),     # died in its boot
    (BOOTING | EXITING, 0, 4, False, True),     # pyfork's own: the app failed to load
]


@pytest.mark.parametrize("state, busy, code, ready, ours", UNSEEN)
def test_a_worker_the_master_had_not_seen_ready(state, busy, code, ready, ours):
    beat = Beat(9, state, 99.5, 0, 0.0, busy, 99.9 if busy else 0.0, "GET /crash" if busy else "")
    got = deaths.of(Slot(1, pid=9, started=99.0), 9, code, beat, 100.0)
    assert (got.ready, got.ours) == (ready, ours)


# (exit code, was ready, SIGABRT sent, pyfork's code, label)
RESTART_REASONS = [
    (0, True, False, True, "max_requests"),
    (0, True, False, False, "crash"),           # the app's os._exit(0)
    (0, False, False, True, "crash"),          # exited before it ever served: a boot failure
    (1, True, False, False, "crash"),
    (-9, True, False, False, "crash"),
    (-6, True, True, False, "timeout"),
    (exits.KILLED_BY_US, True, True, False, "timeout"),
]


@pytest.mark.parametrize("code, ready, aborted, ours, label", RESTART_REASONS)
def test_restart_reason(code, ready, aborted, ours, label):
    assert Death(0, 10, code, 5.0, ready, 10, aborted, ours).cause.value == label


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


# (busy, since, now, seconds the request has run): a worker without threads writes its
# `since` a little ahead of the request's start (never early), so it may lie in the future
@pytest.mark.parametrize("busy, since, now, running", [
    (1, 100.0, 101.5, 1.5),
    (1, 100.01, 100.0, 0.0),      # ahead of now: not a negative age
    (0, 0.0, 100.0, 0.0),         # nothing in progress
    (3, 90.0, 100.0, 10.0),       # threads: the oldest of three
])
def test_how_long_a_request_has_run(busy, since, now, running):
    assert Beat(9, READY, 99.0, 5, 1.0, busy, since, "GET /x").running(now) == pytest.approx(running)


# (exit code, SIGABRT sent, left after answering 504, its group is swept)
SWEEPS = [
    (0, False, False, False),                  # a clean exit: max-requests, reload, stop
    (1, False, False, False),                  # the app's sys.exit(1): its own doing
    (0, False, True, True),                    # answered 504 and left: the stuck request's children
    (-6, True, False, True),                   # aborted (SIGABRT)
    (1, True, False, True),                    # aborted; worker_abort's own exit code
    (-9, False, False, True),                  # the OOM killer, or anyone's SIGKILL
    (exits.KILLED_BY_US, False, False, True),  # our SIGKILL (graceful-timeout over)
    (-15, False, False, True),                 # a SIGTERM from outside that it did not handle
]


@pytest.mark.parametrize("code, aborted, timed_out, expected", SWEEPS)
def test_sweeps_group(code, aborted, timed_out, expected):
    assert deaths.sweeps_group(code, aborted, timed_out) is expected
