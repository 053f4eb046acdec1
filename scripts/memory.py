#!/usr/bin/env python3
"""How much memory a worker costs, pyfork's ways against Gunicorn's default (issue 28).

Two apps written for this (scripts/memapps): a Django 5 shop (six models, the admin with
all of them, templates with inheritance and includes, JSON views: 23 URLs, 8 of them admin
pages) and a Flask 3 shop (four blueprints, Jinja macros and inheritance, JSON: 21 URLs),
each on a sqlite database made and seeded in a temporary folder at start. The Django admin
is reached as a signed-in superuser: the seed stores a session for it and the load sends
its `sessionid` cookie.

For each app and each mode, one server with --workers workers (default 4) on 127.0.0.1:

    gunicorn               `gunicorn -w 4`: its default sync worker, the app imported in each worker
    pyfork                 `pyfork run -w 4`: the app imported in each worker
    pyfork-preload         `--preload`: imported in the master before the fork
    pyfork-refork          `--refork-after N` (N: --refork-after, default 1000)
    pyfork-preload-refork  `--preload --refork-after N`

A mode whose flag pyfork does not know (it exits 2) is reported "not available".
Keep-alive clients (2 per worker, reconnecting every 25 requests) cycle every URL until
each live worker has answered --requests requests (a worker forked during the load counts
from its own first; at most 3 x workers x requests in all); every answer must be 200.
Then, with the load stopped and the worker set settled:

    PSS, USS per worker   the mean over the workers (smaps_rollup, via psutil)
    total PSS             master + workers + any other descendant (a refork template)
    new worker 1st ms     one worker is sent SIGTERM; once its replacement is ready (pyfork's
                          `booted` line, and its CPU idle), every other worker is SIGSTOPped so
                          only the new one can take the next connection, and a GET of the
                          app's heavy page (Django: an order's admin change page with its
                          inline; Flask: the home page) is timed at the client; then SIGCONT.
                          Cold = a worker that imported the app; warm = one forked from a
                          preloaded master or a warm template.
    warm ms               the same page on the warmed workers: median of 9 GETs
    forked-in-load 1st ms workers started during the load (a refork's), the app's own time
                          of their first request (memapps/probe.py), against the first workers'

PSS divides each shared page among all the processes that map it, on the whole machine:
the pages of libpython and the shared libraries are shared with every other Python running,
so PSS moves a little with what else runs; USS (pages only this process maps) does not.
Run it on a quiet machine, all modes in one run (as here) so they see the same neighbours.

The apps need Django and Flask (and the gunicorn mode gunicorn) importable by --python;
they are not pyfork's dependencies. Missing ones are named with the pip command, or
installed with --install.

    python scripts/memory.py                                  # both apps, all modes
    python scripts/memory.py --apps flask --modes pyfork,pyfork-preload --quick
    python scripts/memory.py --json out.json --requests 1000 --refork-after 1000
    python scripts/memory.py --apps django --dyno standard-1x  # pyfork modes in a 512 MB cgroup

--dyno SIZE runs the pyfork modes inside a real cgroup dyno (scripts/dyno.py; root with
cgroup v1) with --metrics-interval 2, and reports the advice's memory-bound worker count
(see memdyno.py). Every process started is stopped by PID and waited for; a run that
leaves one behind says so and exits 1.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
APPS_DIR = os.path.join(HERE, "memapps")
sys.path.insert(0, APPS_DIR)

from catalog import APPS  # noqa: E402   scripts/memapps/catalog.py
from memserve import Load, Server, booted_line, first_request_on, get, memory, wait_for, wait_idle  # noqa: E402
from ports import free_port  # noqa: E402

MODES = ("gunicorn", "pyfork", "pyfork-preload", "pyfork-refork", "pyfork-preload-refork")
FLAGS = {"gunicorn": [], "pyfork": [], "pyfork-preload": ["--preload"],
         "pyfork-refork": ["--refork-after"], "pyfork-preload-refork": ["--preload", "--refork-after"]}
QUICK_REQUESTS = 60


def mode_argv(mode, args, app, bind):
    if mode == "gunicorn":
        return [args.python, "-m", "gunicorn", "-w", str(args.workers), "-b", bind] + args.gunicorn_flags + [app]
    flags = [f if f != "--refork-after" else "--refork-after=%s" % args.refork_after for f in FLAGS[mode]]
    argv = [args.python, "-m", "supervisor", "run", app, "-w", str(args.workers), "-b", bind,
            "--no-control-socket"] + flags
    if args.dyno:
        argv += ["--metrics-interval", "2"]
    return argv


def server_env(data_dir, stats):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYFORK_", "DJANGO_")) and k not in ("PORT", "WEB_CONCURRENCY", "GUNICORN_CMD_ARGS")}
    env.update(PYTHONPATH=APPS_DIR, MEMAPP_DIR=data_dir, MEMAPP_STATS=stats)
    return env


def not_available(server):
    """Why pyfork refused the mode's flags (exit 2 on an unknown flag), or None."""
    if server.exited() and server.proc.returncode == 2:
        lines = [l for l in server.log().splitlines() if "error" in l.lower()]
        return "not available: pyfork exit 2 (%s)" % (lines[-1].strip() if lines else "usage")
    return None


