"""listeners.queued: the accept queue's length as the kernel reports it, on real sockets."""
import os
import socket
import tempfile

from supervisor.supervise.listeners import queued


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
