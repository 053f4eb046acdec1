"""metricsserver.py: a MetricsServer driven by a small poll loop in the test's own thread
(the way the master drives it), real sockets on 127.0.0.1, real HTTP clients in threads.

Every client here that stalls would hang a blocking server for good; the tests finish
because the loop keeps turning, and each asserts that the other scrapes were answered
meanwhile.
"""
import errno
import http.client
import os
import select
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.observe import metricsserver, prometheus
from supervisor.config import Bind
from supervisor.observe.metrics import MB, DynoSample, ProcSample
from supervisor.observe.metricsserver import MetricsServer

MASTER = ProcSample(slot=-1, pid=41, rss=40 * MB, pss=None, uss=None, swap=None, threads=1, fds=7,
                    children=2, zombies=0, requests=0, cpu=0.5, uptime=3600.0)
WORKER = ProcSample(slot=0, pid=4240, rss=88 * MB, pss=51 * MB, uss=44 * MB, swap=0, threads=2,
                    fds=9, children=0, zombies=0, requests=1234, cpu=1.25, uptime=60.5)
DYNO = DynoSample(total=21 * MB, rss=20 * MB, cache=MB, swap=0, pgpgin=10, pgpgout=5, quota=512 * MB,
                  quota_source="cgroup", tasks=37, tasks_max=256, load=(2.46, 1.06, 0.99))


def sample():
    return prometheus.render(MASTER, [WORKER], DYNO, 3, {"crash": 1}, 2)


class Log:
    """Records (level, text) for the assertions."""

    def __init__(self):
        self.lines = []

    def __getattr__(self, level):
        return lambda msg, *args: self.lines.append((level, msg % args if args else msg))


class Loop:
    """The master's part, as it would be wired: expire, re-register what fds() asks for,
    sleep until the next deadline, hand each event to handle()."""

    def __init__(self, server):
        self.server = server
        self.poller = select.poll()
        self.registered = {}
        self.longest = 0.0          # the longest single handle() or expire() call
        self.saw_pollout = False

    def step(self, most=0.05):
        now = time.monotonic()
        self.timed(self.server.expire, now)
        want = self.server.fds()
        for fd in set(self.registered) - set(want):
            self.poller.unregister(fd)
        for fd, mask in want.items():
            if self.registered.get(fd) != mask:
                self.poller.register(fd, mask)
        self.registered = want
        self.saw_pollout |= select.POLLOUT in want.values()
        wait = self.server.next_deadline(now)
        wait = most if wait is None else min(wait, most)
        for fd, events in self.poller.poll(wait * 1000.0):
            self.timed(self.server.handle, fd, events, time.monotonic())

    def timed(self, fn, *args):
        start = time.monotonic()
        fn(*args)
        self.longest = max(self.longest, time.monotonic() - start)

    def until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "the loop did not get there in %gs" % timeout
            self.step()


@pytest.fixture
def make():
    made = []

    def make(render=sample, timeout=metricsserver.TIMEOUT, bind=("127.0.0.1", 0)):
        log = Log()
        server = MetricsServer(bind, render, log, timeout=timeout)
        made.append(server)
        return server, Loop(server), log
    yield make
    for server in made:
        server.close()


