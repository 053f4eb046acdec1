"""--preload only when it is safe: what the app's import left in the master (a socket, a
Python thread, a child) is named and the master refuses to fork (exit 6), unless
--preload-unsafe; HUP re-executes a preloaded master so the new code serves; the log
keeps the time zone pyfork started in whatever the app sets. The words are table-tested."""
import os
import re
import signal
import socket
import time

import psutil
import pytest

from conftest import Server, get, wait_for
from supervisor import exits
from supervisor.supervise import preload
from supervisor.supervise.preload import Held, Kind
from test_master import Load

# -- the words (pure) -----------------------------------------------------------------------

SOCK = Held(Kind.SOCKET, "a socket to 127.0.0.1:5432 (fd 7)")
THREAD = Held(Kind.THREAD, "a thread 'ddtrace.writer'")
CHILD = Held(Kind.CHILD, "a child process 42 (sleep 60)")
NATIVE = Held(Kind.NATIVE_THREAD, "43 'python'")

REFUSALS = [
    ([], None),
    ([NATIVE], None),
    ([SOCK], "left a socket to 127.0.0.1:5432 (fd 7) in the master"),
    ([SOCK, THREAD], "left a socket to 127.0.0.1:5432 (fd 7) and a thread 'ddtrace.writer' in the master"),
    ([SOCK, NATIVE, THREAD, CHILD],
     "left a socket to 127.0.0.1:5432 (fd 7), a thread 'ddtrace.writer' and a child process 42 (sleep 60) in"),
]


@pytest.mark.parametrize("held, expected", REFUSALS)
def test_refusal_names_everything_shared_and_nothing_else(held, expected):
    line = preload.refusal(held)
    if expected is None:
        assert line is None
    else:
        assert line.startswith("--preload: the app's import ") and expected in line
        assert "every worker would share them" in line and "connections.close_all()" in line
        assert "without --preload" in line and "43 'python'" not in line


@pytest.mark.parametrize("held, expected", [
    ([SOCK, THREAD], None),
    ([NATIVE], "runs 1 native thread Python did not start (43 'python')"),
    ([NATIVE, Held(Kind.NATIVE_THREAD, "44 'x'")], "runs 2 native threads Python did not start (43 'python', 44 'x')"),
])
def test_native_threads_are_only_a_warning(held, expected):
    line = preload.warning(held)
    assert (line is None) if expected is None else expected in line


# -- the process ----------------------------------------------------------------------------

@pytest.fixture
def peer():
    """A listening socket the test owns: the app connects to it at import."""
    with socket.create_server(("127.0.0.1", 0)) as s:
        yield s


def start_refused(leaves, *args, env=None):
    s = Server("preload_apps:app", "--preload", *args, workers=2, wait=False,
               env=dict(env or {}, PRELOAD_LEAVES=leaves))
    try:
        code = s.proc.wait(30)
        log = s.log()
        assert s.worker_pids() == []
    finally:
        s.close()
    return code, log


CASES = [
    ("thread", r"--preload: the app's import left a thread 'ddtrace\.writer' in the master"),
    ("socket", r"--preload: the app's import left a socket to 127\.0\.0\.1:(\d+) \(fd \d+\) in the master"),
    ("child", r"--preload: the app's import left a child process (\d+) \(sleep 60\) in the master"),
]


@pytest.mark.parametrize("leaves, line", CASES)
def test_preload_refuses_what_workers_would_share(peer, leaves, line):
    code, log = start_refused(leaves, env={"PRELOAD_PEER": str(peer.getsockname()[1])})
    found = re.search(line, log)
    try:
        assert code == exits.PRELOAD_UNSAFE == 6, log
        assert found, log
        assert "booted in" not in log and "every worker would share them" in log
        if leaves == "socket":
            assert int(found.group(1)) == peer.getsockname()[1]
    finally:
        if leaves == "child" and found:
            child = psutil.Process(int(found.group(1)))     # orphaned when the master exited
            child.kill()
            wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 5)


@pytest.mark.parametrize("leaves", ["thread", "socket"])
def test_preload_unsafe_forks_anyway_and_says_what_is_shared(server, peer, leaves):
    s = server("preload_apps:app", "--preload", "--preload-unsafe", workers=2,
               env={"PRELOAD_LEAVES": leaves, "PRELOAD_PEER": str(peer.getsockname()[1])})
    assert get(s.port)[0] == 200
    assert "(forking anyway: --preload-unsafe)" in s.log()
    if leaves == "thread":
        # the app's thread lives on in the master: stop it here, as the fixture's stop
        # asserts a master of one thread
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(30) == 0


