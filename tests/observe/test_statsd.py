"""statsd / DogStatsD with Gunicorn's names: the lines (pure), then a real pyfork sending to a
real UDP socket (and a unix datagram socket) that the test reads; a dead server costs the
requests nothing."""
import os
import socket
import time

import pytest

from supervisor.convert_gunicorn import ConfigError, _statsd_host
from supervisor.observe.statsd import line, packed, prefix_of, request_lines, sample_lines

from conftest import Server, get


@pytest.mark.parametrize("text, address", [
    ("localhost:8125", ("localhost", 8125)), ("statsd", ("statsd", 8125)), ("10.0.0.5:9125", ("10.0.0.5", 9125)),
    ("[::1]:8125", ("::1", 8125)), ("unix:/run/dd.sock", ("unix", "/run/dd.sock")),
    ("unix:///run/dd.sock", ("unix", "/run/dd.sock")), ("", None),
    ("host:port", ConfigError), ("unix:", ConfigError), (":8125", ConfigError), ("h:70000", ConfigError),
])
def test_statsd_host(text, address):
    if address is ConfigError:
        with pytest.raises(ConfigError):
            _statsd_host(text, "--statsd-host")
    else:
        assert _statsd_host(text, "--statsd-host") == address


def test_lines_as_gunicorn_writes_them():
    assert prefix_of("web") == prefix_of("web.") == prefix_of("web..") == "web." and prefix_of("") == ""
    assert line("", "gunicorn.requests", 1, "c") == b"gunicorn.requests:1|c|@1.0"
    assert line("web.", "gunicorn.request.duration", "1.500", "ms", "env:prod,team:a") == \
        b"web.gunicorn.request.duration:1.500|ms|#env:prod,team:a"
    assert line("", "gunicorn.workers", 3, "g") == b"gunicorn.workers:3|g"
    assert request_lines("", "", [(200, 0.0015), (404, 0.002), (200, 0.001)]) == [
        b"gunicorn.request.duration:1.500|ms", b"gunicorn.request.duration:2.000|ms",
        b"gunicorn.request.duration:1.000|ms", b"gunicorn.requests:3|c|@1.0",
        b"gunicorn.request.status.200:2|c|@1.0", b"gunicorn.request.status.404:1|c|@1.0"]


def test_packed_into_datagrams():
    lines = [b"x" * 600, b"y" * 600, b"z" * 600, b"w" * 2000]
    assert packed(lines, 1432) == [b"x" * 600 + b"\n" + b"y" * 600, b"z" * 600, b"w" * 2000]
    assert packed([]) == []


def test_sample_lines():
    class S:
        slot, rss, pss, uss, swap, threads, fds, requests, busy_share = 2, 100, 80, 60, None, 1, 7, 9, 0.25
    assert sample_lines("p.", "", [S()]) == [
        b"p.gunicorn.workers:1|g", b"p.pyfork.worker.2.memory_rss:100|g", b"p.pyfork.worker.2.memory_pss:80|g",
        b"p.pyfork.worker.2.memory_uss:60|g", b"p.pyfork.worker.2.threads:1|g", b"p.pyfork.worker.2.fds:7|g",
        b"p.pyfork.worker.2.requests:9|g", b"p.pyfork.worker.2.busy_share:0.25|g"]


def received(sock, until, timeout=15.0):
    """Datagrams' lines until `until(lines)` holds -> lines."""
    lines = []
    deadline = time.monotonic() + timeout
    while not until(lines) and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            lines += sock.recv(65536).decode().split("\n")
        except socket.timeout:
            break
    return lines


def total(lines, name):
    return sum(int(l.split(":")[1].split("|")[0]) for l in lines if l.split(":")[0] == name)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("threads", [1, 2])
def test_metrics_reach_a_real_udp_server(threads):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        with Server("http_app:unvalidated", "--statsd-host", "127.0.0.1:%d" % udp.getsockname()[1], "--statsd-prefix", "web",
                    "--dogstatsd-tags", "env:test", "--metrics-interval", "1", "--threads", threads,
                    "--worker-tmp-dir", "/dev/shm") as s:
            for path in ("/", "/", "/status?code=404"):
                get(s.port, path)
            lines = received(udp, lambda ls: total(ls, "web.gunicorn.requests") >= 3
                             and any("pyfork.worker.0.memory_pss" in l for l in ls))
            assert any(l.startswith("web.pyfork.worker.0.memory_pss:") for l in lines), lines   # slot 0's gauge
            assert total(lines, "web.gunicorn.requests") == 3, lines
            assert total(lines, "web.gunicorn.request.status.200") == 2
            assert total(lines, "web.gunicorn.request.status.404") == 1
            assert sum(l.startswith("web.gunicorn.request.duration:") and l.endswith("|ms|#env:test")
                       for l in lines) == 3, lines
            assert "web.gunicorn.workers:1|g|#env:test" in lines
            # the warning at start (--worker-tmp-dir is ignored) was counted
            assert "web.gunicorn.log.warning:1|c|@1.0|#env:test" in lines, lines
    finally:
        udp.close()


@pytest.mark.timeout(60)
def test_unix_socket_and_a_dead_server(tmp_path):
    path = str(tmp_path / "dsd.sock")
    dsd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dsd.bind(path)
    try:
        with Server("http_app:app", "--statsd-host", "unix:" + path, "--metrics-interval", "0") as s:
            get(s.port, "/")
            assert total(received(dsd, lambda ls: total(ls, "gunicorn.requests") >= 1), "gunicorn.requests") == 1
            dsd.close()
            os.unlink(path)            # the agent is gone: requests are served, nothing is logged for it
            for _ in range(20):
                assert get(s.port, "/")[0] == 200
            assert "statsd" not in s.log().lower()
    finally:
        dsd.close()
