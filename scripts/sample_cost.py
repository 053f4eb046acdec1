#!/usr/bin/env python3
"""What one metrics sample costs pyfork's master, with 1, 8, 32 and 64 workers.

For each worker count N (--workers, default 1,8,32,64) this starts

    python -m supervisor run hello:app -w N -b 127.0.0.1:P --metrics-interval 1 --log-level debug

(scripts/hello.py when it exists, else a trivial app written to a temporary directory),
waits until N workers serve, and for --duration seconds (default 10) collects:

  pyfork sample ms     the master's own debug line `metrics sample of N workers took
                       X.XXms` (wall time of one full sample: every worker's stat,
                       children, smaps_rollup and fds, the master's, the cgroup files);
                       the median over the window. 'n/a' when the master does not log it.
  master CPU/sample    the master's CPU time over the window (/proc/PID/schedstat, ns;
                       else psutil cpu_times),
                       divided by the samples taken in it (the debug lines, else the
                       metrics lines), minus an idle baseline: the same N workers with
                       --metrics-interval 0 for the same time, whose master CPU (the
                       loop, the once-a-second zombie/thread guard, heartbeats) is not
                       sampling's. --no-baseline skips that second run.
  psutil ms            the naive way, timed in this process after the window for the
                       same worker pids: psutil.Process(pid).memory_full_info() for
                       every worker (what a worker-killer library does), median of
                       --repeat rounds.

The goal from the issue: a full sample of 32 workers in under 10 ms.

    python scripts/sample_cost.py                        # 1, 8, 32, 64 workers, 10 s each
    python scripts/sample_cost.py --workers 8,32 --duration 5 --no-baseline

The box is shared: run nothing else heavy meanwhile; the CPU column is the steadier one.
Every server it starts is stopped by PID (SIGTERM, then SIGKILL), also on errors.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import psutil

from ports import free_port   # scripts/ports.py, beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG_LINE = re.compile(r"metrics sample of (\d+) workers took ([0-9.]+)ms")
METRIC_LINE = re.compile(r"sample#memory_total=")      # one dyno line per sample
TRIVIAL_APP = '''def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
'''


def app_dir(tmp):
    if os.path.exists(os.path.join(HERE, "hello.py")):
        return HERE, "hello:app"
    with open(os.path.join(tmp, "trivial_app.py"), "w") as f:
        f.write(TRIVIAL_APP)
    return tmp, "trivial_app:app"


def answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(32).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def workers_of(master):
    try:
        return [p for p in master.children() if p.status() != psutil.STATUS_ZOMBIE]
    except psutil.NoSuchProcess:
        return []


class Server:
    """One pyfork with N workers, its log in a file; stopped by PID."""

    def __init__(self, python, n, interval, cwd, app, logdir):
        self.port = free_port()
        self.n = n
        self.log_path = os.path.join(logdir, "pyfork-w%d-i%g.log" % (n, interval))
        self.cmd = [python, "-m", "supervisor", "run", app, "-w", str(n), "-b", "127.0.0.1:%d" % self.port,
                    "--metrics-interval", "%g" % interval, "--log-level", "debug"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYFORK_") and k != "WEB_CONCURRENCY"}
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.master = psutil.Process(self.proc.pid)

    def wait_ready(self, limit):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("pyfork exited with %s before serving; log: %s" % (self.proc.returncode, self.log_path))
            if len(workers_of(self.master)) >= self.n and answers(self.port):
                return
            time.sleep(0.2)
        raise RuntimeError("%d workers not serving within %.0fs; log: %s" % (self.n, limit, self.log_path))

    def cpu(self):
        """The master's CPU seconds: /proc/PID/schedstat's run time (nanoseconds; the
        master is single-threaded, so its main task is all of it) where the kernel has
        it, else psutil's cpu_times (clock ticks: 10 ms steps, coarse for one sample)."""
        try:
            with open("/proc/%d/schedstat" % self.proc.pid) as f:
                return int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            t = self.master.cpu_times()
            return t.user + t.system

    def log_size(self):
        self.log.flush()
        return os.path.getsize(self.log_path)

    def lines_between(self, start, end):
        with open(self.log_path, "rb") as f:
            f.seek(start)
            return f.read(end - start).decode("utf-8", "replace").splitlines()

    def stop(self):
        try:
            tree = self.master.children(recursive=True)     # remembered before the master goes
        except psutil.NoSuchProcess:
            tree = []
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        # a worker the master left behind is ours to end: by PID (psutil checks the
        # process start time, so a reused PID is never hit), never by name
        for p in tree:
            try:
                if p.is_running():
                    p.kill()
            except psutil.NoSuchProcess:
                pass
        self.log.close()


