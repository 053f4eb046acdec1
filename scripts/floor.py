#!/usr/bin/env python3
"""Calibration: the floor of a pure-Python epoll + httptools server on this machine.

Serves a fixed response from 2 processes sharing one listener (EPOLLEXCLUSIVE), with no
WSGI at all: no environ, no app call, no limits, no header handling. Whatever pyfork
spends per request above this figure is its WSGI layer and its checks; below it nothing
written in Python on httptools can go. Measured like scripts/bench.py: wrk -t2 -c64
keep-alive (or with `Connection: close`, --close), server CPU (utime+stime of both
processes) divided by requests. With --c, the same measurement of floor.c, a C server of
the same shape with no parsing at all: the kernel's share (accept4, recvfrom, sendto,
close, epoll on loopback), which no user-space code removes. With --wsgi, the Python
server calls the hello app through the least a WSGI server must do, with no checks.

    python scripts/floor.py [--duration 5] [--runs 3] [--close] [--c | --wsgi]
"""
import argparse
import gc
import os
import re
import select
import signal
import socket
import _socket
import statistics
import subprocess
import sys
import tempfile
import time

import httptools
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hello  # noqa: E402   the benchmark's app
from ports import free_port  # noqa: E402

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
            b"Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: floor\r\n\r\nHello, World!")
CLOSE_RESPONSE = RESPONSE.replace(b"Server: floor\r\n", b"Server: floor\r\nConnection: close\r\n")


class Conn:
    __slots__ = ("sock", "parser", "out", "closing")

    def __init__(self, sock):
        self.sock = sock
        self.parser = httptools.HttpRequestParser(self)
        self.out = []
        self.closing = False

    def on_url(self, url):
        pass

    def on_header(self, name, value):
        pass

    def on_message_complete(self):
        # asked here: once feed_data returns, llhttp has reset for the next message
        self.closing = not self.parser.should_keep_alive()
        self.out.append(CLOSE_RESPONSE if self.closing else RESPONSE)


class WsgiConn(Conn):
    """--wsgi: the least any WSGI server does per request, with no checks at all: an
    environ copied from a prebuilt one with the method, target and headers put in, the
    app called with a start_response, the response head found in a cache."""
    __slots__ = ("env", "url", "head", "start")

    def __init__(self, sock):
        super().__init__(sock)
        self.start = self.start_response

    def on_url(self, url):
        self.env = BASE_ENVIRON.copy()
        self.url = url

    def on_header(self, name, value):
        self.env[HEADER_KEYS.get(name) or header_key(name)] = value.decode("latin-1")

    def on_message_complete(self):
        env = self.env
        env["REQUEST_METHOD"] = self.parser.get_method().decode()
        env["PATH_INFO"] = self.url.decode("latin-1")
        body = b"".join(hello.app(env, self.start))
        self.closing = not self.parser.should_keep_alive()
        end = b"Connection: close\r\n\r\n" if self.closing else b"\r\n"
        self.out.append(b"".join((self.head, DATE_SERVER, end, body)))

    def start_response(self, status, headers, exc_info=None):
        key = (status, *headers)
        head = HEADS.get(key)
        if head is None:
            head = HEADS[key] = ("HTTP/1.1 %s\r\n%s" % (status, "".join("%s: %s\r\n" % h for h in headers))).encode()
        self.head = head


BASE_ENVIRON = {"wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": None, "wsgi.errors": sys.stderr,
                "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
                "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
                "SCRIPT_NAME": "", "QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1"}
DATE_SERVER = b"Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: floor\r\n"
HEADER_KEYS = {}
HEADS = {}


def header_key(name):
    key = HEADER_KEYS[name] = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
    return key


def answer(conn, buf, view):
    """Read, parse, answer. False: the connection is closed."""
    try:
        n = conn.sock.recv_into(buf)
    except BlockingIOError:
        return True
    except OSError:
        n = 0
    if n:
        conn.parser.feed_data(view[:n])
        if not conn.out:
            return True         # a partial request: wait for the rest
        conn.sock.send(b"".join(conn.out))
        conn.out.clear()
        if not conn.closing:
            return True
    conn.sock.close()
    conn.parser = None
    return False


