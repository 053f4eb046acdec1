#!/usr/bin/env python3
"""The incident, replayed: a zombie-leaking app in a simulated standard-1X dyno.

The app (scripts/leaky_app.py, `/`) forks a child per request and never waits for it,
as the library in the incident did. Each zombie holds one of the dyno's 256 tasks until
its parent reaps it. The app is served, one after the other, by

    gunicorn   python -m gunicorn -w 4 -b 127.0.0.1:P --no-control-socket leaky_app:app
    pyfork     python -m supervisor run leaky_app:app -w 4 -b 127.0.0.1:P   (defaults)

each inside its own dyno (scripts/dyno.py: a memory cgroup of 512MB and a pids cgroup of
256 tasks, made below this process's cgroups and removed afterwards). Gunicorn gets
--no-control-socket only so that it does not take over $HOME/.gunicorn/gunicorn.ctl from
another Gunicorn on the machine; the control socket has no part in the leak.

The load is a paced client in this process (outside the dyno, so its sockets cost the
dyno no tasks): --rate requests per second to `/` (default 20), each on a new connection
with `Connection: close`, sent on schedule whether or not earlier ones answered (one
selector loop, no threads; wrk cannot hold an exact rate). A request is ok when it gets a
status below 500; it failed when it got 500 or more, the connection closed or reset
without a response, the connect was refused, or nothing came back within --timeout.

Every second it records the zombies in the server's process tree (psutil, state Z), the
dyno's task count and pids.events `max` (forks and thread creations the limit refused).
At the end it prints both outcomes side by side, a 10-second timeline, and pyfork's log
lines that mention 'recycled' or 'zombies'.

    python scripts/replay_incident.py                    # 180 s each, as in the issue
    python scripts/replay_incident.py --duration 30      # a quick look
    python scripts/replay_incident.py --servers gunicorn --duration 20 --timeline

Needs root (for the cgroups), psutil and gunicorn. Everything it starts is stopped by
PID, and the cgroups are removed, also on errors and Ctrl-C.
"""
import argparse
import collections
import errno
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dyno import Dyno, DynoError, mb  # noqa: E402
from ports import free_port  # noqa: E402

FAIL_KINDS = ("5xx", "closed", "reset", "refused", "timeout")


def commands(python, port, workers):
    return {
        "gunicorn": [python, "-m", "gunicorn", "-w", str(workers), "-b", "127.0.0.1:%d" % port,
                     "--no-control-socket", "leaky_app:app"],
        "pyfork": [python, "-m", "supervisor", "run", "leaky_app:app", "-w", str(workers),
                   "-b", "127.0.0.1:%d" % port],
    }


def get(port, path, timeout=2.0):
    """One GET with Connection: close -> status or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path.encode())
            data = b""
            while len(data) < 64:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return parse_status(data)
    except OSError:
        return None


def parse_status(data):
    if not data.startswith(b"HTTP/"):
        return None
    parts = data.split(b" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        return None


# -- the server's tree -------------------------------------------------------------

def tree(pid, by_parent=None):
    """(live workers, zombies) in the process tree under the server's master; with
    by_parent (a dict), also the zombies per parent pid."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return 0, 0
    zombies = live = 0
    for k in kids:
        try:
            st = k.status()
            parent = k.ppid()
        except psutil.NoSuchProcess:
            continue
        if st == psutil.STATUS_ZOMBIE:
            zombies += 1
            if by_parent is not None:
                by_parent[parent] = by_parent.get(parent, 0) + 1
        elif parent == pid:
            live += 1
    return live, zombies