def wait_ready(server, args, cookie, url):
    def ready():
        if server.exited():
            return "exited"
        if len(server.workers()) < args.workers:
            return None
        status = safe_get(server.port, url, cookie)
        return "ok" if status and status[0] == 200 else None
    return wait_for(ready, args.boot_timeout, 0.2)


def safe_get(port, url, cookie):
    try:
        return get(port, url, cookie, timeout=30)
    except OSError:
        return None


def drive(server, spec, args, cookie):
    """Load until each live worker has answered args.requests requests (or the cap or time)."""
    load = Load(server.port, spec["urls"], cookie, clients=2 * args.workers)
    cap = 3 * args.workers * args.requests
    deadline = time.monotonic() + args.load_timeout
    t0 = time.monotonic()
    load.start()
    try:
        while time.monotonic() < deadline and not server.exited():
            time.sleep(0.5)
            workers = server.workers()
            if load.total() >= cap or (workers and all(load.served(p) >= args.requests for p in workers)):
                break
    finally:
        load.stop()
    return {"requests": load.total(), "failures": load.failures, "errors": dict(load.errors.most_common(5)),
            "load_seconds": round(time.monotonic() - t0, 1), "timed_out": time.monotonic() >= deadline,
            "served": {int(p): n for p, n in load.by_pid.items()}}


def measure_memory(server, args):
    """PSS and USS of each worker, the master and the others, once the worker set settled."""
    settled = wait_for(lambda: len(server.workers()) == args.workers and not server.others(), 60, 0.5)
    time.sleep(1.0)
    workers = {p: memory(p) for p in server.workers()}
    workers = {p: m for p, m in workers.items() if m}
    others = {p: memory(p) for p in server.others()}
    master = memory(server.master.pid)
    total = sum(m[0] for m in [master] + list(workers.values()) + [m for m in others.values() if m] if m)
    n = max(1, len(workers))
    return {"settled": bool(settled), "pss_per_worker": sum(m[0] for m in workers.values()) / n,
            "uss_per_worker": sum(m[1] for m in workers.values()) / n, "total_pss": total,
            "master_pss": master and master[0], "others": len(others),
            "workers": {p: {"pss": round(m[0], 2), "uss": round(m[1], 2)} for p, m in workers.items()}}


def new_worker_latency(server, spec, cookie, pyfork):
    """SIGTERM one worker; time the first request of its replacement (see the docstring)."""
    before = server.workers()
    if not before:
        return {"first_ms": None, "why": "no worker"}
    os.kill(before[0], 15)
    new = wait_for(lambda: [p for p in server.workers() if p not in before], 60, 0.05)
    if not new:
        return {"first_ms": None, "why": "no replacement within 60 s"}
    pid = new[0]
    if pyfork and not wait_for(lambda: booted_line(server.log(), pid), 60):
        return {"first_ms": None, "why": "no booted line for pid %d" % pid}
    wait_idle(pid)
    status, headers, ms = first_request_on(server, pid, spec["heavy"], cookie)
    on_new = headers.get("x-worker-pid") == str(pid) and headers.get("x-served") == "1"
    return {"first_ms": ms if status == 200 and on_new else None, "status": status, "pid": pid,
            "why": None if on_new else "answered by pid %s (served %s), not the new worker %d"
            % (headers.get("x-worker-pid"), headers.get("x-served"), pid)}


def first_requests(stats, initial):
    """Median in-app time of the first request: of the first workers, and of those forked later."""
    try:
        with open(stats) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError:
        rows = []
    first = [r["ms"] for r in rows if r["pid"] in initial]
    later = [r["ms"] for r in rows if r["pid"] not in initial]
    return {"initial_first_ms": median(first), "forked_first_ms": median(later), "forked_workers": len(later)}


def median(values):
    return statistics.median(values) if values else None


