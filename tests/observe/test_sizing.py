"""sizing.py: the advice, its sentence, growth rates and the warnings' levels. Pure tables."""
import dataclasses

import pytest

from supervisor.observe import sizing
from supervisor.observe.metrics import MB, ProcSample
from supervisor.observe.sizing import Advice


def B(mb):
    return round(mb * MB)


def proc(slot, uss=None, pss=None, rss=None):
    """A process by its memory in MB; rss defaults to pss + 40MB (it counts shared pages)."""
    rss = rss if rss is not None else (pss or uss or 0) + 40
    return ProcSample(slot=slot, pid=100 + slot, rss=B(rss), pss=None if pss is None else B(pss),
                      uss=None if uss is None else B(uss), swap=0, threads=1, fds=8, children=0,
                      zombies=0, requests=0, cpu=0.0, uptime=60.0)


def fleet(n, **mem):
    return [proc(i, **mem) for i in range(n)]


# master 20MB own + 10MB shared, 4 workers of 60MB own + 7.5MB shared: shared 40MB, fixed 60MB
MASTER = proc(-1, uss=20, pss=30)
FOUR = fleet(4, uss=60, pss=67.5)
A = Advice(workers=6, current=4, used=B(300), private_per_worker=B(60), shared=B(40), quota=B(512),
           headroom=0.10, cpu_bound=9, limited_by="memory")


@pytest.mark.parametrize("quota, master, workers, cpus, headroom, expected", [
    # (460.8 - 60) / 60 = 6.68
    (B(512), MASTER, FOUR, 4, 0.10, A),
    # (409.6 - 60) / 60 = 5.83
    (B(512), MASTER, FOUR, 4, 0.20, dataclasses.replace(A, workers=5, headroom=0.20)),
    # 37 fit in 2.5GB, 2 CPUs allow 5
    (B(2560), MASTER, FOUR, 2, 0.10,
     dataclasses.replace(A, workers=5, quota=B(2560), cpu_bound=5, limited_by="cpu")),
    # the pyfork-metrics.txt fixture: fixed 8 + 36 = 44MB, (460.8 - 44) / 110 = 3.79: fewer than now
    (B(512), proc(-1, uss=8, pss=12), fleet(4, uss=110, pss=118), 2, 0.10,
     Advice(3, 4, B(484), B(110), B(36), B(512), 0.10, 5, "memory")),
    # no smaps_rollup: private is RSS, shared unknown (0): (460.8 - 40) / 100 = 4.2
    (B(512), proc(-1, rss=40), fleet(4, rss=100), 4, 0.10,
     Advice(4, 4, B(440), B(100), 0, B(512), 0.10, 9, "memory")),
    # no master line (a log without one): its cost counts 0; 512 / 200 = 2.56
    (B(512), None, fleet(2, uss=200, pss=200), 4, 0.0, Advice(2, 2, B(400), B(200), 0, B(512), 0.0, 9, "memory")),
    # one worker bigger than the dyno: still 1, never 0
    (B(512), None, fleet(1, uss=600, pss=600), 4, 0.10, Advice(1, 1, B(600), B(600), 0, B(512), 0.10, 9, "memory")),
    # memory fit equal to the CPU bound: memory is named (3.84 -> 3, bound 3)
    (B(512), None, fleet(3, uss=120, pss=120), 1, 0.10, Advice(3, 3, B(360), B(120), 0, B(512), 0.10, 3, "memory")),
    # workers of unequal size: the mean decides; (460.8 - 20) / 60 = 7.35
    (B(512), proc(-1, uss=20, pss=20), [proc(0, uss=40, pss=40), proc(1, uss=80, pss=80)], 4, 0.10,
     Advice(7, 2, B(140), B(60), 0, B(512), 0.10, 9, "memory")),
])
def test_advise(quota, master, workers, cpus, headroom, expected):
    assert sizing.advise(quota, master, workers, cpus, headroom) == expected


def test_advise_without_workers():
    assert sizing.advise(B(512), MASTER, [], 4) is None


@pytest.mark.parametrize("n, used", [(4, B(300)), (6, B(420)), (1, B(120))])
def test_footprint(n, used):
    assert sizing.footprint(A, n) == used


