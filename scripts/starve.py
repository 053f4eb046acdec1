#!/usr/bin/env python3
"""Out of file descriptors (issue 25): one worker at a low RLIMIT_NOFILE, many idle
clients, and what the worker does meanwhile.

It starts `pyfork run` with one worker (the limit set for the master, and so its worker,
with setrlimit before exec), opens `idle` connections and holds them (silent: they send
nothing; keepalive: each sends one request, reads its answer and idles), waits until the
worker holds as many descriptors as its limit allows, then measures: the worker's CPU over
`hold` seconds, the log lines written, how long a new request takes while the worker is
out of descriptors, and after `leave` idle clients close, how long one more takes.
Prints one JSON object; exits 1 when a target of the issue is missed.

Silent clients reach accept() only after TCP_DEFER_ACCEPT's second (and the SYN-ACK
retransmitted then), hence the wait for the worker to fill up.

    python scripts/starve.py [--limit 64] [--idle 150] [--hold 3] [--leave 100] [--threads 1] [--kind silent]
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(os.path.dirname(HERE), "tests", "apps")
TARGETS = {"cpu": 0.3, "lines": 20, "strained": 5.0, "after": 1.0}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, timeout):
    """Seconds for one GET to be answered (None if it was not within `timeout`)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.01, timeout - (time.monotonic() - t0)))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    return time.monotonic() - t0 if data.startswith(b"HTTP/1.1 200") else None


def start(port, limit, threads, log):
    cmd = [sys.executable, "-m", "supervisor", "run", "basic:hello", "-b", "127.0.0.1:%d" % port,
           "-w", "1", "--threads", str(threads), "--timeout", "30"]
    env = dict(os.environ, PYTHONPATH=APPS + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("WEB_CONCURRENCY", None)

    def lower():
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    proc = subprocess.Popen(cmd, cwd=APPS, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lower)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children()
        if kids and request(port, 1.0) is not None:
            return proc, psutil.Process(kids[0].pid)
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("pyfork did not start; see %s" % log.name)


def hold_idle(port, n, kind):
    """`n` connections, silent or each after one answered keep-alive request."""
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if kind == "keepalive":
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        held.append(s)
    return held


def run(limit=64, idle=150, hold=3.0, leave=100, threads=1, kind="silent"):
    port = free_port()
    log = tempfile.NamedTemporaryFile("w+", prefix="pyfork-starve-", suffix=".log", delete=False)
    proc, worker = start(port, limit, threads, log)
    held = []
    try:
        before = len(open(log.name).read().splitlines())
        held = hold_idle(port, idle, kind)
        deadline = time.monotonic() + 10
        while worker.num_fds() < limit and time.monotonic() < deadline:
            time.sleep(0.05)              # the worker meets its limit
        full = worker.num_fds()
        cpu0 = sum(worker.cpu_times()[:2])
        strained = request(port, 10.0)     # a new client, while the idle ones are held
        time.sleep(max(0.0, hold - (strained or 0)))
        cpu = sum(worker.cpu_times()[:2]) - cpu0
        for s in held[:leave]:
            s.close()
        time.sleep(0.1)
        after = request(port, 5.0)
        lines = open(log.name).read().splitlines()[before:]
        return {"limit": limit, "idle": idle, "kind": kind, "threads": threads, "hold": hold,
                "worker_fds": full, "cpu": round(cpu, 3),
                "lines": len(lines), "strained": strained and round(strained, 3), "after": after and round(after, 3),
                "log": log.name, "said": lines[:5]}
    finally:
        for s in held:
            s.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def missed(result):
    """The targets missed: [name, ...]."""
    return [k for k, bound in TARGETS.items() if result[k] is None or result[k] > bound]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=64)
    p.add_argument("--idle", type=int, default=150)
    p.add_argument("--hold", type=float, default=3.0)
    p.add_argument("--leave", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--kind", choices=["silent", "keepalive"], default="silent")
    a = p.parse_args()
    result = run(a.limit, a.idle, a.hold, a.leave, a.threads, a.kind)
    result["missed"] = missed(result)
    print(json.dumps(result, indent=1))
    return 1 if result["missed"] else 0


if __name__ == "__main__":
    sys.exit(main())