class Client(threading.Thread):
    """One scrape with http.client in a thread; `result` is (status, headers, body) or the error."""

    def __init__(self, port, method="GET", path="/metrics"):
        super().__init__(daemon=True)
        self.port, self.method, self.path = port, method, path
        self.result = None
        self.finished = None

    def run(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            conn.request(self.method, self.path)
            resp = conn.getresponse()
            self.result = (resp.status, dict(resp.getheaders()), resp.read())
            conn.close()
        except Exception as exc:     # reported by the test, not lost in the thread
            self.result = exc
        self.finished = time.monotonic()


def scrape(loop, port, **kw):
    """One scrape served by `loop`, returned as (status, headers, body)."""
    client = Client(port, **kw)
    client.start()
    loop.until(lambda: not client.is_alive())
    assert not isinstance(client.result, Exception), client.result
    return client.result


def raw(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def wait_closed(loop, sock, timeout=10.0):
    """Turn the loop until the server closes `sock`; what the server sent before that."""
    sock.setblocking(False)
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        loop.step(0.02)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return got
        if not data:
            return got
        got += data
    raise AssertionError("the server never closed the connection")


def families(body):
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


# -- a normal scrape ------------------------------------------------------------------------

def test_a_scrape_is_prometheus_text_that_parses(make):
    server, loop, _ = make()
    status, headers, body = scrape(loop, server.address[1])
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body)
    assert body.decode() == sample()
    fams = families(body)
    assert fams["pyfork_memory_uss_bytes"].samples[0].value == 44 * MB
    assert fams["pyfork_requests"].samples[1].labels == {"worker": "0", "pid": "4240"}
    assert server.conns == {}


def test_render_is_called_once_per_request(make):
    calls = []
    server, loop, _ = make(render=lambda: calls.append(1) or sample())
    for _ in range(3):
        scrape(loop, server.address[1])
    scrape(loop, server.address[1], path="/")
    assert len(calls) == 3


@pytest.mark.parametrize("method, path, status, has_body", [
    ("GET", "/metrics?name[]=x", 200, True),
    ("HEAD", "/metrics", 200, False),
    ("GET", "/", 404, True),
    ("GET", "/metrics/", 404, True),
    ("POST", "/metrics", 405, True),
    ("DELETE", "/nowhere", 405, True),
])
def test_routes(make, method, path, status, has_body):
    server, loop, _ = make()
    got, headers, body = scrape(loop, server.address[1], method=method, path=path)
    assert got == status
    assert headers["Connection"] == "close"
    assert bool(body) is has_body
    if status == 405:
        assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("head, status", [
    (b"GET /metrics HTTP/1.0\r\n\r\n", b"200"),
    (b"GET /metrics HTTP/1.1\n\n", b"200"),                 # bare LF
    (b"nonsense\r\n\r\n", b"400"),
    (b"GET /metrics\r\n\r\n", b"400"),                      # HTTP/0.9 is not spoken
    (b"GET /metrics SPDY/3\r\n\r\n", b"400"),
])
def test_raw_heads(make, head, status):
    server, loop, _ = make()
    sock = raw(server.address[1])
    sock.sendall(head)
    reply = wait_closed(loop, sock)
    assert reply.startswith(b"HTTP/1.1 " + status + b" ")
    sock.close()


def test_render_failure_costs_one_scrape(make):
    def broken():
        raise RuntimeError("bug")
    server, loop, log = make(render=broken)
    status, _, _ = scrape(loop, server.address[1])
    assert status == 500
    assert log.lines[-1][0] == "exception" and "rendering /metrics failed" in log.lines[-1][1]
    assert server.conns == {}


# -- stalled and hostile clients ------------------------------------------------------------

@pytest.mark.parametrize("first_bytes", [
    b"",                                                    # connects and never sends
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n",                # half a head, then nothing
])
def test_a_stalled_client_is_expired_while_others_are_served(make, first_bytes):
    server, loop, _ = make(timeout=1.0)
    port = server.address[1]
    stalled = raw(port)
    stalled.sendall(first_bytes)
    opened = time.monotonic()
    loop.until(lambda: len(server.conns) == 1)
    for _ in range(3):
        assert scrape(loop, port)[0] == 200
    assert time.monotonic() - opened < 1.0 and len(server.conns) == 1   # served while it was held
    assert wait_closed(loop, stalled) == b""                          # closed without an answer
    assert 1.0 <= time.monotonic() - opened < 3.0
    assert server.conns == {} and server.next_deadline(time.monotonic()) is None
    assert loop.longest < 1.0       # no call waited for the stalled client
    stalled.close()


def test_a_huge_head_gets_431_or_a_close(make):
    server, loop, _ = make()
    port = server.address[1]
    sock = raw(port)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (metricsserver.MAX_HEAD + 100))
    reply = wait_closed(loop, sock)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 ")
    assert server.conns == {}
    assert scrape(loop, port)[0] == 200
    sock.close()


def test_a_head_of_exactly_the_limit_is_served(make):
    server, loop, _ = make()
    sock = raw(server.address[1])
    head = b"GET /metrics HTTP/1.1\r\nX-Pad: "
    sock.sendall(head + b"a" * (metricsserver.MAX_HEAD - len(head) - 4) + b"\r\n\r\n")
    assert wait_closed(loop, sock).startswith(b"HTTP/1.1 200 OK\r\n")
    sock.close()