@pytest.mark.parametrize("advice, text", [
    (A, "4 workers use 300MB of 512MB; each new worker costs about 60MB private; "
        "6 fit with 10% headroom: set WEB_CONCURRENCY=6"),
    (dataclasses.replace(A, workers=5, quota=B(2560), cpu_bound=5, limited_by="cpu"),
     "4 workers use 300MB of 2560MB; each new worker costs about 60MB private; "
     "memory has room for more, but 2 CPUs bound it at 5: set WEB_CONCURRENCY=5"),
    (Advice(3, 4, B(484), B(110), B(36), B(512), 0.10, 5, "memory"),
     "4 workers use 484MB of 512MB; each new worker costs about 110MB private; only 3 fit with "
     "10% headroom: set WEB_CONCURRENCY=3 or use a larger dyno, before an R14 (memory quota exceeded)"),
    (dataclasses.replace(A, workers=4, headroom=0.25),
     "4 workers use 300MB of 512MB; each new worker costs about 60MB private; "
     "4 fit with 25% headroom: set WEB_CONCURRENCY=4"),
])
def test_sentence(advice, text):
    assert sizing.sentence(advice) == text


@pytest.mark.parametrize("points, per_hour", [
    ([], 0.0),
    ([(0, 100)], 0.0),
    ([(5, 100), (5, 900)], 0.0),                          # one instant: no rate
    ([(0, 0), (3600, MB)], float(MB)),
    ([(0, 100), (60, 100), (120, 100)], 0.0),
    ([(0, 0), (1, 2), (2, 1), (3, 3)], 2880.0),           # 0.8 per second, least squares
    ([(0, 3 * MB), (1800, 2 * MB), (3600, MB)], -2.0 * MB),
])
def test_slope(points, per_hour):
    assert sizing.slope(points) == pytest.approx(per_hour)


@pytest.mark.parametrize("limit, current, rate, hours", [
    (B(512), B(412), B(100), 1.0),
    (B(512), B(12), B(100), 5.0),
    (B(512), B(600), B(100), 0.0),                        # already past
    (B(512), B(412), 0.0, None),
    (B(512), B(412), -5.0, None),
])
def test_time_to(limit, current, rate, hours):
    assert sizing.time_to(limit, current, rate) == hours


@pytest.mark.parametrize("used, quota, seen, level", [
    (799, 1000, 0, None),
    (800, 1000, 0, 80),
    (950, 1000, 0, 95),                                   # straight past both
    (950, 1000, 80, 95),
    (960, 1000, 95, None),
    (850, 1000, 95, None),                                # down, but not under 80%: quiet
    (850, 1000, 80, None),
    (790, 1000, 95, 0),                                   # back under: re-armed
    (790, 1000, 0, None),
    (500, None, 0, None),
    (500, 0, 0, None),
])
def test_memory_warning_levels(used, quota, seen, level):
    got = sizing.memory_warning(used, quota, seen)
    assert (None if got is None else got[0]) == level


def test_memory_warning_sequence_warns_once_per_crossing():
    seen, said = 0, []
    for pct in [70, 81, 85, 96, 97, 90, 79, 82, 83]:
        got = sizing.memory_warning(pct * 10, 1000, seen)
        if got:
            seen = got[0]
            said.append((pct, got[0]))
    assert said == [(81, 80), (96, 95), (79, 0), (82, 80)]


@pytest.mark.parametrize("used, seen, expected", [
    (B(410), 0, (80, "memory at 410MB of 512MB (80%): past the quota the dyno swaps and Heroku logs "
                     "R14 (memory quota exceeded), further past it R15 restarts the dyno; lower "
                     "WEB_CONCURRENCY, set --max-worker-memory to recycle big workers, or use a larger dyno")),
    (B(400), 95, (0, "memory at 400MB of 512MB (78%): back under 80%")),
])
def test_memory_warning_messages(used, seen, expected):
    assert sizing.memory_warning(used, B(512), seen) == expected


