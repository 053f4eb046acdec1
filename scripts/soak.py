#!/usr/bin/env python3
"""Three leaks, each soaked in a real standard-1X dyno: does pyfork keep every request up?

Each soak runs pyfork with its defaults plus `--dyno-size standard-1x`, 4 workers, serving
scripts/leaky_app.py inside a dyno made by scripts/dyno.py (a 512 MB memory cgroup and a
256-task pids cgroup, below this process's own, removed afterwards), and sends it a paced
20 requests a second (scripts/replay_incident.py's client: each request on its own
connection, on schedule whether or not earlier ones answered) to the leaking path:

    memory   /hog?mb=1&add=1   each request keeps 1 MiB more in its worker
    zombie   /                 each request forks a child that is never waited for
    thread   /thread           each request starts a thread that never ends
    none     /ok               no leak (for the spread alone)

It prints one row per leak: requests sent, failed (5xx, reset, closed without a response,
refused, timed out), recycles (pyfork's `recycled:` lines), the dyno's peak memory
(memory.max_usage_in_bytes) and peak tasks, and the kernel's OOM kills
(memory.oom_control), then the recycle lines and how the requests spread over the
workers in the first 30 s (from each response's X-Worker-Pid).

    python scripts/soak.py                         # the three 10-minute soaks
    python scripts/soak.py --duration 60 --leaks memory
    flock /work/locks/cpu.lock python scripts/soak.py --json /tmp/soak.json

Needs root (for the cgroups) and psutil. Everything it starts is stopped by PID.
tests/observe/test_soak.py runs a short version of each.
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dyno import Dyno, DynoError, mb  # noqa: E402
from ports import free_port  # noqa: E402
from replay_incident import FAIL_KINDS, Load, server_env, stop, tree, wait_ready  # noqa: E402

LEAKS = {
    "memory": "/hog?mb=1&add=1",
    "zombie": "/",
    "thread": "/thread",
    "none": "/ok",          # no leak: how the requests spread over the workers
}
DEFAULT_LEAKS = ("memory", "zombie", "thread")
SPREAD_SECONDS = 30        # the spread is counted over the first seconds of load


class PidLoad(Load):
    """The paced client, also counting which worker (X-Worker-Pid) answered, per second."""

    def __init__(self, path, *args):
        super().__init__(*args)
        self.REQUEST = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: soak\r\n"
                        "Connection: close\r\n\r\n" % path).encode()
        self.by_pid = collections.defaultdict(collections.Counter)     # second -> {pid: n}

    def finish(self, conn, reset=False):
        head = conn["data"].split(b"\r\n\r\n", 1)[0].lower()
        at = head.find(b"x-worker-pid:")
        if at >= 0:
            value = head[at + 13:].split(b"\r\n", 1)[0].strip()
            if value.isdigit():
                self.by_pid[conn["second"]][int(value)] += 1
        super().finish(conn, reset)


def command(python, port, workers):
    return [python, "-m", "supervisor", "run", "leaky_app:app", "-w", str(workers),
            "-b", "127.0.0.1:%d" % port, "--dyno-size", "standard-1x"]


def soak(leak, duration, rate=20.0, workers=4, size="standard-1x", timeout=10.0, python=sys.executable,
         path=None):
    """One soak -> a dict of what happened (see `row`); raises DynoError without cgroups.
    path: another request path for the leak (e.g. a faster leak for a short test)."""
    port = free_port()
    cmd = command(python, port, workers)
    path = path or LEAKS[leak]
    out = {"leak": leak, "path": path, "command": " ".join(cmd), "error": None}
    peak_tasks = [0]
    with tempfile.NamedTemporaryFile(prefix="soak-%s-" % leak, suffix=".log", delete=False) as log:
        log_path = log.name
    try:
        with open(log_path, "wb") as log, Dyno(size=size, subreaper=True) as dyno:
            proc = dyno.run(cmd, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, env=server_env())
            try:
                problem = wait_ready(proc, port, workers)
                if problem:
                    out["error"] = "pyfork did not start: %s" % problem
                    return out

                def tick(elapsed):
                    dyno.reap()
                    peak_tasks[0] = max(peak_tasks[0], dyno.tasks()["current"] or 0)

                load = PidLoad(path, port, rate, duration, timeout, tick)
                load.run()
                out["master_alive"] = proc.poll() is None
                out["workers_end"] = tree(proc.pid)[0]
            finally:
                out["exit"] = stop(proc)
                dyno.reap()
        kinds = collections.Counter()
        for counts in load.per_second.values():
            for k in FAIL_KINDS:
                kinds[k] += counts.get(k, 0)
        spread = collections.Counter()
        for second, pids in load.by_pid.items():
            if second < SPREAD_SECONDS:
                spread.update(pids)
        out.update(sent=load.sent, failed=sum(kinds.values()), kinds=dict(kinds),
                   oom_kills=dyno.final["oom_kills"], peak_memory=dyno.final["usage"]["max_usage"],
                   peak_tasks=max(peak_tasks[0], dyno.final["tasks"]["peak"] or 0),
                   limit_hits=dyno.final["events"].get("max", 0),
                   spread=sorted(spread.values(), reverse=True))
    finally:
        with open(log_path, errors="replace") as f:
            out["log"] = f.read().splitlines()
        os.unlink(log_path)
    out["recycled"] = [line for line in out["log"] if " recycled: " in line]
    return out


def row(r):
    if r.get("error"):
        return [r["leak"], "error: " + r["error"]]
    return [r["leak"], r["sent"], r["failed"], len(r["recycled"]), mb(r["peak_memory"]),
            "%d/256" % r["peak_tasks"], r["oom_kills"]]


HEADER = ["leak", "requests", "failed", "recycles", "peak memory", "peak tasks", "OOM kills"]


def table(results):
    rows = [HEADER] + [[str(c) for c in row(r)] for r in results]
    widths = [max(len(r[i]) for r in rows if i < len(r)) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in rows)


def details(r, lines):
    """What happened beyond the row: failures by kind, the spread, recycle and warning lines."""
    out = ["\n%s: failed by kind %s; master alive at the end: %s; tasks refused by pids.max: %d"
           % (r["leak"], {k: v for k, v in r["kinds"].items() if v} or "none", r["master_alive"], r["limit_hits"]),
           "  requests per worker in the first %ds (by X-Worker-Pid, most first): %s" % (SPREAD_SECONDS, r["spread"])]
    rec = r["recycled"]
    shown = rec[:lines] + (["  ..."] + rec[-1:] if len(rec) > lines + 1 else rec[lines:])
    said = [line for line in r["log"] if "WARNING" in line and " recycled: " not in line]
    kills = [line for line in r["log"] if "out of memory" in line]
    return "\n".join(out + ["  " + line for line in shown + said[:3] + kills[:3]])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=600, help="seconds of load per leak (default 600)")
    ap.add_argument("--rate", type=float, default=20, help="requests per second (default 20)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--leaks", default=",".join(DEFAULT_LEAKS), help="comma-separated, of: " + ", ".join(LEAKS))
    ap.add_argument("--lines", type=int, default=4, help="recycle lines to show per leak")
    ap.add_argument("--json", help="write the raw results (without the logs) here")
    args = ap.parse_args()
    leaks = [x.strip() for x in args.leaks.split(",") if x.strip()]
    bad = [x for x in leaks if x not in LEAKS]
    if bad:
        ap.error("unknown leak(s): %s" % ", ".join(bad))

    def on_term(signum, frame):
        raise KeyboardInterrupt          # unwind: the finally blocks stop pyfork, remove the dyno
    signal.signal(signal.SIGTERM, on_term)
    results = []
    try:
        for leak in leaks:
            print("soak: %s leak (%s), %g req/s for %gs, %d workers, started %s"
                  % (leak, LEAKS[leak], args.rate, args.duration, args.workers, time.strftime("%H:%M:%S")),
                  flush=True)
            results.append(soak(leak, args.duration, args.rate, args.workers))
            print(table(results[-1:]), flush=True)
    except DynoError as exc:
        print("soak: error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted; pyfork stopped and the dyno removed", file=sys.stderr)
        return 130
    print("\n" + table(results))
    for r in results:
        if not r.get("error"):
            print(details(r, args.lines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "log"} for r in results], f, indent=1)
    return 0 if all(not r.get("error") and r["failed"] == 0 and r["oom_kills"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
