"""Issue 24, end to end: a timeout costs only the request that hung. Real servers, real
sockets, real signals (scripts/timeouts.py runs the episodes and returns their figures)."""
import os
import re
import signal
import socket
import sys
import time

import pytest

from conftest import SCRIPTS, get, no_cgroups, wait_for

sys.path.insert(0, SCRIPTS)
import timeouts  # noqa: E402


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_threads_the_hung_request_gets_504_and_its_neighbours_finish():
    r = timeouts.threads_episode(threads=4, timeout=3.0)
    assert r["hung"] == 504 and r["hung_seconds"] <= 3.0 + 1.0, r
    assert r["neighbours"] == [200, 200, 200], r
    assert r["probes"] >= 10 and r["probes_ok"] == r["probes"], r    # answered, if after a free thread
    log = r["log"]
    assert "answered 504 to GET /hang after 3." in log and "its threads' stacks follow" in log
    assert re.search(r"line \d+ in app", log)                         # the stuck thread's stack
    assert re.search(r"worker=0 pid=\d+ timeout: answered 504, recycled: a new worker starts now; "
                     r"this one finishes its 3 other requests within --graceful-timeout", log), log
    assert re.search(r"worker=0 pid=\d+ stopped \(timeout: answered 504, recycled\): exit code 0", log), log
    assert "SIGABRT" not in log


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_threads_a_probe_with_a_free_thread_never_waits():
    """With a thread to spare (the hung one, three neighbours, one more), the /health probe
    is answered in under a second throughout, the replacement's start included."""
    r = timeouts.threads_episode(threads=5, timeout=3.0)
    assert r["hung"] == 504 and r["neighbours"] == [200, 200, 200], r
    assert r["probes_ok"] == r["probes"] and r["probe_worst"] < 1.0, r


@pytest.mark.timeout(60)
def test_sync_the_request_in_time_sleep_gets_504_and_a_new_worker_serves_the_next():
    r = timeouts.sync_episode(timeout=3.0)
    assert r["hung"] == 504 and r["hung_seconds"] <= 4.0, r
    assert r["next"] == 200 and r["served_by"] not in r["worker_before"], r
    log = r["log"]
    assert "timeout: GET /hang ran past --timeout; answered 504; it was here:" in log
    assert re.search(r'timeouts\.py", line \d+, in app\n\s+time\.sleep\(3600\)', log), log   # where it was stuck
    assert "RequestTimeout: the request ran 3." in log
    assert re.search(r"worker=0 pid=\d+ stopped \(timeout: answered 504, recycled\): exit code 0", log), log


@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 4])
def test_the_hung_requests_child_goes_with_it(threads):
    r = timeouts.children_episode(threads=threads, timeout=2.0)
    assert r["hung"] == 504 and len(r["children"]) == 1, r
    assert r["left"] == [] and r["gone_after_504"] < 5.0, r
    if threads > 1:     # the stuck thread still waits on it: the sweep after the worker left ends it
        assert re.search(r"worker=0 pid=\d+ left 1 process in its group: sending SIGTERM to pid=%d \(sleep 3600\)"
                         % r["children"][0], r["log"]), r["log"]


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 4])
def test_stuck_in_c_the_worker_is_aborted_after_the_grace(threads):
    """No Python runs in a worker stuck in C holding the GIL: no 504 can be written. The
    client's connection closes at --timeout + ANSWER_GRACE, the worker is aborted."""
    r = timeouts.c_episode(threads=threads, timeout=2.0)
    assert r["got"] == "closed" and 2.0 + 0.5 <= r["seconds"] <= 2.0 + 1.0 + 2.5, r
    assert re.search(r"worker=0 pid=\d+ did not answer 504 within 1s \(stuck in C code\?\); sending SIGABRT", r["log"])


