"""sizing.py: the advice, its sentence, growth rates and the warnings' levels. Pure tables."""
import dataclasses

import pytest

from supervisor.observe import sizing
from supervisor.observe.metrics import MB, ProcSample
from supervisor.observe.sizing import Bound, Inputs


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


def inputs(quota_mb, cpus, tasks=None, threads=1, share=0.85):
    return Inputs(quota=B(quota_mb), quota_source="the cgroup", cpus=cpus, cpus_source="affinity",
                  tasks_max=tasks, threads=threads, share=share)


def busy(workers, share):
    return [dataclasses.replace(w, busy_share=share) for w in workers]


M, C, T = Bound.MEMORY, Bound.CPU, Bound.TASKS

# (inputs, master, workers) -> (workers, limited by, memory fit, cpu bound, tasks bound, suggested threads)
ADVISE = [
    # (435.2 - 60) / 60 = 6.25; 4 CPUs at the assumed share 0.5: 4 / 0.5 + 1 = 9
    (inputs(512, 4), MASTER, FOUR, (6, M, 6, 9, None, None)),
    # a stated share of 75%: (384 - 60) / 60 = 5.4
    (inputs(512, 4, share=0.75), MASTER, FOUR, (5, M, 5, 9, None, None)),
    # 35 fit in 2.5GB, 2 CPUs allow 5
    (inputs(2560, 2), MASTER, FOUR, (5, C, 35, 5, None, None)),
    # the pyfork-metrics.txt fixture: fixed 8 + 36 = 44MB, (435.2 - 44) / 110 = 3.56: fewer than now
    (inputs(512, 2), proc(-1, uss=8, pss=12), fleet(4, uss=110, pss=118), (3, M, 3, 5, None, None)),
    # no smaps_rollup: private is RSS, shared unknown (0): (435.2 - 40) / 100 = 3.95
    (inputs(512, 4), proc(-1, rss=40), fleet(4, rss=100), (3, M, 3, 9, None, None)),
    # no master line: its cost counts 0; 435.2 / 200 = 2.18
    (inputs(512, 4), None, fleet(2, uss=200, pss=200), (2, M, 2, 9, None, None)),
    # one worker bigger than the dyno: still 1, never 0
    (inputs(512, 4), None, fleet(1, uss=600, pss=600), (1, M, 0, 9, None, None)),
    # memory fit equal to the CPU bound: memory is named (3.63 -> 3, bound 3)
    (inputs(512, 1), None, fleet(3, uss=120, pss=120), (3, M, 3, 3, None, None)),
    # requests wait 80% of the time: 1 CPU keeps 1 / 0.2 + 1 = 6 busy; threads suggested
    (inputs(512, 1), None, busy(fleet(2, uss=30, pss=30), 0.2), (6, C, 14, 6, None, 4)),
    # CPU-bound requests: 2 / 1.0 + 1 = 3, no threads suggested
    (inputs(512, 2), None, busy(fleet(2, uss=30, pss=30), 1.0), (3, C, 14, 3, None, None)),
    # with --threads 4 each worker keeps 0.8 CPU busy: 1 / 0.8 -> 2, + 1
    (inputs(512, 1, threads=4), None, busy(fleet(2, uss=30, pss=30), 0.2), (3, C, 14, 3, None, None)),
    # 64 tasks: (51.2 - 1) / 10 threads each = 5
    (inputs(512, 4, tasks=64), None, [dataclasses.replace(w, threads=10) for w in fleet(2, uss=10, pss=10)],
     (5, T, 43, 9, 5, None)),
    # no samples yet: one worker of AUTO_GUESS (100MB) assumed; 4 fit, 1 CPU allows 3
    (inputs(512, 1), None, [], (3, C, 4, 3, None, None)),
    (inputs(512, 1, tasks=256), None, [], (3, C, 4, 3, 101, None)),     # (204.8 - 1) / 2 tasks each
    # a cgroup CPU quota of 1.5 CPUs: 1.5 / 0.5 + 1 = 4
    (inputs(2560, 1.5), MASTER, FOUR, (4, C, 35, 4, None, None)),
]


@pytest.mark.parametrize("inp, master, workers, expected", ADVISE)
def test_advise(inp, master, workers, expected):
    a = sizing.advise(inp, master, workers)
    assert (a.workers, a.limited_by, a.memory_fit, a.cpu_bound, a.tasks_bound, a.suggest_threads) == expected
    assert a.inputs == inp and a.current == len(workers)


def test_advise_numbers():
    a = sizing.advise(inputs(512, 4), MASTER, FOUR)
    assert (a.used, a.private_per_worker, a.fixed) == (B(300), B(60), B(60))
    assert a.projected == B(420) and a.projected_share == pytest.approx(420 / 512)
    # tight: one worker more would pass the share
    assert a.projected_share <= 0.85 < sizing.footprint(a, a.workers + 1) / B(512)


@pytest.mark.parametrize("n, used", [(4, B(300)), (6, B(420)), (1, B(120))])
def test_footprint(n, used):
    assert sizing.footprint(sizing.advise(inputs(512, 4), MASTER, FOUR), n) == used


