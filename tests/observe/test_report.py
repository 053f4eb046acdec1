"""`pyfork report` (pure): reading pyfork's and Heroku's lines, and the page it draws."""
import re

from supervisor.observe import charts, metrics, report
from supervisor.observe.metrics import DynoSample, ProcSample

MB = 1048576
START = "[2026-12-06 10:00:00 +0000] [100] [INFO] listening at http://127.0.0.1:8000 (pid 100)"


def group(k, workers=2, quota=512 * MB, pss=40 * MB, source="cgroup", total=300 * MB):
    """One sample's lines as pyfork writes them, bare, k seconds after the start."""
    ws = [ProcSample(i, 200 + i, 80 * MB, pss + i * MB, None, None, 2, 6, 1, i, k, 1.0, k) for i in range(workers)]
    master = ProcSample(-1, 100, 60 * MB, 30 * MB, 20 * MB, 0, 1, 10, workers, 0, 0, 1.0, k)
    d = DynoSample(total, 290 * MB, 10 * MB, 0, 1, 1, quota, source, 12, 256, (1.0, 1.0, 1.0))
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


BOOT = ("[2026-12-06 10:00:00 +0000] [100] [INFO] boot pyfork=0.1.0 python=3.11.7 dyno_size=standard-1x "
        "dyno_size_from=flag:--dyno-size cpus=1 cpus_from=dyno-size-standard-1x quota=512.00MB quota_from=dyno-size "
        "tasks_max=256 tasks_max_from=dyno-size workers=2 workers_from=flag:--workers threads=1 threads_from=default")
CPU_SAID = ("[2026-12-06 10:00:20 +0000] [100] [INFO] 2 workers use 110MB of 512MB; each costs about 40MB private, "
            "master and shared 30MB; limited by cpu: 1 CPU (dyno size standard-1x) keep 4 busy, measured "
            "cpu_busy_share 0.40; projected 190MB (37% of the quota): set WEB_CONCURRENCY=4")


def test_a_cgroup_total_is_held_against_the_quota_only_when_the_quota_is_its_own_limit():
    """--dyno-size standard-1x on a machine whose memory cgroup has no limit of its own and
    is shared: its total (540MB) was drawn as "dyno total (cgroup)" over the 512MB quota
    line. Not drawn now; the header says where the quota came from and why."""
    shared = report.read([START, BOOT] + group(20, source="dyno-size", total=540 * MB)
                         + group(40, source="dyno-size", total=545 * MB))
    page = charts.page(shared, "t")
    assert "dyno total (cgroup)" not in page and shared.dyno_total == []
    assert "<td>quota</td><td>512MB from --dyno-size standard-1x</td>" in page
    assert "<td>cgroup total</td><td>peak 545MB, not drawn: the quota is not this cgroup&#x27;s own limit" in page
    own = report.read([START] + group(20) + group(40))            # the dyno's own cgroup: drawn
    page = charts.page(own, "t")
    assert "dyno total (cgroup)" in page and "<td>quota</td><td>512MB from the cgroup&#x27;s own limit</td>" in page
    assert "cgroup total" not in page


def test_the_legend_names_the_binding_limit_and_the_header_carries_the_advice_sentence():
    d = report.read([START, BOOT] + group(20) + [CPU_SAID] + group(40))
    page = charts.page(d, "t")
    assert "fit the quota" not in page
    assert "workers advised (limited by cpu)</li>" in page
    assert "<td>advice</td><td>4 workers advised (last sample, limited by cpu); 2 running</td>" in page
    assert "<td>advice said</td><td>" + CPU_SAID.split("[INFO] ")[1] + "</td>" in page
    assert d.bounds == ["cpu"] and "set WEB_CONCURRENCY=4" in d.advice


def test_the_live_page_keeps_a_total_that_is_not_the_dynos_off_the_quota():
    from supervisor.observe.ring import Ring
    ring = Ring()
    p = ProcSample(0, 200, 80 * MB, 40 * MB, 30 * MB, 0, 2, 6, 0, 0, 5, 1.0, 5)
    for i, source in enumerate(("dyno-size", "dyno-size")):
        ring.add(1000.0 + i, None, [p], DynoSample(540 * MB, 1, 1, 0, 1, 1, 512 * MB, source, 3, 256, (0, 0, 0)), 3)
    d = ring.data()
    assert d.dyno_total == [] and len(d.cgroup_total) == 2 and d.quota_from == "dyno-size"
    page = charts.page(d, "live", advice=CPU_SAID.split("[INFO] ")[1])
    assert "workers advised (limited by cpu)</li>" in page and "set WEB_CONCURRENCY=4" in page
