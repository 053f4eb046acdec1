"""--refork-after: a warm worker becomes the template, the others are forked from it one
slot at a time, with no failed request; what a template may not share refuses it. The
decisions (refork.py, mold.refused) are table-tested."""
import os
import re
import signal
import socket
import time

import psutil
import pytest

from conftest import get, wait_for
from supervisor.serve import mold
from supervisor.supervise import refork
from supervisor.supervise.preload import Held, Kind
from supervisor.supervise.refork import Phase, Refork, Step
from test_master import Load

# -- the decisions (pure) -------------------------------------------------------------------

CHOOSE = [
    # marks, generation, [(nr, pid, ready, requests)], chosen
    ((100,), 0, [], None),
    ((100,), 0, [(0, 10, True, 99), (1, 11, True, 50)], None),
    ((100,), 0, [(0, 10, True, 99), (1, 11, True, 100)], 1),
    ((100,), 0, [(0, 10, True, 300), (1, 11, True, 200)], 0),       # the one that served most
    ((100,), 0, [(0, 10, False, 300), (1, 11, True, 200)], 1),      # a ready one only
    ((100,), 0, [(0, 10, True, 200), (1, 11, True, 200)], 0),       # a tie: the lower slot
    ((100,), 1, [(0, 10, True, 5000)], None),                       # every mark used
    ((50, 500), 1, [(0, 10, True, 499)], None),
    ((50, 500), 1, [(0, 10, True, 500)], 0),
]


@pytest.mark.parametrize("marks, generation, workers, chosen", CHOOSE)
def test_choose(marks, generation, workers, chosen):
    assert refork.choose(marks, generation, workers) == chosen


NEXT = [
    # slots [(nr, pid, ready, replaces)], reforked pids, (step, nr)
    ([(0, 0, False, 0), (1, 11, True, 0)], set(), (Step.WAIT, None)),          # the template's slot is empty
    ([(0, 20, False, 0), (1, 11, True, 0)], {20}, (Step.WAIT, None)),          # booting
    ([(0, 20, True, 0), (1, 11, True, 0)], {20}, (Step.REFORK, 1)),
    ([(0, 20, True, 0), (1, 21, False, 11)], {20, 21}, (Step.WAIT, None)),     # handing over
    ([(0, 20, True, 0), (1, 21, True, 0), (2, 12, True, 0)], {20, 21}, (Step.REFORK, 2)),
    ([(0, 20, True, 0), (1, 21, True, 0)], {20, 21}, (Step.DONE, None)),
    ([(0, 20, True, 0), (1, 21, True, 0)], {20, 21, 99}, (Step.DONE, None)),   # a reforked one that died since
]


@pytest.mark.parametrize("slots, reforked, expected", NEXT)
def test_next_slot(slots, reforked, expected):
    assert refork.next_slot(slots, reforked) == expected


def test_a_draining_template_is_overdue_at_its_deadline_only():
    state = Refork(0, 100, 10, 0, 3, started=5.0, deadline=40.0)
    assert not refork.overdue(state, 39.9) and refork.overdue(state, 40.0)
    state.phase = Phase.FORKING
    assert not refork.overdue(state, 99.0)


SOCK = Held(Kind.SOCKET, "a socket to 127.0.0.1:5432 (fd 9)")
THREAD = Held(Kind.THREAD, "a thread 'apm.reporter'")
NATIVE = Held(Kind.NATIVE_THREAD, "77 'python'")


@pytest.mark.parametrize("held, can_reopen, expected", [
    ([], False, ""),
    ([NATIVE], False, ""),
    ([SOCK], True, ""),                                 # post_refork reopens it
    ([SOCK], False, "it holds a socket to 127.0.0.1:5432 (fd 9), which the workers forked from it would share; "
                    "close sockets after each request, or reopen them in a post_refork(server, worker) hook. "
                    "Reforking is off for this run"),
    ([SOCK, THREAD], True, "it holds a thread 'apm.reporter', which the workers forked from it would share; start "
                           "threads in post_fork and post_refork. Reforking is off for this run"),
])
def test_what_refuses_a_template(held, can_reopen, expected):
    assert mold.refused(held, can_reopen) == expected


def test_socket_fd_from_its_description():
    assert mold.socket_fd(SOCK) == 9


# -- the processes ---------------------------------------------------------------------------

def answers(port, n, path="/"):
    return [get(port, path, headers={"Connection": "close"})[2].decode() for _ in range(n)]