def test_a_client_that_leaves_early_frees_its_slot(make):
    server, loop, _ = make()
    sock = raw(server.address[1])
    sock.sendall(b"GET /met")
    loop.until(lambda: len(server.conns) == 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")   # leave with a RST
    sock.close()
    loop.until(lambda: not server.conns)


def test_100_concurrent_scrapes(make):
    server, loop, _ = make()
    clients = [Client(server.address[1]) for _ in range(100)]
    for c in clients:
        c.start()
    loop.until(lambda: not any(c.is_alive() for c in clients), timeout=30)
    bad = [c.result for c in clients if isinstance(c.result, Exception) or c.result[0] != 200]
    assert bad == []
    assert {c.result[2] for c in clients} == {sample().encode()}
    assert server.conns == {}


def test_when_full_scrapers_wait_in_the_backlog_instead_of_being_refused(make):
    server, loop, _ = make(timeout=1.0)
    port = server.address[1]
    held = [raw(port) for _ in range(metricsserver.MAX_CONNECTIONS)]
    loop.until(lambda: len(server.conns) == metricsserver.MAX_CONNECTIONS)
    assert server.listener.fileno() not in server.fds()
    client = Client(port)
    client.start()
    started = time.monotonic()
    loop.until(lambda: not client.is_alive())
    assert client.result[0] == 200
    assert client.finished - started > 0.5            # it waited for the stalled ones to expire
    assert server.listener.fileno() in server.fds()
    for sock in held:
        sock.close()


def test_a_slow_reader_of_a_big_body_does_not_hold_up_another_scrape(make):
    big = "# HELP pyfork_x x\n# TYPE pyfork_x gauge\n" + "".join(
        'pyfork_x{n="%07d"} %d\n' % (i, i) for i in range(2 * MB // 24))
    assert len(big) > 2 * MB
    server, loop, _ = make(render=lambda: big)
    # Loopback's 64 KiB segments let the kernel grow a send buffer past 2 MB, so one send()
    # would take the whole answer; a real network path grows it far less. Accepted sockets
    # inherit the listener's fixed size, which gives the slow path a real POLLOUT wait.
    server.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    port = server.address[1]
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)    # and the reader's window small
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    got = bytearray()
    done = threading.Event()

    def read_slowly():
        while True:
            data = slow.recv(32768)
            if not data:
                break
            got.extend(data)
            time.sleep(0.002)
        done.set()
    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    loop.until(lambda: loop.saw_pollout)      # the big answer did not fit: it waits for POLLOUT
    fast = scrape(loop, port, path="/")       # answered while the big one is still going out
    assert fast[0] == 404 and not done.is_set()
    loop.until(done.is_set)
    head, _, body = bytes(got).partition(b"\r\n\r\n")
    assert b"Content-Length: %d\r\n" % len(big.encode()) in head
    assert body == big.encode()
    assert len(families(body)["pyfork_x"].samples) == 2 * MB // 24
    assert loop.longest < 1.0
    slow.close()


# -- deadlines with explicit `now` ----------------------------------------------------------

def test_deadlines_follow_the_oldest_connection(make):
    server, _, _ = make(timeout=5.0)
    assert server.next_deadline(100.0) is None
    server.handle(9999, select.POLLIN, 100.0)         # an fd already closed this round: ignored
    a = raw(server.address[1])
    b = raw(server.address[1])
    listener = server.listener.fileno()
    time.sleep(0.05)                                  # both handshakes are in the backlog
    server.handle(listener, select.POLLIN, 100.0)
    assert len(server.conns) == 2
    assert set(server.fds().values()) == {select.POLLIN}
    assert server.next_deadline(101.0) == 4.0
    server.expire(104.999)
    assert len(server.conns) == 2
    server.expire(105.0)
    assert server.conns == {} and server.next_deadline(105.0) is None
    a.close()
    b.close()


def exhaust(monkeypatch, server):
    """Make the server's accept() fail with EMFILE; -> the real listener, to put back."""
    real = server.listener

    class Exhausted:
        def fileno(self):
            return real.fileno()

        def accept(self):
            raise OSError(errno.EMFILE, "Too many open files")
    monkeypatch.setattr(server, "listener", Exhausted())
    return real


def test_emfile_pauses_the_listener_instead_of_spinning(make, monkeypatch):
    server, _, log = make()
    sock = raw(server.address[1])
    time.sleep(0.05)
    real = exhaust(monkeypatch, server)
    server.handle(real.fileno(), select.POLLIN, 10.0)
    monkeypatch.setattr(server, "listener", real)
    assert real.fileno() not in server.fds()
    assert server.next_deadline(10.25) == 0.25            # fdlimit.BACKOFF
    assert log.lines[-1][0] == "warning" and "ulimit -n" in log.lines[-1][1]
    assert log.lines[-1][1].startswith("master metrics server out of file descriptors: accept failed: "
                                       "[Errno 24] Too many open files; limit=")
    server.expire(10.5)
    assert real.fileno() in server.fds()
    server.handle(real.fileno(), select.POLLIN, 10.5)    # the waiting client is taken now
    assert len(server.conns) == 1
    assert len(log.lines) == 1                            # one line for the episode so far
    server.expire(20.5)                                   # ten seconds without a refusal: over
    assert "out of file descriptors no more: lasted=0.0s refused=1 reclaimed=0" in log.lines[-1][1]
    sock.close()


def test_emfile_closes_the_oldest_quiet_scraper_to_make_room(make, monkeypatch):
    server, _, log = make(timeout=60.0)
    old, new = raw(server.address[1]), raw(server.address[1])
    time.sleep(0.05)
    listener = server.listener.fileno()
    server.handle(listener, select.POLLIN, 100.0)
    assert len(server.conns) == 2
    late = raw(server.address[1])
    time.sleep(0.05)
    first = min(server.conns)
    server.conns[first].started = 90.0                    # one has said nothing for 10 s
    real = exhaust(monkeypatch, server)
    server.handle(listener, select.POLLIN, 100.5)
    monkeypatch.setattr(server, "listener", real)
    assert first not in server.conns and len(server.conns) == 1     # room made, still polling
    assert listener in server.fds()
    server.handle(listener, select.POLLIN, 100.5)
    assert len(server.conns) == 2
    for s in (old, new, late):
        s.close()


def test_emfile_rest_ends_when_a_scrape_of_its_own_closes(make, monkeypatch):
    server, _, _ = make(timeout=60.0)
    a = raw(server.address[1])
    time.sleep(0.05)
    listener = server.listener.fileno()
    server.handle(listener, select.POLLIN, 100.0)
    real = exhaust(monkeypatch, server)
    server.handle(listener, select.POLLIN, 100.2)         # nothing quiet for a second: rest
    monkeypatch.setattr(server, "listener", real)
    assert listener not in server.fds()
    server.drop(next(iter(server.conns)))
    assert listener in server.fds()                       # before the back-off is over
    a.close()


# -- binding, closing, forking ----------------------------------------------------------------

def test_binds_from_a_config_bind_default_host_and_reports_its_port(make):
    server, loop, _ = make(bind=Bind("tcp", host="", port=0))
    assert server.address[0] == "127.0.0.1" and server.address[1] > 0
    assert server.listener.getblocking() is False
    assert scrape(loop, server.address[1])[0] == 200


def test_a_taken_port_names_the_setting(make):
    server, _, _ = make()
    with pytest.raises(OSError, match="--metrics-bind"):
        MetricsServer(("127.0.0.1", server.address[1]), sample, Log())


def test_a_unix_bind_is_refused():
    with pytest.raises(ValueError, match="HOST:PORT"):
        MetricsServer(Bind("unix", path="/tmp/x"), sample, Log())


def test_close_frees_the_port_and_every_connection(make):
    server, loop, _ = make()
    port = server.address[1]
    sock = raw(port)
    loop.until(lambda: server.conns)
    server.close()
    sock.settimeout(2)
    assert sock.recv(10) == b""
    again = socket.socket()
    again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    again.bind(("127.0.0.1", port))          # nothing holds it any more
    again.close()
    sock.close()


def _fork(child):
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)
    return pid


def test_expiry_closes_a_connection_a_forked_worker_still_holds(make):
    # close() alone would leave the connection open while the worker keeps its fd copy
    server, loop, _ = make(timeout=0.5)
    sock = raw(server.address[1])
    loop.until(lambda: server.conns)
    pid = _fork(lambda: time.sleep(5))
    try:
        start = time.monotonic()
        assert wait_closed(loop, sock) == b""
        assert time.monotonic() - start < 2.0
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        sock.close()


def test_a_worker_letting_go_after_fork_leaves_the_masters_scrape_alone(make):
    server, loop, _ = make()
    sock = raw(server.address[1])
    sock.sendall(b"GET /metrics HTTP/1.1\r\n")
    loop.until(lambda: server.conns)
    pid = _fork(server.close_after_fork)
    assert os.waitpid(pid, 0)[1] == 0
    sock.sendall(b"\r\n")
    assert wait_closed(loop, sock).startswith(b"HTTP/1.1 200 OK\r\n")
    assert scrape(loop, server.address[1])[0] == 200     # the master's listener is still open
    sock.close()
