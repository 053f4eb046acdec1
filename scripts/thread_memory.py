#!/usr/bin/env python3
"""What app threads cost in memory: PSS, USS and RSS per worker with --threads 1, 4 and 16.

pyfork serves scripts/waiting.py (requests wait 20 ms, so concurrent requests really
occupy every thread) with 2 workers; 64 concurrent requests go to each server first, so
every thread has run the app at least once, then psutil reads each worker's
/proc/PID/smaps_rollup. Servers are started and stopped one at a time, by PID.

    python scripts/thread_memory.py [--threads 1,4,16]
"""
import argparse
import concurrent.futures
import http.client
import os
import subprocess
import sys
import time

import psutil

from ports import free_port

HERE = os.path.dirname(os.path.abspath(__file__))


def get(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", "/")
        return c.getresponse().status
    except OSError:
        return None
    finally:
        c.close()


def measure(threads, workers=2):
    port = free_port("127.0.0.1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYFORK_") and k != "WEB_CONCURRENCY"}
    env["PYTHONPATH"] = HERE
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "run", "waiting:app", "-w", str(workers),
                             "--threads", str(threads), "-b", "127.0.0.1:%d" % port],
                            cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        master = psutil.Process(proc.pid)
        deadline = time.monotonic() + 20
        while get(port) != 200 or len(master.children()) < workers:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("pyfork --threads %d did not start" % threads)
            time.sleep(0.05)
        with concurrent.futures.ThreadPoolExecutor(64) as ex:
            statuses = list(ex.map(lambda _: get(port), range(256)))
        assert statuses.count(200) == 256, statuses
        time.sleep(0.5)
        rows = []
        for w in master.children():
            m = w.memory_full_info()
            rows.append((w.pid, w.num_threads(), m.pss / 2**20, m.uss / 2**20, m.rss / 2**20))
        return rows
    finally:
        proc.terminate()
        proc.wait(15)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,4,16")
    args = p.parse_args()
    print("| --threads | OS threads per worker | PSS MB per worker | USS MB | RSS MB |")
    print("|---:|---:|---:|---:|---:|")
    for n in (int(t) for t in args.threads.split(",")):
        rows = measure(n)
        avg = [sum(r[i] for r in rows) / len(rows) for i in range(1, 5)]
        print("| %d | %.0f | %.1f | %.1f | %.1f |" % (n, *avg))


if __name__ == "__main__":
    main()