def serve(listener, kind):
    """The child: an epoll loop answering every request with RESPONSE (kind Conn) or the
    hello app's response (kind WsgiConn)."""
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})   # blocked by serve_only's parent
    ep = select.epoll()
    lfd = listener.fileno()
    ep.register(lfd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
    conns = {}
    buf = bytearray(65536)
    view = memoryview(buf)
    gc.freeze()
    while True:
        for fd, _ in ep.poll():
            if fd == lfd:
                while True:     # as TCP_DEFER_ACCEPT allows: read at once, answer, maybe close
                    try:
                        fd, _ = listener._accept()      # as pyfork: no socket.socket wrapper
                    except BlockingIOError:
                        break
                    sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd)
                    sock.setblocking(False)
                    conn = kind(sock)
                    if answer(conn, buf, view):
                        conns[sock.fileno()] = conn
                        ep.register(sock.fileno(), select.EPOLLIN)
                continue
            conn = conns[fd]
            if not answer(conn, buf, view):
                del conns[fd]


def cpu(pids):
    """(user, system) seconds of the server processes."""
    times = [psutil.Process(pid).cpu_times() for pid in pids]
    return sum(t.user for t in times), sum(t.system for t in times)


def start_python(kind, port=0):
    """Fork the two Python servers on a fresh listener -> (port, pids, stop)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            try:
                serve(listener, kind)
            finally:
                os._exit(0)
        pids.append(pid)

    def stop():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in pids:
            os.waitpid(pid, 0)
    return listener.getsockname()[1], pids, stop


def compile_c(tmp):
    exe = os.path.join(tmp, "floor")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(os.path.dirname(os.path.abspath(__file__)), "floor.c")],
                   check=True)
    return exe


def start_c(tmp):
    """Compile floor.c and start it -> (port, pids of its two servers, stop)."""
    exe = compile_c(tmp)
    port = free_port()
    proc = subprocess.Popen([exe, str(port)])
    deadline = time.monotonic() + 5
    while len(psutil.Process(proc.pid).children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    pids = [c.pid for c in psutil.Process(proc.pid).children()]

    def stop():
        proc.terminate()
        proc.wait(10)
    return port, pids, stop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--close", action="store_true", help="wrk sends Connection: close")
    ap.add_argument("--c", action="store_true", help="the C server of floor.c instead (needs cc): the kernel's share")
    ap.add_argument("--wsgi", action="store_true", help="call the hello app through a minimal WSGI layer, no checks")
    ap.add_argument("--serve", metavar="PORT", type=int,
                    help="only serve on 127.0.0.1:PORT until SIGTERM (scripts/bench.py --with-floors)")
    args = ap.parse_args()
    if args.serve is not None:
        return serve_only(args)
    with tempfile.TemporaryDirectory() as tmp:
        port, pids, stop = start_c(tmp) if args.c else start_python(WsgiConn if args.wsgi else Conn)
        try:
            time.sleep(0.3)
            results = []
            for _ in range(args.runs):
                c0 = cpu(pids)
                cmd = ["wrk", "-t2", "-c64", "-d%ds" % args.duration, "http://127.0.0.1:%d/" % port]
                if args.close:
                    cmd[1:1] = ["-H", "Connection: close"]
                out = subprocess.run(cmd, capture_output=True, text=True).stdout
                c1 = cpu(pids)
                n = int(re.search(r"(\d+) requests in", out).group(1))
                rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                user, system = (1e6 * (b - a) / n for a, b in zip(c0, c1))
                results.append((rps, user + system))
                print("floor%s: %.0f req/s, %.1f us of server CPU per request (user %.1f, system %.1f)"
                      % (" (C)" if args.c else " (WSGI)" if args.wsgi else "", rps, user + system, user, system),
                      flush=True)
            print("median: %.0f req/s, %.1f us/req" % (statistics.median(r[0] for r in results),
                                                       statistics.median(r[1] for r in results)))
        finally:
            stop()


def serve_only(args):
    """Serve until SIGTERM, then stop the two servers: a server bench.py can run."""
    if args.c:
        # become the C server (so bench.py sees its two servers as our children), run from
        # a memfd so that nothing is left on disk
        with tempfile.TemporaryDirectory() as tmp:
            with open(compile_c(tmp), "rb") as f:
                image = f.read()
        fd = os.memfd_create("floor")
        os.write(fd, image)
        os.execv("/proc/self/fd/%d" % fd, ["floor", str(args.serve)])
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    _, _, stop = start_python(WsgiConn if args.wsgi else Conn, args.serve)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    stop()


if __name__ == "__main__":
    sys.exit(main())
