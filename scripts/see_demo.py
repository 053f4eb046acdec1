#!/usr/bin/env python3
"""A real run to look at: pyfork in a standard-1x dyno (scripts/dyno.py) with a leaking
worker, a request stuck past --timeout, --max-requests recycles and, with the memory
guard off, an OOM kill; `pyfork status` taken along the way, then `pyfork report` of the
log and a screenshot of it in headless Chromium.

    python scripts/see_demo.py --out /tmp/see-demo [--seconds 150] [--leak-mb 16]

Writes OUT/pyfork.log, OUT/status-*.txt (the table at moments of the run), OUT/status-end.json,
OUT/report.html and OUT/report.png (README's picture). Needs root (for the cgroups) and
Debian's chromium for the PNG.
"""
import argparse
import os
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dyno import Dyno  # noqa: E402
from ports import free_port  # noqa: E402

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def get(port, path, timeout=10):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status
    except Exception:   # noqa: BLE001 - a request cut short by a kill counts as failed
        return None


def hammer(port, path, per_second, stop, results):
    while not stop.is_set():
        results.append(get(port, path))
        time.sleep(1.0 / per_second)


def status(out, sock, name):
    text = subprocess.run([sys.executable, "-m", "supervisor", "status", "--control-socket", sock],
                          capture_output=True, text=True).stdout
    with open(os.path.join(out, name), "w") as f:
        f.write(text)
    return text


def run(args, port, mport, sock, log_path):
    """The run itself, in the dyno: load, the moments taken with `pyfork status`."""
    cmd = [sys.executable, "-m", "supervisor", "run", "leaky_app:app", "-w", "4", "-b", "127.0.0.1:%d" % port,
           "--timeout", "3", "--max-requests", "300", "--metrics-interval", "2", "--memory-pressure", "0",
           "--control-socket", sock, "--metrics-bind", "127.0.0.1:%d" % mport]
    with Dyno(size="standard-1x") as dyno, open(log_path, "w") as log:
        proc = dyno.run(cmd, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 15
            while get(port, "/ok") != 200 and time.time() < deadline:
                time.sleep(0.1)
            stop, ok, leak = threading.Event(), [], []
            threads = [threading.Thread(target=hammer, args=(port, "/ok", 20, stop, ok)),
                       threading.Thread(target=hammer, args=(port, "/hog?mb=%g&add=1" % args.leak_mb, 3, stop, leak))]
            # first a request stuck past --timeout, then the leak (--leak-mb a request) until the
            # kernel kills; --max-requests 300 recycles the workers the leak has not reached
            moments = [(5, lambda: threading.Thread(target=get, args=(port, "/sleep?s=30", 40)).start()),
                       (7, lambda: status(args.out, sock, "status-stuck.txt")),
                       (15, threads[1].start),
                       (40, lambda: status(args.out, sock, "status-leaking.txt"))]
            threads[0].start()
            start = time.time()
            while time.time() - start < args.seconds:
                while moments and time.time() - start > moments[0][0]:
                    moments.pop(0)[1]()
                time.sleep(0.5)
            stop.set()
            for t in threads:
                if t.is_alive():
                    t.join(15)
            status(args.out, sock, "status-end.txt")
            with open(os.path.join(args.out, "status-end.json"), "w") as f:
                f.write(subprocess.run([sys.executable, "-m", "supervisor", "status", "--control-socket", sock,
                                        "--json"], capture_output=True, text=True).stdout)
            print("requests: ok=%d/%d leak=%d/%d; dyno: %s" % (
                ok.count(200), len(ok), leak.count(200), len(leak), dyno.report()))
        finally:
            proc.terminate()
            proc.wait(40)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--leak-mb", type=float, default=16, help="MB each leaking request keeps (3 a second)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, "pyfork.log")
    run(args, free_port(), free_port(), os.path.join(args.out, "ctl.sock"), log_path)
    html = os.path.join(args.out, "report.html")
    with open(html, "w") as f:
        subprocess.run([sys.executable, "-m", "supervisor", "report", log_path], stdout=f, check=True)
    png = os.path.join(args.out, "report.png")
    subprocess.run(["chromium"] + CHROMIUM_FLAGS + ["--user-data-dir=" + os.path.join(args.out, "chromium"),
                    "--window-size=1100,1480", "--screenshot=" + png, "file://" + html],
                   capture_output=True, timeout=120)
    print("wrote", html, png)


if __name__ == "__main__":
    main()
