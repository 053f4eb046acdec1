"""The configuration layer end to end: the real `python -m supervisor` with config files
written into tmp_path, environment variables and flags.

Covered: precedence (the same setting from each source, shown by check-config and seen
in a running server), ./pyfork.conf.py and -c, a Gunicorn config file served unchanged,
every hook called at its moment with Gunicorn's arguments (recorded to a file by the
test's own config), what a raising hook does per its policy, every kind of bad
configuration (exit 2, one line, nothing started), HUP re-reading the file, and dyno
presets. Every process started here is stopped by PID and waited for; nothing may be
left behind.
"""
import contextlib
import http.client
import importlib.util
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from conftest import APPS, SCRIPTS, Server, free_port, get, stop_all, wait_for

PY = sys.executable
# environment that would leak a setting into the processes under test
LEAKY = ("PORT", "WEB_CONCURRENCY", "DYNO", "FORWARDED_ALLOW_IPS", "LISTEN_FDS", "LISTEN_PID", "NOTIFY_SOCKET")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in LEAKY and not k.startswith("PYFORK_")}
    env["PYTHONPATH"] = APPS + os.pathsep + os.environ.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def write(path, text):
    path.write_text(text)
    return str(path)


# -- running pyfork -----------------------------------------------------------------------

def run_cli(*args, env=None, cwd=APPS, timeout=10.0):
    """Run `python -m supervisor ARGS` to its end; kill it by pid if it overruns.
    -> (exit code, stdout, stderr, seconds)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([PY, "-m", "supervisor"] + [str(a) for a in args], cwd=cwd, env=clean_env(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail("pyfork %s did not exit within %ss:\n%s%s" % (" ".join(map(str, args)), timeout, out, err))
    return proc.returncode, out, err, time.monotonic() - t0


def cli_in_process(*args, env=None, cwd=APPS):
    """`pyfork ARGS` through supervisor.cli.main in this process, for what ends before
    anything starts (bad configuration, check-config): a process per row made this file
    the suite's slowest. The environment, working directory, import path and standard
    streams are the run's own and put back after it; a run that gets as far as starting a
    master fails the test instead (nothing may fork the test runner).
    -> (exit code, stdout, stderr, seconds)."""
    from supervisor import cli
    from supervisor.supervise import master

    def refuse(self):
        raise AssertionError("pyfork %s would have started a master" % " ".join(map(str, args)))
    saved_env, saved_cwd, saved_path = dict(os.environ), os.getcwd(), list(sys.path)
    out, err = io.StringIO(), io.StringIO()
    t0 = time.monotonic()
    try:
        os.environ.clear()
        os.environ.update(clean_env(env))
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                pytest.MonkeyPatch.context() as mp:
            mp.setattr(master.Master, "run", refuse)
            try:
                code = cli.main([str(a) for a in args])
            except SystemExit as exc:         # argparse's own errors
                code = exc.code
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
    return code, out.getvalue(), err.getvalue(), time.monotonic() - t0


# one check-config line: name = value  (source), where the source may hold one (...) itself
CHECK_LINE = re.compile(r"^(\w+)\s+= (.*?)\s+\(([^()]*(?:\([^()]*\))?[^()]*)\)$", re.M)


def parse_check_config(out):
    """check-config's output -> {setting: (value text, source)}."""
    return {m.group(1): (m.group(2), m.group(3)) for m in CHECK_LINE.finditer(out)}


def check_config(*args, env=None, cwd=APPS):
    """`check-config ARGS` -> {setting: (value text, source)}, plus the whole output."""
    code, out, err, _ = cli_in_process("check-config", *args, env=env, cwd=cwd)
    assert code == 0, out + err
    return parse_check_config(out), out


class Pyfork(Server):
    """`python -m supervisor run ARGS` exactly as given: unlike conftest's Server it adds
    no app, -b or -w (so a config file or the environment can choose them), and runs in
    a clean environment. `log_path` reads the error log from a file the config names."""

    def __init__(self, *args, workers=1, env=None, cwd=APPS, wait=True, port=None, log_path=None, command=("run",)):
        self.port = port or free_port()
        self.workers = workers
        self.log_path = log_path or os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                 "pyfork-cfg-%d-%d.log" % (os.getpid(), self.port))
        # stdout and stderr; the same file as the log unless the config sends the log elsewhere
        self.out_path = self.log_path if log_path is None else log_path + ".out"
        cmd = [PY, "-m", "supervisor", *command] + [str(a) for a in args]
        self.log_file = open(self.out_path, "w+")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=clean_env(env), stdout=self.log_file, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.proc.pid)
        self.seen = set()
        if wait:
            self.wait_ready()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def output(self):
        with open(self.out_path) as f:
            return f.read()

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        self.log_file.close()
        try:
            os.unlink(self.out_path)
        except OSError:
            pass


@pytest.fixture
def pyfork():
    """pyfork(*args, **kw) -> a started Pyfork, stopped by pid and checked after the test."""
    started = []

    def start(*args, **kw):
        p = Pyfork(*args, **kw)
        started.append(p)
        return p
    yield start
    stop_all(started)


def pid_of(port, path="/"):
    status, _, body = get(port, path)
    assert status == 200, (status, body)
    return int(body)


# -- precedence ---------------------------------------------------------------------------

# (file text or None, environment, flags, workers shown, its source) -- %(file)s is the -c path
WORKERS_PRECEDENCE = [
    (None, {}, [], "2", "default"),
    ("workers = 3\n", {}, [], "3", "file %(file)s"),
    ("workers = 3\n", {"WEB_CONCURRENCY": "4"}, [], "4", "environment variable WEB_CONCURRENCY"),
    ("workers = 3\n", {"PYFORK_WORKERS": "5"}, [], "5", "environment variable PYFORK_WORKERS"),
    ("workers = 3\n", {"WEB_CONCURRENCY": "4", "PYFORK_WORKERS": "5"}, ["-w", "6"], "6", "flag --workers"),
    # a dyno preset only fills in what no other source set
    (None, {}, ["--dyno-size", "standard-2x"], "4", "dyno size standard-2x"),
    ("workers = 3\n", {}, ["--dyno-size", "standard-2x"], "3", "file %(file)s"),
    (None, {"WEB_CONCURRENCY": "1"}, ["--dyno-size", "standard-2x"], "1", "environment variable WEB_CONCURRENCY"),
]


