"""Platform fit: systemd socket activation and notify, -w auto."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import APPS, free_port, get, wait_for


def start_with_systemd_socket(sock, extra_env=None, args=()):
    """Start pyfork as systemd would: the listening socket on fd 3, LISTEN_FDS=1 and
    LISTEN_PID set to pyfork's own pid (sh sets it, then execs pyfork in place)."""
    def on_fd_3():
        os.dup2(sock.fileno(), 3)
        os.set_inheritable(3, True)
    env = dict(os.environ, PYTHONPATH=APPS, LISTEN_FDS="1", **(extra_env or {}))
    env.pop("PORT", None)
    cmd = ["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh", sys.executable, "-m", "supervisor", "run",
           "sup_apps:app", "-w", "2"] + list(args)
    return subprocess.Popen(cmd, cwd=APPS, env=env, preexec_fn=on_fd_3, close_fds=False, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_socket_activation_serves_the_inherited_socket():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    p = start_with_systemd_socket(sock)
    sock.close()       # only pyfork holds it now
    try:
        assert wait_for(lambda: _answers(port), 10)
        assert get(port, "/")[0] == 200
    finally:
        p.send_signal(signal.SIGTERM)
        out = p.communicate(timeout=15)[0]
    assert p.returncode == 0, out
    assert "listening at http://127.0.0.1:%d" % port in out


def _answers(port):
    try:
        return get(port, "/", timeout=1)[0] == 200
    except OSError:
        return False


def test_workers_auto_moves_toward_the_advice(server):
    # a small quota makes the first guess 1 worker; real samples (a few MB each) then
    # advise more, and the count moves one step per sample up to --max-workers
    s = server("sup_apps:app", "--memory-quota", "150MB", "--metrics-interval", "0.3",
               "--max-workers", "3", workers="auto", wait=False)
    assert wait_for(lambda: "-w auto: workers 1 -> 2" in s.log(), 10), s.log()
    assert wait_for(lambda: "-w auto: workers 2 -> 3" in s.log(), 10), s.log()
    assert wait_for(lambda: len(s.worker_pids()) == 3, 5)
    time.sleep(1)
    assert "workers 3 -> 4" not in s.log()


def test_sd_notify_ready_reloading_stopping_and_watchdog(server, tmp_path):
    """Type=notify, with a real datagram socket standing in for systemd."""
    path = str(tmp_path / "notify.sock")
    sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sd.bind(path)
    sd.settimeout(10)

    def messages(until, limit=50):
        got = []
        for _ in range(limit):
            msg = dict(line.split("=", 1) for line in sd.recv(4096).decode().splitlines())
            got.append(msg)
            if until(msg):
                return got
        raise AssertionError(got)
    try:
        s = server("sup_apps:app", workers=2, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        got = messages(lambda m: m.get("READY") == "1")
        # READY only once both workers are up, with the worker count as STATUS
        assert got[-1]["STATUS"] == "workers=2/2", got
        got = messages(lambda m: m.get("WATCHDOG") == "1")
        s.signal(signal.SIGHUP)
        got = messages(lambda m: m.get("RELOADING") == "1")
        assert int(got[-1]["MONOTONIC_USEC"]) > 0
        messages(lambda m: m.get("READY") == "1")
        s.signal(signal.SIGTERM)
        messages(lambda m: m.get("STOPPING") == "1")
        assert s.proc.wait(15) == 0
    finally:
        sd.close()


def test_metrics_endpoint_matches_the_log_lines(server):
    from prometheus_client.parser import text_string_to_metric_families
    from supervisor.observe import metrics
    mport = free_port()
    s = server("sup_apps:app", "--metrics-interval", "1.5", "--metrics-bind", "127.0.0.1:%d" % mport, workers=2)
    assert wait_for(lambda: s.log().count("sample#workers=2 ") >= 1, 10)
    # scrape right after a sample line: the next one is 1.5 s away, so both see the same sample
    text = _scrape(mport)
    last = {}
    for line in s.log().splitlines():
        parsed = metrics.parse_line(line)
        if parsed and parsed.get("worker") is not None:
            last[parsed["pid"]] = parsed["samples"]
    families = {f.name: f for f in text_string_to_metric_families(text)}
    rss = {int(smp.labels["pid"]): smp.value for smp in families["pyfork_memory_rss_bytes"].samples
           if smp.labels["worker"] != "master"}
    assert set(rss) == set(s.worker_pids())
    for pid, value in rss.items():
        # the endpoint serves the same sample the log printed (log rounds to 0.01 MB)
        assert abs(value - last[pid]["memory_rss"]) <= 0.006 * 1048576, (value, last[pid])
    assert families["pyfork_workers_target"].samples[0].value == 2
    assert "pyfork_worker_restarts" in families
    # a client that connects and never sends does not block the master or other scrapes
    idle = socket.create_connection(("127.0.0.1", mport))
    try:
        assert "pyfork_threads" in _scrape(mport)
        assert get(s.port, "/")[0] == 200
    finally:
        idle.close()


def _scrape(port):
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        assert r.status == 200
        return r.read().decode()


@pytest.mark.skipif(not __import__("shutil").which("prometheus"),
                    reason="a real Prometheus server is not installed (.ci/run installs Debian's)")
def test_a_real_prometheus_server_scrapes_it(server, tmp_path):
    import json
    import urllib.request
    mport, pport = free_port(), free_port()
    server("sup_apps:app", "--metrics-interval", "0.5", "--metrics-bind", "127.0.0.1:%d" % mport, workers=2)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pyfork\n"
        "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % mport)
    prom = subprocess.Popen(["prometheus", "--config.file", str(tmp_path / "prometheus.yml"),
                             "--storage.tsdb.path", str(tmp_path / "data"),
                             "--web.listen-address", "127.0.0.1:%d" % pport],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(q):
        try:
            url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (pport, q)
            with urllib.request.urlopen(url, timeout=2) as r:
                result = json.load(r)["data"]["result"]
            return {tuple(sorted(x["metric"].items())): float(x["value"][1]) for x in result}
        except OSError:
            return {}
    try:
        assert wait_for(lambda: 1.0 in query("up").values(), 30), "Prometheus never scraped pyfork"
        assert wait_for(lambda: list(query("pyfork_workers_target").values()) == [2.0], 15)
        rss = query("pyfork_memory_rss_bytes")
        assert {dict(k)["worker"] for k in rss} == {"master", "0", "1"}
        assert all(v > 1e6 for v in rss.values())
    finally:
        prom.terminate()
        prom.wait(15)


def test_binds_unix_ipv6_fd_and_several_at_once(tmp_path):
    """-b is repeatable and takes HOST:PORT, [::1]:PORT, unix:PATH and fd://N."""
    import http.client
    path = str(tmp_path / "pyfork.sock")
    p4, p6 = free_port(), free_port()
    handed = socket.socket()
    handed.bind(("127.0.0.1", 0))
    handed.listen(16)
    pfd = handed.getsockname()[1]
    has_v6 = socket.has_ipv6
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        has_v6 = False
    binds = ["-b", "127.0.0.1:%d" % p4, "-b", "unix:" + path, "-b", "fd://%d" % handed.fileno()]
    if has_v6:
        binds += ["-b", "[::1]:%d" % p6]
    env = dict(os.environ, PYTHONPATH=APPS)
    env.pop("PORT", None)
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run", "sup_apps:app", "-w", "1"] + binds,
                            cwd=APPS, env=env, pass_fds=(handed.fileno(),), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    handed.close()
    try:
        assert wait_for(lambda: _answers(p4), 10)
        assert get(pfd, "/")[0] == 200                 # the socket handed over as fd://N

        class UnixConnection(http.client.HTTPConnection):
            def connect(self):
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
        c = UnixConnection("localhost", timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and r.read().isdigit()
        c.close()
        if has_v6:
            c = http.client.HTTPConnection("::1", p6, timeout=5)
            c.request("GET", "/")
            assert c.getresponse().status == 200
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[0]
    assert proc.returncode == 0, out
    assert not os.path.exists(path)                     # the unix socket file is removed on exit


def test_chdir_reuse_port_and_backlog(server, tmp_path):
    """--chdir loads the app from that directory; --reuse-port lets a second listener
    share the port (SO_REUSEPORT, as in Gunicorn); --backlog is accepted."""
    (tmp_path / "here_app.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '4')])\n"
        "    return [b'here']\n")
    s = server("here_app:app", "--chdir", str(tmp_path), "--reuse-port", "--backlog", "64", workers=1)
    assert get(s.port, "/")[2] == b"here"
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        other.bind(("127.0.0.1", s.port))          # refused without SO_REUSEPORT on pyfork's socket
    finally:
        other.close()
