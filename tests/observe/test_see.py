"""`pyfork status`, the control socket and the restart ledger, on the real pyfork."""
import json
import os
import re
import socket
import stat
import subprocess
import shutil
import signal
import sys
import tempfile
import threading
import time
import threading
import time

import pytest

from conftest import APPS, SCRIPTS, Server, free_port, get, no_cgroups, wait_for

STATUS = [sys.executable, "-m", "supervisor", "status"]


def status(*args, check=True):
    p = subprocess.run(STATUS + list(args), capture_output=True, text=True, timeout=20,
                       env=dict(os.environ, PYTHONPATH=APPS))
    if check:
        assert p.returncode == 0, p.stderr
    return p


def doc(path):
    return json.loads(status("--control-socket", path, "--json").stdout)


def test_status_table_and_json_from_a_private_socket(tmp_path):
    sock = str(tmp_path / "ctl.sock")
    with Server("sup_apps:app", "--control-socket", sock, "--metrics-interval", "0.3", workers=2) as s:
        assert wait_for(lambda: os.path.exists(sock), 5), s.log()
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert "control socket at %s" % sock in s.log()
        assert re.search(r"boot pyfork=\S+ python=3\.\d+\.\d+ dyno_size=- dyno_size_from=- cpus=\d+ cpus_from=affinity "
                         r"quota=\d+\.\d\dMB quota_from=(cgroup|machine) tasks_max=\S+ tasks_max_from=\S+ "
                         r"workers=2 workers_from=flag:--workers threads=1 threads_from=default", s.log()), s.log()
        for _ in range(5):
            assert get(s.port, "/")[0] == 200
        # a sample has been taken, and the workers' ticks (about once a second) count the requests
        assert wait_for(lambda: all(w["rss"] for w in doc(sock)["workers"]), 5)
        assert wait_for(lambda: sum(w["requests"] for w in doc(sock)["workers"]) == 5, 5)
        d = doc(sock)
        table = status("--control-socket", sock).stdout
    assert d["master"]["pid"] == s.pid and d["master"]["app"] == "sup_apps:app" and d["master"]["target"] == 2
    assert [w["slot"] for w in d["workers"]] == [0, 1]
    assert all(w["rss"] > 0 and w["state"] == "idle" and w["restarts"] == 0 for w in d["workers"])
    lines = table.splitlines()
    assert lines[0].startswith("pyfork ") and "master pid=%d" % s.pid in lines[0]
    header = [i for i, line in enumerate(lines) if line.startswith("SLOT")][0]
    rows = [r.split() for r in lines[header + 1:header + 3]]
    assert [r[:2] for r in rows] == [["0", str(d["workers"][0]["pid"])], ["1", str(d["workers"][1]["pid"])]]
    assert all(r[3] == "idle" and r[-1] == "0" for r in rows), table
    assert not os.path.exists(sock)               # removed when the master stopped


def test_status_shows_the_request_in_progress(tmp_path):
    sock = str(tmp_path / "ctl.sock")
    with Server("sup_apps:app", "--control-socket", sock, "--metrics-interval", "0.3", workers=2) as s:
        slow = threading.Thread(target=get, args=(s.port, "/slow?2.5"), kwargs={"timeout": 10})
        slow.start()
        try:
            assert wait_for(lambda: all(w["rss"] for w in doc(sock)["workers"]), 5)     # a sample has been taken
            assert wait_for(lambda: any(w["state"] == "busy" for w in doc(sock)["workers"]), 5)
            d = doc(sock)
            table = status("--control-socket", sock).stdout
        finally:
            slow.join()
    assert d["master"]["pid"] == s.pid and d["master"]["app"] == "sup_apps:app"
    busy = [w for w in d["workers"] if w["state"] == "busy"]
    assert len(busy) == 1 and busy[0]["request"] == "GET /slow" and 0 <= busy[0]["request_seconds"] < 5
    assert [w["slot"] for w in d["workers"]] == [0, 1] and all(w["rss"] > 0 for w in d["workers"])
    lines = table.splitlines()
    assert lines[0].startswith("pyfork ") and "master pid=%d" % s.pid in lines[0]
    header = [i for i, line in enumerate(lines) if line.startswith("SLOT")][0]
    rows = lines[header + 1:header + 3]
    assert any(r.split()[3:5] == ["busy", "GET"] and "/slow" in r for r in rows), table


