"""listeners: the accept queue's length as the kernel reports it (queued), and unix
sockets bound with --umask, as Gunicorn binds them; on real sockets."""
import os
import socket
import stat
import tempfile
import types

import pytest

from supervisor.supervise.listeners import bind, queued


def test_queued_counts_connections_not_yet_accepted():
    lsock = socket.socket()
    clients = []
    try:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        assert queued(lsock) == 0
        clients = [socket.create_connection(lsock.getsockname()) for _ in range(3)]
        assert queued(lsock) == 3
        conn, _ = lsock.accept()
        conn.close()
        assert queued(lsock) == 2
    finally:
        for c in clients:
            c.close()
        lsock.close()


def test_queued_is_zero_for_a_unix_listener():
    with tempfile.TemporaryDirectory() as d:
        lsock = socket.socket(socket.AF_UNIX)
        try:
            lsock.bind(os.path.join(d, "s"))
            lsock.listen(4)
            client = socket.socket(socket.AF_UNIX)
            client.connect(os.path.join(d, "s"))
            assert queued(lsock) == 0       # no count to read: never a reason to shed
            client.close()
        finally:
            lsock.close()


# -- unix sockets bound as Gunicorn binds them: with --umask, not the process's -------------

def unix_cfg(path, umask):
    from supervisor.convert import Bind
    return types.SimpleNamespace(bind=(Bind("unix", path=path),), backlog=8, umask=umask, reuse_port=False)


@pytest.mark.parametrize("umask, mode", [(0, 0o777), (0o007, 0o770), (0o077, 0o700)])
def test_unix_socket_mode_comes_from_umask_not_the_process(tmp_path, umask, mode):
    path = str(tmp_path / "s.sock")
    before = os.umask(0o022)
    try:
        socks = bind(unix_cfg(path, umask), [])
        assert os.umask(0o022) == 0o022          # the process's umask is left as it was
    finally:
        os.umask(before)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == mode
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("value, expect", [
    (0, 0), ("0", 0), ("0o22", 0o22), ("0022", 0o22), ("007", 0o7), ("18", 18), ("0x12", 0x12), (0o777, 0o777),
    ("0o1000", None), (-1, None), ("x", None), (True, None), ("08", None),
])
def test_umask_reads_as_gunicorn_reads_it(value, expect):
    from supervisor.convert import ConfigError, _umask
    if expect is None:
        with pytest.raises(ConfigError, match="--umask"):
            _umask(value, "--umask")
    else:
        assert _umask(value, "--umask") == expect


def test_pyfork_binds_a_unix_socket_mode_0777_by_default(server, tmp_path):
    path = str(tmp_path / "app.sock")
    s = server("basic:hello", "-b", "unix:" + path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o777
    s.stop()
    s = server("basic:hello", "-b", "unix:" + path, "--umask", "0o007")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o770
    with socket.socket(socket.AF_UNIX) as c:
        c.settimeout(5)
        c.connect(path)
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 200 ")
