#!/usr/bin/env python3
"""Does pyfork fit the dyno by itself? Issue 27's runs, each in a real standard-1X cgroup
(scripts/dyno.py: 512 MB memory, 256 tasks), one after another.

    auto    -w auto, workers that grow to about 170 MB each on their first request (2 fit
            under 85% of 512 MB, 3 do not), 6 clients at a time for 60 s: expect 0 OOM kills,
            0 failed requests, settled at 2
    fixed   the same app with -w 3: at most 1 OOM kill and 1 failed request, then 2
            running, with the step-down line, and no OOM kill or memory recycle in the last 45 s
    util    workers of 60 MB whose requests wait 50 ms, -w 2, 1 thread, 20 requests a second
            for 30 s: utilization near 0.5 (20 x 0.05 / 2) on the tasks line and on /metrics

Every run uses --dyno-size standard-1x --metrics-interval 2. For each it prints the command,
the kernel's OOM kills (memory.oom_control), the requests sent and failed, the running
worker count over time (the master's live children, once a second), the advice lines
logged, the step-down line, and OOM kills and memory recycles in the last 45 s.

    python scripts/fit.py                  # auto, fixed, util
    python scripts/fit.py auto --seconds 30
    python scripts/fit.py --json /tmp/fit.json

Needs root (for the cgroups) and psutil. Everything it starts is stopped by PID.
tests/observe/test_dyno.py runs the first two (marked slow) and a short end-to-end one.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
APPS = os.path.join(ROOT, "tests", "apps")
sys.path.insert(0, HERE)
from dyno import Dyno  # noqa: E402
from ports import free_port  # noqa: E402

GROW_MB = 166          # + the interpreter and pyfork: a worker of about 170 MB private
RUNS = {
    "auto": {"workers": "auto", "env": {"GROW_MB": str(GROW_MB)}, "clients": 6, "seconds": 60},
    "fixed": {"workers": "3", "env": {"GROW_MB": str(GROW_MB)}, "clients": 6, "seconds": 60},
    "util": {"workers": "2", "env": {"HOG_MB": "60", "WAIT_MS": "50"}, "rate": 20.0, "seconds": 30},
}


def command(port, workers, metrics_port, *extra):
    return [sys.executable, "-m", "supervisor", "run", "metrics_apps:app", "-w", workers,
            "-b", "127.0.0.1:%d" % port, "--dyno-size", "standard-1x", "--metrics-interval", "2",
            "--metrics-bind", "127.0.0.1:%d" % metrics_port, "--no-control-socket"] + list(extra)


def get(port, path="/", timeout=10.0):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.status, r.read()


class Load:
    """Closed loop (`clients` at a time, each sends its next request when the last one is
    answered) or open loop (`rate` a second on schedule, each on a thread of its own)."""

    def __init__(self, port, seconds, clients=0, rate=0.0):
        self.port, self.seconds, self.clients, self.rate = port, seconds, clients, rate
        self.sent = self.failed = 0
        self.failures = []          # (second, what)
        self.lock = threading.Lock()
        self.t0 = None

    def one(self):
        try:
            ok = get(self.port)[0] == 200
            what = "" if ok else "status"
        except Exception as exc:   # noqa: BLE001 - a worker killed mid-request, a refused connection
            ok, what = False, type(exc).__name__
        with self.lock:
            self.sent += 1
            if not ok:
                self.failed += 1
                self.failures.append((round(time.monotonic() - self.t0, 1), what))

    def run(self, tick):
        self.t0 = time.monotonic()
        stop = self.t0 + self.seconds
        threads = []
        if self.clients:
            def client():
                while time.monotonic() < stop:
                    self.one()
            threads = [threading.Thread(target=client, daemon=True) for _ in range(self.clients)]
            for t in threads:
                t.start()
        n, next_tick = 0, self.t0
        while time.monotonic() < stop:
            now = time.monotonic()
            if now >= next_tick:
                tick(now - self.t0)
                next_tick += 1.0
            if self.rate and now >= self.t0 + n / self.rate:
                t = threading.Thread(target=self.one, daemon=True)
                t.start()
                threads.append(t)
                n += 1
            time.sleep(0.005)
        for t in threads:
            t.join(15)


def running(pid):
    try:
        return sum(1 for k in psutil.Process(pid).children() if k.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return 0


def spans(points):
    """[(second, count)] -> '0-3s: 1, 4-60s: 2'."""
    out, start, last = [], None, None
    for t, n in points:
        if last is None or n != last[1]:
            if last is not None:
                out.append("%d-%ds: %d" % (start, last[0], last[1]))
            start = t
        last = (t, n)
    if last is not None:
        out.append("%d-%ds: %d" % (start, last[0], last[1]))
    return ", ".join(out)


def run(name, seconds=None, extra=()):
    spec = dict(RUNS[name])
    seconds = seconds or spec["seconds"]
    port, mport = free_port(), free_port()
    cmd = command(port, spec["workers"], mport, *extra)
    env = dict(os.environ, PYTHONPATH=APPS, **spec["env"])
    env.pop("WEB_CONCURRENCY", None)
    out = {"run": name, "command": "%s %s" % (" ".join("%s=%s" % kv for kv in spec["env"].items()), " ".join(cmd)),
           "seconds": seconds}
    fd, log_path = tempfile.mkstemp(prefix="fit-%s-" % name, suffix=".log")
    os.close(fd)
    counts, scrapes = [], []
    try:
        with open(log_path, "wb") as log, Dyno(size="standard-1x", subreaper=True) as dyno:
            proc = dyno.run(cmd, cwd=APPS, env=env, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and b"booted in" not in open(log_path, "rb").read():
                    time.sleep(0.1)
                load = Load(port, seconds, spec.get("clients", 0), spec.get("rate", 0.0))
                out["t0"] = time.time()

                def tick(elapsed):
                    dyno.reap()
                    counts.append((int(elapsed), running(proc.pid)))
                    if name == "util" and int(elapsed) % 4 == 3:
                        try:
                            text = get(mport, "/metrics", 5)[1].decode()
                            found = re.search(r"^pyfork_utilization (\S+)$", text, re.M)
                            if found:
                                scrapes.append(float(found.group(1)))
                        except OSError:
                            pass
                load.run(tick)
            finally:
                proc.terminate()
                try:
                    proc.wait(40)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                dyno.reap()
        out.update(oom_kills=dyno.final["oom_kills"], sent=load.sent, failed=load.failed, failures=load.failures,
                   running=spans(counts), running_end=counts[-1][1] if counts else None,
                   max_usage_mb=round(dyno.final["usage"]["max_usage"] / 1048576))
    finally:
        with open(log_path, errors="replace") as f:
            log_text = f.read()
        os.unlink(log_path)
    read_log(out, log_text, seconds)
    out["utilization_scrapes"] = scrapes
    return out


def read_log(out, log_text, seconds):
    """What the run's log says: advice lines, step downs, -w auto's moves, OOM kills and
    memory recycles (and how many in the last 45 s), utilization, the workers' USS."""
    lines = log_text.splitlines()
    out["advice_lines"] = sum(1 for x in lines if "set WEB_CONCURRENCY=" in x and "running " not in x
                              and "-w auto: serving" not in x)
    out["step_down"] = [x.split("] ", 3)[-1] for x in lines if re.search(r"running \d+ of \d+ workers", x)]
    out["auto_moves"] = re.findall(r"-w auto: workers (\d+ -> \d+)", log_text)
    out["oom_lines"] = [x.split("] ", 3)[-1] for x in lines if "OOM killer" in x]
    out["memory_recycles"] = [x.split("] ", 3)[-1] for x in lines if " recycled: memory" in x]
    events = [at(x, out["t0"]) for x in lines if "OOM killer" in x or " recycled: memory" in x]
    out["late_events"] = sum(1 for t in events if t is not None and t >= seconds - 45)
    out["step_down_at"] = [at(x, out["t0"]) for x in lines if re.search(r"running \d+ of \d+ workers", x)]
    out["utilization_lines"] = [float(u) for u in re.findall(r"sample#utilization=(\S+)", log_text)]
    out["worker_uss_mb"] = sorted({round(float(u)) for u in re.findall(r"worker=\d+ pid=\d+ .*?sample#memory_uss=(\S+)MB",
                                                                      log_text)})[-3:]
    out["events"] = [x for x in lines if x.startswith("[")]       # the log without the metrics lines


