"""What the person on call reads is true (issue 26): `pyfork status`, the death lines and
the report, checked on the real pyfork against what the run did and logged."""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import psutil

from conftest import APPS, Server, wait_for

STATUS = [sys.executable, "-m", "supervisor", "status"]


def doc(sock):
    p = subprocess.run(STATUS + ["--control-socket", sock, "--json"], capture_output=True, text=True,
                       timeout=20, env=dict(os.environ, PYTHONPATH=APPS))
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def held(port, path, n):
    """n clients at once, each sends one request, reads its whole answer and keeps its
    keep-alive connection open: -> the open connections."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(n)]
    bodies = []

    def one(c):
        c.request("GET", path)
        r = c.getresponse()
        bodies.append((r.status, r.getheader("Connection"), r.read()))
    threads = [threading.Thread(target=one, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(bodies) == n and all(b[0] == 200 and b[2] for b in bodies), bodies
    # a saturated worker sheds ("Connection: close"): the others stay open
    assert any(b[1] != "close" for b in bodies), bodies
    return conns


def cpu(pids):
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def test_a_worker_whose_requests_are_answered_is_idle_whatever_connections_it_holds(tmp_path):
    """It was called busy ('busy GET /slow FOR 0.0s') for as long as the clients held their
    keep-alive connections: after a slow turn the loop polled with no wait and never settled
    its cell, spinning a core. Django-like responses: an iterable with close(), a file
    wrapper, a generator; and a plain list."""
    sock = str(tmp_path / "ctl.sock")
    with Server("view_apps:app", "--control-socket", sock, "--keep-alive", "60", workers=2) as s:
        assert wait_for(lambda: os.path.exists(sock), 5), s.log()
        kept = []
        try:
            for path in ("/iter", "/file", "/gen", "/"):
                kept += held(s.port, path, 3)
                states = wait_for(lambda: [w["state"] for w in doc(sock)["workers"]] == ["idle", "idle"], 3)
                assert states, (path, doc(sock)["workers"])
                pids = s.worker_pids()
                before = cpu(pids)
                time.sleep(1.0)
                spent = cpu(pids) - before
                assert spent < 0.3, "%s: the idle workers used %.2fs of CPU in 1 s" % (path, spent)
                d = doc(sock)
                assert all(w["state"] == "idle" and w["request"] == "" for w in d["workers"]), (path, d["workers"])
        finally:
            for c in kept:
                c.close()
        assert sum(w["requests"] for w in doc(sock)["workers"]) == 12


def test_a_death_line_counts_the_requests_of_a_worker_that_never_went_idle():
    """A worker that served 30 requests back to back on one keep-alive connection, then hung
    on the 31st, was logged `requests=0`: its count reached the master only on a tick or when
    its loop went idle. Its death line carries its own count as of its death."""
    with Server("sup_apps:app", "--timeout", "2", workers=1) as s:
        pid = s.worker_pids()[0]
        time.sleep(1.2)       # the boot's tick has told the master requests=0
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as c:
            f = c.makefile("rb")
            for _ in range(30):
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert f.readline().startswith(b"HTTP/1.1 200")
                length = 0
                while True:
                    line = f.readline()
                    if line == b"\r\n":
                        break
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                f.read(length)
            c.sendall(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.wait_log("worker=0 pid=%d died" % pid, 15), s.log()
        line = [x for x in s.log().splitlines() if "worker=0 pid=%d died" % pid in x][0]
        assert "while serving GET /hang" in line and re.search(r" requests=30$", line), line
