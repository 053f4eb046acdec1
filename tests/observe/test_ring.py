"""The live page's ring of samples (pure): what it keeps and the Data it hands the charts."""
from supervisor.observe.metrics import DynoSample, ProcSample
from supervisor.observe.ring import Ring

MB = 1048576


def proc(slot, pss, rss=80 * MB, zombies=0):
    return ProcSample(slot, 100 + slot, rss, pss, None, None, 1, 5, 0, zombies, 0, 0.0, 1.0)


DYNO = DynoSample(300 * MB, 290 * MB, 0, 0, 1, 1, 512 * MB, "cgroup", 9, 256, (0.1, 0.1, 0.1))


def test_keeps_the_last_samples_and_draws_them():
    r = Ring(keep=3)
    for k in range(5):
        r.add(100.0 + k, proc(-1, 30 * MB), [proc(1, (40 + k) * MB, zombies=1), proc(0, 20 * MB)], DYNO, 4)
    d = r.data([(101.0, "worker 1", "oom_kill"), (103.5, "worker 0", "timeout")])
    assert sorted(d.memory) == ["master", "worker 0", "worker 1"]
    assert d.memory["worker 1"] == [(102.0, 42 * MB), (103.0, 43 * MB), (104.0, 44 * MB)]
    assert d.quota[-1] == (104.0, 512 * MB) and d.tasks_max[0] == (102.0, 256)
    assert d.workers == [(102.0, 2), (103.0, 2), (104.0, 2)] and d.advised[-1] == (104.0, 4)
    assert d.zombies == {102.0: 1, 103.0: 1, 104.0: 1}
    assert d.restarts == [(103.5, "worker 0", "timeout")]          # older than the ring: left out
    assert d.measure == "PSS" and d.lines == 3


def test_rss_where_pss_is_unknown_and_no_dyno():
    r = Ring()
    r.add(1.0, None, [proc(0, None, rss=70 * MB)], None, None)
    d = r.data()
    assert d.memory == {"worker 0": [(1.0, 70 * MB)]} and d.measure == "RSS"
    assert d.quota == [] and d.advised == [] and d.workers == [(1.0, 1)]
