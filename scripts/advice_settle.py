#!/usr/bin/env python3
"""How often the worker-count advice moves in a run under light load (issue 26's target: at
most once after the first 10 s of a 60 s run).

Starts pyfork (-w auto, --metrics-interval 2) on a Flask app (tests/apps/http_flask.py),
sends light keep-alive load from 3 clients (about 10 requests a second in all), then reads
the log: the advice each sample said (`sample#workers_advised`, one tasks line per sample)
and the worker count -w auto set.

    python scripts/advice_settle.py [--seconds 60] [--interval 2] [--pythonpath DIR]
        [--app MODULE:NAME --paths /a,/b --env KEY=VALUE]

--pythonpath: import pyfork from DIR (e.g. an export of main) instead of this checkout.
"""
import argparse
import http.client
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from ports import free_port  # noqa: E402


def load(port, stop, rate, paths):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    i = 0
    while not stop.is_set():
        try:
            c.request("GET", paths[i % len(paths)])
            c.getresponse().read()
        except (OSError, http.client.HTTPException):
            c.close()
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        i += 1
        stop.wait(1.0 / rate)
    c.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--interval", type=float, default=2)
    p.add_argument("--pythonpath", default=ROOT)
    p.add_argument("--app", default="http_flask:app", help="MODULE:NAME in tests/apps (default http_flask:app)")
    p.add_argument("--paths", default="/pid,/users/1/ann?q=x", help="the paths the clients cycle, comma separated")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for the server, repeatable")
    args = p.parse_args()
    port = free_port()
    apps = os.path.join(ROOT, "tests", "apps")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.pythonpath, apps]))
    env.pop("WEB_CONCURRENCY", None)
    env.update(kv.split("=", 1) for kv in args.env)
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run", args.app, "-b",
                                 "127.0.0.1:%d" % port, "-w", "auto", "--max-workers", "12",
                                 "--metrics-interval", str(args.interval)],
                                cwd=apps, env=env, stdout=log, stderr=subprocess.STDOUT)
        stop = threading.Event()
        try:
            time.sleep(1.5)
            clients = [threading.Thread(target=load, args=(port, stop, 10 / 3, args.paths.split(","))) for _ in range(3)]
            for c in clients:
                c.start()
            time.sleep(args.seconds)
        finally:
            stop.set()
            proc.terminate()
            proc.wait(30)
        log.seek(0)
        text = log.read()
    advised = [int(a) if a else None for a in
               re.findall(r"sample#workers=\d+(?: sample#workers_configured=\d+)?(?: sample#workers_advised=(\d+))?", text)]
    settle_at = int(10 / args.interval)
    later = advised[settle_at:]
    changes = sum(1 for a, b in zip(later, later[1:]) if a != b)
    auto = re.findall(r"-w auto: workers (\d+) -> (\d+)", text)
    print("advised per sample (every %gs): %s" % (args.interval, " ".join(str(a) if a else "-" for a in advised)))
    print("changes after the first 10 s: %d; -w auto moves: %s" % (
        changes, ", ".join("%s->%s" % m for m in auto) or "none"))
    said = [x for x in text.splitlines() if "set WEB_CONCURRENCY=" in x and "running " not in x]
    print("advice lines logged: %d (issue 27: at most 3 in 60 s)" % len(said))
    return 0


if __name__ == "__main__":
    sys.exit(main())
