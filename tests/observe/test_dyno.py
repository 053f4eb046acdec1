"""pyfork inside a simulated dyno (real cgroup v1 memory and pids limits, made with
scripts/dyno.py): the task-limit guard and the worker-count advice, checked for real."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import APPS, SCRIPTS, Server, free_port, get, no_cgroups, wait_for
from supervisor.observe import metrics

sys.path.insert(0, SCRIPTS)
from dyno import Dyno, DynoError  # noqa: E402


pytestmark = pytest.mark.cgroup


def dyno(**kw):
    try:
        return Dyno(**kw).__enter__()
    except DynoError as exc:
        no_cgroups(exc)


def test_task_limit_guard_keeps_a_zombie_leak_under_the_limit():
    """The incident: each request leaks a zombie. With the per-worker zombie limit off,
    the task-pressure guard alone must recycle the leaking worker before pids.max."""
    d = dyno(memory="512MB", tasks=128)
    try:
        with Server("metrics_apps:app", "--max-worker-zombies", "0", workers=2, dyno=d) as s:
            statuses = []
            for _ in range(300):                          # ~20 leaks a second, the incident's rate
                statuses.append(get(s.port, "/zombie")[0])
                time.sleep(0.04)
            assert set(statuses) == {200}
            assert "near the task limit 128" in s.log(), s.log()[-2000:]
            assert d.events().get("max", 0) == 0          # no fork was ever refused
    finally:
        d.__exit__(None, None, None)


def advised(s):
    found = re.findall(r"sample#workers_advised=(\d+)", s.log())
    return int(found[-1]) if found else None


def pss_sum(s, n):
    """The last round's master + n workers' PSS from the metrics lines (bytes): the
    advice's own measure of what the fleet uses, shared pages counted once."""
    last = {}
    for line in s.log().splitlines():
        p = metrics.parse_line(line)
        if p and "memory_pss" in p["samples"]:
            last[p["process"] or p["worker"]] = p["samples"]["memory_pss"]
    return sum(last.values()) if len(last) >= n + 1 else None


def loaded(s, seconds=3.0, clients=4):
    """Requests from `clients` threads for `seconds`; -> statuses (None for a failure)."""
    out, stop = [], time.monotonic() + seconds

    def client():
        while time.monotonic() < stop:
            try:
                out.append(get(s.port, "/", timeout=5)[0])
            except Exception:   # noqa: BLE001 - a worker killed mid-request
                out.append(None)
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    return out


def test_advised_count_runs_and_one_more_passes_the_share_or_is_killed():
    """Tight but safe: the advised count (memory-bound) serves under load with no OOM kill;
    one worker more passes 85% of the quota, or the kernel kills one."""
    quota, env = 240 * 1048576, {"HOG_MB": "40"}          # every worker keeps 40 MB of its own
    d = dyno(memory=quota, tasks=256)
    try:
        with Server("metrics_apps:app", "--metrics-interval", "0.5", workers=2, env=env, dyno=d) as s:
            assert wait_for(lambda: advised(s) is not None and "memory_uss=4" in s.log(), 10)
            n = advised(s)
            assert re.search(r"limited by memory: %d fit under 85%% of 240MB \(quota from the cgroup\)" % n,
                             s.log()), s.log()[-2000:]
        assert 2 <= n <= 4, n
        assert d.oom_kills() == 0
    finally:
        d.__exit__(None, None, None)

    d = dyno(memory=quota, tasks=256)
    try:
        with Server("metrics_apps:app", "--metrics-interval", "0.5", workers=n, env=env, dyno=d) as s:
            statuses = loaded(s)
            assert statuses and set(statuses) == {200}
            assert wait_for(lambda: pss_sum(s, n) is not None, 5)
            assert pss_sum(s, n) <= 0.85 * quota, pss_sum(s, n)
            assert "out of memory" not in s.log()
        assert d.oom_kills() == 0
    finally:
        d.__exit__(None, None, None)

    d = dyno(memory=quota, tasks=256)
    try:
        with Server("metrics_apps:app", "--metrics-interval", "0.5", workers=n + 1, env=env, dyno=d, wait=False) as s:
            wait_for(lambda: s.log().count("booted in") >= n + 1 or d.oom_kills() > 0, 15)
            if d.oom_kills() == 0:
                loaded(s)
                wait_for(lambda: pss_sum(s, n + 1) is not None or d.oom_kills() > 0, 5)
            used = pss_sum(s, n + 1)
            assert d.oom_kills() > 0 or used > 0.85 * quota, (used, s.log()[-2000:])
            assert s.proc.poll() is None                  # the master lives through it
    finally:
        d.__exit__(None, None, None)


