"""`pyfork report` (pure): reading pyfork's and Heroku's lines, and the page it draws."""
import re

from supervisor.observe import charts, metrics, report
from supervisor.observe.metrics import DynoSample, ProcSample

MB = 1048576
START = "[2026-12-06 10:00:00 +0000] [100] [INFO] listening at http://127.0.0.1:8000 (pid 100)"


def group(k, workers=2, quota=512 * MB, pss=40 * MB):
    """One sample's lines as pyfork writes them, bare, k seconds after the start."""
    ws = [ProcSample(i, 200 + i, 80 * MB, pss + i * MB, None, None, 2, 6, 1, i, k, 1.0, k) for i in range(workers)]
    master = ProcSample(-1, 100, 60 * MB, 30 * MB, 20 * MB, 0, 1, 10, workers, 0, 0, 1.0, k)
    d = DynoSample(300 * MB, 290 * MB, 10 * MB, 0, 1, 1, quota, "cgroup", 12, 256, (1.0, 1.0, 1.0))
    return (metrics.dyno_lines("web.1", "x", d) + [metrics.process_line("web.1", master)]
            + [metrics.process_line("web.1", w) for w in ws] + [metrics.tasks_line("web.1", d, workers, 4)])


def test_bare_pyfork_lines_take_the_masters_start_plus_its_uptime():
    lines = [START] + group(20) + [
        "[2026-12-06 10:00:30 +0000] [100] [INFO] restarts worker=1 total=2 timeout=1 oom_kill=1 last=oom_kill last_pid=9"
    ] + group(40) + ["[2026-12-06 10:00:50 +0000] [100] [INFO] restarts worker=1 total=3 timeout=1 oom_kill=2 last=x last_pid=9"]
    d = report.read(lines)
    t0 = 1796551200.0          # 2026-12-06 10:00:00 UTC
    assert not d.relative and d.measure == "PSS"
    assert sorted(d.memory) == ["master", "worker 0", "worker 1"]
    assert d.memory["worker 1"] == [(t0 + 20, 41 * MB), (t0 + 40, 41 * MB)]
    assert d.memory["master"][0] == (t0 + 20, 30 * MB)
    assert d.quota == [(t0 + 20, 512 * MB), (t0 + 40, 512 * MB)]          # the dyno line belongs to its group
    assert d.tasks == [(t0 + 20, 12), (t0 + 40, 12)] and d.advised[-1] == (t0 + 40, 4)
    assert d.zombies == {t0 + 20: 1, t0 + 40: 1}
    assert d.restarts == [(t0 + 30, "worker 1", "timeout"), (t0 + 30, "worker 1", "oom_kill"),
                          (t0 + 50, "worker 1", "oom_kill")]                 # the difference of the counts


def test_without_any_stamped_line_the_axis_counts_from_the_start():
    d = report.read(group(20) + group(40))
    assert d.relative and d.memory["worker 0"] == [(20, 40 * MB), (40, 40 * MB)]
    assert "time since the master started" in charts.page(d, "t")


HEROKU = """2026-12-06T10:00:00.000000+00:00 heroku[web.1]: source=web.1 dyno=heroku.1.abc sample#memory_total=400.00MB sample#memory_rss=390.00MB sample#memory_cache=10.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=1pages sample#memory_pgpgout=1pages sample#memory_quota=512.00MB
2026-12-06T10:00:00.000000+00:00 heroku[web.1]: source=web.1 dyno=heroku.1.abc sample#load_avg_1m=0.10 sample#load_avg_5m=0.10 sample#load_avg_15m=0.10
2026-12-06T10:00:05.000000+00:00 app[web.1]: GET / 200
2026-12-06T10:00:20.000000+00:00 heroku[web.2]: source=web.2 dyno=heroku.2.abc sample#memory_total=530.00MB sample#memory_rss=512.00MB sample#memory_cache=0.00MB sample#memory_swap=18.00MB sample#memory_pgpgin=1pages sample#memory_pgpgout=1pages sample#memory_quota=512.00MB
2026-12-06T10:00:21.000000+00:00 heroku[web.2]: Process running mem=530M(103.5%)
2026-12-06T10:00:21.000000+00:00 heroku[web.2]: Error R14 (Memory quota exceeded)
2026-12-06T10:00:40.000000+00:00 heroku[web.2]: Process exited with status 137
""".splitlines()


def test_heroku_lines_draw_one_series_per_dyno_and_mark_r14():
    d = report.read(HEROKU)
    t0 = 1796551200.0
    assert d.measure == "memory_total"
    assert d.memory == {"dyno web.1": [(t0, 400 * MB)], "dyno web.2": [(t0 + 20, 530 * MB)]}
    assert d.restarts == [(t0 + 21, "web.2", "R14"), (t0 + 40, "web.2", "exit")]
    page = charts.page(d, "heroku")
    assert 'data-series="dyno web.2"' in page and 'data-reason="R14"' in page


def test_twenty_workers_for_24_hours_stay_legible():
    lines = [START]
    for k in range(20, 86400, 60):
        lines += group(k, workers=20, quota=2560 * MB, pss=40 * MB + k * 100)
    page = report.page(lines)
    paths = re.findall(r'<path class="series area" data-series="([^"]+)" d="([^"]+)"', page)
    assert [p[0] for p in paths] == ["master"] + ["worker %d" % i for i in range(20)]
    for _, d in paths:
        assert d.count("L") <= 2 * charts.W + 2          # one point per pixel, up and back
    legend = re.findall(r'<li class="">.*?</span>([^<]+)</li>', page)
    assert legend == ["master"] + ["worker %d" % i for i in range(20)]
    ticks = re.findall(r'text-anchor="middle">(\d\d:\d\d)</text>', page)
    assert 4 <= len(set(ticks)) <= 11, ticks                # round hours, not a crowd
    assert "95% of quota (2432MB)" in page and "80% of quota (2048MB)" in page


def test_bucketing_keeps_the_peak():
    points = [(t, 1) for t in range(1000)] + [(500.2, 99)]
    b = charts.bucketed(points, 0, 1000, n=10)
    assert len(b) == 10 and b[5] == 99 and b[4] == 1


def test_nice_steps():
    assert [charts.nice_step(v) for v in (6, 60, 512, 1000, 0.6)] == [1, 10, 100, 200, 0.1]


def test_main_says_when_there_is_nothing_to_draw(tmp_path, capsys):
    empty = tmp_path / "empty.log"
    empty.write_text("[2026-12-06 10:00:00 +0000] [1] [INFO] hello\n")
    assert report.main([str(empty)]) == 1
    assert "no metrics lines" in capsys.readouterr().err
    assert report.main([str(tmp_path / "missing.log")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_json_lines_read_as_the_text_ones():
    text = [START] + group(20) + group(40)
    as_json = [START] + [metrics.as_json(line) for line in group(20) + group(40)]
    assert report.read(as_json) == report.read(text)


def test_the_measure_says_where_rss_stood_in_for_pss():
    assert report.measure(10, 0) == "PSS" and report.measure(0, 4) == "RSS"
    assert report.measure(10, 1) == "PSS, RSS where unknown"
