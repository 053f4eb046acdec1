"""supervisor/serve/meter.py: what the request path writes into the heartbeat cell, read back
the way the master reads it (heartbeat.Heartbeat.get), on a real shared mapping."""
import threading

from supervisor.serve.meter import WHAT, Meter, what
from supervisor.supervise.heartbeat import READY, Heartbeat


def env(method, path):
    return {"REQUEST_METHOD": method, "PATH_INFO": path}


def test_what_names_method_and_path_cut_to_size():
    assert what("GET", "/items") == b"GET /items"
    assert what("POST", "/" + "x" * 100) == (b"POST /" + b"x" * 100)[:WHAT]
    assert what("GET", "/caf\xc3\xa9") == b"GET /caf\xc3\xa9"      # PATH_INFO is latin-1 text


def test_one_request_at_a_time():
    beats = Heartbeat(4)
    cell = beats.take()
    beats.set(cell, 123, READY, 5.0, 7, 1.5)
    m = Meter(beats.mem, cell)
    m.busy_seconds = 1.5
    m.requests = 7                       # the worker's count, as its ticks wrote it
    slow = ("GET", "/slow", "", "/slow")
    m.times[m.at] = 10.0                 # the loop's turn: no request of it starts after 10.0
    m.start(slow)
    b = beats.get(cell)
    assert (b.pid, b.state, b.beat, b.requests) == (123, READY, 5.0, 7)     # the tick part untouched
    assert (b.busy, b.since, b.what) == (1, 10.0, "GET /slow")
    assert m.line is slow                # the request path skips start() for this very line again
    m.times[m.at] = 11.0                 # the loop's next turn: the same request again needs no start()
    assert beats.get(cell)[5:] == (1, 11.0, "GET /slow")
    m.start(("POST", "/next", "", "/next"), 12.5)      # pipelined: its own clock read
    assert beats.get(cell)[5:] == (1, 12.5, "POST /next")      # never older than the request in progress
    m.settle(9)
    b = beats.get(cell)
    assert (b.busy, b.since, b.what) == (0, 0.0, "")
    assert (b.pid, b.state, b.requests) == (123, READY, 9)
    assert b.beat > 12.5 and b.busy_seconds == m.busy_seconds == 1.5         # the beat refreshed at the end
    assert m.line is None                # after settling, the next request names itself again


def test_threads_report_the_oldest_request_in_progress():
    beats = Heartbeat(4)
    cell = beats.take()
    m = Meter(beats.mem, cell)
    t_a = m.thread_start("a", env("GET", "/a"))
    t_b = m.thread_start("b", env("POST", "/b"))
    assert beats.get(cell)[5:] == (2, t_a, "GET /a")
    m.thread_end("a", t_a)
    assert beats.get(cell)[5:] == (1, t_b, "POST /b")
    assert m.busy() == 1
    m.thread_end("b", t_b)
    assert beats.get(cell)[5:] == (0, 0.0, "")
    assert m.busy_seconds > 0


def test_threads_write_whole_records():
    beats = Heartbeat(4)
    cell = beats.take()
    m = Meter(beats.mem, cell)

    def serve(name):
        for _ in range(2000):
            m.thread_end(name, m.thread_start(name, env("GET", "/" + name)))
    threads = [threading.Thread(target=serve, args=("t%d" % i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert beats.get(cell)[5:] == (0, 0.0, "") and m.busy() == 0


def test_the_count_reaches_the_cell_without_a_tick_or_an_idle_loop():
    """A death line reads the cell's count: a worker that never went idle has it there too
    (start() writes it; with threads, answered(); the loop writes it each turn)."""
    beats = Heartbeat(4)
    cell = beats.take()
    beats.set(cell, 123, READY, 5.0)
    m = Meter(beats.mem, cell)
    m.requests = 30                      # answered since the last tick
    m.start(("GET", "/hang", "", "/hang"), 6.0)
    assert beats.get(cell).requests == 30 and beats.get(cell).what == "GET /hang"
    m.answered(2)
    assert beats.get(cell).requests == 32 == m.requests
