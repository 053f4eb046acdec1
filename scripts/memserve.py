"""The servers and the load of scripts/memory.py: one server process started and stopped by
PID, its workers told apart from other children, their memory read from /proc, a load of
keep-alive clients cycling an app's URLs, and the timing of one request on a chosen worker.

Workers are the master's children whose title says `worker` and not `template` or `mold`
(pyfork: `pyfork worker 3 [app]`, Gunicorn with setproctitle: `gunicorn: worker [app]`);
every other descendant (a refork template, a process the app forked) counts in the total
only. Every process this module starts is stopped by PID and waited for.
"""
import collections
import http.client
import os
import re
import signal
import subprocess
import threading
import time

import psutil

HOST = "127.0.0.1"
MB = 1024 * 1024
RECONNECT_EVERY = 25     # requests per connection: a pyfork worker keeps its keep-alive clients,
                         # so clients reconnect now and then and the load spreads over all workers


class Server:
    """One server (pyfork or Gunicorn) we started, by PID, with its log in a file."""

    def __init__(self, name, argv, env, cwd, log_path):
        self.name, self.argv, self.env, self.cwd, self.log_path = name, argv, env, cwd, log_path
        self.proc = None
        self.seen = {}           # pid -> psutil.Process, for the final check

    def start(self, launch=subprocess.Popen):
        with open(self.log_path, "ab") as log:
            self.proc = launch(self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.master = psutil.Process(self.proc.pid)
        self.seen[self.proc.pid] = self.master
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def exited(self):
        return self.proc.poll() is not None

    def descendants(self):
        try:
            kids = self.master.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for kid in kids:
            self.seen.setdefault(kid.pid, kid)
        return kids

    def workers(self):
        """The serving workers' pids (children of the master titled as workers)."""
        found = []
        for kid in self.descendants():
            try:
                title = " ".join(kid.cmdline())
                if kid.ppid() == self.master.pid and is_worker_title(title) and kid.status() != psutil.STATUS_ZOMBIE:
                    found.append(kid.pid)
            except psutil.NoSuchProcess:
                pass
        return sorted(found)

    def others(self):
        """Descendants that are not serving workers (a template, say)."""
        workers = set(self.workers())
        return [k.pid for k in self.descendants() if k.pid not in workers]

    def stop(self, timeout=20.0):
        """SIGTERM the master and wait; SIGKILL whatever of it lingers, by PID."""
        if self.proc is None:
            return
        kids = self.descendants()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        _, alive = psutil.wait_procs(kids, timeout=5)
        for p in alive:
            try:
                p.kill()          # psutil checks the pid still names the same process
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)

    def leftovers(self):
        left = []
        for pid, p in self.seen.items():
            try:
                if p.is_running():
                    left.append("%s pid %d (%s)" % (self.name, pid, p.status()))
            except psutil.NoSuchProcess:
                pass
        return left


def is_worker_title(title):
    return bool(re.search(r"\bworker\b", title)) and "template" not in title and "mold" not in title


def memory(pid):
    """(pss, uss) in MB from /proc/PID/smaps_rollup, or None for a process that is gone."""
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return info.pss / MB, info.uss / MB


def wait_for(check, timeout, step=0.1):
    """check()'s first truthy value within timeout seconds, else None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    return None


def wait_idle(pid, timeout=30.0, quiet=0.6):
    """Until `pid` has used under 10 ms of CPU over `quiet` seconds: a worker that has
    loaded its app and waits for connections (Gunicorn logs no line when that is done)."""
    deadline = time.monotonic() + timeout
    try:
        proc = psutil.Process(pid)
        last = sum(proc.cpu_times()[:2])
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = sum(proc.cpu_times()[:2])
            if now - last < 0.01:
                return True
            last = now
    except psutil.NoSuchProcess:
        return False
    return False


# -- HTTP ------------------------------------------------------------------------------

def get(port, url, cookie=None, timeout=60.0):
    """One GET on a new connection: (status, headers dict, milliseconds)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    headers = {"Connection": "close"}
    if cookie:
        headers["Cookie"] = cookie
    try:
        t0 = time.perf_counter()
        conn.request("GET", url, headers=headers)
        resp = conn.getresponse()
        resp.read()
        ms = (time.perf_counter() - t0) * 1000
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, ms
    finally:
        conn.close()


class Load:
    """`clients` threads, each cycling the URLs on keep-alive connections from its own
    offset, counting answers per worker pid (X-Worker-Pid) and every failure (an answer
    other than 200, or an error on the connection)."""

    def __init__(self, port, urls, cookie, clients):
        self.port, self.urls, self.clients = port, urls, clients
        self.headers = {"Cookie": cookie} if cookie else {}
        self.by_pid = collections.Counter()
        self.failures = 0
        self.errors = collections.Counter()    # a few kinds, for the report
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for i in range(self.clients):
            t = threading.Thread(target=self.client, args=(i * 3,), daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(70)

    def total(self):
        with self.lock:
            return sum(self.by_pid.values())

    def served(self, pid):
        with self.lock:
            return self.by_pid[str(pid)]

    def client(self, k):
        conn, sent = None, 0
        while not self.stopping.is_set():
            url = self.urls[k % len(self.urls)]
            k += 1
            if conn is None or sent % RECONNECT_EVERY == 0:
                if conn is not None:
                    conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
            sent += 1
            try:
                conn.request("GET", url, headers=self.headers)
                resp = conn.getresponse()
                resp.read()
                ok, what = resp.status == 200, "status %d on %s" % (resp.status, url)
                pid = resp.getheader("X-Worker-Pid")
            except (OSError, http.client.HTTPException) as exc:
                ok, what, pid = False, "%s on %s" % (type(exc).__name__, url), None
                conn.close()
                conn = None
            with self.lock:
                if pid:
                    self.by_pid[pid] += 1
                if not ok:
                    self.failures += 1
                    self.errors[what] += 1
        if conn is not None:
            conn.close()


def booted_line(log, pid):
    """pyfork's `worker=N pid=P booted in Xms` line for `pid`, or None."""
    return re.search(r"worker=\d+ pid=%d booted" % pid, log)


def is_stopped(pid):
    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def first_request_on(server, pid, url, cookie):
    """Time one GET of `url` on worker `pid`: every other worker is stopped (SIGSTOP, by
    PID) so only `pid` can accept it, then continued (SIGCONT) whatever happens.
    (status, headers, ms)."""
    others = [p for p in server.workers() if p != pid]
    stopped = []
    try:
        for p in others:
            os.kill(p, signal.SIGSTOP)
            stopped.append(p)
        wait_for(lambda: all(is_stopped(p) for p in stopped), 5)
        return get(server.port, url, cookie)
    finally:
        for p in stopped:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
