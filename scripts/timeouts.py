#!/usr/bin/env python3
"""Issue 24's targets, measured on the real server: a timeout costs only the request that hung.

    python scripts/timeouts.py                    # every episode below
    python scripts/timeouts.py --only threads,stall
    python scripts/timeouts.py --only threads --threads 5

Episodes (each starts its own pyfork on 127.0.0.1 and stops it):

- threads: 1 worker, --threads N (4) --timeout 3. /hang at t=0, three /wait?2.5 at t=1, a
  /health probe on a new connection every 0.25 s throughout: the 504's time, the
  neighbours' statuses, the probes' worst latency.
- sync: --threads 1 --timeout 3. /hang sits in time.sleep(3600): when its 504 comes, and
  which worker serves the next request (a new one: the old one is recycled).
- children: /run waits on a `sleep 3600` child (threads 1 and 4): how long after the 504
  the child is gone.
- stall: the whole server (1 and 4 workers, --timeout 2) in a frozen v1 freezer cgroup for
  3 x --timeout with a request in flight per worker: deaths, timeouts, the answers.
  Needs root and the cgroup v1 freezer (skipped otherwise, saying why).
- c: /c is stuck in C code holding the GIL (sum over a huge range): what the client gets
  and when (the worker cannot run Python, so no 504: the master aborts it).

The functions return plain dicts; tests/supervise/test_timeouts.py asserts on them.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from ports import free_port  # noqa: E402

CGROUP = "/sys/fs/cgroup/freezer"


# -- the app these episodes serve (`timeouts:app`, this very file) --------------------------

def app(environ, start_response):
    """/health fast; /wait?S sleeps S; /hang sleeps an hour; /run waits on `sleep 3600`;
    /export?S extends its timeout to S + 2 seconds, then works S seconds; /c is stuck in C."""
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/wait":
        time.sleep(float(query or 1))
    elif path == "/hang":
        time.sleep(3600)
    elif path == "/run":
        subprocess.run(["sleep", "3600"])
    elif path == "/export":
        environ["pyfork.extend_timeout"](float(query) + 2)
        time.sleep(float(query))
    elif path == "/c":
        sum(range(10 ** 13))          # one C call: no bytecode boundary, the GIL held throughout
    body = ("%s %d\n" % (path, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- a server ----------------------------------------------------------------------------------

class Pyfork:
    """One `pyfork run timeouts:app`, its log in a temporary file; `wrap` prefixes the command
    (the freezer's shim). Leaving the `with` stops it (TERM, then KILL) and waits."""

    def __init__(self, *args, workers=1, wrap=()):
        self.port = free_port()
        self.workers = workers
        self.log_file = tempfile.NamedTemporaryFile("w+", prefix="pyfork-timeouts-", suffix=".log")
        env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + ROOT)
        env.pop("PORT", None)
        env.pop("WEB_CONCURRENCY", None)
        cmd = list(wrap) + [sys.executable, "-m", "supervisor", "run", "timeouts:app", "-b",
                            "127.0.0.1:%d" % self.port, "-w", str(workers)] + [str(a) for a in args]
        self.proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=self.log_file, stderr=subprocess.STDOUT)
        if not wait_for(lambda: self.proc.poll() is not None or self.log().count("booted in") >= workers, 20) \
                or self.proc.poll() is not None:
            self.close()
            raise RuntimeError("pyfork did not start:\n" + self.log())

    def log(self):
        with open(self.log_file.name) as f:
            return f.read()

    def worker_pids(self):
        """The master's live children (workers), from /proc."""
        return sorted(p for p in _children(self.proc.pid) if _state(p) not in ("Z", None))

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log_file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def wait_for(predicate, timeout, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return bool(predicate())


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _state(pid):
    stat = _read("/proc/%d/stat" % pid)
    return stat[stat.rindex(")") + 2] if stat else None


def _children(pid):
    out = []
    for task in os.listdir("/proc/%d/task" % pid) if os.path.isdir("/proc/%d/task" % pid) else ():
        out += [int(p) for p in (_read("/proc/%d/task/%s/children" % (pid, task)) or "").split()]
    return out


def pids_running(argv):
    """Pids whose command line is exactly `argv` (not zombies)."""
    want = "\0".join(argv) + "\0"
    return [int(n) for n in os.listdir("/proc") if n.isdigit()
            and _read("/proc/%s/cmdline" % n) == want and _state(int(n)) not in ("Z", None)]


def request(port, path, timeout=15.0):
    """GET on a new connection -> (status or 'closed'/'timeout', seconds, body)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except socket.timeout:
        return "timeout", time.monotonic() - t0, b""
    except OSError:
        return "closed", time.monotonic() - t0, b""
    took = time.monotonic() - t0
    if not data.startswith(b"HTTP/1.1 "):
        return "closed", took, data
    return int(data[9:12]), took, data.partition(b"\r\n\r\n")[2]


class Background:
    """request() in a thread: .result once joined."""

    def __init__(self, port, path, timeout=20.0):
        self.result = None
        self.thread = threading.Thread(target=self.run, args=(port, path, timeout), daemon=True)
        self.thread.start()

    def run(self, port, path, timeout):
        self.result = request(port, path, timeout)

    def join(self, timeout=30.0):
        self.thread.join(timeout)
        return self.result


class Probe:
    """GET /health on a new connection every `every` seconds until stopped: [(t, status, seconds)]."""

    def __init__(self, port, every=0.25):
        self.port, self.every, self.seen, self.done = port, every, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        t0 = time.monotonic()
        while not self.done.is_set():
            at = time.monotonic()
            status, took, _ = request(self.port, "/health", 10.0)
            self.seen.append((at - t0, status, took))
            self.done.wait(max(0.0, self.every - (time.monotonic() - at)))

    def stop(self):
        self.done.set()
        self.thread.join(15)
        return self.seen


# -- the episodes ------------------------------------------------------------------------------

def threads_episode(threads=4, timeout=3.0):
    with Pyfork("--threads", threads, "--timeout", timeout) as s:
        probe = Probe(s.port)
        time.sleep(0.5)
        t0 = time.monotonic()
        hung = Background(s.port, "/hang")
        time.sleep(1.0)
        neighbours = [Background(s.port, "/wait?2.5") for _ in range(3)]
        hung_result = hung.join()
        answered = [n.join() for n in neighbours]
        time.sleep(1.0)
        seen = probe.stop()
        return {"threads": threads, "timeout": timeout, "hung": hung_result[0], "hung_seconds": hung_result[1],
                "neighbours": [a[0] for a in answered], "neighbour_seconds": [round(a[1], 2) for a in answered],
                "probes": len(seen), "probes_ok": sum(1 for _, st, _ in seen if st == 200),
                "probe_worst": max(took for _, _, took in seen), "episode": time.monotonic() - t0,
                "log": s.log()}


def sync_episode(timeout=3.0):
    with Pyfork("--threads", 1, "--timeout", timeout) as s:
        before = s.worker_pids()
        status, took, _ = request(s.port, "/hang")
        after = request(s.port, "/health")
        return {"hung": status, "hung_seconds": took, "next": after[0], "next_seconds": after[1],
                "served_by": int(after[2].split()[1]) if after[0] == 200 else None, "worker_before": before,
                "log": s.log()}


def children_episode(threads=1, timeout=2.0):
    with Pyfork("--threads", threads, "--timeout", timeout) as s:
        run = Background(s.port, "/run")
        wait_for(lambda: pids_running(["sleep", "3600"]), 5)
        child = pids_running(["sleep", "3600"])
        status, took, _ = run.join()
        t504 = time.monotonic()
        wait_for(lambda: not [p for p in child if _state(p) not in ("Z", None)], 10)
        gone = time.monotonic() - t504
        left = [p for p in child if _state(p) not in ("Z", None)]
        for pid in left:                       # never leave one behind, even when failing
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: "sleep 3600" in s.log() or threads == 1, 2)
        return {"threads": threads, "hung": status, "hung_seconds": took, "children": child,
                "gone_after_504": gone, "left": left, "log": s.log()}


def c_episode(threads=1, timeout=2.0):
    with Pyfork("--threads", threads, "--timeout", timeout) as s:
        status, took, _ = request(s.port, "/c", 20)
        wait_for(lambda: s.log().count("booted in") >= 2, 10)
        return {"threads": threads, "got": status, "seconds": took, "log": s.log()}


class Freezer:
    """A v1 freezer cgroup below this process's own: `wrap` puts a command in it; freeze(),
    thaw(); removed on leaving (after the command is gone)."""

    def __init__(self):
        own = [line.split(":", 2)[2] for line in (_read("/proc/self/cgroup") or "").splitlines()
               if line.split(":")[1:2] == ["freezer"]]
        if not own or not os.path.isdir(CGROUP):
            raise OSError("no cgroup v1 freezer here (/proc/self/cgroup names none, or %s is missing)" % CGROUP)
        self.path = os.path.join(CGROUP + own[0].rstrip("/"), "pyfork-timeouts-%d" % os.getpid())
        os.mkdir(self.path)      # PermissionError when not root: the caller says so
        self.wrap = ("/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path)

    def set(self, state):
        with open(os.path.join(self.path, "freezer.state"), "w") as f:
            f.write(state)
        return wait_for(lambda: (_read(os.path.join(self.path, "freezer.state")) or "").strip() == state, 10)

    def close(self):
        for pid in (_read(os.path.join(self.path, "cgroup.procs")) or "").split():
            try:
                os.kill(int(pid), signal.SIGKILL)    # only what we put there, and its descendants
            except ProcessLookupError:
                pass
        self.set("THAWED")
        wait_for(lambda: not (_read(os.path.join(self.path, "cgroup.procs")) or "").split(), 10)
        os.rmdir(self.path)


def stall_episode(workers=1, timeout=2.0):
    freezer = Freezer()
    try:
        with Pyfork("--timeout", timeout, "--threads", 1, workers=workers, wrap=freezer.wrap) as s:
            before = s.worker_pids()
            flight = [Background(s.port, "/wait?1") for _ in range(workers)]
            time.sleep(0.4)
            assert freezer.set("FROZEN"), "the freezer did not freeze"
            time.sleep(3 * timeout)
            assert freezer.set("THAWED"), "the freezer did not thaw"
            answers = [f.join() for f in flight]
            time.sleep(timeout + 1.0)          # a worker wrongly judged would be aborted by now
            after = request(s.port, "/health")
            log = s.log()
            return {"workers": workers, "frozen": 3 * timeout, "answers": [a[0] for a in answers],
                    "answer_seconds": [round(a[1], 2) for a in answers], "same_workers": s.worker_pids() == before,
                    "timed_out": log.count("timed out"), "died": log.count(" died ") + log.count("SIGABRT"),
                    "stalled": log.count("stalled for"), "after": after[0], "log": log}
    finally:
        freezer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="threads,sync,children,c,stall")
    ap.add_argument("--threads", type=int, default=4, help="threads for the threads episode (4)")
    ap.add_argument("--log", action="store_true", help="print each server's log")
    args = ap.parse_args()
    only = args.only.split(",")
    runs = []
    if "threads" in only:
        runs.append(("threads", threads_episode(args.threads)))
    if "sync" in only:
        runs.append(("sync", sync_episode()))
    if "children" in only:
        runs += [("children", children_episode(1)), ("children", children_episode(4))]
    if "c" in only:
        runs += [("c", c_episode(1)), ("c", c_episode(4))]
    if "stall" in only:
        for n in (1, 4):
            try:
                runs.append(("stall", stall_episode(n)))
            except OSError as exc:
                print("stall: skipped: %s" % exc)
                break
    for name, r in runs:
        log = r.pop("log")
        print("%-9s %s" % (name, " ".join("%s=%s" % (k, ("%.2f" % v) if isinstance(v, float) else v)
                                           for k, v in r.items())))
        if args.log:
            print(log)


if __name__ == "__main__":
    main()