@pytest.mark.parametrize("text, env, flags, value, source", WORKERS_PRECEDENCE, ids=[
    "default", "file", "file+WEB_CONCURRENCY", "file+PYFORK_WORKERS", "file+env+flag", "dyno", "dyno<file",
    "dyno<env"])
def test_workers_precedence_in_check_config(tmp_path, text, env, flags, value, source):
    args = ["sup_apps:app"] + flags
    path = None
    if text is not None:
        path = write(tmp_path / "conf.py", text)
        args += ["-c", path]
    table, out = check_config(*args, env=env, cwd=tmp_path)
    assert table["workers"] == (value, source % {"file": path}), out


# the same layering for a float setting and for one Gunicorn spells the same way
@pytest.mark.parametrize("name, flag, var, default", [
    ("timeout", "--timeout", "PYFORK_TIMEOUT", "30.0"),
    ("keepalive", "--keep-alive", "PYFORK_KEEPALIVE", "5.0"),
])
def test_float_setting_from_each_source(tmp_path, name, flag, var, default):
    path = write(tmp_path / "conf.py", "%s = 11\n" % name)
    assert check_config("sup_apps:app", cwd=tmp_path)[0][name] == (default, "default")
    assert check_config("sup_apps:app", "-c", path, cwd=tmp_path)[0][name] == ("11.0", "file " + path)
    assert check_config("sup_apps:app", "-c", path, env={var: "12.5"}, cwd=tmp_path)[0][name] == (
        "12.5", "environment variable " + var)
    assert check_config("sup_apps:app", "-c", path, flag, "13", env={var: "12.5"}, cwd=tmp_path)[0][name] == (
        "13.0", "flag " + flag)


def test_workers_precedence_in_a_running_server(tmp_path, pyfork):
    path = write(tmp_path / "conf.py", "workers = 1\ntimeout = 20\n")
    # environment beats the file
    port = free_port()
    env = {"WEB_CONCURRENCY": "3"}
    p = pyfork("sup_apps:app", "-c", path, "-b", "127.0.0.1:%d" % port, workers=3, env=env, port=port)
    assert wait_for(lambda: len(p.worker_pids()) == 3, 5), p.log()
    assert "workers=3" in p.log()
    assert p.stop() == 0
    # a flag beats both
    port = free_port()
    p = pyfork("sup_apps:app", "-c", path, "-b", "127.0.0.1:%d" % port, "-w", "2", workers=2, env=env, port=port)
    assert wait_for(lambda: len(p.worker_pids()) == 2, 5), p.log()
    assert get(p.port, "/")[0] == 200
    table, _ = check_config("sup_apps:app", "-c", path, "-w", "2", env=env, cwd=tmp_path)
    assert table["workers"] == ("2", "flag --workers")
    assert table["timeout"] == ("20.0", "file " + path)


def test_pyfork_conf_py_in_the_working_directory(tmp_path, pyfork):
    write(tmp_path / "pyfork.conf.py", "workers = 3\ntimeout = 17\n")
    other = write(tmp_path / "other.py", "keepalive = 9\n")
    table, _ = check_config("sup_apps:app", cwd=tmp_path)
    assert table["workers"] == ("3", "file pyfork.conf.py")
    assert table["timeout"] == ("17.0", "file pyfork.conf.py")
    # -c replaces ./pyfork.conf.py (as -c replaces ./gunicorn.conf.py): its values are not read
    table, _ = check_config("sup_apps:app", "-c", other, cwd=tmp_path)
    assert table["keepalive"] == ("9.0", "file " + other)
    assert table["workers"] == ("2", "default")
    assert table["timeout"] == ("30.0", "default")
    # for real: started in tmp_path with no -w, three workers come from ./pyfork.conf.py
    port = free_port()
    p = pyfork("sup_apps:app", "-b", "127.0.0.1:%d" % port, workers=3, cwd=tmp_path, port=port)
    assert wait_for(lambda: len(p.worker_pids()) == 3, 5)
    assert p.stop() == 0
    port = free_port()
    p = pyfork("sup_apps:app", "-c", write(tmp_path / "one.py", "workers = 1\n"), "-b", "127.0.0.1:%d" % port,
               workers=1, cwd=tmp_path, port=port)
    assert len(p.worker_pids()) == 1
    assert get(p.port, "/")[0] == 200


# -- a Gunicorn config file ---------------------------------------------------------------

GUNICORN_CONF = '''\
# a gunicorn.conf.py as Gunicorn users write them
import multiprocessing

bind = "127.0.0.1:%(port)d"
workers = 2
preload_app = True
accesslog = %(access)r
access_log_format = '%%(h)s %%(l)s %%(u)s %%(t)s "%%(r)s" %%(s)s %%(b)s "%%(f)s" "%%(a)s" %%(m)s %%(U)s %%(q)s %%(H)s %%(B)s %%(p)s %%({x-trace}i)s'
errorlog = %(error)r
loglevel = "info"
timeout = 20
graceful_timeout = 7
keepalive = 3
max_requests = 1000
worker_class = "sync"
threads = 1
worker_connections = 1000
daemon = False
umask = 0
wsgi_app = "cfg_apps:app"       # sup_apps:app, noting which process imports it
'''

# Gunicorn's name -> pyfork's, for the settings compared between the two parsers
SHARED = {"bind": "bind", "workers": "workers", "preload_app": "preload", "accesslog": "access_logfile",
          "access_log_format": "access_logformat", "errorlog": "error_logfile", "loglevel": "loglevel",
          "timeout": "timeout", "graceful_timeout": "graceful_timeout", "keepalive": "keepalive",
          "max_requests": "max_requests", "threads": "threads", "worker_class": "worker_class", "umask": "umask"}


def compare(gname, gunicorn_value, pyfork_value, port):
    """One setting as `gunicorn --print-config` and `pyfork check-config` show it."""
    if gname == "bind":
        assert (gunicorn_value, pyfork_value) == ("['127.0.0.1:%d']" % port, "'127.0.0.1:%d'" % port)
    elif gname in ("timeout", "graceful_timeout", "keepalive"):
        assert float(gunicorn_value) == float(pyfork_value), (gname, gunicorn_value, pyfork_value)
    elif gname in ("workers", "max_requests", "preload_app", "threads", "umask"):
        assert gunicorn_value == pyfork_value, (gname, gunicorn_value, pyfork_value)
    else:
        assert repr(gunicorn_value) == pyfork_value, (gname, gunicorn_value, pyfork_value)