@pytest.mark.parametrize("tasks, limit, seen, expected", [
    (204, 256, 0, None),                                  # 79.7%
    (205, 256, 0, (80, "tasks at 205 of 256 (80%): at the task limit fork and thread creation fail "
                       "(EAGAIN) for every process in the dyno; look for zombies (unreaped children) "
                       "and threads in the worker lines, or set --max-worker-zombies / --max-worker-threads")),
    (250, 256, 80, None),
    (100, 256, 80, (0, "tasks at 100 of 256 (39%): back under 80%")),
    (100, 256, 0, None),
    (None, 256, 0, None),
    (10, None, 0, None),
])
def test_tasks_warning(tasks, limit, seen, expected):
    assert sizing.tasks_warning(tasks, limit, seen) == expected


LEAK = [(t, B(100) + t * MB // 60) for t in range(0, 1201, 60)]      # 1MB a minute for 20 minutes
LEAK_MSG = "worker 3 memory grows 60.0MB/hour over 20 minutes (now 120MB)"
ADVICE_MSG = "; look for a leak, or set --max-worker-memory to recycle it"


@pytest.mark.parametrize("points, quota, kw, expected", [
    (LEAK, B(512), {}, LEAK_MSG + "; at that rate it alone reaches the 512MB quota in 6.5 hours" + ADVICE_MSG),
    (LEAK, None, {}, LEAK_MSG + ADVICE_MSG),
    (LEAK[:5], B(512), {}, None),                                    # 4 minutes: could be warm-up
    (LEAK[:5], B(512), {"min_span_seconds": 240},
     "worker 3 memory grows 60.0MB/hour over 4 minutes (now 104MB); at that rate it alone reaches "
     "the 512MB quota in 6.8 hours" + ADVICE_MSG),
    ([(t, B(100)) for t in range(0, 1201, 60)], B(512), {}, None),   # flat
    ([(t, B(100) + t * MB // 720) for t in range(0, 1201, 60)], B(512), {}, None),   # 5MB/hour
    ([(0, B(100)), (1200, B(101))], B(512), {"threshold_mb_per_hour": 1},
     "worker 3 memory grows 3.0MB/hour over 20 minutes (now 101MB); at that rate it alone "
     "reaches the 512MB quota in 137.0 hours" + ADVICE_MSG),
])
def test_growth_warning(points, quota, kw, expected):
    assert sizing.growth_warning(3, points, quota, **kw) == expected


ADV6 = dataclasses.replace(A, workers=6)
ADV1 = dataclasses.replace(A, workers=1)


@pytest.mark.parametrize("cpus, quota, advice, current, lo, hi, n", [
    (4, B(512), None, 0, 1, None, 5),       # CPU bound 9, 512MB / 100MB = 5
    (4, None, None, 0, 1, None, 9),         # no quota known: the CPU bound
    (4, B(2560), None, 0, 1, 6, 6),         # 9, capped by --max-workers
    (1, B(50), None, 0, 1, None, 1),        # not even one at 100MB: still 1
    (1, B(50), None, 0, 2, None, 2),        # --min-workers wins
    (4, B(512), ADV6, 3, 1, None, 4),       # one step up
    (4, B(512), ADV6, 6, 1, None, 6),       # there
    (4, B(512), ADV6, 8, 1, None, 7),       # one step down
    (4, B(512), ADV6, 3, 1, 3, 3),          # at --max-workers
    (4, B(512), ADV1, 3, 2, None, 2),       # down to --min-workers
    (4, B(512), ADV1, 2, 2, None, 2),       # and no further
])
def test_auto_workers(cpus, quota, advice, current, lo, hi, n):
    assert sizing.auto_workers(cpus, quota, advice, current, lo, hi) == n


@pytest.mark.parametrize("top, text", [
    ((0, 123, B(399), 16 * MB), "memory at 420MB of 512MB (82%): worker=0 pid=123 holds 399MB private, "
                                 "growing 16MB/s; the quota is 6 s away at this rate: past the quota"),
    ((2, 7, B(150), 0.0), "memory at 420MB of 512MB (82%): worker=2 pid=7 holds 150MB private: past the quota"),
])
def test_memory_warning_names_the_worker(top, text):
    level, message = sizing.memory_warning(B(420), B(512), 0, top)
    assert level == 80 and message.startswith(text)
