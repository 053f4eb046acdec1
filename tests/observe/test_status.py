"""`pyfork status`'s document and table (pure)."""
import pytest

from supervisor.observe import status
from supervisor.observe.metrics import ProcSample

MB = 1048576


@pytest.mark.parametrize("beat_state, busy, want", [
    (0, 0, "booting"), (1, 0, "idle"), (1, 2, "busy"), (2, 1, "stopping"), (9, 0, "booting")])
def test_state_of(beat_state, busy, want):
    assert status.state_of(beat_state, busy) == want


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0.25, "0.2s"), (9.96, "10.0s"), (42, "42s"), (245, "4m05s"), (7380, "2h03m"), (273600, "3d04h")])
def test_duration(seconds, text):
    assert status.duration(seconds) == text


STEP = "running 2 of 3 workers: 3 x 170MB private does not fit under 90% of 512MB; set WEB_CONCURRENCY=2"


def doc():
    s = ProcSample(0, 812, 88 * MB, 40 * MB, 38 * MB, 0, 1, 6, 0, 0, 1203, 1.0, 192.0)
    stale = ProcSample(1, 700, 80 * MB, 40 * MB, 38 * MB, 0, 1, 6, 0, 0, 1, 1.0, 1.0)   # an earlier pid's
    workers = [
        status.worker(1, 813, 3.0, 1, 0, 0.0, "GET /old", 5, stale, {}),
        status.worker(0, 812, 192.0, 1, 1, 1.25, "POST /leak", 1203, s, {"timeout": 1, "oom_kill": 1}),
    ]
    master = {"pid": 800, "uptime": 3700, "app": "leaky:app", "binds": "127.0.0.1:8000", "version": "0.1",
              "dyno_size": "standard-1x", "quota": 512 * MB, "quota_source": "cgroup", "tasks": 9,
              "tasks_max": 256, "target": 2, "advice": "4 workers fit the quota", "configured": 3,
              "utilization": 0.62, "step_down": STEP}
    deaths = [{"when": 0.0, "slot": 0, "pid": 811, "cause": "oom_kill", "detail": "killed by the kernel's OOM killer",
               "request": "POST /leak for 0.10s", "sample": "uss=400.00MB", "uptime": 20.0}]
    return status.document(master, workers, deaths)


def test_document_rows_are_sorted_and_a_stale_sample_is_not_shown():
    d = doc()
    assert [w["slot"] for w in d["workers"]] == [0, 1]
    w0, w1 = d["workers"]
    assert (w0["state"], w0["request"], w0["request_seconds"], w0["uss"], w0["restarts"]) == (
        "busy", "POST /leak", 1.25, 38 * MB, 2)
    assert (w1["state"], w1["request"], w1["request_seconds"], w1["rss"]) == ("idle", "", None, None)


def test_table():
    text = status.table(doc())
    lines = text.splitlines()
    assert lines[0] == "pyfork 0.1 master pid=800 up 1h01m app=leaky:app bind=127.0.0.1:8000"
    assert lines[1] == "dyno=standard-1x quota=512.0MB (cgroup) tasks=9/256 workers=2/2 configured=3 utilization=0.62"
    assert lines[2] == "step down: " + STEP
    assert lines[3] == "advice: 4 workers fit the quota"
    header = lines[5].split()
    assert header == list(status.COLUMNS)
    row0 = lines[6].split()
    assert row0[:10] == ["0", "812", "3m12s", "busy", "POST", "/leak", "1.2s", "1203", "88.0MB", "40.0MB"]
    assert "2 (timeout 1, oom_kill 1)" in lines[6]
    assert lines[7].split()[:4] == ["1", "813", "3.0s", "idle"]
    assert "last deaths:" in lines
    assert lines[-1].endswith("worker=0 pid=811 oom_kill; killed by the kernel's OOM killer; while serving "
                              "POST /leak for 0.10s; last sample: uss=400.00MB")


@pytest.mark.parametrize("text, short", [
    (None, "default"), ("default", "default"), ("flag --workers", "flag:--workers"),
    ("environment variable WEB_CONCURRENCY", "env:WEB_CONCURRENCY"), ("file /app/pyfork.conf.py", "file:/app/pyfork.conf.py"),
    ("dyno size standard-1x", "dyno-size:standard-1x"), ("detected (Heroku dyno with a 512 MB limit)", "detected")])
def test_short_source(text, short):
    assert status.short_source(text) == short


def test_boot_line():
    line = status.boot_line("0.1.0", "3.11.7", ("standard-1x", "flag:--dyno-size"), (2, "affinity"),
                            (512 * MB, "cgroup"), (256, "cgroup"), (4, "dyno-size:standard-1x"), (1, "default"))
    assert line == ("boot pyfork=0.1.0 python=3.11.7 dyno_size=standard-1x dyno_size_from=flag:--dyno-size "
                    "cpus=2 cpus_from=affinity quota=512.00MB quota_from=cgroup tasks_max=256 tasks_max_from=cgroup "
                    "workers=4 workers_from=dyno-size:standard-1x threads=1 threads_from=default")
    assert "tasks_max=- tasks_max_from=-" in status.boot_line("0", "3", (None, None), (1, "a"), (1, "m"),
                                                              (None, None), (1, "d"), (1, "d"))
