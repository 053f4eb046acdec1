#!/usr/bin/env python3
"""Calibration: the floor of a pure-Python epoll + httptools server on this machine.

Serves a fixed response from 2 processes sharing one listener (EPOLLEXCLUSIVE), with no
WSGI at all: no environ, no app call, no limits, no header handling. Whatever pyfork
spends per request above this figure is its WSGI layer and its checks; below it nothing
written in Python on httptools can go. Measured like scripts/bench.py: wrk -t2 -c64
keep-alive, server CPU (utime+stime of both processes) divided by requests.

    python scripts/floor.py [--duration 5] [--runs 3]
"""
import argparse
import gc
import os
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time

import httptools
import psutil

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
            b"Date: Fri, 27 Nov 2026 06:00:00 GMT\r\nServer: floor\r\n\r\nHello, World!")


class Conn:
    __slots__ = ("sock", "parser", "out")

    def __init__(self, sock):
        self.sock = sock
        self.parser = httptools.HttpRequestParser(self)
        self.out = []

    def on_url(self, url):
        pass

    def on_header(self, name, value):
        pass

    def on_message_complete(self):
        self.out.append(RESPONSE)


def serve(listener):
    """The child: an epoll loop answering every request with RESPONSE."""
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
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
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setblocking(False)
                conns[sock.fileno()] = Conn(sock)
                ep.register(sock.fileno(), select.EPOLLIN)
                continue
            conn = conns[fd]
            try:
                n = conn.sock.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if not n:
                del conns[fd]
                conn.sock.close()
                continue
            conn.parser.feed_data(view[:n])
            if conn.out:
                conn.sock.send(b"".join(conn.out))
                conn.out.clear()


def cpu(pids):
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    pids = []
    try:
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                try:
                    serve(listener)
                finally:
                    os._exit(0)
            pids.append(pid)
        time.sleep(0.3)
        results = []
        for _ in range(args.runs):
            c0 = cpu(pids)
            out = subprocess.run(["wrk", "-t2", "-c64", "-d%ds" % args.duration, "http://127.0.0.1:%d/" % port],
                                 capture_output=True, text=True).stdout
            c1 = cpu(pids)
            n = int(re.search(r"(\d+) requests in", out).group(1))
            rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
            results.append((rps, 1e6 * (c1 - c0) / n))
            print("floor: %.0f req/s, %.1f us of server CPU per request" % results[-1], flush=True)
        print("median: %.0f req/s, %.1f us/req" % (statistics.median(r[0] for r in results),
                                                   statistics.median(r[1] for r in results)))
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for pid in pids:
            os.waitpid(pid, 0)


if __name__ == "__main__":
    sys.exit(main())
