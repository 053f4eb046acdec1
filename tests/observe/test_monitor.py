"""Metrics lines and recycling, end to end: real workers, real /proc, real cgroups."""
import os
import re
import subprocess
import sys
import time

import psutil
import pytest

from conftest import FIXTURES, get, wait_for
from supervisor.observe import metrics

HERE = os.path.dirname(os.path.abspath(__file__))


def lines(s, kind):
    out = []
    for line in s.log().splitlines():
        parsed = metrics.parse_line(line)
        if parsed and (kind == "worker" and parsed.get("worker") is not None
                       or kind == "master" and parsed.get("process") == "master"
                       or kind == "tasks" and "tasks" in parsed["samples"]):
            out.append(parsed)
    return out


def test_worker_lines_agree_with_psutil(server):
    s = server("metrics_apps:app", "--metrics-interval", "0.5", workers=2)
    for _ in range(3):
        get(s.port, "/hog?5")
    pids = s.worker_pids()
    want = {pid: psutil.Process(pid).memory_full_info() for pid in pids}
    assert wait_for(lambda: len(lines(s, "worker")) >= 6, 10)
    latest = {}
    for p in lines(s, "worker"):
        latest[p["pid"]] = p["samples"]
    MB = 1048576
    for pid in pids:
        got = latest[pid]
        m = want[pid]
        # same process, read a moment apart: within 1 MB (the lines round to 0.01 MB)
        assert abs(got["memory_rss"] - m.rss) < MB, (got, m)
        assert abs(got["memory_pss"] - m.pss) < MB, (got, m)
        assert abs(got["memory_uss"] - m.uss) < MB, (got, m)
        assert got["threads"] == psutil.Process(pid).num_threads()
        assert got["fds"] == psutil.Process(pid).num_fds()
    masters = lines(s, "master")
    assert masters and masters[-1]["pid"] == s.pid and masters[-1]["samples"]["threads"] == 1
    tasks = lines(s, "tasks")[-1]["samples"]
    assert tasks["workers"] == 2 and tasks["workers_advised"] >= 1
    assert re.search(r"\d+ workers use \d+MB of \d+MB", s.log())


def test_json_lines_to_a_file(server, tmp_path):
    out = tmp_path / "metrics.jsonl"
    s = server("metrics_apps:app", "--metrics-interval", "0.3", "--metrics-format", "json",
               "--metrics-log", str(out), workers=1)
    import json
    assert wait_for(lambda: out.exists() and out.read_text().count("\n") >= 5, 10)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(r.get("worker") == 0 and r["pid"] == s.worker_pids()[0] for r in rows)
    assert "sample#" not in s.log()


def hog_until(s, path, text, seconds=15):
    """GET path (each keeps more memory) until the log says text; -> the statuses."""
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and text not in s.log():
        statuses.append(get(s.port, path)[0])
        time.sleep(0.05)
    return statuses


def test_memory_hog_is_recycled_and_no_request_fails(server):
    s = server("metrics_apps:app", "--metrics-interval", "0.5", "--max-worker-memory", "80MB", workers=1)
    first = s.worker_pids()[0]
    statuses = hog_until(s, "/hog?10", "recycled: memory_pss=")
    assert "recycled: memory_pss=" in s.log(), s.log()[-3000:]
    assert re.search(r"worker=0 pid=%d recycled: memory_pss=\d+\.\d\dMB over --max-worker-memory 80\.00MB" % first, s.log())
    for _ in range(10):
        statuses.append(get(s.port, "/")[0])
    assert set(statuses) == {200}
    assert wait_for(lambda: s.worker_pids() and s.worker_pids()[0] != first, 5)


def test_zombie_leak_is_recycled_without_waiting_for_a_sample(server):
    # default settings: the metrics interval is 20 s, the guard runs every second
    s = server("metrics_apps:app", workers=2)
    peak = 0
    statuses = []
    for i in range(150):
        statuses.append(get(s.port, "/zombie")[0])
        if i % 10 == 0:
            peak = max(peak, len(s.zombies()))
        time.sleep(0.01)
    assert set(statuses) == {200}
    assert "unreaped children (--max-worker-zombies 32)" in s.log(), s.log()[-2000:]
    assert peak <= 2 * 32 + 20       # each worker is recycled near the limit, never far past it
    # the recycled workers' zombies were reparented to the master and reaped
    assert wait_for(lambda: not s.master_zombies(), 2)


def test_thread_leak_is_recycled(server):
    s = server("metrics_apps:app", "--max-worker-threads", "10", workers=1)
    first = s.worker_pids()[0]
    for _ in range(12):
        assert get(s.port, "/thread")[0] == 200
    assert wait_for(lambda: "threads (--max-worker-threads 10)" in s.log(), 5)
    assert wait_for(lambda: s.worker_pids() and s.worker_pids()[0] != first, 5)


