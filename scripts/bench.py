#!/usr/bin/env python3
"""Benchmark pyfork against Gunicorn (sync and gthread) on one hello-world WSGI app.

Throughput (the default)
    Every selected server serves scripts/hello.py with 2 workers on 127.0.0.1, all
    started side by side in this one run. Each is driven by
    `wrk -t2 -c64 -d<duration>s --latency` in two modes: keep-alive, and with
    `-H 'Connection: close'` (a new TCP connection per request). Each (server, mode)
    runs --runs times; rounds go through all servers in turn, so noise from other work
    on the machine spreads over all of them. Each server gets a 1 s wrk warm-up first.
    Reported per (server, mode), as medians over the runs:

      req/s       wrk's Requests/sec
      p99 ms      the 99% line of wrk's --latency distribution
      CPU us/req  CPU time of the master and all its workers (every thread, user and
                  kernel, from /proc/PID/task/*/schedstat: the scheduler's ns clock, not
                  the 100 Hz tick samples of utime+stime, which alone moved a server's
                  figure by several percent run to run), read right before and right
                  after the wrk run (utime+stime of a worker reaped in between), divided
                  by the requests wrk completed. Unlike req/s this holds on a shared box: it does not
                  depend on how much CPU other work leaves the server.
      errors      wrk's socket errors (connect/read/write/timeout) plus non-2xx
                  responses, summed over the runs

    then pyfork / best Gunicorn per mode (best = the better of sync and gthread):
    req/s (above 1: pyfork serves more) and CPU us/req (below 1: pyfork spends less).

Slow app (--slow, instead of throughput): scripts/waiting.py, an app that waits as a web
    app waits on its database, 2 workers each: pyfork --threads 1 and --threads 8 beside
    Gunicorn sync and gthread with 8 threads, in this one run. Load from
    scripts/slowload.py (closed loop like wrk, latency kept per request kind):
      waits   every request waits 20 ms, 64 keep-alive connections: req/s, p99, max.
              Ideal (one first-come queue): 2 x threads / 20 ms req/s, and a latency
              of 64 x 20 ms / (2 x threads): 640 ms with 1 thread, 80 ms with 8.
      mixed   9 requests in 10 answered at once, 1 waits 200 ms, 32 connections: the
              fast requests' p99 and max (do they wait behind the slow ones?). Run 1
              puts each connection's slow request at phase i % 10; run k > 1 draws the
              phases with seed k - 1, the same for every server (one fixed pattern is
              one trajectory per server, its fast p99 400 or 600 ms run after run).
    With --runs 2 or more, a table of medians per server follows each load's runs.

Lifecycle (--lifecycle, instead of throughput): pyfork and Gunicorn sync side by side
    (a) start: process start to the first answered request (connect + GET polled every
        5 ms), 2 workers, median of 5 starts.
    (b) respawn: --preload, 10 workers. SIGKILL one worker, then time until the master
        lists its replacement (psutil children of the master) and until a request is
        answered by it (hello.py sends X-Worker-Pid; bursts of concurrent requests
        reach the new worker among the idle ones). 10 kills, median and max. Each kill
        hits a different worker that has been up over 10 s: pyfork deliberately delays
        the respawn of a slot whose worker died within 10 s of starting (crash
        backoff), and that is not what this measures.
    (c) idle: master RSS (MB) and master CPU % over 10 s idle with 8 workers (and the
        8 workers' summed CPU %).

Floors (--with-floors): scripts/floor.py --serve runs beside them, measured the same way:
    floor-c (scripts/floor.c: the kernel's share, no parsing), floor-python (Python on
    httptools, no WSGI), floor-wsgi (the same calling the app through a WSGI layer with
    no checks). They bound from below what a Python WSGI server can spend per request.

Gunicorn runs with its defaults (no access log, like pyfork) except
--no-control-socket where it exists (25.1+): every instance would otherwise bind the
same $HOME/.gunicorn/gunicorn.ctl, and several run side by side here.

Run it with the Python of the venv where pyfork is installed (the servers run with the
same interpreter, see --python):

    python scripts/bench.py                          # 10 s per wrk run, 3 runs
    python scripts/bench.py --duration 3 --runs 1    # a quick look
    python scripts/bench.py --servers pyfork,gunicorn-gthread --with-access-log --json out.json
    python scripts/bench.py --with-access-log --with-floors   # the README's table
    python scripts/bench.py --lifecycle
    python scripts/bench.py --slow --duration 8 --runs 1     # the README's slow-app tables
    python scripts/bench.py --baseline main~3 --servers pyfork   # a before/after in one run

--baseline REV adds the server "pyfork@REV": pyfork as it was at git revision REV (a
detached `git worktree` made in a temporary folder and removed at the end), started the
same way beside the others, so a change's cost is measured in the same run as its base.

Needs psutil, wrk (`apt-get install -y wrk`) and gunicorn (`pip install gunicorn`, or
`pip install -e '.[bench]'` in the pyfork repository). Every server it starts is stopped
by PID when it ends (also on errors and Ctrl-C), and it checks that none is left.
"""
import argparse
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