def wait_ready(proc, port, workers, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "exited with %s before serving" % proc.returncode
        if get(port, "/ok", timeout=1.0) == 200 and tree(proc.pid)[0] >= workers:
            return None
        time.sleep(0.2)
    return "not ready within %.0fs" % limit


def stop(proc, grace=35.0):
    """SIGTERM the master (by PID), wait for it; the dyno SIGKILLs anything left."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=grace)
    except Exception:
        proc.kill()
        return proc.wait(timeout=5)


# -- the paced client --------------------------------------------------------------

class Load:
    """`rate` requests a second to `/`, each on its own connection, on schedule."""

    REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: replay\r\nConnection: close\r\n\r\n"

    TICK = 0.25             # seconds between samples of the server's tree

    def __init__(self, port, rate, duration, timeout, on_tick):
        self.port = port
        self.rate = rate
        self.duration = duration
        self.timeout = timeout
        self.on_tick = on_tick      # called every TICK with the seconds since the load began
        self.sel = selectors.DefaultSelector()
        self.per_second = collections.defaultdict(collections.Counter)
        self.statuses = collections.Counter()
        self.sent = 0

    def done(self, conn, kind):
        self.per_second[conn["second"]][kind] += 1
        if conn.get("sock") is not None:
            try:
                self.sel.unregister(conn["sock"])
            except (KeyError, ValueError):
                pass
            conn["sock"].close()
            conn["sock"] = None

    def finish(self, conn, reset=False):
        status = parse_status(conn["data"])
        if status is None:
            self.done(conn, "reset" if reset else "closed")
            return
        self.statuses[status] += 1
        self.done(conn, "ok" if status < 500 else "5xx")

    def start(self, second):
        self.sent += 1
        conn = {"second": second, "t": time.monotonic(), "data": b"", "sock": None}
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", self.port))
        conn["sock"] = s
        if err not in (0, errno.EINPROGRESS):
            self.done(conn, "refused" if err == errno.ECONNREFUSED else "reset")
            return None
        self.sel.register(s, selectors.EVENT_WRITE, conn)
        return conn

    def event(self, key, mask):
        conn = key.data
        s = conn["sock"]
        if s is None:
            return
        if mask & selectors.EVENT_WRITE and not conn.get("sent"):
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.done(conn, "refused" if err == errno.ECONNREFUSED else "reset")
                return
            try:
                s.send(self.REQUEST)            # 90 bytes: one send on a fresh socket
            except OSError:
                self.done(conn, "reset")
                return
            conn["sent"] = True
            self.sel.modify(s, selectors.EVENT_READ, conn)
            return
        try:
            chunk = s.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self.finish(conn, reset=True)
            return
        if not chunk:
            self.finish(conn)
        else:
            conn["data"] += chunk

    def run(self):
        t0 = time.monotonic()
        total = int(self.rate * self.duration)
        open_conns = []
        tick = 0                    # the next sample is due at t0 + tick * TICK
        ticks = int(self.duration / self.TICK)
        end = t0 + self.duration + self.timeout + 1
        while time.monotonic() < end:
            now = time.monotonic()
            while self.sent < total and t0 + self.sent / self.rate <= now:
                conn = self.start(int(self.sent / self.rate))
                if conn:
                    open_conns.append(conn)
            if tick <= ticks and t0 + tick * self.TICK <= now:
                self.on_tick(tick * self.TICK)
                tick += 1
            for conn in open_conns:
                if conn["sock"] is not None and now - conn["t"] > self.timeout:
                    self.done(conn, "timeout")
            open_conns = [c for c in open_conns if c["sock"] is not None]
            if self.sent >= total and not open_conns and tick > ticks:
                break
            wake = min(t0 + self.sent / self.rate if self.sent < total else end,
                       t0 + tick * self.TICK if tick <= ticks else end)
            for key, mask in self.sel.select(max(0.0, min(0.05, wake - now))):
                self.event(key, mask)
        for conn in open_conns:
            if conn["sock"] is not None:
                self.done(conn, "timeout")
        self.sel.close()


# -- one server ---------------------------------------------------------------------

def replay(name, cmd, port, args):
    out = {"server": name, "command": " ".join(cmd), "error": None}
    log = tempfile.NamedTemporaryFile(prefix="replay-%s-" % name, suffix=".log", delete=False)
    out["log_path"] = log.name
    seconds = {}
    try:
        with Dyno(size=args.size, subreaper=True) as dyno:
            proc = dyno.run(cmd, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, env=server_env())
            try:
                problem = wait_ready(proc, port, args.workers)
                if problem:
                    out["error"] = "%s did not start: %s (log: %s)" % (name, problem, log.name)
                    return out
                events0 = dyno.events().get("max", 0)

                def sample(elapsed):
                    """Every Load.TICK: the tree's zombies and the dyno's tasks, kept per
                    second as the maximum (4 looks a second, so a worker recycled every
                    2 s with 40 zombies is not seen at 1 and 21 only)."""
                    dyno.reap()
                    held = {}
                    live, zombies = tree(proc.pid, held)
                    now = {"zombies": zombies, "workers": live, "tasks": dyno.tasks()["current"] or 0,
                           "most_by_one": max(held.values(), default=0),
                           "limit_hits": dyno.events().get("max", 0) - events0,
                           "master_alive": proc.poll() is None}
                    sec = seconds.setdefault(int(elapsed), dict(now, wall=time.time()))
                    for k in ("zombies", "tasks", "most_by_one", "limit_hits"):
                        sec[k] = max(sec[k], now[k])
                    sec["workers"] = min(sec["workers"], live)
                    sec["master_alive"] = sec["master_alive"] and now["master_alive"]

                load = Load(port, args.rate, args.duration, args.timeout, sample)
                out["load_start"] = time.strftime("%H:%M:%S")
                load.run()
                live, zombies_end = tree(proc.pid)
                snap = dyno.snapshot()
                out.update(
                    sent=load.sent, per_second={k: dict(v) for k, v in load.per_second.items()},
                    seconds=seconds, statuses=dict(load.statuses), zombies_end=zombies_end,
                    workers_end=live, tasks_end=snap["tasks"]["current"],
                    limit_hits=snap["events"].get("max", 0) - events0,
                    master_alive=proc.poll() is None)
            finally:
                out["exit"] = stop(proc)
                dyno.reap()
        out["dyno"] = dyno.report(dyno.final)
        out["oom_kills"] = dyno.final["oom_kills"]
        out["max_usage"] = mb(dyno.final["usage"]["max_usage"])
        out["tasks_peak"] = dyno.final["tasks"]["peak"]
    finally:
        log.close()
        with open(log.name, errors="replace") as f:
            out["log"] = f.read().splitlines()
        if not out["error"]:               # kept for a server that did not start
            os.unlink(log.name)
            out["log_path"] = None
    return out


def server_env():
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # defaults mean defaults: no worker count or pyfork setting from this environment
    for key in list(env):
        if key == "WEB_CONCURRENCY" or key.startswith(("PYFORK_", "GUNICORN_")):
            del env[key]
    return env


# -- the report ---------------------------------------------------------------------

def summary(r):
    if r.get("error"):
        return None
    per = r["per_second"]
    ok = sum(c.get("ok", 0) for c in per.values())
    kinds = collections.Counter()
    for c in per.values():
        for k in FAIL_KINDS:
            kinds[k] += c.get(k, 0)
    failed = sum(kinds.values())
    first = min((s for s, c in per.items() if any(c.get(k) for k in FAIL_KINDS)), default=None)
    peak = max((s["zombies"] for s in r["seconds"].values()), default=0)
    peak_one = max((s["most_by_one"] for s in r["seconds"].values()), default=0)
    lines = [l for l in r["log"] if mentions(l)]
    recycled = [l for l in lines if "recycled" in l.lower()]
    return {"sent": r["sent"], "ok": ok, "failed": failed, "kinds": kinds, "first": first,
            "peak": peak, "peak_one": peak_one, "end": r["zombies_end"], "hits": r["limit_hits"],
            "lines": lines, "nrecycled": len(recycled), "nother": len(lines) - len(recycled)}


def mentions(line):
    """A log line about recycling or zombies; metrics lines only when they count some
    (every worker line carries `sample#zombies=0`, which says nothing)."""
    low = line.lower()
    return "recycled" in low or ("zombie" in low and "sample#zombies=0 " not in low
                                 and not low.rstrip().endswith("sample#zombies=0"))


def table(results):
    rows = [("requests sent", "sent"), ("ok (status < 500)", "ok"), ("failed", "failed"),
            ("  of which 5xx", "5xx"), ("  closed, no response", "closed"), ("  reset", "reset"),
            ("  refused", "refused"), ("  timed out", "timeout"),
            ("first failure (second)", "first"), ("peak zombies", "peak"),
            ("  most held by one process", "peak_one"), ("zombies at end", "end"), ("task-limit hits (pids.events max)", "hits"),
            ("dyno tasks peak", "tasks_peak"), ("dyno OOM kills", "oom_kills"),
            ("dyno max memory", "max_usage"), ("log lines: 'recycled'", "nrecycled"),
            ("log lines: other on zombies", "nother")]
    names = [r["server"] for r in results]
    sums = {r["server"]: summary(r) for r in results}
    width = max(len(label) for label, _ in rows)
    print("\n%-*s  %s" % (width, "", "  ".join("%12s" % n for n in names)))
    for label, key in rows:
        cells = []
        for r in results:
            s = sums[r["server"]]
            if s is None:
                cells.append("error")
            elif key in FAIL_KINDS:
                cells.append(s["kinds"][key])
            elif key in ("tasks_peak", "oom_kills", "max_usage"):
                cells.append(r.get(key, "n/a"))
            else:
                v = s[key]
                cells.append("-" if v is None else v)
        print("%-*s  %s" % (width, label, "  ".join("%12s" % c for c in cells)))


def timeline(results, step, duration):
    print("\ntimeline (per %ds of load: ok/failed requests sent then; max zombies in the tree/"
          "held by one process; max tasks in the dyno; task-limit hits so far)" % step)
    header = "  t(s)  " + "  ".join("%-40s" % r["server"] for r in results)
    print(header)
    for start in range(0, max(1, int(duration)), step):       # the seconds with load
        cells = []
        for r in results:
            if r.get("error"):
                cells.append("%-40s" % "error")
                continue
            rng = range(start, start + step)
            ok = sum(r["per_second"].get(s, {}).get("ok", 0) for s in rng)
            bad = sum(sum(r["per_second"].get(s, {}).get(k, 0) for k in FAIL_KINDS) for s in rng)
            secs = [r["seconds"][s] for s in rng if s in r["seconds"]]
            z = max((x["zombies"] for x in secs), default=0)
            one = max((x["most_by_one"] for x in secs), default=0)
            t = max((x["tasks"] or 0 for x in secs), default=0)
            h = secs[-1]["limit_hits"] if secs else 0
            cells.append("%-40s" % ("ok %3d fail %3d zmb %3d/%3d tasks %3d hits %d" % (ok, bad, z, one, t, h)))
        print("%6d  %s" % (start, "  ".join(cells)))


def log_excerpt(r, n):
    s = summary(r)
    if s is None:
        return
    print("\n%s log lines mentioning 'recycled' or zombies: %d" % (r["server"], len(s["lines"])))
    sample = s["lines"][:n] + (["  ..."] + s["lines"][-2:] if len(s["lines"]) > n + 2 else s["lines"][n:])
    for line in sample:
        print("  " + line)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=180, help="seconds of load per server (default 180)")
    ap.add_argument("--rate", type=float, default=20, help="leaking requests per second (default 20)")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--size", default="standard-1x", help="dyno size (default standard-1x: 512MB, 256 tasks)")
    ap.add_argument("--servers", default="gunicorn,pyfork", help="comma-separated, in order")
    ap.add_argument("--timeout", type=float, default=10, help="seconds a request may take (default 10)")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs the servers")
    ap.add_argument("--timeline", action="store_true", help="per-second timeline instead of per 10 s")
    ap.add_argument("--log-lines", type=int, default=5, help="log lines to show per server")
    ap.add_argument("--json", help="write the raw results here")
    args = ap.parse_args()
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in ("gunicorn", "pyfork")]
    if unknown:
        ap.error("unknown server(s): %s" % ", ".join(unknown))
    # SIGTERM to the replay unwinds like Ctrl-C, so the finally blocks stop the servers
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    results = []
    try:
        for name in servers:
            port = free_port()
            cmd = commands(args.python, port, args.workers)[name]
            print("replay: %s in a %s dyno, %g leaking req/s for %gs: %s"
                  % (name, args.size, args.rate, args.duration, " ".join(cmd)), flush=True)
            try:
                r = replay(name, cmd, port, args)
            except DynoError as exc:
                print("replay: error: %s" % exc, file=sys.stderr)
                return 2
            if r.get("error"):
                print("replay: %s" % r["error"], file=sys.stderr)
                for line in r.get("log", [])[-15:]:
                    print("  " + line, file=sys.stderr)
            else:
                print("replay: %s done (load from %s), dyno: %s; exit %s"
                      % (name, r["load_start"], r["dyno"], r["exit"]), flush=True)
            results.append(r)
    except KeyboardInterrupt:
        print("replay: interrupted; servers stopped and dynos removed", file=sys.stderr)
        return 130
    table(results)
    if any(not r.get("error") for r in results):
        timeline(results, 1 if args.timeline else 10, args.duration)
    for r in results:
        log_excerpt(r, args.log_lines)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
