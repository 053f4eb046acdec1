"""pyfork inside a simulated dyno (real cgroup v1 memory and pids limits, made with
scripts/dyno.py): the task-limit guard and the worker-count advice, checked for real."""
import os
import re
import sys
import threading
import time

import pytest

from conftest import SCRIPTS, Server, get, wait_for

sys.path.insert(0, SCRIPTS)
from dyno import Dyno, DynoError  # noqa: E402


def dyno(**kw):
    try:
        return Dyno(**kw).__enter__()
    except DynoError as exc:
        pytest.skip("no cgroups to make a dyno here: %s" % exc)


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


def test_advised_worker_count_fits_and_far_more_is_oom_killed():
    quota = "240MB"
    env = {"HOG_MB": "40"}          # every worker keeps 40 MB of its own
    d = dyno(memory=quota, tasks=256)
    try:
        with Server("metrics_apps:app", "--metrics-interval", "0.5", workers=2, env=env, dyno=d) as s:
            assert wait_for(lambda: advised(s) is not None and "memory_uss=4" in s.log(), 10)
            n = advised(s)
        assert 2 <= n <= 5, n
        assert d.oom_kills() == 0
    finally:
        d.__exit__(None, None, None)

    d = dyno(memory=quota, tasks=256)
    try:
        with Server("metrics_apps:app", "--metrics-interval", "0.5", workers=n, env=env, dyno=d) as s:
            for _ in range(20):
                assert get(s.port, "/")[0] == 200
            time.sleep(2)
            assert "out of memory" not in s.log()
        assert d.oom_kills() == 0
    finally:
        d.__exit__(None, None, None)

    # far more workers than advised: they boot small, then grow under load until the
    # kernel kills one; pyfork logs the death with the worker's memory at the last sample
    d = dyno(memory=quota, tasks=256)
    try:
        s = Server("metrics_apps:app", "--metrics-interval", "0.3", workers=2 * n + 2, env={"HOG_MB": "8"}, dyno=d)
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
                assert wait_for(lambda: "killed by SIGKILL: out of memory?" in s.log(), 30), s.log()[-3000:]
            finally:
                stop.set()
                for t in threads:
                    t.join(10)
            kills = [line for line in s.log().splitlines() if "out of memory?" in line]
            assert any(re.search(r"last sample: memory_rss=\d+\.\d\dMB memory_pss=", k) for k in kills), kills
            assert d.oom_kills() >= 1
            assert s.proc.poll() is None                  # the master survives and keeps going
            assert wait_for(lambda: get(s.port, "/")[0] == 200, 10)
        finally:
            s.stop()
            s.close()
    finally:
        d.__exit__(None, None, None)


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
