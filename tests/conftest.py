"""Shared helpers: start the real pyfork on 127.0.0.1, talk raw HTTP, check for leftovers.

Every server a test starts is stopped by PID and waited for; `Server.stop()` also checks
that no process the server made (workers, grandchildren) is left alive or a zombie.
"""
import os
import signal as _signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.join(HERE, "apps")
FIXTURES = os.path.join(HERE, "fixtures")
ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(ROOT, "scripts")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(config, items):
    """Tests in real cgroup dynos run one after another on one xdist worker (`--dist
    loadgroup`, as .ci/run runs the rest): each measures memory and OOM kills, and two
    dynos at once would share one machine's memory and CPU between their verdicts."""
    for item in items:
        if item.get_closest_marker("cgroup"):
            item.add_marker(pytest.mark.xdist_group("dyno"))


def no_cgroups(exc):
    """Skip a test that needs cgroups this machine cannot make, saying why in the summary.
    `.ci/run` sets CI_REQUIRE_CGROUPS=1 where it finds cgroup v1 memory and pids as root:
    there the skip is a failure, so a check that should have run cannot pass unseen."""
    why = "no cgroups to make a dyno here: %s" % exc
    if os.environ.get("CI_REQUIRE_CGROUPS") == "1":
        pytest.fail(why + " (CI_REQUIRE_CGROUPS=1 says this machine has them)")
    pytest.skip(why)


def wait_for(predicate, timeout=10.0, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


class Server:
    """One real `pyfork run` process. Use as a context manager or via the `server` fixture."""

    def __init__(self, app, *args, workers=1, env=None, cwd=APPS, wait=True, port=None, dyno=None,
                 python=sys.executable):
        self.port = port or free_port()
        self.workers = workers
        self.log_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pyfork-test-%d-%d.log" % (os.getpid(), self.port))
        cmd = [python, "-m", "supervisor", "run", app, "-b", "127.0.0.1:%d" % self.port,
               "-w", str(workers)] + [str(a) for a in args]
        full_env = dict(os.environ)
        full_env.pop("PORT", None)
        full_env.pop("WEB_CONCURRENCY", None)
        full_env["PYTHONPATH"] = APPS + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env.update(env or {})
        self.log_file = open(self.log_path, "w+")
        start = dyno.run if dyno is not None else subprocess.Popen    # dyno: scripts/dyno.py's Dyno
        self.proc = start(cmd, cwd=cwd, env=full_env, stdout=self.log_file, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        self.seen = set()
        if wait:
            self.wait_ready()

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_log(self, text, timeout=10.0, count=1):
        return wait_for(lambda: self.log().count(text) >= count, timeout)

    def wait_ready(self, timeout=15.0):
        ok = wait_for(lambda: self.proc.poll() is not None or self.log().count("booted in") >= self.workers, timeout)
        if self.proc.poll() is not None or not ok:
            raise AssertionError("pyfork did not start:\n" + self.log())
        self.worker_pids()

    def children(self):
        try:
            kids = self.ps.children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.seen.update(k.pid for k in kids)
        return kids

    def worker_pids(self):
        try:
            kids = self.ps.children()
        except psutil.NoSuchProcess:
            return []
        self.seen.update(k.pid for k in kids)
        return sorted(k.pid for k in kids if _status(k) != psutil.STATUS_ZOMBIE)

    def zombies(self):
        return [k.pid for k in self.children() if _status(k) == psutil.STATUS_ZOMBIE]

    def master_zombies(self):
        """Zombies among the master's own children (its to reap), not its workers'."""
        try:
            kids = self.ps.children()
        except psutil.NoSuchProcess:
            return []
        return [k.pid for k in kids if _status(k) == psutil.STATUS_ZOMBIE]

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def stop(self, sig=_signal.SIGTERM, timeout=30.0):
        """Stop the master; return its exit code. Kills and fails if it does not exit."""
        self.children()
        if self.proc.poll() is None:
            # the master never starts a thread: fork() must stay safe (checked on every stop)
            threads = self.ps.num_threads()
            assert threads == 1, "the master runs %d threads" % threads
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError("pyfork did not exit within %ss of %s:\n%s" % (timeout, sig, self.log()))
        self.assert_nothing_left()
        return self.proc.returncode

    def kill(self):
        for pid in [self.proc.pid] + sorted(self.seen):
            try:
                os.kill(pid, _signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc.wait(5)

    def assert_nothing_left(self):
        def alive():
            left = []
            for pid in self.seen:
                try:
                    p = psutil.Process(pid)
                    if p.ppid() in (self.proc.pid, 1):
                        left.append((pid, _status(p)))
                except psutil.NoSuchProcess:
                    pass
            return left
        wait_for(lambda: not alive(), timeout=5.0)
        leftovers = alive()
        if leftovers:
            for pid, _ in leftovers:
                try:
                    os.kill(pid, _signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise AssertionError("processes left behind by pyfork: %r" % leftovers)

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        self.log_file.close()
        try:
            os.unlink(self.log_path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            if self.proc.poll() is None and exc[0] is None:
                self.stop()
        finally:
            self.close()


def _status(p):
    try:
        return p.status()
    except psutil.NoSuchProcess:
        return "gone"


def closed_folder(path, uid):
    """The first folder from / down to `path` that user `uid` may not search, or None."""
    import stat
    current = os.sep
    for part in os.path.abspath(path).split(os.sep)[1:]:
        current = os.path.join(current, part)
        st = os.stat(current)
        if st.st_uid != uid and not st.st_mode & stat.S_IXOTH:
            return current
    return None


def open_copy(files, uid, where=None):
    """A new folder that user `uid` (a worker after --user) can read, holding copies of
    `files`: a checkout may sit in a folder only its owner can open (`mktemp -d` makes them
    0700), and then tests/apps is out of that user's reach. -> the folder; the caller
    removes it. pytest.skip, saying why, when no such folder can be made."""
    import shutil
    import tempfile
    where = where or ("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir())
    closed = closed_folder(where, uid)
    if closed:
        pytest.skip("no folder a user of uid %d can read: %s is closed to it" % (uid, closed))
    folder = tempfile.mkdtemp(prefix="pyfork-open-", dir=where)
    os.chmod(folder, 0o755)
    for f in files:
        shutil.copy(f, folder)
        os.chmod(os.path.join(folder, os.path.basename(f)), 0o644)
    return folder


def raw(port, data, timeout=5.0, shut=False):
    """Send bytes, read until the server closes (or timeout); return the bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
        except socket.timeout:
            pass
        return b"".join(chunks)


def status_of(response):
    """b'HTTP/1.1 404 Not Found...' -> 404"""
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else None


def get(port, path="/", headers=None, timeout=5.0):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


@pytest.fixture
def server():
    """server(app, *args, **kw) -> a started Server, stopped and checked after the test."""
    started = []

    def start(app, *args, **kw):
        s = Server(app, *args, **kw)
        started.append(s)
        return s
    yield start
    stop_all(started)


def stop_all(servers):
    """Stop each server (a Server, or anything with its proc/stop/assert_nothing_left/close),
    check that nothing it made is left, close it; then fail with every leftover found."""
    failures = []
    for s in servers:
        try:
            if s.proc.poll() is None:
                s.stop()
            else:
                s.assert_nothing_left()
        except AssertionError as exc:
            failures.append(str(exc))
        finally:
            s.close()
    if failures:
        pytest.fail("\n".join(failures))
