"""--threads N, end to end: the real pyfork, real sockets, real signals (issue 9).

The loop reads and writes the sockets; N app threads call the app. Checked: requests that
wait run together; pipelined requests come back in order; a graceful TERM answers every
request in progress; max_requests counts every thread; hooks run in the serving thread;
the access log keeps whole lines; wsgi.multithread says so; a stuck thread's request gets
504 at --timeout, with every thread's stack logged, and the worker is replaced (issue 24).
"""
import concurrent.futures
import json
import re
import socket
import signal
import time

from conftest import get, raw, wait_for

APP = "thread_apps:app"


def timed_get(port, path, timeout=10.0):
    t0 = time.monotonic()
    status, _, body = get(port, path, timeout=timeout)
    return status, body, time.monotonic() - t0


def in_parallel(port, paths, timeout=10.0):
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as ex:
        return list(ex.map(lambda p: timed_get(port, p, timeout), paths))


def test_requests_that_wait_run_together(server):
    s = server(APP, "--threads", "8")
    t0 = time.monotonic()
    results = in_parallel(s.port, ["/wait?0.2"] * 8)
    took = time.monotonic() - t0
    assert [r[0] for r in results] == [200] * 8
    assert len({r[1] for r in results}) == 1          # one worker answered them all
    # one at a time would take 1.6 s; together about 0.2 s (generous bound for a busy machine)
    assert took < 0.8, took


def test_wsgi_multithread_is_set(server):
    threaded = server(APP, "--threads", "4")
    assert json.loads(get(threaded.port, "/env")[2]) == {"wsgi.multithread": True, "wsgi.multiprocess": True}
    one = server(APP, "-k", "gthread")          # Gunicorn's gthread with its default of 1 thread
    assert json.loads(get(one.port, "/env")[2]) == {"wsgi.multithread": False, "wsgi.multiprocess": True}
    assert get(one.port, "/thread")[2] == b"MainThread"     # threads=1: no thread started


def test_pipelined_requests_answered_in_order(server):
    s = server(APP, "--threads", "4")
    paths = ["/wait?0.3", "/a", "/wait?0.1", "/b", "/c"]
    data = b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % p.encode() for p in paths)
    data += b"GET /last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    out = raw(s.port, data, timeout=10)
    bodies = re.findall(rb"\r\n\r\n(/[a-z]+)", out)
    assert bodies == [b"/wait", b"/a", b"/wait", b"/b", b"/c", b"/last"], out


def test_nothing_pipelined_behind_a_closing_request_is_answered(server):
    s = server(APP, "--threads", "4")
    data = (b"GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: t\r\nX-A: 1\r\n\r\n")
    out = raw(s.port, data, timeout=10)
    assert re.findall(rb"\r\n\r\n(/[a-z]+)", out) == [b"/a"], out
    assert out.count(b"HTTP/1.1 ") == 1, out


def test_graceful_term_answers_every_request_in_progress(server):
    s = server(APP, "--threads", "4")
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        futures = [ex.submit(timed_get, s.port, "/wait?0.8") for _ in range(4)]
        time.sleep(0.3)                     # all four are in the app now
        s.signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert [r[0] for r in results] == [200] * 4
    assert s.proc.wait(10) == 0
    s.assert_nothing_left()


def test_max_requests_counts_every_thread(server):
    s = server(APP, "--threads", "4", "--max-requests", "12")
    first = s.worker_pids()
    results = in_parallel(s.port, ["/wait?0.05"] * 12)
    assert [r[0] for r in results] == [200] * 12
    assert s.wait_log("reached max_requests=12: restarting")
    assert wait_for(lambda: s.worker_pids() and s.worker_pids() != first)


HOOKS = '''\
import os
import threading

def pre_request(worker, req):
    req.seen = threading.get_ident()
    os.write(1, b"pre %s %d\\n" % (req.uri.encode(), threading.get_ident()))     # one write: whole lines

def post_request(worker, req, environ, resp):
    same = req.seen == threading.get_ident()
    os.write(1, b"post %s %d %s\\n" % (req.uri.encode(), threading.get_ident(), str(same).encode()))
'''


def test_hooks_run_in_the_serving_thread(server, tmp_path):
    conf = tmp_path / "hooks.conf.py"
    conf.write_text(HOOKS)
    s = server(APP, "--threads", "4", "-c", str(conf))
    paths = ["/wait?0.%d" % i for i in range(1, 9)]
    assert [r[0] for r in in_parallel(s.port, paths)] == [200] * 8
    assert s.wait_log("post ", count=8)
    pre = dict(re.findall(r"^pre (\S+) (\d+)$", s.log(), re.M))
    post = re.findall(r"^post (\S+) (\d+) (\w+)$", s.log(), re.M)
    assert len(pre) == len(post) == 8
    for path, ident, same in post:
        assert same == "True" and pre[path] == ident
    assert len(set(pre.values())) > 1         # more than one thread served them


def test_access_log_whole_lines_under_8_threads(server, tmp_path):
    access = tmp_path / "access.log"
    s = server(APP, "--threads", "8", "--access-logfile", str(access))
    paths = ["/p%d-%s" % (i, "x" * (i % 7) * 40) for i in range(160)]
    assert [r[0] for r in in_parallel(s.port, paths[:80])] == [200] * 80
    assert [r[0] for r in in_parallel(s.port, paths[80:])] == [200] * 80
    assert s.stop() == 0
    lines = access.read_text().splitlines()
    assert len(lines) == 160
    line = re.compile(r'^127\.0\.0\.1 - - \[[^\]]+\] "GET (/p\d+-x*) HTTP/1\.1" 200 \d+ "-" "[^"]*"$')
    assert sorted(line.match(ln).group(1) for ln in lines) == sorted(paths)


def test_a_stuck_thread_gets_504_and_the_worker_is_replaced_with_its_stack_logged(server):
    s = server(APP, "--threads", "4", "--timeout", "2")
    worker = s.worker_pids()[0]
    hung = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    hung.sendall(b"GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
    time.sleep(0.2)
    # the loop keeps beating, yet the master counts from the start of the stuck request
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        slow = ex.submit(timed_get, s.port, "/wait?3", 15)
        assert get(s.port, "/fast")[0] == 200         # the other threads still serve meanwhile
        status = slow.result()[0]
    assert status == 504             # issue 24: past its own deadline in the leaving worker: 504 too
    assert hung.recv(65536).startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")   # the stuck one, at once
    hung.close()
    assert s.wait_log("in stuck_in_this_thread", timeout=10), s.log()
    assert wait_for(lambda: s.worker_pids() and worker not in s.worker_pids())
    assert "SIGABRT" not in s.log()
