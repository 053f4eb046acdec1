#!/usr/bin/env python3
"""Instructions per request of a pyfork worker, counted by valgrind (callgrind): the
request path and the loop around it, without the noise of wall-clock CPU time.

scripts/bench.py's CPU µs/request moves ±6% run to run on a shared 2-core box (the
kernel's share, charged to whichever process runs, varies most). An instruction count
does not: it is the same to a few in ten thousand run after run, so it tells a change
of 1% in the worker's own code. It does not see the kernel's part (syscalls are the same
per request before and after a change of Python code: compare with `strace -c`).

One worker (-w 1) serves scripts/hello.py under callgrind; a client here sends exactly N
requests over 16 connections, one outstanding on each (keep-alive, or a new connection per
request with --close). The worker's count for 3,000 requests is taken from its count for
13,000: boot and exit cancel, what is left is 10,000 requests. With --baseline REV the
same is measured for pyfork as of git revision REV (a detached worktree), side by side.

    python scripts/instructions.py [--close] [--threads N] [--baseline REV] [--flags "--proxy-protocol"]

--flags adds pyfork flags to the measured tree only (not to the baseline): the cost of an
option turned on, against the baseline with it off.

Needs valgrind (Debian: apt-get install valgrind). Takes about a minute per measurement.
Inside valgrind the worker is ~50x slower, so a loop turn holds more events than on a
live server: per-turn costs weigh less here than in bench.py.
"""
import argparse
import os
import selectors
import shlex
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from ports import free_port  # noqa: E402

CONNECTIONS = 16
BODY = b"Hello, World!"
# Under valgrind a turn takes far longer than SLICE, and a request longer than threads'
# SLOW_WAIT: without this, fair order would cut every turn short and shed keep-alive (a
# pyfork without serve/worker.py ignores it).
RUN = ("import os, runpy, sys; sys.path.insert(0, {root!r}); "
       "exec('import supervisor.serve.worker as w; w.SLICE = w.LEAD = 100.0; "
       "import supervisor.serve.threads as t; t.SLOW_WAIT = 100.0') "
       "if os.path.isdir(os.path.join({root!r}, 'supervisor', 'serve')) else None; "
       "runpy.run_module('supervisor', run_name='__main__')")


def send(port, n, close):
    """Exactly n GETs, CONNECTIONS at a time, each answered before the next on its socket."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
    sel = selectors.DefaultSelector()
    sent = done = 0

    def start():
        nonlocal sent
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        s.send(request)
        sent += 1
        sel.register(s, selectors.EVENT_READ, bytearray())

    for _ in range(min(CONNECTIONS, n)):
        start()
    while done < n:
        events = sel.select(60)
        if not events:
            sys.exit("the server stopped answering")
        for key, _ in events:
            s, buf = key.fileobj, key.data
            data = s.recv(65536)
            buf += data
            if not (data and buf.endswith(BODY)):
                if not data:
                    sys.exit("the server closed a connection early")
                continue
            done += 1
            buf.clear()
            if close or sent >= n:
                sel.unregister(s)
                s.close()
                if close and sent < n:
                    start()
            else:
                s.send(request)
                sent += 1


def worker_instructions(root, n, close, workdir, threads=1, flags=()):
    """Instructions the worker ran, booting, serving n requests and exiting."""
    port = free_port("127.0.0.1")
    out = os.path.join(workdir, "cg.%d.%%p" % port)
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=HERE)
    argv = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--callgrind-out-file=" + out,
            sys.executable, "-c", RUN.format(root=root),
            "run", "hello:app", "-w", "1", "-b", "127.0.0.1:%d" % port, "--timeout", "600",
            "--threads", str(threads), *flags]
    with open(os.path.join(workdir, "server-%d.log" % port), "wb") as log:
        proc = subprocess.Popen(argv, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    sys.exit("the server did not start: see %s" % workdir)
                time.sleep(0.5)
        send(port, 200, close)        # warm: every path taken once
        send(port, n, close)
    finally:
        proc.terminate()
        proc.wait(120)
    files = sorted((f for f in os.listdir(workdir) if f.startswith("cg.%d." % port)),
                   key=lambda f: int(f.rsplit(".", 1)[1]))
    with open(os.path.join(workdir, files[-1])) as f:     # the worker: forked last
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    sys.exit("no count in %s" % files[-1])


def per_request(root, close, workdir, threads=1, flags=()):
    return (worker_instructions(root, 13000, close, workdir, threads, flags)
            - worker_instructions(root, 3000, close, workdir, threads, flags)) / 10000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--close", action="store_true", help="a new connection per request")
    parser.add_argument("--baseline", metavar="REV", help="also measure pyfork as of git revision REV")
    parser.add_argument("--threads", type=int, default=1, help="the worker's --threads (1: no app threads)")
    parser.add_argument("--flags", default="", help="pyfork flags for the measured tree only (quoted)")
    args = parser.parse_args()
    flags = shlex.split(args.flags)
    with tempfile.TemporaryDirectory(prefix="pyfork-instructions-") as workdir:
        roots = [("pyfork", ROOT)]
        if args.baseline:
            path = os.path.join(workdir, "baseline")
            subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, args.baseline],
                           check=True, capture_output=True)
            roots.append(("pyfork@" + args.baseline, path))
        try:
            counts = [(name, per_request(root, args.close, workdir, args.threads, () if root != ROOT else flags))
                      for name, root in roots]
        finally:
            if args.baseline:
                subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", path], capture_output=True)
    mode = (("close" if args.close else "keep-alive") + (" threads=%d" % args.threads if args.threads > 1 else "")
            + (" " + args.flags if args.flags else ""))
    for name, count in counts:
        print("%-20s %-10s %8.0f instructions per request (worker)" % (name, mode, count))
    if len(counts) == 2:
        print("ratio %.3f" % (counts[0][1] / counts[1][1]))


if __name__ == "__main__":
    main()
