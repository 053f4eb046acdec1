"""What the loop writes for app threads beyond plain bytes (issue 25's leftovers), end to
end: "100 Continue" behind a pipelined request, with and without threads; file wrappers
sent with sendfile by the loop (serve/fileparts.py), whole, to a slow reader, in order
with what follows, and without holding a thread while the client reads."""
import os
import socket
import time

import pytest

from conftest import get, wait_for

APP = "http_app:unvalidated"      # bare: the validator would hide the file wrapper
T = 10.0


def read_until(sock, marker, timeout=T):
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("flags", [(), ("--threads", "4")], ids=["sync", "threads"])
def test_continue_behind_a_pipelined_request(server, flags):
    """The Expect request's head comes in the same read as a request before it: its
    "100 Continue" must still come, after that request's response (it was skipped, and
    the client waited for it)."""
    s = server(APP, *flags)
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as c:
        c.sendall(b"GET /env?first HTTP/1.1\r\nHost: h\r\n\r\n"
                  b"POST /env?second HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        got = read_until(c, b"HTTP/1.1 100 Continue\r\n\r\n", timeout=3.0)
        assert got.startswith(b"HTTP/1.1 200 ") and b'"QUERY_STRING": "first"' in got, got
        assert got.endswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got
        c.sendall(b"hello")
        rest = read_until(c, b'"second"')
        assert rest.startswith(b"HTTP/1.1 200 ") and b'"body": "hello"' in rest, rest


@pytest.fixture
def huge(tmp_path):
    path = str(tmp_path / "huge.bin")
    data = os.urandom(8 << 20)       # more than loopback's socket buffers hold
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def opened(pid, path):
    """How many of the process's fds have `path` open."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == path
        except FileNotFoundError:
            pass            # closed meanwhile
    return n


def slow_socket(port):
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(T)
    sock.connect(("127.0.0.1", port))
    return sock


class Reader:
    """Responses one at a time from one socket (what is read past one is kept for the next)."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def response(self):
        """-> (head, body) of one Content-Length response."""
        while b"\r\n\r\n" not in self.buf:
            self.more()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(self.buf) < length:
            self.more()
        body, self.buf = self.buf[:length], self.buf[length:]
        return head, body

    def more(self):
        chunk = self.sock.recv(1 << 20)
        assert chunk, "closed with %r read" % self.buf[:200]
        self.buf += chunk


def read_response(sock):
    return Reader(sock).response()


def test_threaded_file_wrapper_goes_whole_to_a_slow_reader_then_the_next_response(server, huge):
    path, data = huge
    s = server(APP, "--threads", "4")
    with slow_socket(s.port) as c:
        c.sendall(b"GET /file?path=%s HTTP/1.1\r\nHost: h\r\n\r\nGET /env?after HTTP/1.1\r\nHost: h\r\n\r\n"
                  % path.encode())
        time.sleep(0.5)                      # the server's socket buffer fills meanwhile
        reader = Reader(c)
        head, body = reader.response()
        assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: %d" % len(data) in head, head
        assert body == data
        head, body = reader.response()       # in order, after the file
        assert head.startswith(b"HTTP/1.1 200 ") and b'"QUERY_STRING": "after"' in body, body[:200]


def test_threaded_file_wrapper_holds_no_thread_while_the_client_reads(server, huge):
    """Two clients that do not read an 8 MiB file, two app threads: a third request is
    answered at once, the loop holding the files (a duplicate fd each), not the threads.
    Read in blocks, each thread waited for its client until 1 MiB was left to send."""
    path, data = huge
    s = server(APP, "--threads", "2")
    slow = [slow_socket(s.port) for _ in range(2)]
    try:
        for c in slow:
            c.sendall(b"GET /file?path=%s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode())
        pid = s.worker_pids()[0]

        def open_copies():
            return opened(pid, path)
        assert wait_for(lambda: open_copies() == 2, timeout=5), open_copies()   # the app's own files are closed
        t0 = time.monotonic()
        assert get(s.port, "/env", timeout=3)[0] == 200
        assert time.monotonic() - t0 < 2.0
        for c in slow:
            assert read_response(c)[1] == data
        assert wait_for(lambda: open_copies() == 0, timeout=5)        # each duplicate closed when sent
    finally:
        for c in slow:
            c.close()


def test_threaded_file_wrapper_duplicate_closes_with_the_connection(server, huge):
    path, _ = huge
    s = server(APP, "--threads", "2")
    c = slow_socket(s.port)
    c.sendall(b"GET /file?path=%s HTTP/1.1\r\nHost: h\r\n\r\n" % path.encode())
    pid = s.worker_pids()[0]

    def open_copies():
        return opened(pid, path)
    assert wait_for(lambda: open_copies() == 1, timeout=5)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()                                      # a reset: the loop's next sendfile fails
    assert wait_for(lambda: open_copies() == 0, timeout=5)
    assert get(s.port, "/env")[0] == 200


def test_threaded_file_wrapper_head_sends_no_body(server, huge):
    path, data = huge
    s = server(APP, "--threads", "4")
    with socket.create_connection(("127.0.0.1", s.port), timeout=T) as c:
        c.sendall(b"HEAD /file?path=%s HTTP/1.1\r\nHost: h\r\n\r\nGET /env?next HTTP/1.1\r\nHost: h\r\n\r\n"
                  % path.encode())
        got = read_until(c, b'"next"')
    head, _, rest = got.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(data) in head
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:100]