def test_far_more_workers_than_advised_are_oom_killed_and_named():
    """They boot small, then grow under load until the kernel kills one; pyfork logs the
    death with the worker's memory at the last sample (--no-step-down: the kills go on, as
    the kernel decides, and each is named)."""
    n = 3
    d = dyno(memory="240MB", tasks=256)
    try:
        s = Server("metrics_apps:app", "--metrics-interval", "0.3", "--memory-pressure", "0", "--no-step-down",
                   workers=2 * n + 2, env={"HOG_MB": "8"}, dyno=d)
        try:
            assert wait_for(lambda: s.log().count("sample#workers=%d " % (2 * n + 2)) >= 1, 10)
            stop = threading.Event()

            def grow():
                while not stop.is_set():
                    try:
                        get(s.port, "/hog?10", timeout=5)
                    except Exception:   # noqa: BLE001 - a worker killed mid-request
                        pass
            threads = [threading.Thread(target=grow) for _ in range(2 * n + 2)]
            for t in threads:
                t.start()
            try:
                assert wait_for(lambda: "killed by the kernel's OOM killer (cgroup oom_kill" in s.log(), 30), \
                    s.log()[-3000:]
            finally:
                stop.set()
                for t in threads:
                    t.join(10)
            kills = [line for line in s.log().splitlines() if "OOM killer" in line]
            assert all(re.search(r"worker=\d+ pid=\d+ killed by the kernel's OOM killer \(cgroup oom_kill \d+->\d+\)"
                                 r" at (USS|PSS|RSS) \d+\.\d\dMB of quota 240\.00MB", k) for k in kills), kills
            assert any(re.search(r"last sample: memory_rss=\d+\.\d\dMB memory_pss=", k) for k in kills), kills
            assert "out of memory?" not in s.log()        # named from the kernel's counter, not guessed
            assert d.oom_kills() >= 1
            assert s.proc.poll() is None                  # the master survives and keeps going
            assert wait_for(lambda: get(s.port, "/")[0] == 200, 10)
        finally:
            s.stop()
            s.close()
    finally:
        d.__exit__(None, None, None)


def test_live_line_advise_and_check_config_agree(tmp_path):
    """One app (150 MB a worker: memory binds), one dyno size: the live line, `pyfork advise`
    on the run's metrics log and `pyfork check-config` with that log give the same count
    for the same reason."""
    log = tmp_path / "metrics.log"
    d = dyno(size="standard-1x")
    try:
        with Server("metrics_apps:app", "--metrics-interval", "0.5", "--dyno-size", "standard-1x",
                    "--metrics-log", str(log), workers=2, env={"HOG_MB": "150"}, dyno=d) as s:
            assert wait_for(lambda: "memory_uss=1" in log.read_text() and "WEB_CONCURRENCY" in s.log(), 10)
            time.sleep(0.6)
            live = re.findall(r"(limited by \w+: [^;]*); projected \d+MB \(\d+% of the quota\): "
                              r"set WEB_CONCURRENCY=(\d+)", s.log())[-1]
    finally:
        d.__exit__(None, None, None)
    run = [sys.executable, "-m", "supervisor"]
    table = subprocess.run(run + ["advise", str(log)], capture_output=True, text=True, cwd=APPS)
    row = next(line.split() for line in table.stdout.splitlines() if line.startswith("eco, basic, standard-1x"))
    check = subprocess.run(run + ["check-config", "metrics_apps:app", "--dyno-size", "standard-1x",
                                  "--metrics-log", str(log)], capture_output=True, text=True, cwd=APPS)
    said = re.search(r"^advice: .*(limited by \w+: [^;]*); projected .*set WEB_CONCURRENCY=(\d+)",
                     check.stdout, re.M)
    assert said, check.stdout + check.stderr
    assert row[7] == live[1] == said.group(2), (row, live, said.group(0))
    assert said.group(1).split(" (")[0] == live[0].split(" (")[0]
    assert row[9] == "memory" and live[0].startswith("limited by memory: %s fit under 85%% of 512MB" % row[7])


def test_master_lives_through_a_full_task_limit():
    """fork() failing with EAGAIN (pids.max reached) must not take the master down: it
    serves with the workers it has and retries the others with backoff."""
    d = dyno(memory="512MB", tasks=3)            # the master and two workers, no more
    try:
        with Server("metrics_apps:app", workers=4, dyno=d, wait=False) as s:
            assert wait_for(lambda: "cannot fork worker=" in s.log(), 10), s.log()
            assert "the task limit is full" in s.log()
            assert wait_for(lambda: s.log().count("booted in") >= 2, 10)
            for _ in range(10):
                assert get(s.port, "/")[0] == 200
            assert s.proc.poll() is None
    finally:
        d.__exit__(None, None, None)


def test_memory_past_the_mark_with_no_grown_worker_is_said_once_not_recycled_in_a_loop():
    """Too many workers for the quota is not a leak: recycling one would only start it
    again at the same size. The guard says so once and recycles nothing."""
    d = dyno(memory="300MB", tasks=256)
    try:
        with Server("metrics_apps:app", "--memory-pressure", "50", workers=3, env={"HOG_MB": "50"}, dyno=d) as s:
            assert s.wait_log("no worker has grown since it booted", 10), s.log()[-2000:]
            time.sleep(2)                                  # ten more guard looks, five a second
            assert s.log().count("no worker has grown since it booted") == 1
            assert " recycled: " not in s.log()
            assert re.search(r"memory at \d+MB of 300MB \(\d+%\), past the 50% mark: no worker has grown", s.log())
        assert d.oom_kills() == 0
    finally:
        d.__exit__(None, None, None)