@pytest.mark.timeout(60)
def test_a_killed_workers_children_go_and_a_clean_exits_stay(server):
    s = server("sup_apps:children", "--max-requests", "2", workers=1)
    worker = s.worker_pids()[0]
    child = int(get(s.port, "/spawn?60")[2])
    os.kill(worker, signal.SIGKILL)                    # as the OOM killer would
    assert wait_for(lambda: not alive(child), 5), s.log()
    assert s.wait_log("left 1 process in its group: sending SIGTERM to pid=%d (sleep 60)" % child), s.log()
    s.wait_ready()
    assert wait_for(lambda: len(s.worker_pids()) == 1 and worker not in s.worker_pids(), 10)
    kept = int(get(s.port, "/spawn?60")[2])
    get(s.port, "/")                                    # its second request: it leaves cleanly (max-requests)
    assert s.wait_log("restarting in", count=2), s.log()
    time.sleep(0.5)
    assert alive(kept), "a clean exit's child was killed"
    os.kill(kept, signal.SIGKILL)
    assert wait_for(lambda: not s.master_zombies(), 5)   # the master reaps it still


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 4])
def test_the_app_extends_its_own_timeout(server, threads):
    s = server("timeouts:app", "--timeout", "1", "--threads", threads, "--log-level", "debug", cwd=SCRIPTS,
               env={"PYTHONPATH": SCRIPTS})
    t0 = time.monotonic()
    assert get(s.port, "/export?2", timeout=10)[0] == 200          # 2 s of work, extended to 4
    assert time.monotonic() - t0 >= 2.0
    assert re.search(r"worker=0 pid=\d+: GET /export extended its timeout: deadline in 4\.0s "
                     r"\(asked 4s; at most 10s from its start\)", s.log()), s.log()
    assert "timed out" not in s.log()
    t0 = time.monotonic()
    assert get(s.port, "/export?30", timeout=20)[0] == 504         # the cap: 10 x --timeout
    assert 10.0 - 0.5 <= time.monotonic() - t0 <= 10.0 + 2.0


def freezer_or_skip():
    try:
        return timeouts.Freezer()
    except OSError as exc:
        no_cgroups("needs a cgroup v1 freezer this process may make a child of (root): %s" % exc)


@pytest.mark.cgroup
@pytest.mark.timeout(90)
@pytest.mark.parametrize("workers", [1, 4])
def test_a_frozen_dyno_kills_nobody(workers):
    freezer_or_skip().close()
    r = timeouts.stall_episode(workers=workers, timeout=2.0)
    assert r["answers"] == [200] * workers, r
    assert r["same_workers"] and r["timed_out"] == 0 and r["died"] == 0, r
    assert r["stalled"] == 1 and r["after"] == 200, r
    assert re.search(r"master pid=\d+: stalled for [67]\.\ds", r["log"]), r["log"]


@pytest.mark.timeout(60)
def test_a_quick_stop_reaches_the_apps_children_as_ctrl_c_did(server):
    """Each worker leads its own group, so a terminal's Ctrl-C reaches the master alone: the
    master passes INT on to each worker's group, and the app's children still get it."""
    s = server("sup_apps:children", workers=1)
    child = int(get(s.port, "/spawn?60")[2])
    assert s.stop(signal.SIGINT) == 0
    assert wait_for(lambda: not alive(child), 5)


@pytest.mark.timeout(60)
def test_threads_a_hung_request_whose_client_left_still_recycles_the_worker(server):
    """The client gave up (a router's own timeout) and its connection is gone: the stuck
    thread is no less stuck, so the worker still leaves (no SIGABRT for its neighbours)."""
    s = server("timeouts:app", "--timeout", "2", "--threads", "4", cwd=SCRIPTS, env={"PYTHONPATH": SCRIPTS})
    worker = s.worker_pids()[0]
    c = socket.create_connection(("127.0.0.1", s.port))
    c.sendall(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
    time.sleep(0.5)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")   # RST on close
    c.close()
    assert s.wait_log("stopped (timeout: answered 504, recycled)", 10), s.log()
    assert worker not in s.worker_pids() and "SIGABRT" not in s.log()
    assert get(s.port, "/health")[0] == 200