def run_mode(app, spec, mode, args, data_dir, cookie, launch=subprocess.Popen, after=None):
    """One server of `mode` serving `app`, loaded and measured. launch: how it is started
    (memdyno passes its Dyno's run); after(server): more figures once memory is measured."""
    stats = os.path.join(data_dir, "first-%s.jsonl" % mode)
    port = free_port()
    server = Server(mode, mode_argv(mode, args, spec["wsgi"], "127.0.0.1:%d" % port), server_env(data_dir, stats),
                    APPS_DIR, os.path.join(args.logdir, "%s-%s.log" % (app, mode)))
    server.port = port
    args.started.append(server)
    result = {"app": app, "mode": mode, "log": server.log_path}
    try:
        server.start(launch)
        state = wait_ready(server, args, cookie, spec["urls"][0])
        if state != "ok":
            reason = not_available(server) or "did not answer within %ss; log: %s" % (args.boot_timeout, server.log_path)
            return dict(result, status="not available" if reason.startswith("not available") else "failed",
                        reason=reason)
        initial = set(server.workers())
        result.update(drive(server, spec, args, cookie))
        result.update(first_requests(stats, initial))     # before new_worker_latency adds a worker
        result.update(measure_memory(server, args))
        if after:
            result.update(after(server))
        warm = [safe_get(port, spec["heavy"], cookie) for _ in range(9)]
        result["warm_ms"] = median([w[2] for w in warm if w and w[0] == 200])
        result.update(new_worker_latency(server, spec, cookie, pyfork=mode != "gunicorn"))
        result["status"] = "ok"
        return result
    finally:
        server.stop()


def seed(app, spec, args, data_dir):
    """Make the app's database in data_dir; the cookie the load sends (Django's admin session)."""
    env = server_env(data_dir, "")
    subprocess.run([args.python] + spec["seed"], cwd=APPS_DIR, env=env, check=True, timeout=300)
    if not spec["cookie_file"]:
        return None
    with open(os.path.join(data_dir, spec["cookie_file"])) as f:
        return "%s=%s" % (spec["cookie_name"], f.read().strip())


def importable(python, module):
    return subprocess.run([python, "-c", "import %s" % module], capture_output=True).returncode == 0


def check_needs(args):
    """The apps and modes whose packages are importable (installing them with --install)."""
    needs = {app: APPS[app]["needs"] for app in args.apps}
    if "gunicorn" in args.modes:
        needs["gunicorn mode"] = "gunicorn"
    missing = sorted({pkg for pkg in needs.values() if not importable(args.python, pkg)})
    if missing and args.install:
        subprocess.run([args.python, "-m", "pip", "install", "-q"] + missing, check=True)
        missing = [pkg for pkg in missing if not importable(args.python, pkg)]
    for what, pkg in needs.items():
        if pkg in missing:
            print("skipping %s: %s is not importable by %s; install it with `%s -m pip install %s` "
                  "(or pass --install)" % (what, pkg, args.python, args.python, pkg), file=sys.stderr)
    args.apps = [a for a in args.apps if APPS[a]["needs"] not in missing]
    if "gunicorn" in missing:
        args.modes = [m for m in args.modes if m != "gunicorn"]


def gunicorn_flags(python):
    """--no-control-socket where Gunicorn has it (25.1+): each instance would bind the same
    $HOME/.gunicorn/gunicorn.ctl otherwise."""
    out = subprocess.run([python, "-m", "gunicorn", "--help"], capture_output=True, text=True).stdout
    return ["--no-control-socket"] if "--no-control-socket" in out else []


# -- the report ------------------------------------------------------------------------

COLUMNS = ("mode", "PSS/worker MB", "USS/worker MB", "total PSS MB", "PSS/worker vs gunicorn",
           "total vs gunicorn", "new worker 1st ms", "warm ms", "forked-in-load 1st ms", "requests", "failures")


def num(value, spec="%.1f"):
    return "-" if value is None else spec % value


def ratio(value, ref):
    return "-" if value is None or not ref else "%.2fx" % (value / ref)


def row(r, ref):
    if r["status"] != "ok":
        return [r["mode"], r["reason"]] + [""] * (len(COLUMNS) - 2)
    forked = "-" if not r["forked_workers"] else "%s (%d workers; first ones %s)" % (
        num(r["forked_first_ms"]), r["forked_workers"], num(r["initial_first_ms"]))
    return [r["mode"], num(r["pss_per_worker"]), num(r["uss_per_worker"]), num(r["total_pss"]),
            ratio(r["pss_per_worker"], ref and ref["pss_per_worker"]), ratio(r["total_pss"], ref and ref["total_pss"]),
            num(r["first_ms"]) if r["first_ms"] is not None else "- (%s)" % r["why"], num(r["warm_ms"]),
            forked, str(r["requests"]), str(r["failures"])]