@pytest.mark.parametrize("before, now, share", [
    ((10.0, 100.0), (12.0, 110.0), 0.2),
    ((10.0, 100.0), (20.0, 110.0), 1.0),
    ((10.0, 100.0), (10.1, 100.15), None),         # busy under 0.2 s: too little to say
    ((10.0, 100.0), (9.0, 110.0), 0.0),            # a new process behind the same pid: no negative
])
def test_busy_share(before, now, share):
    assert sizing.busy_share(*before, *now) == share


@pytest.mark.parametrize("share, threads, suggested", [
    (None, 1, None), (0.5, 1, None), (0.9, 1, None), (0.49, 1, 2), (0.18, 1, 4), (0.2, 1, 4),
    (0.1, 1, 8), (0.01, 1, 8), (0.2, 4, None),
])
def test_suggest_threads(share, threads, suggested):
    assert sizing.suggest_threads(share, threads) == suggested


@pytest.mark.parametrize("cpus, share, threads, bound", [
    (1, None, 1, 3), (2, None, 1, 5), (8, None, 1, 17), (1, 1.0, 1, 2), (1, 0.2, 1, 6),
    (1, 0.0, 1, 21), (2, 0.2, 4, 4), (1.5, None, 1, 4),
])
def test_cpu_bound(cpus, share, threads, bound):
    assert sizing.cpu_bound(cpus, share, threads) == bound


@pytest.mark.parametrize("inp, master, workers, text", [
    (inputs(512, 4), MASTER, FOUR,
     "4 workers use 300MB of 512MB; each costs about 60MB private, master and shared 60MB; limited by "
     "memory: 6 fit under 85% of 512MB (quota from the cgroup); projected 420MB (82% of the quota): "
     "set WEB_CONCURRENCY=6"),
    (inputs(2560, 2), MASTER, FOUR,
     "4 workers use 300MB of 2560MB; each costs about 60MB private, master and shared 60MB; limited by "
     "cpu: 2 CPUs (affinity) keep 5 busy, cpu_busy_share not yet measured, taken as 0.5; projected 360MB "
     "(14% of the quota): set WEB_CONCURRENCY=5"),
    (inputs(512, 2), proc(-1, uss=8, pss=12), fleet(4, uss=110, pss=118),
     "4 workers use 484MB of 512MB; each costs about 110MB private, master and shared 44MB; limited by "
     "memory: 3 fit under 85% of 512MB (quota from the cgroup); projected 374MB (73% of the quota): "
     "set WEB_CONCURRENCY=3 or use a larger dyno, before an R14 (memory quota exceeded)"),
    (inputs(512, 1), None, busy(fleet(2, uss=30, pss=30), 0.18),
     "2 workers use 60MB of 512MB; each costs about 30MB private, master and shared 0MB; limited by "
     "cpu: 1 CPU (affinity) keep 7 busy, measured cpu_busy_share 0.18; projected 210MB (41% of the "
     "quota): set WEB_CONCURRENCY=7; requests spend 82% of their time waiting: --threads 4 would serve "
     "4x the requests in the same memory"),
    (inputs(512, 2), None, busy(fleet(2, uss=30, pss=30), 0.9),
     "2 workers use 60MB of 512MB; each costs about 30MB private, master and shared 0MB; limited by "
     "cpu: 2 CPUs (affinity) keep 4 busy, measured cpu_busy_share 0.90; projected 120MB (23% of the "
     "quota): set WEB_CONCURRENCY=4; requests keep a CPU busy 90% of their time, so the CPU bound stays"),
    (inputs(512, 1), None, busy(fleet(2, uss=30, pss=30), 15.93),
     "2 workers use 60MB of 512MB; each costs about 30MB private, master and shared 0MB; limited by "
     "cpu: 1 CPU (affinity) keep 2 busy, measured cpu_busy_share 15.93 (the server's own CPU per request "
     "outweighs the app's); projected 60MB (12% of the quota): set WEB_CONCURRENCY=2; requests keep a CPU "
     "busy 100% of their time, so the CPU bound stays"),
    (inputs(512, 1), None, [],
     "no workers measured yet: each assumed to cost 100MB private; limited by cpu: 1 CPU (affinity) "
     "keep 3 busy, cpu_busy_share not yet measured, taken as 0.5; projected 300MB (59% of the quota): "
     "set WEB_CONCURRENCY=3"),
    (inputs(512, 8, tasks=64, threads=2), None, [dataclasses.replace(w, threads=10) for w in fleet(2, uss=10, pss=10)],
     "2 workers use 20MB of 512MB; each costs about 10MB private, master and shared 0MB; limited by "
     "tasks: 5 fit under 80% of the 64-task limit; projected 50MB (10% of the quota): "
     "set WEB_CONCURRENCY=5 with --threads 2"),
])
def test_sentence(inp, master, workers, text):
    assert sizing.sentence(sizing.advise(inp, master, workers)) == text


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