def test_gunicorn_config_file_served_unchanged(tmp_path, pyfork):
    port = free_port()
    access, error = str(tmp_path / "access.log"), str(tmp_path / "error.log")
    conf = write(tmp_path / "gunicorn.conf.py", GUNICORN_CONF % {"port": port, "access": access, "error": error})

    table, out = check_config("-c", conf, cwd=tmp_path)
    assert re.search(r"^app +\= 'cfg_apps:app'$", out, re.M), out
    for name in SHARED.values():
        assert table[name][1] == "file " + conf, (name, table[name])
    # the Gunicorn-only names: one note each, naming the line and why nothing changes
    assert ("note: setting 'worker_connections' in gunicorn.conf.py line 17: Gunicorn-only, ignored: only used "
            "with event-loop workers (gevent, eventlet), which pyfork does not have") in out
    assert ("note: setting 'daemon' in gunicorn.conf.py line 18: False is Gunicorn's default; ignored: pyfork "
            "stays in the foreground") in out

    # it is a valid Gunicorn config file: Gunicorn itself checks it (loading the app) and reads
    # the same values from it (gunicorn is in the `bench` extra: skipped where it is not installed)
    if importlib.util.find_spec("gunicorn") is not None:
        for what in ("--check-config", "--print-config"):
            g = subprocess.run([PY, "-m", "gunicorn", what, "-c", conf], cwd=tmp_path, env=clean_env(),
                               capture_output=True, text=True, timeout=30)
            assert g.returncode == 0, (what, g.stdout, g.stderr)
        gvals = dict(re.match(r"^(\w+)\s+= ?(.*)$", line).groups() for line in g.stdout.splitlines()
                     if re.match(r"^\w+\s+=", line))
        for gname, name in SHARED.items():
            compare(gname, gvals[gname], table[name][0], port)

    # and pyfork serves it: no app argument, no flags
    imports = tmp_path / "imports"
    p = pyfork("-c", conf, workers=2, cwd=tmp_path, port=port, log_path=error, env={"CFG_IMPORTS": str(imports)})
    master = p.pid
    pids = set()
    for i in range(6):
        status, _, body = get(port, "/items?page=%d" % i, headers={"User-Agent": "cfg-test", "X-Trace": "t%d" % i})
        assert status == 200
        pids.add(int(body))
    assert pids <= set(p.worker_pids())
    log = p.log()
    # preload_app: the app was imported once, in the master
    assert imports.read_text().split() == [str(master)]
    # the Gunicorn-only names are reported once each, by name
    for name in ("worker_connections", "daemon"):
        ignored = [line for line in log.splitlines() if "setting %r" % name in line]
        assert len(ignored) == 1 and "ignored" in ignored[0] and "[WARNING]" in ignored[0], log
    assert "[%d] [INFO] master pid=%d app=cfg_apps:app workers=2" % (master, master) in log
    assert p.output() == ""          # errorlog names a file: nothing on stdout/stderr
    assert p.stop() == 0

    # Gunicorn's access log format, atom by atom
    lines = open(access).read().splitlines()
    assert len(lines) == 6, lines
    pattern = re.compile(
        r'^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] '
        r'"GET /items\?page=(\d) HTTP/1\.1" 200 (\d+) "-" "cfg-test" '
        r'GET /items page=(\d) HTTP/1\.1 (\d+) <(\d+)> t(\d)$')
    # each worker writes its lines once per loop turn: two workers' lines may interleave
    # out of request order (the client is answered before the turn's lines are written)
    lines.sort(key=lambda line: re.search(r"page=(\d)", line).group(1))
    for i, line in enumerate(lines):
        m = pattern.match(line)
        assert m, line
        page, b, q, B, pid, trace = m.groups()
        assert page == q == trace == str(i)
        assert b == B and int(b) == len(pid)       # the body is the worker pid
        assert int(pid) in pids


# -- hooks --------------------------------------------------------------------------------

RECORDER = '''\
import json
import os


def _rec(name, obj, **facts):
    """One JSON line per call: the hook, the pid that ran it, what its arguments said."""
    facts.update(hook=name, pid=os.getpid(), log=callable(getattr(getattr(obj, "log", None), "info", None)))
    fd = os.open(os.environ["HOOK_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(facts) + "\\n").encode())
    finally:
        os.close(fd)
'''

ALL_HOOKS = RECORDER + '''

def on_starting(server):
    _rec("on_starting", server, server_pid=server.pid, num_workers=server.num_workers)


def when_ready(server):
    _rec("when_ready", server, server_pid=server.pid, num_workers=server.num_workers)


def on_reload(server):
    _rec("on_reload", server, server_pid=server.pid)


def pre_fork(server, worker):
    _rec("pre_fork", server, nr=worker.nr, worker_pid=worker.pid)


def post_fork(server, worker):
    _rec("post_fork", worker, nr=worker.nr, worker_pid=worker.pid, ppid=os.getppid(), server_pid=server.pid)


def post_worker_init(worker):
    _rec("post_worker_init", worker, nr=worker.nr, worker_pid=worker.pid)


def worker_int(worker):
    _rec("worker_int", worker, nr=worker.nr, worker_pid=worker.pid)


def worker_abort(worker):
    _rec("worker_abort", worker, nr=worker.nr, worker_pid=worker.pid)


def pre_exec(server):
    _rec("pre_exec", server, server_pid=server.pid)


def pre_request(worker, req):
    _rec("pre_request", worker, worker_pid=worker.pid, method=req.method, path=req.path, query=req.query)


def post_request(worker, req, environ, resp):
    _rec("post_request", worker, worker_pid=worker.pid, method=req.method, path=req.path,
         path_info=environ["PATH_INFO"], status=resp.status, status_code=resp.status_code)


def child_exit(server, worker):
    _rec("child_exit", server, nr=worker.nr, worker_pid=worker.pid)


def worker_exit(server, worker):
    _rec("worker_exit", worker, nr=worker.nr, worker_pid=worker.pid)


def nworkers_changed(server, new_value, old_value):
    _rec("nworkers_changed", server, new=new_value, old=old_value)


def on_exit(server):
    _rec("on_exit", server, server_pid=server.pid)
'''

HOOK_NAMES = ("on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init", "worker_int",
              "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit", "worker_exit",
              "nworkers_changed", "on_exit")
MASTER_HOOKS = {"on_starting", "when_ready", "on_reload", "pre_fork", "pre_exec", "child_exit", "nworkers_changed",
                "on_exit"}


