"""notify.py: the sd_notify wire format as tables, then a real AF_UNIX datagram socket (a
path in tmp_path, and an abstract name) receiving what Notifier sends, as systemd would."""
import errno
import os
import socket
import time
import uuid

import pytest

from supervisor.supervise import notify
from supervisor.supervise.notify import Notifier


# -- pure: address, message, parse_watchdog, clean_environ --------------------------------

@pytest.mark.parametrize("value, addr", [
    ("/run/systemd/notify", "/run/systemd/notify"),
    ("@/org/freedesktop/systemd1/notify/123", b"\0/org/freedesktop/systemd1/notify/123"),
    ("@x", b"\0x"),
    ("/" + "a" * 106, "/" + "a" * 106),            # 107 bytes: the longest path sun_path holds
    ("@" + "a" * 107, b"\0" + b"a" * 107),         # 108: an abstract name needs no NUL at the end
])
def test_address(value, addr):
    assert notify.address(value) == addr


@pytest.mark.parametrize("value", [
    "@",                        # no name after the @
    "run/systemd/notify",       # relative
    "vsock:2:1234",             # systemd >= 254 can ask for vsock; not spoken here
    "/" + "a" * 107,            # one byte too long
    "@" + "a" * 108,
])
def test_address_rejects_with_the_variable_named(value):
    with pytest.raises(ValueError, match="NOTIFY_SOCKET="):
        notify.address(value)


@pytest.mark.parametrize("fields, data", [
    ({"READY": 1}, b"READY=1\n"),
    ({"READY": 1, "STATUS": "4 workers"}, b"READY=1\nSTATUS=4 workers\n"),
    ({"RELOADING": 1, "MONOTONIC_USEC": 123456789}, b"RELOADING=1\nMONOTONIC_USEC=123456789\n"),
    ({"STATUS": "line one\nline two"}, b"STATUS=line one line two\n"),     # no injected assignment
    ({"STATUS": "a\r\nWATCHDOG=1"}, b"STATUS=a WATCHDOG=1\n"),
    ({"STATUS": "caf\u00e9"}, b"STATUS=caf\xc3\xa9\n"),
    ({"STATUS": ""}, b"STATUS=\n"),
    ({"MAINPID": 4242}, b"MAINPID=4242\n"),
])
def test_message(fields, data):
    assert notify.message(**fields) == data


@pytest.mark.parametrize("fields", [{}, {"ready": 1}, {"X-Y": 1}])
def test_message_rejects(fields):
    with pytest.raises(ValueError):
        notify.message(**fields)


@pytest.mark.parametrize("environ, pid, interval", [
    ({}, 10, None),
    ({"WATCHDOG_USEC": ""}, 10, None),
    ({"WATCHDOG_USEC": "30000000"}, 10, 15.0),              # half, as sd_watchdog_enabled(3) advises
    ({"WATCHDOG_USEC": "1"}, 10, 0.0000005),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, 10, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "11"}, 10, None),     # meant for another process
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": ""}, 10, 15.0),
    ({"WATCHDOG_PID": "10"}, 10, None),
])
def test_parse_watchdog(environ, pid, interval):
    assert notify.parse_watchdog(environ, pid) == interval


@pytest.mark.parametrize("environ, name", [
    ({"WATCHDOG_USEC": "0"}, "WATCHDOG_USEC"),
    ({"WATCHDOG_USEC": "-5"}, "WATCHDOG_USEC"),
    ({"WATCHDOG_USEC": "30s"}, "WATCHDOG_USEC"),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "x"}, "WATCHDOG_PID"),
])
def test_parse_watchdog_rejects_with_the_variable_named(environ, name):
    with pytest.raises(ValueError, match=name):
        notify.parse_watchdog(environ, 10)


def test_clean_environ_keeps_everything_but_systemds_own():
    environ = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1", "LISTEN_FDS": "1",
               "LISTEN_PID": "1", "LISTEN_FDNAMES": "web", "LISTEN_ADDR": "kept", "PATH": "/bin", "PORT": "5000"}
    assert notify.clean_environ(environ) == {"LISTEN_ADDR": "kept", "PATH": "/bin", "PORT": "5000"}
    assert "NOTIFY_SOCKET" in environ        # a copy: the caller's mapping is untouched


# -- watchdog timing with explicit `now` ---------------------------------------------------

class Recording(Notifier):
    """A Notifier whose datagrams go to a list, for the timing table."""
    def __init__(self, interval):
        super().__init__("/nonexistent", interval)
        self.sock.close()
        self.datagrams = []

    def send(self, **fields):
        self.datagrams.append(notify.message(**fields))
        return True


@pytest.mark.parametrize("pings, now, due, wait", [
    ([], 100.0, True, 0.0),                 # never pinged: due at once, so the first loop pings
    ([100.0], 100.0, False, 15.0),
    ([100.0], 107.5, False, 7.5),
    ([100.0], 114.999, False, pytest.approx(0.001)),
    ([100.0], 115.0, True, 0.0),
    ([100.0], 130.0, True, 0.0),            # late (the loop was busy): due, never negative
    ([100.0, 115.0], 120.0, False, 10.0),
])
def test_watchdog_schedule(pings, now, due, wait):
    n = Recording(15.0)
    for t in pings:
        n.watchdog(t)
    assert n.watchdog_due(now) is due
    assert n.next_watchdog(now) == wait
    assert n.datagrams == [b"WATCHDOG=1\n"] * len(pings)


def test_no_watchdog_means_no_deadline():
    n = Recording(None)
    assert n.next_watchdog(0.0) is None
    assert n.watchdog_due(1e9) is False