# -- fitting the dyno by itself (issue 27) ---------------------------------------------------

GROW = {"GROW_MB": "166"}          # each worker reaches about 170 MB private on its first request


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def test_a_count_that_does_not_fit_steps_down_once_and_holds_until_hup():
    """-w 3 of 170 MB workers in 512 MB: the kernel kills one (or the guard sees that a
    recycle cannot help), the master runs 2, says why in one line, and holds 2 under load;
    the metrics and status show 3 configured and 2 running; HUP tries 3 again."""
    d = dyno(size="standard-1x")
    mport = free_port()
    try:
        with Server("metrics_apps:app", "--dyno-size", "standard-1x", "--metrics-interval", "1",
                    "--metrics-bind", "127.0.0.1:%d" % mport, workers=3, env=GROW, dyno=d) as s:
            statuses = loaded(s, seconds=8.0, clients=6)
            assert s.wait_log("running 2 of 3 workers: 3 x ", 10), s.log()[-3000:]
            assert re.search(r"running 2 of 3 workers: 3 x 1[67]\dMB private does not fit under 90% of 512MB; "
                             r"set WEB_CONCURRENCY=2 \((the kernel OOM-killed worker=\d|recycling for memory (would|did) "
                             r"not help)", s.log()), s.log()[-3000:]
            assert d.oom_kills() <= 1 and statuses.count(None) <= 1, (d.oom_kills(), statuses.count(None))
            kills = d.oom_kills()
            statuses = loaded(s, seconds=5.0, clients=6)               # held: no kill, no recycle
            assert d.oom_kills() == kills and None not in statuses
            assert s.log().count("running 2 of 3 workers") == 1 and len(s.worker_pids()) == 2
            assert s.wait_log("sample#workers=2 sample#workers_configured=3 ", 5)
            text = scrape(mport)
            assert "\npyfork_workers_configured 3\n" in text and "\npyfork_workers_target 2\n" in text
            s.signal(signal.SIGHUP)
            assert s.wait_log("the step down is lifted; trying 3 workers again", 10), s.log()[-2000:]
            assert wait_for(lambda: "\npyfork_workers_target 3\n" in scrape(mport), 5)
    finally:
        d.__exit__(None, None, None)


@pytest.mark.parametrize("extra, running", [((), 2), (("--no-step-down",), 3)])
def test_no_step_down_leaves_it_to_the_kernel(extra, running):
    """With --no-step-down the count stays at 3 through the OOM kills (the old behaviour)."""
    d = dyno(size="standard-1x")
    try:
        with Server("metrics_apps:app", "--dyno-size", "standard-1x", "--metrics-interval", "1", *extra,
                    workers=3, env=GROW, dyno=d) as s:
            loaded(s, seconds=4.0, clients=6)
            assert wait_for(lambda: d.oom_kills() > 0 or "running 2 of 3" in s.log(), 10)
            assert ("running 2 of 3 workers" in s.log()) is (running == 2)
            assert wait_for(lambda: len(s.worker_pids()) == running, 10), s.log()[-2000:]
    finally:
        d.__exit__(None, None, None)


def fit_run(name):
    from fit import run
    try:
        return run(name)
    except DynoError as exc:
        no_cgroups(exc)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_auto_fits_a_170mb_app_in_standard_1x_with_no_oom_kill():
    """Issue 27's target: -w auto, 60 s of 6 clients: 0 OOM kills, 0 failures, settled at 2;
    the advice said at most 3 times."""
    r = fit_run("auto")
    assert (r["oom_kills"], r["failed"], r["running_end"]) == (0, 0, 2), r
    assert r["advice_lines"] <= 3 and r["auto_moves"] == ["1 -> 2"], r


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_workers_of_170mb_step_down_to_two_and_hold():
    """Issue 27's target: -w 3, 60 s of 6 clients: at most 1 OOM kill and 1 failure, then 2
    running with the step-down line, and no OOM kill or memory recycle in the last 45 s."""
    r = fit_run("fixed")
    assert r["oom_kills"] <= 1 and r["failed"] <= 1 and r["running_end"] == 2, r
    assert len(r["step_down"]) == 1 and r["step_down"][0].startswith("running 2 of 3 workers: 3 x "), r
    assert r["late_events"] == 0 and r["step_down_at"][0] < 15, r


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_utilization_of_a_waiting_app_is_half():
    """2 workers x 1 thread, 20 requests a second that wait 50 ms: 20 x 0.05 / 2 = 0.5."""
    r = fit_run("util")
    settled = r["utilization_lines"][2:]
    assert settled and all(0.4 <= u <= 0.6 for u in settled), r["utilization_lines"]
    assert r["utilization_scrapes"] and all(0.4 <= u <= 0.6 for u in r["utilization_scrapes"]), r