try:
    import psutil
except ImportError:
    sys.exit("bench.py needs psutil: pip install psutil")

from ports import free_port  # noqa: E402   scripts/ports.py, beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
APP = "hello:app"
WORKERS = 2
MODES = ("keep-alive", "close")
SERVERS = ("pyfork", "gunicorn-sync", "gunicorn-gthread")
ACCESS_LOG_VARIANT = "pyfork-accesslog"
THREADS_VARIANT = "pyfork-threads4"      # --with-threads: what 4 app threads cost on hello world
# scripts/floor.py --serve: what the kernel alone costs (C, no parsing), a Python server on
# httptools with no WSGI, and the same calling the app through a WSGI layer with no checks
FLOORS = {"floor-c": ["--c"], "floor-python": [], "floor-wsgi": ["--wsgi"]}
GUNICORNS = ("gunicorn-sync", "gunicorn-gthread")
GET_WRK = "wrk not found on PATH: install it with `apt-get install -y wrk`"
GET_GUNICORN = ("gunicorn is not importable by %s: install it with `pip install gunicorn` "
                "(or `pip install -e '.[bench]'` in the pyfork repository)")
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
PYFORK_STABLE = 10.0     # supervisor/supervise/backoff.py STABLE: a worker up this long dies a "first" death
STARTED = []             # every Server started, for the final stop-and-check


# -- servers ----------------------------------------------------------------------------

def server_argv(name, args, bind, workers, extra=(), app=APP):
    """The command line for one server kind; `extra` holds flags both servers take."""
    python = args.python
    if name in FLOORS:
        return [python, os.path.join(HERE, "floor.py"), "--serve", bind.rpartition(":")[2]] + FLOORS[name]
    if name.startswith("pyfork"):
        argv = [python, "-m", "supervisor", "run", app, "-w", str(workers), "-b", bind]
        if name.startswith("pyfork@"):
            argv[1:3] = ["-c", "import sys; sys.path.insert(0, %r); import runpy; "
                               "runpy.run_module('supervisor', run_name='__main__')" % args.baseline_dir]
        if name == ACCESS_LOG_VARIANT:
            argv += ["--access-logfile", "/dev/null"]
        if name == THREADS_VARIANT:
            argv += ["--threads", "4"]
        return argv + list(extra)
    argv = [python, "-m", "gunicorn", "-w", str(workers), "-b", bind] + args.gunicorn_flags
    if name == "gunicorn-gthread":
        argv += ["-k", "gthread", "--threads", "4"]
    return argv + list(extra) + [app]