def records(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def wait_records(path, hook, count=1, timeout=10.0, **facts):
    """Wait until `count` records of `hook` (matching `facts`) are in; return them."""
    def found():
        got = [r for r in records(path) if r["hook"] == hook and all(r.get(k) == v for k, v in facts.items())]
        return got if len(got) >= count else None
    got = wait_for(found, timeout)
    assert got, "no %d x %s %r in:\n%s" % (count, hook, facts, "\n".join(map(json.dumps, records(path))))
    return got


def first(recs, hook):
    return next(i for i, r in enumerate(recs) if r["hook"] == hook)


def test_every_hook_defined_is_listed_by_check_config(tmp_path):
    conf = write(tmp_path / "hooks.py", ALL_HOOKS)
    _, out = check_config("sup_apps:app", "-c", conf, cwd=tmp_path)
    listed = re.findall(r"^hook (\w+) defined$", out, re.M)
    assert sorted(listed) == sorted(HOOK_NAMES)
    assert "note:" not in out          # _rec and the imported modules are helpers, not settings


def test_hooks_over_a_server_lifetime(tmp_path, server):
    rec = str(tmp_path / "hooks.jsonl")
    conf = write(tmp_path / "hooks.py", ALL_HOOKS)
    s = server("sup_apps:app", "-c", conf, env={"HOOK_RECORD": rec}, cwd=tmp_path)
    master = s.pid
    w0 = pid_of(s.port, "/hello?x=1")
    wait_records(rec, "post_request")

    s.signal(signal.SIGTTIN)                                      # one worker more
    [w1] = [r["worker_pid"] for r in wait_records(rec, "post_worker_init", nr=1)]
    assert wait_for(lambda: len(s.worker_pids()) == 2, 5)

    s.signal(signal.SIGTTOU)                                      # one fewer: slot 1 goes
    wait_records(rec, "child_exit", worker_pid=w1)
    assert wait_for(lambda: s.worker_pids() == [w0], 5)

    s.signal(signal.SIGHUP)                                       # reload: slot 0 replaced
    wait_records(rec, "child_exit", worker_pid=w0)
    [w2] = [r["worker_pid"] for r in wait_records(rec, "post_worker_init", count=2, nr=0) if r["worker_pid"] != w0]
    assert wait_for(lambda: s.worker_pids() == [w2], 5)

    os.kill(w2, signal.SIGINT)                                    # a quick stop of one worker
    wait_records(rec, "child_exit", worker_pid=w2)
    w3 = [r["worker_pid"] for r in wait_records(rec, "post_worker_init", count=3, nr=0)][-1]
    assert wait_for(lambda: s.worker_pids() == [w3], 5)
    assert w3 not in (w0, w1, w2)

    assert s.stop() == 0                                          # TERM
    recs = records(rec)
    log = "\n".join(map(json.dumps, recs))
    workers = {w0, w1, w2, w3}

    # which process ran each hook
    for r in recs:
        if r["hook"] in MASTER_HOOKS:
            assert r["pid"] == master, r
        else:
            assert r["pid"] in workers and r["pid"] == r["worker_pid"], r
        assert r["log"], r                                        # server.log / worker.log usable
    for r in recs:
        if "server_pid" in r:
            assert r["server_pid"] == master, r

    # the start, in order
    order = ["on_starting", "when_ready", "pre_fork", "post_fork", "post_worker_init", "pre_request", "post_request"]
    at = [first(recs, h) for h in order]
    assert at == sorted(at), (order, at, log)
    assert recs[first(recs, "on_starting")]["num_workers"] == recs[first(recs, "when_ready")]["num_workers"] == 1
    # on_exit last, once
    assert recs[-1]["hook"] == "on_exit" and [r["hook"] for r in recs].count("on_exit") == 1, log

    # pre_fork: in the master, before the fork (pid 0), for slots 0, 1 (TTIN), 0 (HUP), 0 (after INT)
    assert [(r["nr"], r["worker_pid"]) for r in recs if r["hook"] == "pre_fork"] == [(0, 0), (1, 0), (0, 0), (0, 0)]
    # post_fork: in the new worker, whose pid it is, child of the master
    post_fork = [r for r in recs if r["hook"] == "post_fork"]
    assert [(r["nr"], r["pid"]) for r in post_fork] == [(0, w0), (1, w1), (0, w2), (0, w3)], log
    assert all(r["ppid"] == master for r in post_fork)
    # each worker: post_fork, then post_worker_init, then (unless killed) worker_exit, then child_exit
    for w in workers:
        mine = [r["hook"] for r in recs if r.get("worker_pid") == w and r["hook"] != "pre_fork"]
        assert mine[:2] == ["post_fork", "post_worker_init"], (w, mine)
        assert mine[-1] == "child_exit" and mine.count("child_exit") == 1, (w, mine)
    # the request
    [pre] = [r for r in recs if r["hook"] == "pre_request"]
    [post] = [r for r in recs if r["hook"] == "post_request"]
    assert (pre["pid"], pre["method"], pre["path"], pre["query"]) == (w0, "GET", "/hello", "x=1")
    assert (post["pid"], post["method"], post["path"], post["path_info"], post["status"], post["status_code"]) == (
        w0, "GET", "/hello", "/hello", "200 OK", 200)
    # TTIN 1 -> 2, TTOU 2 -> 1 (the first setting, if any, is another test's business)
    assert [(r["new"], r["old"]) for r in recs if r["hook"] == "nworkers_changed" and r["old"] is not None] == [
        (2, 1), (1, 2)]
    # graceful stops (TTOU, HUP, TERM) run worker_exit in the worker; SIGINT runs worker_int
    # (whether worker_exit follows worker_int is test_worker_exit_follows_worker_int's business)
    assert {r["pid"] for r in recs if r["hook"] == "worker_exit"} - {w2} == {w0, w1, w3}
    assert [(r["pid"], r["nr"]) for r in recs if r["hook"] == "worker_int"] == [(w2, 0)]
    assert [(r["worker_pid"], r["nr"]) for r in recs if r["hook"] == "child_exit"] == [
        (w1, 1), (w0, 0), (w2, 0), (w3, 0)]
    # HUP: on_reload in the master, before slot 0's replacement is forked
    [reload] = [i for i, r in enumerate(recs) if r["hook"] == "on_reload"]
    assert reload < next(i for i, r in enumerate(recs) if r["hook"] == "post_fork" and r["pid"] == w2)
    assert not [r for r in recs if r["hook"] in ("worker_abort", "pre_exec")]


def test_worker_abort_and_pre_exec_hooks(tmp_path, server):
    rec = str(tmp_path / "hooks.jsonl")
    conf = write(tmp_path / "hooks.py", ALL_HOOKS)
    s = server("sup_apps:app", "-c", conf, "--timeout", "2", env={"HOOK_RECORD": rec}, cwd=tmp_path)
    master = s.pid
    w0 = s.worker_pids()[0]

    # a request that hangs past --timeout: 504, then worker_abort in that worker (issue 24:
    # the hook still runs on a timeout, though no SIGABRT was needed)
    answers = []

    def hang():
        try:
            answers.append(get(s.port, "/hang", timeout=15)[0])
        except (OSError, http.client.HTTPException) as exc:
            answers.append(exc)
    t = threading.Thread(target=hang)
    t.start()
    [abort] = wait_records(rec, "worker_abort", timeout=12)
    t.join(15)
    assert answers == [504]
    assert (abort["pid"], abort["worker_pid"], abort["nr"]) == (w0, w0, 0)
    wait_records(rec, "child_exit", worker_pid=w0)
    [w1] = [r["worker_pid"] for r in wait_records(rec, "post_worker_init", count=2)][1:]
    assert get(s.port, "/")[0] == 200

    # USR2: pre_exec in the master, then the same pid starts again
    s.signal(signal.SIGUSR2)
    [pre_exec] = wait_records(rec, "pre_exec")
    assert pre_exec["pid"] == pre_exec["server_pid"] == master
    wait_records(rec, "when_ready", count=2)
    wait_records(rec, "child_exit", worker_pid=w1)               # the new image stops the old worker
    [w2] = [r["worker_pid"] for r in wait_records(rec, "post_worker_init", count=3)][2:]
    assert wait_for(lambda: s.worker_pids() == [w2], 5)
    assert s.pid == master and pid_of(s.port) == w2

    assert s.stop() == 0
    recs = records(rec)
    hooks = [r["hook"] for r in recs]
    i = hooks.index("pre_exec")
    assert hooks[i + 1:].index("on_starting") < hooks[i + 1:].index("when_ready")
    assert [r["pid"] for r in recs if r["hook"] == "on_starting"] == [master, master]
    assert "on_exit" not in hooks[:i]                            # exec is no exit
    assert hooks[-1] == "on_exit"


def test_nworkers_changed_first_call_has_old_value_none(tmp_path, server):
    rec = str(tmp_path / "hooks.jsonl")
    conf = write(tmp_path / "hooks.py", ALL_HOOKS)
    s = server("sup_apps:app", "-c", conf, env={"HOOK_RECORD": rec}, cwd=tmp_path)
    wait_records(rec, "post_worker_init")
    assert s.stop() == 0
    recs = records(rec)
    changed = [(i, r["new"], r["old"]) for i, r in enumerate(recs) if r["hook"] == "nworkers_changed"]
    assert changed and changed[0][1:] == (1, None), changed
    assert changed[0][0] < first(recs, "pre_fork")


def test_worker_exit_follows_worker_int(tmp_path, server):
    rec = str(tmp_path / "hooks.jsonl")
    conf = write(tmp_path / "hooks.py", ALL_HOOKS)
    s = server("sup_apps:app", "-c", conf, env={"HOOK_RECORD": rec}, cwd=tmp_path)
    [w0] = s.worker_pids()
    os.kill(w0, signal.SIGINT)
    wait_records(rec, "child_exit", worker_pid=w0)
    mine = [r["hook"] for r in records(rec) if r.get("worker_pid") == w0]
    assert mine[-3:] == ["worker_int", "worker_exit", "child_exit"], mine


# -- a hook that raises, per its policy ---------------------------------------------------

def test_on_starting_raising_stops_the_master_with_exit_5(tmp_path):
    conf = write(tmp_path / "conf.py", 'def on_starting(server):\n    raise ValueError("no database")\n')
    code, out, err, took = run_cli("run", "sup_apps:app", "-c", conf, "-b", "127.0.0.1:%d" % free_port())
    assert code == 5, out + err
    assert took < 5
    assert "hook on_starting raised" in err
    assert "Traceback (most recent call last)" in err and "ValueError: no database" in err
    assert "booted" not in err


def test_post_fork_raising_fails_the_boot_with_exit_3(tmp_path):
    rec = str(tmp_path / "hooks.jsonl")
    conf = write(tmp_path / "conf.py", RECORDER + '''

def post_fork(server, worker):
    _rec("post_fork", worker, worker_pid=worker.pid)
    raise OSError("no socket for you")


def on_exit(server):
    _rec("on_exit", server)
''')
    code, out, err, took = run_cli("run", "sup_apps:app", "-c", conf, "-b", "127.0.0.1:%d" % free_port(), "-w", "2",
                                   env={"HOOK_RECORD": rec}, timeout=20)
    assert code == 3, out + err
    assert took < 10
    assert "hook post_fork raised" in err and "OSError: no socket for you" in err
    assert "booted in" not in err
    recs = records(rec)
    assert recs[-1]["hook"] == "on_exit" and recs[-1]["pid"] != recs[0]["pid"]   # the master's, at the end
    tried = [r["pid"] for r in recs if r["hook"] == "post_fork"]
    assert 1 <= len(tried) <= 5
    # every worker that was forked is gone (killed and reaped by the master, not orphaned)
    assert wait_for(lambda: not [pid for pid in tried if psutil.pid_exists(pid)], 5), tried


def test_pre_request_raising_answers_500_and_the_worker_keeps_serving(tmp_path, server):
    conf = write(tmp_path / "conf.py", 'def pre_request(worker, req):\n    raise KeyError("tenant")\n')
    s = server("sup_apps:app", "-c", conf)
    before = s.worker_pids()
    for _ in range(3):
        assert get(s.port, "/")[0] == 500
    assert s.worker_pids() == before
    assert "hook pre_request raised" in s.log() and "KeyError: 'tenant'" in s.log()
    assert s.log().count("hook pre_request raised") == 3


def test_post_request_raising_keeps_the_response(tmp_path, server):
    conf = write(tmp_path / "conf.py", 'def post_request(worker, req, environ, resp):\n    1 / 0\n')
    s = server("sup_apps:app", "-c", conf)
    w = s.worker_pids()
    assert pid_of(s.port) == w[0]
    assert pid_of(s.port) == w[0]
    assert s.wait_log("hook post_request raised", count=2)
    assert "ZeroDivisionError" in s.log()
    assert s.worker_pids() == w


def test_worker_exit_raising_is_logged_and_the_stop_is_clean(tmp_path, server):
    conf = write(tmp_path / "conf.py", 'def worker_exit(server, worker):\n    raise RuntimeError("flush failed")\n')
    s = server("sup_apps:app", "-c", conf, workers=2)
    assert get(s.port, "/")[0] == 200
    assert s.stop() == 0
    log = s.log()
    assert log.count("hook worker_exit raised") == 2 and "RuntimeError: flush failed" in log
    exits = re.findall(r"worker=\d pid=\d+ exited: (.*)", log)
    assert exits == ["exit code 0"] * 2, exits            # the workers still exited 0
    assert "all workers stopped; exiting" in log


# -- bad configuration: exit 2, one line, nothing started ---------------------------------

# Hooks that leave a mark if pyfork got as far as starting or forking; a configuration
# wrongly let through stops right there (on_starting raising ends the master), so a
# failing case never leaves a server running.
MARKER = '''\
def on_starting(server):
    open(__file__ + ".started", "w").close()
    raise RuntimeError("the configuration was accepted")


def pre_fork(server, worker):
    open(__file__ + ".forked", "w").close()
'''
N = MARKER.count("\n")      # lines before a case's own text


def _file_names_setting(*words):
    return lambda msg, conf: all(w in msg for w in words) and "conf.py" in msg


# (id, config text or None, extra args, env, check(message, conf path) or the exact message)
BAD = [
    ("misspelt setting", "workers = 2\n\nworker = 4\n", [], {},
     "unknown setting 'worker' in conf.py line %d; did you mean 'workers'?" % (N + 3)),
    ("misspelt Gunicorn setting", "preload_ap = True\n", [], {},
     "unknown setting 'preload_ap' in conf.py line %d; did you mean 'preload_app'?" % (N + 1)),
    ("misspelt hook", "\ndef post_forks(server, worker):\n    pass\n", [], {},
     "unknown hook 'post_forks' in conf.py line %d; did you mean 'post_fork'?" % (N + 2)),
    ("wrong type", 'workers = "many"\n', [], {}, _file_names_setting("workers", "'many'")),
    ("impossible value", "timeout = -1\n", [], {}, _file_names_setting("timeout", "-1")),
    ("bad bind", 'bind = "127.0.0.1:99999"\n', [], {}, _file_names_setting("bind", "99999")),
    ("int bind", "bind = 8000\n", [], {}, _file_names_setting("bind", "8000")),
    ("None for workers", "workers = None\n", [], {}, _file_names_setting("workers", "None")),
    ("float for workers", "workers = 2.5\n", [], {}, _file_names_setting("workers", "2.5")),
    ("hook not a function", "post_fork = 5\n", [], {}, _file_names_setting("post_fork")),
    ("hook arity", "\ndef pre_request(worker):\n    pass\n", [], {},
     "conf.py line %d: hook pre_request must take 2 arguments (Gunicorn's signature)" % (N + 2)),
    ("syntax error", "workers = 2\nif workers:\n    timeout = (\n", [], {},
     lambda msg, conf: msg.startswith("conf.py line %d: syntax error" % (N + 3))),
    ("file raises", 'workers = 2\n\nraise RuntimeError("no secrets file")\n', [], {},
     "conf.py line %d: RuntimeError: no secrets file" % (N + 3)),
    ("missing -c file", None, [], {}, lambda msg, conf: msg.startswith("config file %s" % conf)
     and "No such file or directory" in msg),
    ("max below min", "min_workers = 4\nmax_workers = 3\n", [], {},
     lambda msg, conf: "max_workers" in msg and "min_workers" in msg and "3" in msg and "4" in msg),
    ("unknown dyno size", "", ["--dyno-size", "huge-9x"], {},
     lambda msg, conf: "'huge-9x'" in msg and "standard-1x" in msg and "performance-m" in msg),
    ("bad environment", "", [], {"PYFORK_TIMEOUT": "abc"},
     lambda msg, conf: "PYFORK_TIMEOUT" in msg and "'abc'" in msg),
    ("bad WEB_CONCURRENCY", "", [], {"WEB_CONCURRENCY": "lots"},
     lambda msg, conf: "WEB_CONCURRENCY" in msg and "'lots'" in msg),
    ("--threads 0", "", ["--threads", "0"], {},
     "flag --threads: 0 is too small; the least allowed is 1"),
    ("--threads x", "", ["--threads", "x"], {}, "flag --threads: 'x' is not a whole number"),
    ("PYFORK_THREADS=-2", "", [], {"PYFORK_THREADS": "-2"},
     "environment variable PYFORK_THREADS: -2 is too small; the least allowed is 1"),
    ("threads in the file", "threads = 'four'\n", [], {}, _file_names_setting("threads", "'four'")),
    ("-k gevent", "", ["-k", "gevent"], {},
     "flag --worker-class: 'gevent' is not available: pyfork runs sync or threaded workers; use --threads N"),
    ("worker_class uvicorn", "worker_class = 'uvicorn.workers.UvicornWorker'\n", [], {},
     _file_names_setting("worker_class", "'uvicorn.workers.UvicornWorker'", "use --threads N")),
    # issue 11: a worker count that would never answer
    ("-w 0", "", ["-w", "0"], {}, "flag --workers: 0 workers would never answer; give 1 or more, or auto"),
    ("-w -2", "", ["-w", "-2"], {}, "flag --workers: -2 workers would never answer; give 1 or more, or auto"),
    ("WEB_CONCURRENCY=0", "", [], {"WEB_CONCURRENCY": "0"},
     "environment variable WEB_CONCURRENCY: 0 workers would never answer; give 1 or more, or auto"),
    ("workers = 0 in the file", "workers = 0\n", [], {}, _file_names_setting("workers", "0 workers")),
    # issue 12: typos in the environment, Gunicorn-only settings refused, the same bind twice
    ("misspelt PYFORK_ variable", "", [], {"PYFORK_TIMOUT": "5"},
     "unknown setting PYFORK_TIMOUT; did you mean PYFORK_TIMEOUT?"),
    ("two spellings disagree", "", [], {"PYFORK_LOG_LEVEL": "debug", "PYFORK_LOGLEVEL": "info"},
     "environment variables PYFORK_LOGLEVEL='info' and PYFORK_LOG_LEVEL='debug' both set loglevel; keep one"),
    ("--daemon", "", ["--daemon"], {}, lambda msg, conf: msg.startswith("flag --daemon: not available in pyfork: ")
     and "systemd" in msg),
    ("daemon in the file", "daemon = True\n", [], {},
     lambda msg, conf: msg.startswith("setting 'daemon' in conf.py line %d: not available in pyfork" % (N + 1))),
    ("-k gevent in GUNICORN_CMD_ARGS", "", [], {"GUNICORN_CMD_ARGS": "-k gevent"},
     "flag --worker-class in GUNICORN_CMD_ARGS: 'gevent' is not available: pyfork runs sync or threaded "
     "workers; use --threads N"),
    ("GUNICORN_CMD_ARGS typo", "", [], {"GUNICORN_CMD_ARGS": "--timout 5"},
     "GUNICORN_CMD_ARGS: unrecognized arguments: --timout"),
    ("bind twice", "bind = ['127.0.0.1:9', '127.0.0.1:9']\n", [], {},
     lambda msg, conf: msg == "setting 'bind' in %s line %d: 127.0.0.1:9 is given twice; give each address once"
     % (conf, N + 1)),
    ("bind inside 0.0.0.0", "", ["-b", "0.0.0.0:9", "-b", "127.0.0.1:9"], {},
     "flag --bind: 0.0.0.0:9 and 127.0.0.1:9: 0.0.0.0 already listens on every IPv4 address; give one of them"),
    ("bad access log format", "access_log_format = '%(h)s %(s)s 100%'\n", [], {},
     lambda msg, conf: "access_logformat" in msg and "'%(h)s %(s)s 100%'" in msg and "%%" in msg),
]


@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("case, text, args, env, expect", BAD, ids=[
    b.values[0] if hasattr(b, "values") else b[0] for b in BAD])
def test_bad_configuration_exits_2_with_one_line(tmp_path, command, case, text, args, env, expect):
    bad_configuration(tmp_path, cli_in_process, command, text, args, env, expect)


# the same as real processes, for a few rows: what the shell sees (stderr, exit status)
@pytest.mark.parametrize("command", ["run", "check-config"])
@pytest.mark.parametrize("case, text, args, env, expect", BAD[:3] + BAD[-2:], ids=[
    b.values[0] if hasattr(b, "values") else b[0] for b in BAD[:3] + BAD[-2:]])
def test_bad_configuration_exits_2_with_one_line_as_a_process(tmp_path, command, case, text, args, env, expect):
    bad_configuration(tmp_path, run_cli, command, text, args, env, expect)


def bad_configuration(tmp_path, run, command, text, args, env, expect):
    conf = str(tmp_path / "conf.py")
    if text is not None:
        write(tmp_path / "conf.py", MARKER + text)
    argv = [command, "sup_apps:app", "-c", conf] + args
    if "bind" not in (text or ""):
        argv += ["-b", "127.0.0.1:%d" % free_port()]     # a -b flag would hide the file's bind
    code, out, err, took = run(*argv, env=env, cwd=tmp_path)
    lines = err.splitlines()
    assert code == 2, (code, out, err)
    assert took < 5
    assert out == ""
    assert len(lines) == 1, err
    assert lines[0].startswith("pyfork: error: "), err
    msg = lines[0][len("pyfork: error: "):]
    if isinstance(expect, str):
        assert msg == expect
    else:
        assert expect(msg, conf), msg
    assert not os.path.exists(conf + ".started") and not os.path.exists(conf + ".forked")


def test_check_config_prints_every_setting_with_its_source(tmp_path):
    from supervisor.config import SETTINGS
    conf = write(tmp_path / "conf.py", RECORDER + '''
workers = 3
preload = True
max_requests = 100


def when_ready(server):
    pass


def post_fork(server, worker):
    pass
''')
    table, out = check_config("sup_apps:app", "-c", conf, "--timeout", "9", env={"PYFORK_BACKLOG": "64"},
                              cwd=tmp_path)
    assert sorted(table) == sorted(s.name for s in SETTINGS)
    sources = {name: source for name, (_, source) in table.items()}
    assert sources.pop("workers") == sources.pop("preload") == sources.pop("max_requests") == "file " + conf
    assert sources.pop("timeout") == "flag --timeout"
    assert sources.pop("backlog") == "environment variable PYFORK_BACKLOG"
    assert set(sources.values()) == {"default"}
    assert (table["workers"][0], table["preload"][0], table["timeout"][0], table["backlog"][0]) == (
        "3", "True", "9.0", "64")
    assert re.findall(r"^hook (\w+) defined$", out, re.M) == ["post_fork", "when_ready"]


# -- HUP re-reads the config file ---------------------------------------------------------

def test_hup_rereads_the_config_file(tmp_path, pyfork):
    port = free_port()
    conf = tmp_path / "conf.py"
    write(conf, "workers = 1\ntimeout = 30\n")
    p = pyfork("sup_apps:app", "-c", conf, "-b", "127.0.0.1:%d" % port, workers=1, port=port)
    [w0] = p.worker_pids()
    assert {pid_of(port) for _ in range(6)} == {w0}               # no max_requests yet
    write(conf, "workers = 2\nmax_requests = 5\n")
    p.signal(signal.SIGHUP)
    assert wait_for(lambda: len(p.worker_pids()) == 2 and w0 not in p.worker_pids(), 10), p.log()
    assert p.wait_log("booted in", count=3)
    new = set(p.worker_pids())
    served = [pid_of(port) for _ in range(12)]
    assert max(served.count(w) for w in served) <= 5, served      # no worker serves a 6th request
    assert p.wait_log("reached max_requests=5"), p.log()          # 12 over 2 workers: one was recycled
    assert wait_for(lambda: len(p.worker_pids()) == 2 and set(p.worker_pids()) != new, 10)
    assert p.stop() == 0


def test_broken_config_file_at_hup_keeps_the_one_in_use(tmp_path, server):
    conf = tmp_path / "conf.py"
    write(conf, "timeout = 30\n")
    s = server("sup_apps:app", "-c", conf)
    write(conf, "timeout = 30\nworker = 3\n")
    s.signal(signal.SIGHUP)
    assert s.wait_log("keeping the configuration in use"), s.log()
    line = next(l for l in s.log().splitlines() if "keeping the configuration in use" in l)
    assert "unknown setting 'worker' in conf.py line 2; did you mean 'workers'?" in line
    assert s.proc.poll() is None
    assert s.wait_log("booted in", count=2)
    for _ in range(3):
        assert get(s.port, "/")[0] == 200
    write(conf, "timeout = (\n")                                  # a syntax error, too
    s.signal(signal.SIGHUP)
    assert s.wait_log("keeping the configuration in use", count=2)
    assert "syntax error" in s.log()
    assert get(s.port, "/")[0] == 200
    assert s.stop() == 0


def test_hup_turns_on_the_access_log(tmp_path, server):
    conf = tmp_path / "conf.py"
    access = tmp_path / "access.log"
    write(conf, "timeout = 30\n")
    s = server("sup_apps:app", "-c", conf)
    write(conf, "timeout = 30\naccesslog = %r\n" % str(access))
    s.signal(signal.SIGHUP)
    assert s.wait_log("booted in", count=2)
    assert wait_for(lambda: len(s.worker_pids()) == 1, 5)
    assert pid_of(s.port, "/after-hup") == s.worker_pids()[0]
    assert wait_for(lambda: access.exists() and "GET /after-hup" in access.read_text(), 5)


def test_hup_applies_the_log_level(tmp_path, server):
    conf = tmp_path / "conf.py"
    write(conf, 'loglevel = "info"\n')
    s = server("sup_apps:app", "-c", conf)
    assert "[DEBUG]" not in s.log()
    write(conf, 'loglevel = "debug"\n')
    s.signal(signal.SIGHUP)
    assert s.wait_log("booted in", count=2)
    assert s.wait_log("[DEBUG]", timeout=3), s.log()    # the replacement's "spawned" line is debug


# -- dyno sizes ---------------------------------------------------------------------------

def test_dyno_size_preset(tmp_path, server):
    table, _ = check_config("sup_apps:app", "--dyno-size", "standard-1x", cwd=tmp_path)
    assert table["workers"] == ("2", "dyno size standard-1x")
    assert table["memory_quota"] == ("'512MB'", "dyno size standard-1x")
    assert table["dyno_size"] == ("'standard-1x'", "flag --dyno-size")
    table, _ = check_config("sup_apps:app", env={"PYFORK_DYNO_SIZE": "Standard-2X"}, cwd=tmp_path)
    assert table["workers"] == ("4", "dyno size standard-2x")
    s = server("sup_apps:app", "--dyno-size", "standard-1x")
    assert "dyno size standard-1x (flag --dyno-size)" in s.log()
    assert get(s.port, "/")[0] == 200


def test_dyno_env_detects_nothing_without_a_matching_cgroup_limit(tmp_path):
    from supervisor.observe.dynos import DYNOS
    from supervisor.observe.sampler import Sampler
    quota = Sampler(None).dyno()
    table, out = check_config("sup_apps:app", env={"DYNO": "web.1"}, cwd=tmp_path)
    match = [d for d in DYNOS if quota.quota_source == "cgroup" and d.quota == quota.quota]
    if match:                # on a real dyno (or a container limited like one)
        assert table["dyno_size"][1].startswith("detected"), out
    else:                    # here: no cgroup memory limit, or one no dyno has: nothing detected
        assert table["dyno_size"] == ("None", "default"), out
        assert table["workers"] == ("2", "default")
        assert table["memory_quota"] == ("None", "default")


def test_dyno_env_detects_the_size_from_a_real_cgroup_limit(tmp_path):
    """In a simulated dyno (scripts/dyno.py: real cgroup v1 limits): $DYNO plus a 512 MB limit
    selects a 512 MB preset as the lowest layer; a limit no dyno has, or no $DYNO, selects none."""
    sys.path.insert(0, SCRIPTS)
    from dyno import Dyno, DynoError

    def check(memory, env, *args):
        try:
            d = Dyno(memory=memory, tasks=256).__enter__()
        except DynoError as exc:
            pytest.skip("no cgroups to make a dyno here: %s" % exc)
        try:
            p = d.run([PY, "-m", "supervisor", "check-config", "sup_apps:app"] + list(args), cwd=tmp_path,
                      env=clean_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, err = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
                raise
        finally:
            d.__exit__(None, None, None)
        assert p.returncode == 0, out + err
        return parse_check_config(out), out

    table, out = check("512MB", {"DYNO": "web.1"})
    assert table["dyno_size"][0].strip("'") in ("eco", "basic", "standard-1x"), out
    assert table["dyno_size"][1] == "detected (Heroku dyno with a 512 MB limit)", out
    preset = "dyno size " + table["dyno_size"][0].strip("'")
    assert table["workers"] == ("2", preset) and table["memory_quota"] == ("'512MB'", preset)
    # the file, the environment and flags all sit above the detected preset
    conf = write(tmp_path / "conf.py", "workers = 3\n")
    table, out = check("512MB", {"DYNO": "web.1"}, "-c", conf)
    assert table["workers"] == ("3", "file " + conf)
    assert table["memory_quota"][0] == "'512MB'"
    table, out = check("512MB", {"DYNO": "web.1", "PYFORK_DYNO_SIZE": "performance-m"})
    assert table["dyno_size"] == ("'performance-m'", "environment variable PYFORK_DYNO_SIZE")
    assert table["workers"] == ("5", "dyno size performance-m")
    # no detection without $DYNO, nor for a limit no dyno size has
    for memory, env in (("512MB", {}), ("300MB", {"DYNO": "web.1"})):
        table, out = check(memory, env)
        assert table["dyno_size"] == ("None", "default"), out
        assert table["workers"] == ("2", "default"), out


PROXY_CONF = '''\
bind = "127.0.0.1:%(port)d"
pidfile = %(pid)r
secure_scheme_headers = {"X-Scheme": "https"}
forwarder_headers = "SCRIPT_NAME,REMOTE_USER"
'''

WHERE_APP = '''\
def app(environ, start_response):
    body = " ".join([environ["wsgi.url_scheme"], environ["SCRIPT_NAME"] or "-", environ["PATH_INFO"],
                     environ.get("HTTP_REMOTE_USER", "-")]).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


def test_what_a_trusted_proxy_says(tmp_path, pyfork):
    """Gunicorn's secure_scheme_headers and forwarder_headers from a gunicorn.conf.py."""
    port = free_port()
    pid = str(tmp_path / "g.pid")
    write(tmp_path / "where.py", WHERE_APP)
    conf = write(tmp_path / "gunicorn.conf.py", PROXY_CONF % {"port": port, "pid": pid})
    p = pyfork("where:app", "-c", conf, cwd=tmp_path, port=port)
    status, _, body = get(port, "/app/x", headers={"X-Scheme": "https", "SCRIPT_NAME": "/app",
                                                   "REMOTE_USER": "ann", "X-Forwarded-Proto": "https"})
    assert (status, body) == (200, b"https /app /x ann")
    assert p.stop() == 0