def test_a_peer_of_another_uid_is_refused():
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another uid")
    where = tempfile.mkdtemp(prefix="pyfork-ctl-", dir="/tmp")   # pytest's tmp_path is 0700: nobody cannot reach it
    os.chmod(where, 0o755)
    sock = os.path.join(where, "ctl.sock")
    try:
        peer_of_another_uid(sock)
    finally:
        shutil.rmtree(where)


def peer_of_another_uid(sock):
    with Server("sup_apps:app", "--control-socket", sock, workers=1) as s:
        os.chmod(sock, 0o666)               # past the file mode: the uid check must still refuse
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.setuid(65534)
                c = socket.socket(socket.AF_UNIX)
                c.connect(sock)
                try:
                    c.sendall(b"status\n")
                except BrokenPipeError:
                    pass                    # refused at once, before we spoke: the answer is still there
                os.write(w, c.recv(4096))
            except BaseException as exc:
                os.write(w, repr(exc).encode())
            finally:
                os._exit(0)
        os.close(w)
        answer = os.read(r, 4096)
        os.waitpid(pid, 0)
        assert b"refused" in answer and b'"master"' not in answer, answer
        assert "control socket: refused pid=%d uid=65534" % pid in s.log()
        assert doc(sock)["master"]["pid"] == s.pid             # our own uid still gets an answer


def test_the_socket_beside_the_pidfile_and_status_without_a_master(tmp_path):
    pidfile = str(tmp_path / "app.pid")
    with Server("sup_apps:app", "--pid", pidfile, workers=1) as s:
        assert wait_for(lambda: os.path.exists(str(tmp_path / "app.sock")), 5)
        out = status("--pid", pidfile, "--json").stdout
        assert json.loads(out)["master"]["pid"] == s.pid
    p = status("--pid", pidfile, check=False)
    assert p.returncode == 1 and "is the master running" in p.stderr
    p = status(check=False)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        assert p.returncode == 2 and "give --pid FILE" in p.stderr


def test_a_second_master_on_the_same_socket_serves_without_one(tmp_path):
    sock = str(tmp_path / "ctl.sock")
    with Server("sup_apps:app", "--control-socket", sock, workers=1) as first:
        with Server("sup_apps:app", "--control-socket", sock, workers=1) as second:
            assert "another pyfork answers there" in second.log()
            assert get(second.port, "/")[0] == 200
        assert doc(sock)["master"]["pid"] == first.pid


def restarts_metric(port):
    text = get(port, "/metrics")[2].decode()
    return {(m.group(1), m.group(2)): int(m.group(3)) for m in re.finditer(
        r'pyfork_worker_restarts_total\{slot="(\d+)",reason="(\w+)"\} (\d+)', text)}


def test_the_ledger_after_a_timeout_and_a_max_requests_recycle(tmp_path):
    sock = str(tmp_path / "ctl.sock")
    mport = free_port()
    with Server("sup_apps:app", "--control-socket", sock, "--timeout", "1", "--max-requests", "3",
                "--metrics-interval", "0.3", "--metrics-bind", "127.0.0.1:%d" % mport, workers=1) as s:
        for _ in range(3):
            assert get(s.port, "/")[0] == 200             # the third is its last: it leaves cleanly
        assert wait_for(lambda: "restarts worker=0 total=1 max_requests=1" in s.log(), 10), s.log()
        s.wait_log("booted in", count=2)
        assert get(s.port, "/hang", timeout=8)[0] == 504  # past --timeout: answered 504, recycled
        assert wait_for(lambda: "timeout=1" in s.log(), 10), s.log()
        d = doc(sock)
        metric = restarts_metric(mport)
        table = status("--control-socket", sock).stdout
        assert "cannot read" not in s.log()           # a worker dying mid-sample does not turn PSS off
    causes = [(x["slot"], x["cause"]) for x in d["deaths"]]
    assert causes == [(0, "max_requests"), (0, "timeout")], d["deaths"]
    assert d["workers"][0]["restart_reasons"] == {"timeout": 1, "max_requests": 1}
    assert metric[("0", "timeout")] == 1 and metric[("0", "max_requests")] == 1 and metric[("0", "crash")] == 0
    assert "2 (max_requests 1, timeout 1)" in table
    assert re.search(r"worker=0 pid=\d+ timeout; answered 504, recycled; while serving GET /hang for \d+\.\d\ds; "
                     r"last sample: rss=\d+\.\dMB", table), table
    assert d["deaths"][1]["request"].startswith("GET /hang for ")