@pytest.mark.slow
def test_master_stays_flat_over_many_samples(server):
    s = server("metrics_apps:app", "--metrics-interval", "0.002", "--metrics-log", os.devnull,
               "--log-level", "debug", workers=2)

    def steady():
        # the master is nearly always mid-sample here: take the least of a few readings
        # (a /proc file open for a moment is not a leak)
        return min(s.ps.num_fds() for _ in range(20)), s.ps.memory_info().rss
    assert wait_for(lambda: s.log().count("metrics sample of 2 workers") >= 200, 10)
    before = steady()
    assert wait_for(lambda: s.log().count("metrics sample of 2 workers") >= 2000, 30)
    after = steady()
    assert s.ps.num_threads() == 1
    assert after[0] <= before[0] + 1      # a leak per sample would show ~1800 more
    assert after[1] - before[1] < 1024 * 1024, (before, after)
    assert get(s.port, "/")[0] == 200


def test_advise_prints_a_table(tmp_path):
    log = os.path.join(FIXTURES, "logs")
    names = sorted(os.listdir(log))
    assert names
    p = subprocess.run([sys.executable, "-m", "supervisor", "advise", os.path.join(log, names[0])]
                       + (["--workers", "4"] if "heroku" in names[0] else []),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "standard-2x" in p.stdout.lower()
    bad = subprocess.run([sys.executable, "-m", "supervisor", "advise", str(tmp_path / "missing.txt")],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_cpu_busy_share_from_the_heartbeats_busy_seconds(tmp_path):
    """The monitor's sample pairs a worker's CPU seconds (from /proc) with the busy seconds
    its heartbeat cell says, between two samples. Here the "worker" is this very process:
    it burns CPU for a known share of the busy seconds it reports."""
    from supervisor.config import resolve
    from supervisor.log import Log
    from supervisor.observe.monitor import Monitor
    from supervisor.supervise.heartbeat import Beat
    from supervisor.supervise.plan import Slot

    cfg = resolve("x:app", {"metrics_interval": "1"}, {})
    mon = Monitor(cfg, Log(str(tmp_path / "err.log")), os.getpid())
    slot = Slot(0)

    def beat(busy):
        return Beat(os.getpid(), 1, time.monotonic(), 10, busy, 0, 0.0, "")

    _, first, _ = mon.collect([(slot, os.getpid(), beat(100.0))])
    assert first[0].busy_share is None                      # one sample: no share yet
    t0 = time.process_time()
    while time.process_time() - t0 < 0.3:                   # 0.3 CPU seconds...
        pass
    _, second, _ = mon.collect([(slot, os.getpid(), beat(101.5))])     # ...in 1.5 busy seconds
    assert 0.15 <= second[0].busy_share <= 0.3, second[0].busy_share
    line = metrics.process_line("web.1", second[0])
    assert "sample#cpu_busy_share=%.2f" % second[0].busy_share in line
    assert metrics.proc_sample(metrics.parse_line(line)).busy_share == second[0].busy_share


def test_waiting_app_gets_a_low_busy_share_and_a_thread_suggestion(server):
    """Requests that sleep (an app waiting on I/O) use almost no CPU while busy: the worker
    lines say so, and the advice suggests threads."""
    s = server("sup_apps:app", "--metrics-interval", "1", workers=1)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and "would serve" not in s.log():
        assert get(s.port, "/slow?0.2")[0] == 200
    shares = [p["samples"]["cpu_busy_share"] for p in lines(s, "worker") if "cpu_busy_share" in p["samples"]]
    assert shares and shares[-1] < 0.3, shares
    assert re.search(r"requests spend (\d+)% of their time waiting: --threads \d would serve \dx the requests "
                     r"in the same memory", s.log()), s.log()[-2000:]


def test_memory_pressure_without_a_cgroup_limit_uses_the_processes_pss(server):
    """--memory-quota and no cgroup limit: the guard sums the processes' memory (RSS for
    the cheap look, PSS to confirm) and recycles the grown worker past 90%."""
    s = server("metrics_apps:app", "--memory-quota", "120MB", "--metrics-interval", "0", workers=1)
    first = s.worker_pids()[0]
    statuses = hog_until(s, "/hog?5", " recycled: ")
    assert re.search(r"worker=0 pid=%d recycled: memory at 1\d\dMB of 120MB \(\d+%%\), past the 90%% mark "
                     r".* memory_uss=\d+\.\d\dMB" % first, s.log()), s.log()[-2000:]
    assert set(statuses) == {200}
    assert wait_for(lambda: s.worker_pids() and s.worker_pids()[0] != first, 5)
    # room first: the replacement starts once the recycled worker has exited (issue 27)
    assert s.wait_log("worker=0 pid=%d stopped" % first, 5) and s.wait_log("booted in", 5, count=2)
    log = s.log()
    assert "its replacement starts once it has exited" in log
    assert log.index("worker=0 pid=%d stopped" % first) < log.rindex("booted in"), log[-2000:]
