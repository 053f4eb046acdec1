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

from conftest import APPS, Server, get, wait_for

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
            # stuck in C: no 504 can be written, so the worker is aborted and dies (issue 24)
            c.sendall(b"GET /hang-in-c HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.wait_log("worker=0 pid=%d died" % pid, 15), s.log()
        line = [x for x in s.log().splitlines() if "worker=0 pid=%d died" % pid in x][0]
        assert "while serving GET /hang" in line and re.search(r" requests=30$", line), line


def _mb(n):
    return round(n / 1048576, 2)


def _groups(log):
    """The run's metrics samples from its log: [{'dyno', 'master', 'workers': {slot: samples}, 'tasks'}],
    one per tasks line (the last line of each sample), parsed by the same reader users run."""
    from supervisor.observe import metrics
    out, cur = [], {"workers": {}}
    for line in log.splitlines():
        p = metrics.parse_line(line)
        if p is None:
            continue
        s = p["samples"]
        if p["worker"] is not None:
            cur["workers"][p["worker"]] = dict(s, pid=p["pid"])
        elif p["process"] == "master":
            cur["master"] = dict(s, pid=p["pid"])
        elif "memory_quota" in s:
            cur["dyno"] = s
        elif "workers" in s:
            source = re.search(r" quota_from=(\S+)", line)
            cur["tasks"] = dict(s, quota_from=source.group(1) if source else None)
            out.append(cur)
            cur = {"workers": {}}
    return out


def test_status_and_report_of_a_recorded_run_agree_with_its_log(tmp_path):
    """Every number `pyfork status` and `pyfork report` show, checked against the log lines
    of the same run: a few requests, one worker timed out, then a quiet sample."""
    from supervisor.observe import charts, ledger, report, status as status_mod
    sock = str(tmp_path / "ctl.sock")
    with Server("sup_apps:app", "--control-socket", sock, "--metrics-interval", "1", "--timeout", "2",
                workers=2) as s:
        for _ in range(7):
            assert get(s.port, "/")[0] == 200
        doomed = s.worker_pids()
        threading.Thread(target=lambda: _quietly(s.port, "/hang-in-c"), daemon=True).start()
        assert s.wait_log(" died (", 15), s.log()      # stuck in C: aborted, a death (a 504 is none)
        assert wait_for(lambda: len(s.worker_pids()) == 2 and s.worker_pids() != doomed, 10)
        assert s.wait_log("restarts worker=", 10), s.log()
        for _ in range(3):
            assert get(s.port, "/")[0] == 200
        for _ in range(20):          # a status taken between two samples, after a quiet one
            n = s.log().count("sample#workers=")
            assert wait_for(lambda: s.log().count("sample#workers=") > n, 5)
            n += 1
            time.sleep(0.05)
            d = doc(sock)
            table = subprocess.run(STATUS + ["--control-socket", sock], capture_output=True, text=True,
                                   timeout=20, env=dict(os.environ, PYTHONPATH=APPS)).stdout
            if s.log().count("sample#workers=") == n and n >= 2:
                break
        log = s.log()
    samples = _groups(log)[:n]
    last = samples[-1]
    # -- status against the log --------------------------------------------------------
    m = d["master"]
    assert "[%d] [INFO]" % m["pid"] in log and last["master"]["pid"] == m["pid"]
    assert _mb(m["quota"]) == _mb(last["dyno"]["memory_quota"]) and m["quota_source"] == last["tasks"]["quota_from"]
    assert m["tasks"] == last["tasks"]["tasks"] and m["tasks_max"] == last["tasks"].get("tasks_max")
    assert len(d["workers"]) == m["target"] == last["tasks"]["workers"] == 2
    said = [x.split("] ", 3)[3] for x in log.splitlines() if "set WEB_CONCURRENCY=" in x and "-w auto" not in x]
    assert m["advice"] == (said[-1] if said else None)
    if "workers_advised" in last["tasks"]:
        assert "set WEB_CONCURRENCY=%d" % last["tasks"]["workers_advised"] in m["advice"]
    restarts = {}
    for line in log.splitlines():
        got = ledger.parse_log_line(line)
        if got:
            restarts[got[0]] = got[1]
    for w in d["workers"]:
        line = last["workers"][w["slot"]]
        assert w["pid"] == line["pid"] and w["requests"] == line["requests"], (w, line)
        for key in ("rss", "pss", "uss"):
            assert _mb(w[key]) == _mb(line["memory_" + key]), (key, w, line)
        assert (w["threads"], w["fds"], w["zombies"]) == (line["threads"], line["fds"], line["zombies"])
        assert w["restart_reasons"] == restarts.get(w["slot"], {}) and w["restarts"] == sum(w["restart_reasons"].values())
        assert w["state"] == "idle" and "worker=%d pid=%d" % (w["slot"], w["pid"]) in log
    # every request the run answered is counted once: the dead worker's in its death line
    deaths = re.findall(r"worker=(\d+) pid=(\d+) died \(.*while serving GET /hang.*requests=(\d+)", log)
    assert len(deaths) == 1 and len(d["deaths"]) == 1
    slot, pid, served = map(int, deaths[0])
    assert (d["deaths"][0]["slot"], d["deaths"][0]["pid"], d["deaths"][0]["cause"]) == (slot, pid, "timeout")
    assert served + sum(w["requests"] for w in d["workers"]) == 10
    # the table shows the document's numbers
    rows = {int(r.split()[0]): r.split() for r in table.splitlines() if re.match(r"^\d+\s+\d+\s", r)}
    for w in d["workers"]:
        r = rows[w["slot"]]
        assert r[1] == str(w["pid"]) and r[3] == "idle" and r[6] == str(w["requests"])
        assert r[7:10] == [status_mod.size(w[k]) for k in ("rss", "pss", "uss")]
    # -- the report against the log ----------------------------------------------------
    data = report.read(log.splitlines())
    page = charts.page(data, "t")
    metric_lines = sum(1 for x in log.splitlines() if " sample#" in x or x.startswith("source="))
    assert "%d metrics lines" % metric_lines in page
    peak = max(sum(g["workers"][k]["memory_pss"] for k in g["workers"]) + g["master"]["memory_pss"]
               for g in _groups(log))
    quota = last["dyno"]["memory_quota"]
    assert "%.0fMB of %.0fMB quota (%.0f%%)" % (peak / 1048576, quota / 1048576, 100 * peak / quota) in page
    assert "<td>restarts</td><td>timeout 1</td>" in page
    final = _groups(log)[-1]["tasks"]
    if "workers_advised" in final:
        assert "<td>advice</td><td>%d workers advised" % final["workers_advised"] in page
        assert "%d running</td>" % final["workers"] in page
    if said:
        import html
        assert "<td>advice said</td><td>%s</td>" % html.escape(said[-1]) in page


def _quietly(port, path):
    try:
        get(port, path, timeout=10)
    except OSError:
        pass