def at(line, t0):
    """Seconds from the load's start (wall clock t0) to a log line's stamp (whole seconds)."""
    m = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\]", line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S %z").timestamp() - int(t0)


def report(out):
    print("== %s: %s" % (out["run"], out["command"]))
    print("   oom_kills=%s failed=%s of %s requests; dyno max_usage=%sMB; workers' USS %s MB" % (
        out["oom_kills"], out["failed"], out["sent"], out["max_usage_mb"], out["worker_uss_mb"]))
    if out["failures"]:
        print("   failures at (s, what): %s" % out["failures"][:10])
    print("   running workers over time: %s" % out["running"])
    print("   advice lines: %d; -w auto moves: %s" % (out["advice_lines"], out["auto_moves"] or "-"))
    for x in out["step_down"]:
        print("   step down: %s" % x)
    print("   OOM kill lines: %d, memory recycles: %d; of them in the last 45 s: %d; step down at %s s" % (
        len(out["oom_lines"]), len(out["memory_recycles"]), out["late_events"], out["step_down_at"]))
    if out["utilization_lines"]:
        u = out["utilization_lines"][2:]       # the first intervals hold the start
        print("   utilization on the tasks line: %s (after the first two: min %.2f max %.2f)" % (
            out["utilization_lines"], min(u or [0]), max(u or [0])))
        print("   pyfork_utilization on /metrics: %s" % out["utilization_scrapes"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="*", metavar="RUN", help="auto, fixed, util (default: all three)")
    ap.add_argument("--seconds", type=float, help="load seconds per run (default: each run's own)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        ap.error("unknown run %s; known: %s" % (", ".join(unknown), ", ".join(RUNS)))
    results = []
    for name in args.runs or list(RUNS):
        out = run(name, args.seconds)
        report(out)
        results.append(out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
