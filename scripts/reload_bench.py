#!/usr/bin/env python3
"""Requests lost while the server reloads or upgrades itself under load, pyfork beside
Gunicorn in the same run.

For each server and each of keep-alive / Connection: close, wrk drives the hello app
(2 workers) for DURATION seconds; a reload signal is sent a third of the way in:

  HUP   both servers: new workers, old ones stopped (Gunicorn's HUP has known drops).
  USR2  pyfork re-execs in place (same PID, listeners handed over). Gunicorn's USR2
        starts a new master beside the old one; its documented upgrade then stops the
        old one (WINCH, then QUIT) once the new one is up, which this script does.

Printed: wrk's socket errors and non-2xx responses, i.e. requests that failed.

    python scripts/reload_bench.py [--duration 9] [--connections 32]

Needs wrk (apt-get install -y wrk) and gunicorn (pip install -e '.[bench]').
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil

from ports import free_port   # scripts/ports.py, beside this file

HERE = os.path.dirname(os.path.abspath(__file__))


def command(server, port):
    py = sys.executable
    if server == "pyfork":
        return [py, "-m", "supervisor", "run", "hello:app", "-w", "2", "-b", "127.0.0.1:%d" % port]
    return [py, "-m", "gunicorn", "-w", "2", "-b", "127.0.0.1:%d" % port, "--no-control-socket", "hello:app"]


def wait_serving(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(20).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def gunicorn_upgrade(master):
    """Gunicorn's documented upgrade: USR2 starts a new master (a child of the old); once
    it has workers, WINCH then QUIT the old master. Returns the new master's pid."""
    master.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 15
    new = None
    while time.monotonic() < deadline and new is None:
        for child in psutil.Process(master.pid).children():
            if child.children():          # a master with workers, not a worker
                new = child
        time.sleep(0.05)
    if new is None:
        raise RuntimeError("Gunicorn's new master did not appear after USR2")
    time.sleep(1.0)                       # its workers boot
    master.send_signal(signal.SIGWINCH)
    time.sleep(1.0)
    master.send_signal(signal.SIGQUIT)
    return new.pid


def run(server, mode, sig, duration, connections):
    port = free_port()
    proc = subprocess.Popen(command(server, port), cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    extra = []
    try:
        if not wait_serving(port):
            raise RuntimeError("%s did not start" % server)
        hdr = ["-H", "Connection: close"] if mode == "close" else []
        wrk = subprocess.Popen(["wrk", "-t2", "-c%d" % connections, "-d%ds" % duration] + hdr
                               + ["http://127.0.0.1:%d/" % port], stdout=subprocess.PIPE, text=True)
        time.sleep(duration / 3.0)
        if sig == "USR2" and server == "gunicorn":
            extra.append(gunicorn_upgrade(proc))
        else:
            proc.send_signal(getattr(signal, "SIG" + sig))
        out = wrk.communicate(timeout=duration + 30)[0]
    finally:
        for pid in [proc.pid] + extra:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pid in extra:
            try:
                psutil.Process(pid).wait(30)
            except psutil.NoSuchProcess:
                pass
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return total, errors + (int(non2xx.group(1)) if non2xx else 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=9)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    print("| signal | server | mode | requests | failed |")
    print("|---|---|---|---:|---:|")
    for sig in ("HUP", "USR2"):
        for server in ("pyfork", "gunicorn"):
            for mode in ("keep-alive", "close"):
                total, failed = run(server, mode, sig, args.duration, args.connections)
                print("| %s | %s | %s | %d | %d |" % (sig, server, mode, total, failed), flush=True)


if __name__ == "__main__":
    main()