def server_env():
    """Our environment without settings that would change what the servers do."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PYFORK_") and k not in ("PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")}
    env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_seconds(pid):
    """Seconds every thread of `pid` has run on a CPU, user and kernel, from the scheduler's
    own clock (/proc/PID/task/*/schedstat, in ns). utime+stime (psutil's cpu_times) are
    sampled at each 100 Hz tick instead: over a 4 s run that alone moves a server's CPU per
    request by several percent from run to run. 0.0 for a process that is gone."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass            # a thread that ended just now
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return total / 1e9


class Server:
    """One server we started: its master by PID, and every worker we have seen."""

    def __init__(self, name, args, logdir, workers=WORKERS, extra=(), app=APP):
        self.name = name
        self.workers = workers
        self.port = free_port(HOST)
        self.argv = server_argv(name, args, "%s:%d" % (HOST, self.port), workers, extra, app)
        self.log_path = os.path.join(logdir, "%s-%d.log" % (name, self.port))
        self.proc = None
        self.stop_seconds = None
        self.slow_stop = None   # why stop() had to SIGKILL, if it had to
        self.seen = {}          # pid -> psutil.Process: master and workers, for the final check

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, cwd=HERE, env=server_env(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.append(self)
        self.master = psutil.Process(self.proc.pid)
        self.seen[self.proc.pid] = self.master
        return self

    def children(self):
        """The master's live children (its workers), remembered for the final check."""
        try:
            kids = self.master.children()
        except psutil.NoSuchProcess:
            return []
        for kid in kids:
            if self.seen.get(kid.pid) != kid:
                self.seen[kid.pid] = kid
        return kids

    def check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError("%s exited with code %s; its log ends:\n%s"
                               % (self.name, self.proc.returncode, self.log_tail()))

    def wait_ready(self, timeout=30.0):
        """Until all workers exist and a request is answered with 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if len(self.children()) >= self.workers:
                answer = http_get(self.port, timeout=2.0)
                if answer and answer[0] == 200:
                    return
            time.sleep(0.05)
        raise RuntimeError("%s did not answer within %gs; its log ends:\n%s"
                           % (self.name, timeout, self.log_tail()))

    def cpu_seconds(self):
        """CPU time of the master and its live workers, every thread, as the scheduler clocks it
        (run_seconds), plus utime+stime of the children the master reaped."""
        t = self.master.cpu_times()
        total = run_seconds(self.master.pid) + t.children_user + t.children_system
        for kid in self.children():
            total += run_seconds(kid.pid)   # 0 when reaped since we listed it: then in children_* (next sample)
        return total

    def stop(self, timeout=10.0):
        """SIGTERM the master and wait; SIGKILL master and workers that linger."""
        if self.proc is None or self.proc.returncode is not None:
            return
        workers = self.children()
        if self.proc.poll() is None:
            t0 = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print("warning: %s (pid %d) still running %gs after SIGTERM; SIGKILL"
                      % (self.name, self.proc.pid, timeout), file=sys.stderr)
                self.slow_stop = "still running %gs after SIGTERM: SIGKILLed" % timeout
                self.proc.kill()
                self.proc.wait(5)
            self.stop_seconds = time.monotonic() - t0
        _, alive = psutil.wait_procs(workers, timeout=5)
        for p in alive:
            print("warning: %s worker pid %d outlived its master; SIGKILL" % (self.name, p.pid),
                  file=sys.stderr)
            try:
                p.kill()            # psutil checks the pid still names the same process
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)

    def leftovers(self):
        """Processes of this server still running (zombies included: someone must reap them)."""
        left = []
        for pid, p in self.seen.items():
            try:
                if p.is_running():
                    left.append("%s pid %d (%s)" % (self.name, pid, p.status()))
            except psutil.NoSuchProcess:
                pass
        return left

    def log_tail(self, lines=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def notable_log_lines(self):
        """Warnings, errors and tracebacks the server logged."""
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return []
        keep = re.compile(r"\[(WARNING|ERROR|CRITICAL)\]|Traceback|Error\b")
        return [line for line in text.splitlines() if keep.search(line)]


def stop_all_and_check():
    """Stop every server started, by PID; return the processes still left."""
    for server in STARTED:
        try:
            server.stop()
        except Exception as exc:     # keep stopping the others
            print("warning: stopping %s: %s" % (server.name, exc), file=sys.stderr)
    return [p for server in STARTED for p in server.leftovers()]


# -- raw HTTP ---------------------------------------------------------------------------

def read_all(sock):
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def parse_head(data):
    """Response bytes -> (status, {lowercase header: value}) or None."""
    head, sep, _ = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def http_get(port, timeout=2.0):
    """One GET / with Connection: close: (status, headers), or None if nothing answered."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(REQUEST)
            return parse_head(read_all(s))
    except OSError:
        return None


def answered_by(port, pid, n, timeout=1.0):
    """Send n requests at once on n connections. The monotonic time the first answer
    from worker `pid` (X-Worker-Pid) arrived, or None. Every answer is read before
    returning, so no connection is cut under the server."""
    want = str(pid)
    found = None
    sel = selectors.DefaultSelector()
    socks = []
    try:
        for _ in range(n):
            socks.append(socket.create_connection((HOST, port), timeout=timeout))
        for s in socks:
            s.sendall(REQUEST)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, bytearray())
        deadline = time.monotonic() + timeout
        while sel.get_map() and time.monotonic() < deadline:
            for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
                data = key.fileobj.recv(65536)
                key.data.extend(data)
                if data:
                    continue
                sel.unregister(key.fileobj)
                answer = parse_head(bytes(key.data))
                if found is None and answer and answer[1].get("x-worker-pid") == want:
                    found = time.monotonic()
    except OSError:
        pass
    finally:
        sel.close()
        for s in socks:
            s.close()
    return found


# -- wrk --------------------------------------------------------------------------------

TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def run_wrk(port, duration, close):
    argv = ["wrk", "-t2", "-c64", "-d%ds" % duration, "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    argv.append("http://%s:%d/" % (HOST, port))
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(argv), out.returncode, out.stderr.strip()))
    result = parse_wrk(out.stdout)
    result["command"] = " ".join(argv)
    return result


def parse_wrk(text):
    """wrk's report -> requests, rps, p99_ms, socket_errors, non_2xx."""
    def find(pattern):
        m = re.search(pattern, text, re.M)
        if m is None:
            raise RuntimeError("cannot find %r in wrk's output:\n%s" % (pattern, text))
        return m

    p99 = find(r"^\s*99%\s+([\d.]+)(us|ms|s|m|h)\s*$")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": int(find(r"(\d+) requests in ")[1]),
        "rps": float(find(r"Requests/sec:\s+([\d.]+)")[1]),
        "p99_ms": float(p99[1]) * TIME_UNITS_MS[p99[2]],
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"),
                                  (int(g) for g in errors.groups()))) if errors else {},
        "non_2xx": int(non_2xx[1]) if non_2xx else 0,
    }


def error_count(result):
    return sum(result["socket_errors"].values()) + result["non_2xx"]


# -- throughput -------------------------------------------------------------------------

def measure(server, mode, duration):
    """One wrk run with the server's CPU time sampled around it."""
    before = server.cpu_seconds()
    result = run_wrk(server.port, duration, close=(mode == "close"))
    after = server.cpu_seconds()
    server.check_alive()
    result["cpu_s"] = after - before
    result["cpu_us_per_req"] = result["cpu_s"] * 1e6 / result["requests"] if result["requests"] else None
    return result


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(runs):
    return {
        "rps": median([r["rps"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
        "cpu_us_per_req": median([r["cpu_us_per_req"] for r in runs]),
        "errors": sum(error_count(r) for r in runs),
        "runs": runs,
    }


def throughput(names, args, logdir):
    servers = [Server(name, args, logdir).start() for name in names]
    for server in servers:
        server.wait_ready()
    for server in servers:
        print("warming up %s (port %d, pid %d)" % (server.name, server.port, server.proc.pid),
              file=sys.stderr)
        run_wrk(server.port, 1, close=False)
    runs = {(s.name, mode): [] for s in servers for mode in MODES}
    for i in range(args.runs):
        for server in servers:
            for mode in MODES:
                result = measure(server, mode, args.duration)
                print("run %d/%d %-17s %-10s %9.0f req/s  p99 %6.2f ms  %6.1f us/req  errors %d"
                      % (i + 1, args.runs, server.name, mode, result["rps"], result["p99_ms"],
                         result["cpu_us_per_req"] or 0, error_count(result)), file=sys.stderr)
                runs[server.name, mode].append(result)
    results = [dict(server=name, mode=mode, **summarize(r)) for (name, mode), r in runs.items()]
    return {"results": results, "ratios": ratios(results), "servers": {s.name: s.argv for s in servers}}


def ratios(results):
    """pyfork (and variants) / best Gunicorn, per mode."""
    out = []
    for mode in MODES:
        row = {r["server"]: r for r in results if r["mode"] == mode}
        gunicorns = [row[g] for g in GUNICORNS if g in row]
        if not gunicorns:
            continue
        fastest = max(gunicorns, key=lambda r: r["rps"] or 0)
        cheapest = min(gunicorns, key=lambda r: r["cpu_us_per_req"] or float("inf"))
        for name, r in row.items():
            if not name.startswith("pyfork"):
                continue
            out.append({
                "server": name, "mode": mode,
                "rps_ratio": r["rps"] / fastest["rps"] if fastest["rps"] else None,
                "rps_vs": fastest["server"],
                "cpu_ratio": (r["cpu_us_per_req"] / cheapest["cpu_us_per_req"]
                              if r["cpu_us_per_req"] and cheapest["cpu_us_per_req"] else None),
                "cpu_vs": cheapest["server"],
            })
    return out


def fmt(value, spec):
    return "-" if value is None else format(value, spec)


def print_throughput(report, args):
    print("\n## Throughput: hello world, %d workers, wrk -t2 -c64 -d%ds, median of %d run(s)\n"
          % (WORKERS, args.duration, args.runs))
    print("| server | mode | req/s | p99 ms | CPU µs/req | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for r in report["results"]:
        print("| %s | %s | %s | %s | %s | %d |" % (r["server"], r["mode"], fmt(r["rps"], ".0f"),
                                                fmt(r["p99_ms"], ".2f"), fmt(r["cpu_us_per_req"], ".1f"),
                                                r["errors"]))
    print("\nerrors: wrk socket errors + non-2xx responses, summed over the runs. "
          "CPU µs/req: master + workers CPU time (schedstat) / requests.")
    if report["ratios"]:
        print("\n| server | mode | req/s ratio | vs | CPU µs/req ratio | vs |")
        print("|---|---|---:|---|---:|---|")
        for r in report["ratios"]:
            print("| %s | %s | %s | %s | %s | %s |" % (r["server"], r["mode"], fmt(r["rps_ratio"], ".2f"),
                                                      r["rps_vs"], fmt(r["cpu_ratio"], ".2f"), r["cpu_vs"]))
        print("\nreq/s ratio above 1: pyfork serves more; CPU ratio below 1: pyfork spends less per request.")


# -- slow app ---------------------------------------------------------------------------

# (server name, flags): pyfork with 1 and 8 threads, Gunicorn sync and gthread with 8
SLOW_SERVERS = (("pyfork", ["--threads", "1"]), ("pyfork-threads8", ["--threads", "8"]),
                ("gunicorn-sync", []), ("gunicorn-gthread", ["--threads", "8"]))
# (load, app, connections, every n-th request waits 200 ms)
SLOW_LOADS = (("waits", "waiting:app", 64, 0), ("mixed", "waiting:mixed", 32, 10))


def slow_app(args, logdir):
    """Each load against each server, the servers of one load started side by side."""
    import slowload
    out = []
    for load, app, conns, every in SLOW_LOADS:
        if args.load not in (None, load):
            continue
        servers = [Server(name, args, logdir, extra=flags, app=app).start() for name, flags in SLOW_SERVERS]
        for server in servers:
            server.wait_ready()
            slowload.drive(server.port, 8, 1.0, every)          # warm-up
        for i in range(args.runs):
            seed = i if i else None     # run 1: the fixed pattern; then a seeded one per run, the same for every server
            for server in servers:
                before = server.cpu_seconds()
                r = slowload.drive(server.port, conns, args.duration, every, seed)
                server.check_alive()
                row = {"load": load, "server": server.name, "run": i + 1, "seed": seed, "errors": r["errors"],
                       "cpu_s": server.cpu_seconds() - before}
                row.update({kind: slowload.summary(r[kind], r["seconds"]) for kind in ("fast", "slow")})
                print("%s run %d/%d %-17s fast %6.0f req/s p99 %7.1f ms max %7.1f ms  errors %d"
                      % (load, i + 1, args.runs, server.name, row["fast"]["rps"], row["fast"]["p99_ms"] or 0,
                         row["fast"]["max_ms"] or 0, row["errors"]), file=sys.stderr)
                out.append(row)
        for server in servers:
            server.stop()
    return out


def print_slow(rows, args):
    print("\n## Slow app: 2 workers, scripts/slowload.py for %d s, %d run(s) each\n" % (args.duration, args.runs))
    if any(r["load"] == "waits" for r in rows):
        print_waits(rows, args)
    if any(r["load"] == "mixed" for r in rows):
        print_mixed(rows, args)


def print_waits(rows, args):
    print("Every request waits 20 ms, 64 keep-alive connections. Ideal: 100 req/s and 640 ms with 1 thread "
          "per worker, 800 req/s and 80 ms with 8.\n")
    print("| server | run | req/s | p50 ms | p99 ms | max ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["load"] == "waits":
            f = r["fast"]
            print("| %s | %d | %.0f | %s | %s | %s | %d |" % (r["server"], r["run"], f["rps"], fmt(f["p50_ms"], ".0f"),
                                                          fmt(f["p99_ms"], ".0f"), fmt(f["max_ms"], ".0f"), r["errors"]))
    print_slow_medians(rows, "waits", args)


def print_mixed(rows, args):
    print("\nMixed: 9 requests in 10 answered at once, 1 waits 200 ms, 32 keep-alive connections.\n")
    print("| server | run | fast req/s | fast p50 ms | fast p99 ms | fast max ms | slow p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["load"] == "mixed":
            f, s = r["fast"], r["slow"]
            print("| %s | %d | %.0f | %s | %s | %s | %s | %d |" % (
                r["server"], r["run"], f["rps"], fmt(f["p50_ms"], ".1f"), fmt(f["p99_ms"], ".0f"),
                fmt(f["max_ms"], ".0f"), fmt(s["p99_ms"], ".0f"), r["errors"]))
    print_slow_medians(rows, "mixed", args)
    for ours, theirs in (("pyfork", "gunicorn-sync"), ("pyfork-threads8", "gunicorn-gthread")):
        pairs = [(a["fast"]["p99_ms"], b["fast"]["p99_ms"]) for a in rows for b in rows
                 if a["load"] == b["load"] == "mixed" and a["run"] == b["run"]
                 and a["server"] == ours and b["server"] == theirs and a["fast"]["p99_ms"] and b["fast"]["p99_ms"]]
        if pairs:
            print("\n%s against %s, fast p99 run by run (same pattern): at most theirs in %d of %d runs, "
                  "mean %.0f against %.0f ms." % (ours, theirs, sum(a <= b for a, b in pairs), len(pairs),
                                                   statistics.mean(a for a, _ in pairs), statistics.mean(b for _, b in pairs)))


def print_slow_medians(rows, load, args):
    """Per server, the median over the runs of each column (the p99 of a load with a
    fixed pattern of slow requests is bimodal from run to run: one run decides nothing)."""
    if args.runs < 2:
        return
    print("\nMedians of %d runs, %s:\n" % (args.runs, load))
    print("| server | req/s | p50 ms | p99 ms | max ms | slow p99 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in dict.fromkeys(r["server"] for r in rows if r["load"] == load):
        runs = [r for r in rows if r["load"] == load and r["server"] == name]
        col = lambda kind, key: median([r[kind][key] for r in runs if r[kind][key] is not None])   # noqa: E731
        print("| %s | %s | %s | %s | %s | %s |" % (
            name, fmt(col("fast", "rps"), ".0f"), fmt(col("fast", "p50_ms"), ".1f"), fmt(col("fast", "p99_ms"), ".0f"),
            fmt(col("fast", "max_ms"), ".0f"), fmt(col("slow", "p99_ms"), ".0f")))


# -- lifecycle --------------------------------------------------------------------------

LIFECYCLE_SERVERS = ("pyfork", "gunicorn-sync")


def time_to_first_answer(name, args, logdir, timeout=30.0):
    """Seconds from starting the process to the first answered GET (polled every 5 ms)."""
    server = Server(name, args, logdir)
    t0 = time.monotonic()
    server.start()
    try:
        while time.monotonic() - t0 < timeout:
            answer = http_get(server.port, timeout=5.0)
            if answer and answer[0] == 200:
                elapsed = time.monotonic() - t0
                break
            server.check_alive()
            time.sleep(0.005)
        else:
            raise RuntimeError("%s did not answer within %gs:\n%s" % (name, timeout, server.log_tail()))
        # Let every worker finish booting before SIGTERM: a pyfork worker signalled in
        # the instant after fork, before it installs its own handlers, misses a
        # graceful stop (the master then waits out --graceful-timeout).
        server.wait_ready()
        time.sleep(0.5)
        return elapsed
    finally:
        server.stop()


def one_respawn(server, victim, burst, timeout=10.0):
    """SIGKILL a worker: ms until its replacement is listed, and until it answers."""
    before = {p.pid for p in server.children()}
    t0 = time.monotonic()
    victim.kill()
    new = None
    while new is None:
        fresh = {p.pid for p in server.children()} - before
        if fresh:
            new = fresh.pop()
            listed = time.monotonic() - t0
        elif time.monotonic() - t0 > timeout:
            return {"victim": victim.pid, "error": "no replacement listed within %gs" % timeout}
        else:
            time.sleep(0.001)
    answered = None
    while answered is None:
        if time.monotonic() - t0 > timeout:
            return {"victim": victim.pid, "new": new, "listed_ms": listed * 1000,
                    "error": "replacement did not answer within %gs" % timeout}
        answered = answered_by(server.port, new, burst)
    return {"victim": victim.pid, "new": new, "listed_ms": listed * 1000,
            "answered_ms": (answered - t0) * 1000}


def respawns(servers, kills):
    """Kill `kills` different workers of each server, each up more than PYFORK_STABLE s."""
    for server in servers:
        server.wait_ready()
    youngest = max(p.create_time() for s in servers for p in s.children())
    time.sleep(max(0.0, youngest + PYFORK_STABLE + 0.5 - time.time()))
    out = {}
    for server in servers:
        out[server.name] = []
        for _ in range(kills):
            victim = oldest_stable_worker(server)
            if victim is None:
                out[server.name].append({"error": "no worker up more than %gs left to kill" % PYFORK_STABLE})
                continue
            out[server.name].append(one_respawn(server, victim, burst=2 * server.workers))
        server.check_alive()
    return out


def oldest_stable_worker(server):
    """The oldest worker up more than PYFORK_STABLE s (a worker the server replaced on
    its own meanwhile is young, and killing it would measure pyfork's crash backoff)."""
    now = time.time()
    aged = []
    for p in server.children():
        try:
            aged.append((p.create_time(), p))
        except psutil.NoSuchProcess:
            continue
    aged = [(t, p) for t, p in aged if now - t > PYFORK_STABLE]
    return min(aged, key=lambda tp: tp[0])[1] if aged else None


def idle_cost(servers, seconds):
    """Master RSS and CPU % (and the workers' summed CPU %) over `seconds` idle."""
    def sample(server):
        t = server.master.cpu_times()
        workers = {}
        for p in server.children():
            try:
                workers[p.pid] = sum(p.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return t.user + t.system, workers

    for server in servers:
        server.wait_ready()
    time.sleep(1.0)             # let the boot settle
    before = {s.name: sample(s) for s in servers}
    time.sleep(seconds)
    out = {}
    for server in servers:
        master0, workers0 = before[server.name]
        master1, workers1 = sample(server)
        same = set(workers0) & set(workers1)
        out[server.name] = {
            "master_rss_mb": server.master.memory_info().rss / 2 ** 20,
            "master_cpu_pct": (master1 - master0) * 100 / seconds,
            "workers_cpu_pct": sum(workers1[p] - workers0[p] for p in same) * 100 / seconds,
            "workers": len(same),
        }
    return out


def lifecycle(args, logdir, starts=5, kills=10, idle_workers=8, idle_seconds=10):
    report = {"start_ms": {}, "respawn": {}, "idle": {}}
    for name in LIFECYCLE_SERVERS:
        times = [time_to_first_answer(name, args, logdir) * 1000 for _ in range(starts)]
        report["start_ms"][name] = times
        print("start %s: %s ms" % (name, " ".join("%.0f" % t for t in times)), file=sys.stderr)
    print("respawn: waiting %.1f s for %d workers each to be stable..." % (PYFORK_STABLE + 0.5, kills),
          file=sys.stderr)
    servers = [Server(name, args, logdir, workers=kills, extra=["--preload"]).start()
               for name in LIFECYCLE_SERVERS]
    try:
        report["respawn"] = respawns(servers, kills)
    finally:
        for server in servers:
            server.stop()
    print("idle: %d s with %d workers..." % (idle_seconds, idle_workers), file=sys.stderr)
    servers = [Server(name, args, logdir, workers=idle_workers).start() for name in LIFECYCLE_SERVERS]
    try:
        report["idle"] = idle_cost(servers, idle_seconds)
    finally:
        for server in servers:
            server.stop()
    report["settings"] = {"starts": starts, "kills": kills, "idle_workers": idle_workers,
                          "idle_seconds": idle_seconds}
    return report


def print_lifecycle(report):
    s = report["settings"]
    print("\n## Lifecycle\n")
    print("Start: process start to first answered request, %d workers, %d starts (ms)\n"
          % (WORKERS, s["starts"]))
    print("| server | median | min | max |")
    print("|---|---:|---:|---:|")
    for name, times in report["start_ms"].items():
        print("| %s | %.0f | %.0f | %.0f |" % (name, median(times), min(times), max(times)))
    print("\nRespawn: SIGKILL one worker (--preload, %d workers, %d kills, each a worker up > %g s) (ms)\n"
          % (s["kills"], s["kills"], PYFORK_STABLE))
    print("| server | kill → listed, median | max | kill → answered by it, median | max | failed |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, kills in report["respawn"].items():
        listed = [k["listed_ms"] for k in kills if "listed_ms" in k]
        answered = [k["answered_ms"] for k in kills if "answered_ms" in k]
        print("| %s | %s | %s | %s | %s | %d |" % (
            name, fmt(median(listed), ".1f"), fmt(max(listed, default=None), ".1f"),
            fmt(median(answered), ".1f"), fmt(max(answered, default=None), ".1f"),
            sum(1 for k in kills if "error" in k)))
    print("\nIdle: %d workers, %d s\n" % (s["idle_workers"], s["idle_seconds"]))
    print("| server | master RSS MB | master CPU % | workers CPU % (sum) |")
    print("|---|---:|---:|---:|")
    for name, r in report["idle"].items():
        print("| %s | %.1f | %.2f | %.2f |"
              % (name, r["master_rss_mb"], r["master_cpu_pct"], r["workers_cpu_pct"]))


# -- main -------------------------------------------------------------------------------

def probe_version(python, module):
    """module.__version__ as seen by the servers' interpreter, or None if not importable."""
    out = subprocess.run([python, "-c", "import %s as m; print(m.__version__)" % module],
                         capture_output=True, text=True, cwd=HERE, env=server_env())
    return out.stdout.strip() if out.returncode == 0 else None


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="Measures req/s, p99 latency and server CPU µs per request with wrk; --lifecycle measures "
               "start, respawn and idle costs instead. Needs wrk (apt-get install -y wrk) and gunicorn "
               "(pip install gunicorn, or pip install -e '.[bench]'). See the docstring of scripts/bench.py.")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, from %s (default: all but the last)"
                             % ", ".join(SERVERS + (ACCESS_LOG_VARIANT,)))
    parser.add_argument("--with-access-log", action="store_true",
                        help="add %s: pyfork with --access-logfile /dev/null" % ACCESS_LOG_VARIANT)
    parser.add_argument("--with-threads", action="store_true",
                        help="add %s: pyfork with --threads 4" % THREADS_VARIANT)
    parser.add_argument("--with-floors", action="store_true",
                        help="add %s (scripts/floor.py): the same measurement of servers that do less, "
                             "to show what the kernel and Python alone cost (floor-c needs cc)" % ", ".join(FLOORS))
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs per server and mode; medians are reported (default 3)")
    parser.add_argument("--lifecycle", action="store_true",
                        help="measure start time, worker respawn and idle cost "
                             "(pyfork vs gunicorn-sync) instead")
    parser.add_argument("--slow", action="store_true",
                        help="measure an app that waits (20 ms; and 9 fast to 1 slow) with threads 1 and 8 "
                             "(pyfork vs Gunicorn sync and gthread) instead")
    parser.add_argument("--load", choices=[load for load, *_ in SLOW_LOADS],
                        help="with --slow: only this load (default: both)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter the servers run with (default: this one, %(default)s)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs (path printed)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run pyfork as of git revision REV, as server pyfork@REV")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    if args.with_access_log and ACCESS_LOG_VARIANT not in names:
        names.append(ACCESS_LOG_VARIANT)
    if args.with_threads and THREADS_VARIANT not in names:
        names.append(THREADS_VARIANT)
    if args.with_floors:
        names += [f for f in FLOORS if f not in names]
    if args.baseline:
        names.insert(names.index("pyfork") + 1 if "pyfork" in names else 0, "pyfork@" + args.baseline)
    unknown = set(names) - set(SERVERS + (ACCESS_LOG_VARIANT, THREADS_VARIANT) + tuple(FLOORS)) - {"pyfork@" + str(args.baseline)}
    if unknown:
        parser.error("unknown server(s): %s" % ", ".join(sorted(unknown)))
    if args.duration < 1 or args.runs < 1:
        parser.error("--duration and --runs must be at least 1")
    args.names = LIFECYCLE_SERVERS if args.lifecycle else names
    if args.slow:
        args.names = [n for n, _ in SLOW_SERVERS]
    args.gunicorn_flags = []
    return args


def check_tools(args):
    """Exit with how to get what is missing."""
    if not (args.lifecycle or args.slow) and shutil.which("wrk") is None:
        sys.exit(GET_WRK)
    if "floor-c" in args.names and shutil.which("cc") is None:
        sys.exit("floor-c needs a C compiler on PATH as cc: apt-get install -y gcc")
    versions = {"pyfork": probe_version(args.python, "supervisor")}
    if versions["pyfork"] is None:
        sys.exit("pyfork (package supervisor) is not importable by %s: run `pip install -e .` "
                 "in the pyfork repository, or pass --python" % args.python)
    if any(n.startswith("gunicorn") for n in args.names):
        versions["gunicorn"] = probe_version(args.python, "gunicorn")
        if versions["gunicorn"] is None:
            sys.exit(GET_GUNICORN % args.python)
        args.gunicorn_flags = gunicorn_flags(args.python)
    return versions


def baseline_checkout(rev, logdir):
    """A detached checkout of `rev` beside the logs, for the pyfork@REV server."""
    path = os.path.join(logdir, "baseline")
    out = subprocess.run(["git", "-C", HERE, "worktree", "add", "--detach", path, rev],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit("--baseline %s: git could not check it out: %s" % (rev, out.stderr.strip()))
    return path


def gunicorn_flags(python):
    """--no-control-socket where Gunicorn has one (25.1+): otherwise every instance
    binds the same $HOME/.gunicorn/gunicorn.ctl, so side-by-side servers would collide."""
    out = subprocess.run([python, "-m", "gunicorn", "--help"], capture_output=True, text=True)
    return ["--no-control-socket"] if "--no-control-socket" in out.stdout else []


def on_sigterm(signum, frame):
    raise KeyboardInterrupt     # run the finally blocks: stop the servers


def main(argv=None):
    args = parse_args(argv)
    versions = check_tools(args)
    signal.signal(signal.SIGTERM, on_sigterm)
    logdir = tempfile.mkdtemp(prefix="pyfork-bench-")
    args.baseline_dir = baseline_checkout(args.baseline, logdir) if args.baseline else None
    report = {"versions": versions, "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "loadavg_at_start": os.getloadavg()}
    failed = True
    try:
        if args.lifecycle:
            report["lifecycle"] = lifecycle(args, logdir)
        elif args.slow:
            report["slow"] = slow_app(args, logdir)
        else:
            report["settings"] = {"duration": args.duration, "runs": args.runs, "workers": WORKERS}
            report.update(throughput(args.names, args, logdir))
        failed = False
    finally:
        # also on errors and Ctrl-C: stop everything; on errors show what the servers logged
        report["left_running"] = stop_all_and_check()
        report["slow_stops"] = ["%s:%d %s" % (s.name, s.port, s.slow_stop) for s in STARTED if s.slow_stop]
        report["server_log_notable"] = {"%s:%d" % (s.name, s.port): s.notable_log_lines() for s in STARTED}
        if failed:
            print_log_lines(report["server_log_notable"], sys.stderr)
        if args.baseline_dir:
            subprocess.run(["git", "-C", HERE, "worktree", "remove", "--force", args.baseline_dir],
                           capture_output=True)
        if args.keep_logs:
            print("server logs kept in %s" % logdir, file=sys.stderr)
        else:
            shutil.rmtree(logdir, ignore_errors=True)
        if report["left_running"]:
            print("ERROR: processes left running: %s" % ", ".join(report["left_running"]), file=sys.stderr)
    report["loadavg_at_end"] = os.getloadavg()
    print_report(report, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print("\nresults written to %s" % args.json)
    return 1 if report["left_running"] else 0


def print_report(report, args):
    print("\n# pyfork %s vs gunicorn %s: python %s, %d CPUs, load average %.2f at start, %.2f at end"
          % (report["versions"]["pyfork"], report["versions"].get("gunicorn", "-"), report["python"],
             report["cpus"], report["loadavg_at_start"][0], report["loadavg_at_end"][0]))
    if args.lifecycle:
        print_lifecycle(report["lifecycle"])
    elif args.slow:
        print_slow(report["slow"], args)
    else:
        print_throughput(report, args)
    print_log_lines(report["server_log_notable"], sys.stdout)
    for line in report["slow_stops"]:
        print("\nslow stop: %s" % line)
    if report["left_running"]:
        print("\nERROR: processes left running: %s" % ", ".join(report["left_running"]))
    else:
        print("\nall servers stopped; no process left.")


def print_log_lines(logs, out, limit=10):
    noted = {k: v for k, v in logs.items() if v}
    if not noted:
        print("\nserver logs: no warnings or errors.", file=out)
        return
    print("\nserver log warnings/errors:", file=out)
    for server, lines in noted.items():
        print("  %s: %d line(s)" % (server, len(lines)), file=out)
        for line in lines[:limit]:
            print("    " + line, file=out)


if __name__ == "__main__":
    sys.exit(main())