@pytest.mark.cgroup
def test_an_oom_kill_in_a_real_dyno_is_named_in_the_ledger(tmp_path):
    """A worker that outgrows a real cgroup limit is killed by the kernel; the death line
    says so from the cgroup's own counter, and status and /metrics file it as oom_kill."""
    sys.path.insert(0, SCRIPTS)
    from dyno import Dyno, DynoError
    try:
        d = Dyno(memory="160MB", tasks=128).__enter__()
    except DynoError as exc:
        no_cgroups(exc)
    sock = str(tmp_path / "ctl.sock")
    mport = free_port()
    try:
        with Server("metrics_apps:app", "--control-socket", sock, "--memory-pressure", "0", "--metrics-interval",
                    "0.3", "--metrics-bind", "127.0.0.1:%d" % mport, workers=1, dyno=d) as s:
            for _ in range(40):                      # 8 MB a request on one worker: past 160 MB it is killed
                try:
                    get(s.port, "/hog?8", timeout=5)
                except Exception:   # noqa: BLE001 - the request the kernel cut short
                    break
                time.sleep(0.1)                      # slow enough for samples on the way: the evidence
            assert wait_for(lambda: "killed by the kernel's OOM killer (cgroup oom_kill" in s.log(), 15), s.log()[-3000:]
            assert wait_for(lambda: "restarts worker=0 total=1 oom_kill=1" in s.log(), 10), s.log()[-3000:]
            deaths = doc(sock)["deaths"]
            metric = restarts_metric(mport)
        assert d.oom_kills() >= 1
        assert [x["cause"] for x in deaths] == ["oom_kill"], deaths
        assert re.match(r"killed by the kernel's OOM killer \(cgroup oom_kill \d+->\d+\) at (USS|PSS|RSS) "
                        r"\d+\.\d\dMB of quota 160\.00MB$", deaths[0]["detail"]), deaths
        assert metric[("0", "oom_kill")] == 1 and metric[("0", "crash")] == 0
    finally:
        d.__exit__(None, None, None)


def test_watch_redraws_until_interrupted(tmp_path):
    sock = str(tmp_path / "ctl.sock")
    with Server("sup_apps:app", "--control-socket", sock, workers=1) as s:
        p = subprocess.Popen(STATUS + ["--control-socket", sock, "--watch", "0.2"], stdout=subprocess.PIPE,
                             env=dict(os.environ, PYTHONPATH=APPS))
        try:
            time.sleep(1.5)
        finally:
            p.send_signal(signal.SIGINT)
            out, _ = p.communicate(timeout=10)
        assert p.returncode == 0
        frames = out.decode().split("\x1b[H\x1b[2J")[1:]
        assert len(frames) >= 3 and all("master pid=%d" % s.pid in f for f in frames), out[:500]
    bad = status("--control-socket", sock, "--watch", "0", check=False)
    assert bad.returncode == 2 and "--watch 0.0: give a number of seconds above 0" in bad.stderr


def test_xdg_runtime_dir_is_the_default_and_no_control_socket_turns_it_off(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    sock = tmp_path / "pyfork.sock"
    with Server("sup_apps:app", workers=1, env=env) as s:
        assert wait_for(sock.exists, 5), s.log()
        p = subprocess.run(STATUS + ["--json"], capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path)))
        assert p.returncode == 0 and json.loads(p.stdout)["master"]["pid"] == s.pid, p.stderr
    with Server("sup_apps:app", "--no-control-socket", workers=1, env=env) as s:
        assert not sock.exists() and "control socket" not in s.log()