@pytest.mark.parametrize("top, together, text", [
    ((0, 123, B(399), 16 * MB), 16 * MB, "memory at 420MB of 512MB (82%): worker=0 pid=123 holds 399MB "
                                         "private, growing 16MB/s; the quota is 6 s away at this rate: past the quota"),
    ((2, 7, B(150), 0.0), 0.0, "memory at 420MB of 512MB (82%): worker=2 pid=7 holds 150MB private: past the quota"),
    # the leak spread over four workers: the quota comes at their sum
    ((1, 8, B(108), 5 * MB), 20 * MB, "memory at 420MB of 512MB (82%): worker=1 pid=8 holds 108MB private, "
                                      "growing 5MB/s; the quota is 5 s away at the workers' 20MB/s together: "),
])
def test_memory_warning_names_the_worker(top, together, text):
    level, message = sizing.memory_warning(B(420), B(512), 0, top, together)
    assert level == 80 and message.startswith(text)


# -- the advice held until the measure settles, moved past noise only (sizing.steady) -----

def said(n, by=Bound.CPU, threads=None):
    """An Advice of n workers bound by `by` (the rest as advise gives it)."""
    base = sizing.advise(inputs(512, 2), proc(-1, uss=20, pss=30), fleet(2, uss=40, pss=50))
    return dataclasses.replace(base, workers=n, limited_by=by, suggest_threads=threads)


# (what it shows, [(fresh advice or None, requests each worker has served)], the count said after each)
STEADY = [
    ("held until every worker served 20 requests and two samples are in; then a lasting move",
     [(said(3), [2, 3]), (said(9), [25, 30]), (said(5), [40, 45]), (said(5), [60, 70])],
     [None, 9, 9, 5]),
    ("or until three samples, for a fleet that serves little",
     [(said(5), [0, 1]), (said(4), [0, 2]), (said(5), [1, 2]), (said(4), [1, 3])],
     [None, None, 5, 5]),
    ("no sample of a worker: nothing to say yet, but the sample counts",
     [(None, []), (None, []), (said(5), [0, 0])],
     [None, None, 5]),
    ("the issue's start: 3 -> 9 -> 5 in three samples; held at the first settled answer",
     [(said(3), [5, 5]), (said(9), [20, 21]), (said(5), [40, 40]), (said(9), [60, 60]), (said(5), [80, 80])],
     [None, 9, 9, 9, 9]),
    ("a move of one worker is noise, however long it lasts",
     [(said(5), [30, 30]), (said(5), [40, 40]), (said(6), [50, 50]), (said(6), [60, 60]), (said(6), [70, 70])],
     [None, 5, 5, 5, 5]),
    ("a real move is said once asked for twice in a row, the same way",
     [(said(5), [30, 30]), (said(5), [40, 40]), (said(8), [50, 50]), (said(8), [60, 60]), (said(8), [70, 70])],
     [None, 5, 5, 8, 8]),
    ("a move that flips back is noise",
     [(said(5), [30, 30]), (said(5), [40, 40]), (said(8), [50, 50]), (said(5), [60, 60]), (said(8), [70, 70]),
      (said(2), [80, 80])],
     [None, 5, 5, 5, 5, 5]),
    ("noise grows with the count: 20% of it",
     [(said(20), [30, 30]), (said(20), [40, 40]), (said(23), [50, 50]), (said(23), [60, 60]), (said(24), [70, 70]),
      (said(24), [80, 80])],
     [None, 20, 20, 20, 20, 24]),
    ("memory asking for one worker fewer is no noise: staying would risk the quota",
     [(said(4, Bound.MEMORY), [30, 30]), (said(4, Bound.MEMORY), [40, 40]), (said(3, Bound.MEMORY), [50, 50]),
      (said(3, Bound.MEMORY), [60, 60])],
     [None, 4, 4, 3]),
    ("the threads suggestion moves with the count only (4 -> 2 at start was noise)",
     [(said(5, threads=4), [30, 30]), (said(5, threads=4), [40, 40]), (said(5, threads=2), [50, 50]),
      (said(5, threads=4), [60, 60])],
     [None, 5, 5, 5]),
]


@pytest.mark.parametrize("rounds, counts", [s[1:] for s in STEADY], ids=[s[0] for s in STEADY])
def test_steady(rounds, counts):
    state = sizing.Steady()
    got = []
    for fresh, requests in rounds:
        state = sizing.steady(state, fresh, requests)
        got.append(state.advice.workers if state.advice else None)
    assert got == counts


def test_steady_keeps_the_held_advice_whole_and_refreshes_it_when_the_decision_stands():
    first, same_newer, other = said(5, threads=4), dataclasses.replace(said(5, threads=4), used=B(300)), said(5, threads=2)
    state = sizing.steady(sizing.steady(sizing.Steady(), first, [30]), first, [40])
    assert state.advice is first
    assert sizing.steady(state, other, [50]).advice is first            # threads 2: not said alone
    assert sizing.steady(state, same_newer, [50]).advice is same_newer   # same decision: newer numbers
