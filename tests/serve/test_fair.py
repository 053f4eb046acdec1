"""Fair order under load, end to end (issue 9): a worker saturated by requests that wait
serves new connections in about the order they arrived, not after every keep-alive
connection it holds has had its fill.

Keep-alive clients ("hogs") ask for /wait?0.05 back to back on one connection each, so
the worker always has a held connection ready. Then several new clients arrive at once,
asking for an instant answer. First come, first served, each waits at most for the hogs'
requests already in line: hogs x 0.05 s / threads. The bound checked is twice that plus
0.1 s. A threaded worker that kept serving its held connections left the newcomers in the
listen queue until the hogs stopped (2.6 s, measured with shedding turned off); without
threads the loop's 10 ms slice lets the listener in (0.26 s here, 0.71 s with both the
slice and shedding off). Either way the hogs must have been told "Connection: close"
while the worker was saturated: that is how they go back to the shared listen queue.
"""
import concurrent.futures
import http.client
import threading
import time

import pytest

pytestmark = pytest.mark.slow    # seconds of held connections per case: in .ci/run's second command

APP = "thread_apps:app"
WAIT = 0.05
HOGS_FOR = 3.0       # seconds the hogs keep the worker saturated


def hog(port, stop_at, seen):
    conn = None
    while time.monotonic() < stop_at:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/wait?%g" % WAIT)
        r = conn.getresponse()
        r.read()
        seen.append((r.status, r.getheader("Connection")))
        if r.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def newcomer(port):
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/new")
        r = conn.getresponse()
        r.read()
        return r.status, time.monotonic() - t0
    finally:
        conn.close()


@pytest.mark.parametrize("threads,hogs,newcomers", [(1, 6, 6), (2, 6, 4)])
def test_new_connections_are_not_starved_by_held_ones(server, threads, hogs, newcomers):
    s = server(APP, "--threads", str(threads))
    seen = []
    stop_at = time.monotonic() + HOGS_FOR
    hog_threads = [threading.Thread(target=hog, args=(s.port, stop_at, seen)) for _ in range(hogs)]
    for t in hog_threads:
        t.start()
    try:
        time.sleep(0.5)                 # the worker is saturated by the held connections
        with concurrent.futures.ThreadPoolExecutor(newcomers) as ex:
            results = list(ex.map(lambda _: newcomer(s.port), range(newcomers)))
    finally:
        for t in hog_threads:
            t.join(15)
    assert [status for status, _ in results] == [200] * newcomers
    slowest = max(took for _, took in results)
    fcfs = hogs * WAIT / threads        # 0.3 s with one thread, 0.15 s with two
    assert slowest < 2 * fcfs + 0.1, (slowest, results)
    assert seen and all(status == 200 for status, _ in seen)
    assert ("close" in {(c or "").lower() for _, c in seen}), "saturated, the worker never said Connection: close"