# -- a real datagram socket -----------------------------------------------------------------

def receiver(addr):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(2.0)
    return sock


@pytest.fixture(params=["path", "abstract"])
def systemd(request, tmp_path):
    """(environ, receiving socket), as systemd sets them up for a Type=notify service."""
    if request.param == "path":
        value = str(tmp_path / "notify")
        assert len(value) <= notify.PATH_MAX
    else:
        value = "@pyfork-test-%s" % uuid.uuid4().hex
    sock = receiver(notify.address(value))
    yield {"NOTIFY_SOCKET": value}, sock
    sock.close()


def test_from_environ_without_notify_socket_is_none():
    assert Notifier.from_environ({}) is None
    assert Notifier.from_environ({"NOTIFY_SOCKET": "", "WATCHDOG_USEC": "1000"}) is None


@pytest.mark.parametrize("call, data", [
    (lambda n: n.ready("2 workers"), b"READY=1\nSTATUS=2 workers\n"),
    (lambda n: n.ready(), b"READY=1\n"),
    (lambda n: n.stopping("stopping: graceful"), b"STOPPING=1\nSTATUS=stopping: graceful\n"),
    (lambda n: n.status("workers=3/4"), b"STATUS=workers=3/4\n"),
    (lambda n: n.mainpid(4242), b"MAINPID=4242\n"),
    (lambda n: n.send(READY=1, STATUS="x", ERRNO=0), b"READY=1\nSTATUS=x\nERRNO=0\n"),
    (lambda n: n.watchdog(5.0), b"WATCHDOG=1\n"),
])
def test_systemd_receives_each_notification(systemd, call, data):
    environ, sock = systemd
    n = Notifier.from_environ(environ)
    assert call(n) is True
    assert sock.recv(4096) == data
    assert (n.sent, n.dropped) == (1, 0)
    n.close()


def test_reloading_carries_clock_monotonic_in_usec(systemd):
    environ, sock = systemd
    n = Notifier.from_environ(environ)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    n.reloading("reloading")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = sock.recv(4096).decode().splitlines()
    assert lines[0] == "RELOADING=1" and lines[2] == "STATUS=reloading"
    key, usec = lines[1].split("=")
    assert key == "MONOTONIC_USEC" and before <= int(usec) <= after
    # the master's time.monotonic() is the same clock, so its `now` values line up with it
    assert abs(int(usec) / 1e6 - time.monotonic()) < 1.0
    n.close()


def test_watchdog_from_environ_pings_a_real_socket(systemd):
    environ, sock = systemd
    n = Notifier.from_environ(dict(environ, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid())))
    assert n.watchdog_interval == 1.0
    assert n.watchdog_due(50.0)
    n.watchdog(50.0)
    assert sock.recv(4096) == b"WATCHDOG=1\n"
    assert not n.watchdog_due(50.9) and n.watchdog_due(51.0)
    n.close()


def test_watchdog_for_another_pid_is_off(systemd):
    environ, _ = systemd
    n = Notifier.from_environ(dict(environ, WATCHDOG_USEC="2000000", WATCHDOG_PID=str(os.getpid() + 1)))
    assert n.watchdog_interval is None and n.next_watchdog(0.0) is None
    n.close()


def test_a_full_queue_drops_without_blocking(systemd):
    # systemd busy: its socket's queue fills; sends must fail fast (EAGAIN), never wait
    environ, sock = systemd
    n = Notifier.from_environ(environ)
    start = time.monotonic()
    results = [n.status("x" * 1000) for _ in range(2000)]
    assert time.monotonic() - start < 2.0
    assert results[0] is True and results[-1] is False
    assert n.sent + n.dropped == 2000 and n.dropped > 0
    assert n.last_error == "EAGAIN"
    # what got through is intact, and the socket works again once systemd reads
    assert sock.recv(4096) == b"STATUS=" + b"x" * 1000 + b"\n"
    sock.setblocking(False)
    while True:
        try:
            sock.recv(4096)
        except BlockingIOError:
            break
    sock.settimeout(2.0)
    assert n.ready() is True
    assert sock.recv(4096) == b"READY=1\n"
    n.close()


def test_systemd_gone_is_counted_not_raised(tmp_path):
    path = tmp_path / "notify"
    n = Notifier.from_environ({"NOTIFY_SOCKET": str(path)})
    assert n.ready() is False and n.last_error == "ENOENT"            # no socket file
    receiver(str(path)).close()                                       # a stale socket file
    assert n.ready() is False and n.last_error == "ECONNREFUSED"
    abstract = Notifier.from_environ({"NOTIFY_SOCKET": "@pyfork-nobody-%s" % uuid.uuid4().hex})
    assert abstract.stopping() is False and abstract.last_error == "ECONNREFUSED"
    assert (n.sent, n.dropped, abstract.dropped) == (0, 2, 1)
    n.close()
    abstract.close()


def test_an_unexpected_error_raises(systemd):
    # a datagram larger than the socket can carry is a bug in the caller, not systemd's state
    environ, _ = systemd
    n = Notifier.from_environ(environ)
    with pytest.raises(OSError) as info:
        n.status("x" * (4 << 20))
    assert info.value.errno == errno.EMSGSIZE
    n.close()


def test_the_socket_never_blocks_and_is_not_inherited_across_exec(systemd):
    environ, _ = systemd
    n = Notifier.from_environ(environ)
    assert n.sock.getblocking() is False
    assert os.get_inheritable(n.sock.fileno()) is False
    n.close()