def window(server, duration, settle):
    """Wait for the first samples, then measure: (debug ms list, samples, master CPU s, seconds)."""
    time.sleep(settle)
    start, cpu0, t0 = server.log_size(), server.cpu(), time.monotonic()
    time.sleep(duration)
    end, cpu1, t1 = server.log_size(), server.cpu(), time.monotonic()
    lines = server.lines_between(start, end)
    ms = [float(m.group(2)) for m in map(DEBUG_LINE.search, lines) if m]
    samples = len(ms) or sum(1 for l in lines if METRIC_LINE.search(l))
    return ms, samples, cpu1 - cpu0, t1 - t0


def psutil_cost(pids, repeat):
    """ms for memory_full_info() of every worker, median over `repeat` rounds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for pid in pids:
            try:
                psutil.Process(pid).memory_full_info()
            except psutil.NoSuchProcess:
                pass
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def fmt(v, digits=2):
    return "n/a" if v is None else "%.*f" % (digits, v)


def ms_text(v):
    return "n/a" if v is None else "%.2f ms" % v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="1,8,32,64", help="worker counts (default 1,8,32,64)")
    ap.add_argument("--duration", type=float, default=10, help="seconds measured per run (default 10)")
    ap.add_argument("--settle", type=float, default=2.5, help="seconds after boot before measuring")
    ap.add_argument("--repeat", type=int, default=20, help="psutil rounds (default 20)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the --metrics-interval 0 run")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x.strip()]

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = tempfile.mkdtemp(prefix="sample-cost-")
    cwd, app = app_dir(tmp)
    rows = []
    missing_debug = False
    try:
        for n in counts:
            base_rate = None
            if not args.no_baseline:
                srv = Server(args.python, n, 0, cwd, app, tmp)
                try:
                    srv.wait_ready(30 + n)
                    _, _, cpu, secs = window(srv, args.duration, args.settle)
                    base_rate = cpu / secs
                finally:
                    srv.stop()
            srv = Server(args.python, n, 1, cwd, app, tmp)
            try:
                srv.wait_ready(30 + n)
                ms, samples, cpu, secs = window(srv, args.duration, args.settle)
                pids = [p.pid for p in workers_of(srv.master)]
                ps_ms = psutil_cost(pids, args.repeat)
            finally:
                srv.stop()
            if not ms:
                missing_debug = True
            cpu_per = None
            if samples:
                extra = cpu - (base_rate * secs if base_rate is not None else 0.0)
                cpu_per = max(0.0, extra) / samples * 1000
            rows.append((n, statistics.median(ms) if ms else None, max(ms) if ms else None,
                         samples, cpu_per, base_rate, ps_ms, len(pids)))
            print("workers=%d: %d samples in %.1fs, pyfork median %s, master CPU/sample %s, "
                  "psutil %s (%d pids)" % (n, samples, secs, ms_text(rows[-1][1]), ms_text(cpu_per),
                                           ms_text(ps_ms), len(pids)), flush=True)
    except KeyboardInterrupt:
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    finally:
        if not args.keep_logs:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("logs kept in %s" % tmp)

    print()
    print("workers | pyfork sample ms (median, max) | master CPU per sample ms%s | "
          "psutil memory_full_info, all workers ms" % ("" if args.no_baseline else " (minus idle)"))
    print("------- | ------------------------------ | ------------------------%s | "
          "---------------------------------------" % ("" if args.no_baseline else "-------------"))
    for n, med, mx, samples, cpu_per, base, ps_ms, npids in rows:
        sample = "n/a" if med is None else "%.2f (%.2f)" % (med, mx)
        print("%7d | %30s | %*s | %39s" % (n, sample, 24 if args.no_baseline else 37, fmt(cpu_per),
                                            fmt(ps_ms)))
    if missing_debug:
        print("\nn/a: the master logged no `metrics sample of N workers took X.XXms` line at "
              "--log-level debug (sampling not finished in this build?); the CPU column then "
              "counts samples by the metrics lines, if any.")
    goal = [r for r in rows if r[0] == 32 and r[1] is not None]
    if goal:
        print("\ngoal: a full sample of 32 workers in under 10 ms: %s (%.2f ms)"
              % ("met" if goal[0][1] < 10 else "NOT met", goal[0][1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
