"""fit.py: -w auto's growth, the step down, when the advice is said, utilization. Pure tables."""
import pytest

from supervisor.observe import fit, sizing
from supervisor.observe.fit import Measure
from supervisor.observe.metrics import MB, ProcSample


def proc(slot, uss, pss=None):
    return ProcSample(slot=slot, pid=100 + slot, rss=round((uss + 20) * MB), pss=round((pss or uss) * MB),
                      uss=round(uss * MB), swap=0, threads=1, fds=8, children=0, zombies=0, requests=0,
                      cpu=0.0, uptime=60.0)


def advice(n_workers, uss, quota_mb=512, cpus=1):
    """The advice for n workers of `uss` MB each and a master of 20MB (10MB of it shared)."""
    inputs = sizing.Inputs(quota=quota_mb * MB, quota_source="the cgroup", cpus=cpus, cpus_source="dyno size")
    return sizing.advise(inputs, proc(-1, 20, 25), [proc(i, uss, uss + 5) for i in range(n_workers)])


def m(uss, rose=0, samples=3, requests=50):
    return Measure(round(uss * MB), round(rose * MB), samples, requests)


A170 = advice(1, 170)            # fixed 20 + 10 = 30MB; (435 - 30) / 170 = 2.4: 2, memory
A30 = advice(1, 30, cpus=2)      # cpu: 2 / 0.5 + 1 = 5
assert (A170.workers, A170.limited_by, A30.workers, A30.limited_by) == (2, sizing.Bound.MEMORY, 5, sizing.Bound.CPU)

# (current, advice, measures, lo, hi, cap) -> count
GROW = [
    (1, None, [m(170)], 1, 64, None, 1),                   # the measure has not settled: stay
    (1, A170, [m(170)], 1, 64, None, 2),                   # 30 + 2 x 170 = 370 <= 435
    (2, A170, [m(170), m(170)], 1, 64, None, 2),           # 30 + 3 x 170 = 540: no
    (1, A170, [m(170, samples=1)], 1, 64, None, 1),        # in one sample only: no before and after
    (1, A170, [m(170, samples=2, requests=3)], 1, 64, None, 1),   # 3 requests: not its steady size yet
    (1, A170, [m(170, samples=3, requests=3)], 1, 64, None, 2),   # ... but three samples of a quiet app do
    (1, A170, [m(170, rose=6)], 1, 64, None, 1),           # rose 6MB (over 1% of 512MB) since the last
    (1, A170, [], 1, 64, None, 1),                         # not sampled yet
    (2, A170, [m(170)], 1, 64, None, 2),                   # one of two sampled: wait
    (2, A30, [m(30), m(30)], 1, 64, None, 3),              # cpu allows 5: one at a time
    (3, A30, [m(30), m(30), m(120)], 1, 64, None, 3),      # at the largest worker's size, 4 x 120 + 30 > 435
    (4, A30, [m(30)] * 4, 1, 4, None, 4),                  # --max-workers
    (3, A30, [m(30)] * 3, 1, 64, 3, 3),                    # a step down holds 3
    (3, A170, [m(170)] * 3, 1, 64, None, 2),               # the advice asks for fewer: one step down
    (3, A170, [m(170)] * 3, 3, 64, None, 3),               # not below --min-workers
    (5, None, [m(30)] * 5, 1, 4, None, 4),                 # over --max-workers (a reload lowered it)
]


@pytest.mark.parametrize("current, advice_, measures, lo, hi, cap, n", GROW)
def test_grow(current, advice_, measures, lo, hi, cap, n):
    assert fit.grow(current, advice_, measures, lo, hi, cap)[0] == n


def test_grow_says_the_projection():
    assert fit.grow(1, A170, [m(170)], 1, 64)[1] == \
        "2 x 170MB private (the largest) + 30MB master and shared = 370MB, 72% of 512MB"
    assert fit.can_add(2, A170, [m(170), m(170)]) == (
        False, "3 x 170MB private (the largest) + 30MB master and shared = 540MB, 105% of 512MB, over 85%")


Q = 512 * MB
OOM = "the kernel OOM-killed worker=1"