@pytest.mark.parametrize("leaves", ["", "closed", "tz"])
def test_preload_serves_when_nothing_is_left(server, peer, leaves):
    s = server("preload_apps:app", "--preload", workers=2,
               env={"PRELOAD_LEAVES": leaves, "PRELOAD_PEER": str(peer.getsockname()[1])})
    pids = {int(get(s.port, headers={"Connection": "close"})[2].split()[0]) for _ in range(20)}
    assert pids <= set(s.worker_pids())
    assert re.search(r"preload: the app was imported in the master in \d+ms; checked in [\d.]+ms: "
                     r"nothing for the workers to share", s.log()), s.log()


def test_without_preload_nothing_is_checked(server):
    s = server("preload_apps:app", workers=1, env={"PRELOAD_LEAVES": "thread"})
    assert get(s.port)[0] == 200
    assert "--preload:" not in s.log()


def test_the_log_keeps_the_zone_pyfork_started_in(server, tmp_path):
    """The app sets TZ=America/Chicago and calls tzset() at import (Django does): neither the
    master's lines (preloaded) nor the workers' nor the access log move from UTC."""
    access = tmp_path / "access.log"
    s = server("preload_apps:app", "--preload", "--access-logfile", str(access), workers=1,
               env={"PRELOAD_LEAVES": "tz", "TZ": "UTC"})
    assert get(s.port)[0] == 200
    s.signal(signal.SIGTTIN)
    assert s.wait_log("booted in", count=2)
    assert wait_for(lambda: access.exists() and access.read_text(), 5)
    stamps = re.findall(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ([+-]\d{4})\]", s.log(), re.M)
    assert len(stamps) > 5 and set(stamps) == {"+0000"}, s.log()
    assert re.search(r"\[\d\d/\w+/\d{4}:\d\d:\d\d:\d\d \+0000\]", access.read_text()), access.read_text()


def test_hup_reexecutes_a_preloaded_master_and_the_new_code_serves(server, tmp_path):
    (tmp_path / "hupapp.py").write_text(open(os.path.join(os.path.dirname(__file__), "..", "apps",
                                                         "preload_apps.py")).read())
    s = server("hupapp:app", "--preload", workers=2, cwd=str(tmp_path))
    assert get(s.port)[2].endswith(b" v1")
    text = (tmp_path / "hupapp.py").read_text().replace('VERSION = "v1"', 'VERSION = "v2"')
    (tmp_path / "hupapp.py").write_text(text)
    with Load(s.port, threads=2) as load:
        time.sleep(0.3)
        t0 = time.monotonic()
        s.signal(signal.SIGHUP)
        served = wait_for(lambda: get(s.port, headers={"Connection": "close"})[2].endswith(b" v2"), 10, every=0.05)
        took = time.monotonic() - t0
        time.sleep(0.5)
    print("HUP to new code served: %.2fs; requests ok=%d failed=%d" % (took, load.ok, len(load.failed)))
    assert served, s.log()[-3000:]
    assert took < 6.0, took        # README gives the figure measured on a quiet machine (2 s is the aim)
    assert load.failed == [] and load.ok > 20, (load.failed[:5], load.ok)
    log = s.log()
    assert re.search(r"reload: the app is preloaded in the master; importing the new code in pid=\d+ first", log)
    assert "reload: the new code imports; re-executing the master so that it serves (as USR2)" in log
    assert log.count("preload: the app was imported in the master") == 2
    assert wait_for(lambda: len(s.worker_pids()) == 2, 10)


def test_hup_with_code_that_fails_to_import_keeps_the_old_code_serving(server, tmp_path):
    (tmp_path / "hupapp.py").write_text(open(os.path.join(os.path.dirname(__file__), "..", "apps",
                                                         "preload_apps.py")).read())
    s = server("hupapp:app", "--preload", workers=2, cwd=str(tmp_path))
    master, workers = s.pid, set(s.worker_pids())
    (tmp_path / "hupapp.py").write_text("VERSION = (\n")          # a deploy with a syntax error
    with Load(s.port, threads=2) as load:
        s.signal(signal.SIGHUP)
        assert s.wait_log("reload: the new code failed to import", timeout=15), s.log()[-3000:]
        time.sleep(0.3)
    log = s.log()
    assert "SyntaxError" in log and "re-executing" not in log
    assert load.failed == [] and load.ok > 10, (load.failed[:5], load.ok)
    assert s.pid == master and set(s.worker_pids()) == workers
    assert get(s.port)[2].endswith(b" v1")