def test_refork_under_load_loses_nothing_and_the_workers_are_the_masters(server):
    s = server("refork_apps:app", "--refork-after", "40,400", workers=3)
    before = set(s.worker_pids())
    with Load(s.port, threads=3, close=True) as load:
        assert s.wait_log("refork: generation 1 done", timeout=30), s.log()[-3000:]
        assert s.wait_log("refork: generation 2 done", timeout=60), s.log()[-3000:]
        time.sleep(0.3)
    log = s.log()
    assert load.failed == [] and load.ok > 400, (load.failed[:5], load.ok)
    assert s.wait_log("exited (exit code 0)", count=2)
    workers = s.worker_pids()
    assert len(workers) == 3 and not set(workers) & before
    assert all(psutil.Process(p).ppid() == s.pid for p in workers)        # reparented to the master
    assert re.search(r"refork: worker=\d pid=\d+ served \d+ requests \(--refork-after 40,400\): it becomes the "
                     r"template", log)
    assert re.search(r"refork: generation 1 done in [\d.]+s: 3 workers forked from the template", log), log
    # forked from the template, each worker draws its own random numbers (CPython reseeds at fork)
    draws = {}
    for text in answers(s.port, 30):
        pid, _, draw = text.split()
        draws.setdefault(pid, set()).add(draw)
    assert len({d for ds in draws.values() for d in ds}) == 30
    assert "Traceback" not in log


def test_a_template_with_a_thread_is_refused_and_serving_goes_on(server):
    s = server("refork_apps:app", "--refork-after", "30", workers=2)
    for _ in range(20):
        get(s.port, "/thread", headers={"Connection": "close"})     # each worker starts its APM thread
    with Load(s.port, threads=2, close=True) as load:
        assert s.wait_log("refork: off for this run", timeout=20), s.log()[-3000:]
        time.sleep(0.5)
    assert load.failed == [], load.failed[:5]
    log = s.log()
    assert re.search(r"refork: worker=\d pid=\d+ cannot be the template: it holds a thread 'apm\.reporter', "
                     r"which the workers forked from it would share", log), log
    assert "generation 1 done" not in log
    assert wait_for(lambda: len(s.worker_pids()) == 2, 10)
    time.sleep(1.5)                               # no second try
    assert s.log().count("it becomes the template") == 1


@pytest.fixture
def peer():
    with socket.create_server(("127.0.0.1", 0)) as srv:
        yield srv


def test_a_template_with_a_socket_needs_post_refork(server, peer):
    s = server("refork_apps:app", "--refork-after", "20", workers=1,
               env={"REFORK_PEER": str(peer.getsockname()[1])})
    get(s.port, "/connect")
    answers(s.port, 25)
    assert s.wait_log("refork: off for this run", timeout=20), s.log()[-3000:]
    assert re.search(r"cannot be the template: it holds a socket to 127\.0\.0\.1:%d \(fd \d+\)"
                     % peer.getsockname()[1], s.log()), s.log()
    assert wait_for(lambda: len(s.worker_pids()) == 1, 10)


def test_with_post_refork_the_sockets_are_closed_in_each_forked_worker(server, peer, tmp_path):
    conf = tmp_path / "pyfork.conf.py"
    record = tmp_path / "post_refork"
    conf.write_text("def post_refork(server, worker):\n"
                    "    open(%r, 'a').write('%%d %%d\\n' %% (worker.nr, __import__('os').getpid()))\n" % str(record))
    s = server("refork_apps:app", "-c", str(conf), "--refork-after", "20", workers=1,
               env={"REFORK_PEER": str(peer.getsockname()[1])})
    get(s.port, "/connect")
    assert get(s.port, "/socket")[2] == b"works"
    answers(s.port, 25)
    assert s.wait_log("refork: generation 1 done", timeout=20), s.log()[-3000:]
    assert re.search(r"refork: the template's a socket to 127\.0\.0\.1:%d \(fd \d+\): closed in each worker "
                     r"forked from it" % peer.getsockname()[1], s.log()), s.log()
    assert wait_for(lambda: len(s.worker_pids()) == 1 and record.exists(), 10)
    nr, pid = record.read_text().split()
    assert nr == "0" and int(pid) == s.worker_pids()[0]
    assert get(s.port, "/socket")[2].startswith(b"closed (")     # never the template's connection


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hup_or_term_while_the_template_drains_leaves_nothing_behind(server, sig):
    """One worker: it becomes the template while a 3 s request is in hand, so it is still
    draining when the signal comes; that request is answered, and nothing is left."""
    s = server("sup_apps:app", "--refork-after", "5", workers=1)
    answers(s.port, 6)
    slow = []
    t = __import__("threading").Thread(target=lambda: slow.append(get(s.port, "/slow?3", timeout=15)[0]))
    t.start()
    assert s.wait_log("it becomes the template", timeout=10), s.log()
    assert "is ready" not in s.log()
    s.signal(sig)
    assert s.wait_log("giving generation 1 up", timeout=10), s.log()[-3000:]
    t.join(15)
    assert slow == [200], s.log()[-3000:]
    if sig == signal.SIGHUP:
        assert s.wait_log("the template pid", timeout=10) and wait_for(lambda: len(s.worker_pids()) == 1, 10)
        assert get(s.port)[0] == 200
        assert "is ready" not in s.log()
    else:
        assert s.proc.wait(20) == 0, s.log()[-3000:]