@pytest.mark.parametrize("running, configured, floor, each, fixed, quota, line", [
    (3, 3, 1, 154 * MB, 30 * MB, Q,
     "running 2 of 3 workers: 3 x 154MB private does not fit under 90% of 512MB; set WEB_CONCURRENCY=2 "
     "(the kernel OOM-killed worker=1; a HUP or USR2 tries 3 again)"),
    (3, 3, 1, 100 * MB, 30 * MB, Q,
     "running 2 of 3 workers: 3 x 100MB private was projected to fit under 90% of 512MB, but the kernel "
     "OOM-killed worker=1; set WEB_CONCURRENCY=2 (a HUP or USR2 tries 3 again)"),
    (2, 3, 1, None, 0, None,
     "running 1 of 3 workers: the kernel OOM-killed worker=1; set WEB_CONCURRENCY=1 (a HUP or USR2 tries 3 again)"),
    (3, None, 1, 170 * MB, 30 * MB, Q,
     "running 2 of 3 workers (-w auto holds at most 2): 3 x 170MB private does not fit under 90% of 512MB; "
     "set WEB_CONCURRENCY=2 (the kernel OOM-killed worker=1; a HUP or USR2 tries more again)"),
    (1, 3, 1, 600 * MB, 30 * MB, Q, None),                 # one worker: nothing to step down to
    (2, None, 2, 170 * MB, 30 * MB, Q, None),              # -w auto at --min-workers
])
def test_step_down(running, configured, floor, each, fixed, quota, line):
    step = fit.step_down(running, configured, floor, OOM, each, fixed, quota, 90)
    assert (step.line if step else None) == line
    if step:
        assert step.running == running - 1


A2 = advice(2, 170)


@pytest.mark.parametrize("said, advice_, now, say", [
    (None, A2, 0.0, True),                                          # the first
    ((fit.advice_key(A2), 0.0), A2, 10.0, False),                  # the same: never again
    ((fit.advice_key(A2), 0.0), A2, 600.0, False),
    ((fit.advice_key(A30), 0.0), A2, 10.0, False),                 # changed within the minute
    ((fit.advice_key(A30), 0.0), A2, 60.0, True),                  # changed, a minute on
    ((fit.advice_key(A30), 0.0), advice(4, 170), 10.0, True),      # fewer than run now, for memory: at once
])
def test_say_advice(said, advice_, now, say):
    assert fit.say_advice(said, advice_, now) is say


@pytest.mark.parametrize("before, fleet, since, threads, busy, total", [
    # two workers, one thread, each busy half of its 2 s between writes
    ({1: (10.0, 100.0), 2: (20.0, 100.5)}, [(1, 11.0, 102.0, 60), (2, 21.0, 102.5, 60)], 100.0, 1, 2.0, 4.0),
    # a write a second late: the window moves with it (1.5 s busy over 3 s), no 0.09 then 1.0
    ({1: (10.0, 99.0)}, [(1, 11.5, 102.0, 60)], 100.0, 1, 1.5, 3.0),
    # a new worker up 0.5 s, busy 0.25 s of it; one up since before the last sample counts from it
    ({}, [(3, 0.25, 102.0, 0.5)], 100.0, 1, 0.25, 0.5),
    ({}, [(3, 0.5, 102.0, 30.0)], 100.0, 1, 0.5, 2.0),
    # threads multiply the capacity; a restarted pid's counter starts again from 0
    ({1: (10.0, 100.0)}, [(4, 3.0, 102.0, 5.0)], 100.0, 4, 3.0, 8.0),
    ({}, [], 100.0, 1, 0.0, 0.0),
])
def test_interval_use(before, fleet, since, threads, busy, total):
    assert fit.interval_use(before, fleet, since, threads) == (busy, total)


@pytest.mark.parametrize("busy, total, u", [(2.0, 4.0, 0.5), (0.0, 4.0, 0.0), (4.4, 4.0, 1.0), (1.0, 0.0, None),
                                            (1.0, 3.0, 0.33)])
def test_utilization(busy, total, u):
    assert fit.utilization(busy, total) == u


def test_start_line_says_the_capacity_while_measuring():
    a = sizing.advise(sizing.Inputs(quota=Q, quota_source="dyno size standard-1x", cpus=1, cpus_source="x"), None, [])
    assert fit.start_line(1, 1, a, 20.0) == (
        "-w auto: serving with 1 worker x 1 thread while it measures the workers' size; one more at a metrics "
        "sample (every 20s) once each worker has served 20 requests, while one more at the largest worker's "
        "size stays under 85% of 512MB; at most 3 by the first guess (cpu)")