def table(app, results, args):
    ref = next((r for r in results if r["mode"] == "gunicorn" and r["status"] == "ok"), None)
    lines = ["### %s: %d workers, about %d requests each" % (app, args.workers, args.requests), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row(r, ref)) + " |" for r in results]
    notes = ["%s: %s" % (r["mode"], r["errors"]) for r in results if r.get("errors")]
    notes += ["%s: the worker set did not settle within 60 s after the load" % r["mode"]
              for r in results if r["status"] == "ok" and not r["settled"]]
    notes += ["%s: load stopped at --load-timeout before every worker reached %d requests" % (r["mode"], args.requests)
              for r in results if r.get("timed_out")]
    return "\n".join(lines + ([""] + notes if notes else []))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring for what is measured.")
    p.add_argument("--apps", default="django,flask", help="comma list of: " + ", ".join(APPS))
    p.add_argument("--modes", default=",".join(MODES), help="comma list of: " + ", ".join(MODES))
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--requests", type=int, default=1000, help="requests per worker before measuring")
    p.add_argument("--refork-after", default="1000", help="N for the refork modes (pyfork's --refork-after)")
    p.add_argument("--quick", action="store_true", help="a smoke run: %d requests per worker" % QUICK_REQUESTS)
    p.add_argument("--json", metavar="FILE", help="write every figure as JSON to FILE")
    p.add_argument("--python", default=sys.executable, help="the interpreter the servers and apps run with")
    p.add_argument("--install", action="store_true", help="pip install Django, Flask, gunicorn into --python if missing")
    p.add_argument("--dyno", metavar="SIZE", help="run the pyfork modes in a cgroup dyno of this size (scripts/dyno.py)")
    p.add_argument("--boot-timeout", type=float, default=120.0)
    p.add_argument("--load-timeout", type=float, default=900.0, help="seconds of load at most per server")
    p.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and databases (their folder is printed)")
    args = p.parse_args(argv)
    args.apps = [a for a in args.apps.split(",") if a]
    args.modes = [m for m in args.modes.split(",") if m]
    for name, have, known in (("app", args.apps, APPS), ("mode", args.modes, MODES)):
        bad = [x for x in have if x not in known]
        if bad:
            p.error("unknown %s %s; known: %s" % (name, ", ".join(bad), ", ".join(known)))
    if args.quick:
        args.requests = QUICK_REQUESTS
    if args.dyno:
        args.modes = [m for m in args.modes if m != "gunicorn"]
    return args


def run_app(app, args):
    spec = APPS[app]
    data_dir = os.path.join(args.logdir, app)
    os.makedirs(data_dir)
    cookie = seed(app, spec, args, data_dir)
    results = []
    for mode in args.modes:
        print("%s %s ..." % (app, mode), file=sys.stderr, flush=True)
        if args.dyno and mode != "gunicorn":
            from memdyno import run_in_dyno
            results.append(run_in_dyno(run_mode, app, spec, mode, args, data_dir, cookie))
        else:
            results.append(run_mode(app, spec, mode, args, data_dir, cookie))
    return results


def main(argv=None):
    args = parse_args(argv)
    check_needs(args)
    if not args.apps:
        sys.exit("no app to measure (see the lines above)")
    args.gunicorn_flags = gunicorn_flags(args.python) if "gunicorn" in args.modes else []
    args.logdir = tempfile.mkdtemp(prefix="pyfork-memory-")
    args.started = []
    report = {"workers": args.workers, "requests": args.requests, "refork_after": args.refork_after,
              "python": args.python, "apps": {}}
    try:
        for app in args.apps:
            report["apps"][app] = run_app(app, args)
            print(table(app, report["apps"][app], args) + "\n", flush=True)
            if args.dyno:
                from memdyno import dyno_table
                print(dyno_table(app, report["apps"][app], args) + "\n", flush=True)
    finally:
        for server in args.started:
            server.stop()
        left = [p for server in args.started for p in server.leftovers()]
        if args.keep_logs:
            print("logs and databases kept in %s" % args.logdir, file=sys.stderr)
        else:
            shutil.rmtree(args.logdir, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)
    if left:
        print("processes left running: %s" % ", ".join(left), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
