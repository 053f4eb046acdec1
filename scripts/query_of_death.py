#!/usr/bin/env python3
"""Issue 11's targets, measured: a request that kills its worker (sup_apps:query_of_death),
for 10 s with 1 and with 4 workers: restarts a second in all and for the busiest slot, how
soon /health is answered after the last /crash, and with 4 workers the share of other
requests answered while one in ten is a /crash. Real processes (tests/conftest.py's Server).

    python scripts/query_of_death.py [WORKERS ...]      (default: 1 4)
"""
import os, re, sys, threading, time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "tests", "supervise"))
from conftest import Server
from test_restarts import ask, crash_for, answered_within

DIED = re.compile(r"worker=(\d+) pid=\d+ died \(")


def mixed(port, seconds, clients=4):
    results, lock, stop = [], threading.Lock(), threading.Event()
    counter = iter(range(10 ** 7))

    def client():
        while not stop.is_set():
            with lock:
                n = next(counter)
            path = "/crash" if n % 10 == 9 else "/health"
            st = ask(port, path)
            with lock:
                results.append((path, st))
    ts = [threading.Thread(target=client) for _ in range(clients)]
    [t.start() for t in ts]
    time.sleep(seconds)
    stop.set()
    [t.join(10) for t in ts]
    others = [st for p, st in results if p == "/health"]
    return sum(1 for st in others if st == 200), len(others), sum(1 for p, _ in results if p == "/crash")


for workers in [int(w) for w in sys.argv[1:]] or (1, 4):
    s = Server("sup_apps:query_of_death", workers=workers)
    try:
        if workers == 4:
            ok, n, crashes = mixed(s.port, 10.0)
            print("workers=4 one in ten /crash for 10 s: %d/%d others answered (%.1f%%), %d crashes"
                  % (ok, n, 100.0 * ok / n, crashes))
        before = len(DIED.findall(s.log()))
        per0 = {}
        for slot in DIED.findall(s.log()):
            per0[slot] = per0.get(slot, 0) + 1
        sent = crash_for(s.port, 10.0)
        took = answered_within(s.port, 5.0)
        per = {}
        for slot in DIED.findall(s.log()):
            per[slot] = per.get(slot, 0) + 1
        per = {k: v - per0.get(k, 0) for k, v in per.items()}
        total = sum(per.values())
        print("workers=%d every request /crash for 10 s: %d sent, %d restarts (%.2f/s in all, "
              "%.2f/s for the busiest slot); /health answered %.2f s after the last /crash"
              % (workers, sent, total, total / 10.0, max(per.values()) / 10.0, took if took else -1))
    finally:
        s.stop()
        s.close()
