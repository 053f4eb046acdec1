"""A request past --timeout, in the worker: its 504, the worker's recycle after it, and
the app's own `environ["pyfork.extend_timeout"](seconds)`.

The master judges the timeout (supervise/plan.py, with its stall guard) and sends
SIGUSR2. The worker answers only a request that is past its deadline by its own clock
too (never earlier than the master: its clock counts what the master forgave, not less),
so a stray or late signal changes nothing.

- Without threads, the app runs in the main thread: the signal's Python handler raises
  RequestTimeout there, if the main thread is inside Responder.serve (the app's call or
  its body's iteration). It surfaces from time.sleep, a socket wait or any Python code;
  serve() logs its traceback and answers 504. An app stuck in C code never lets the
  handler run: the master's grace runs out and it aborts the worker as before.
- With threads, the loop owns the sockets: it writes the 504 itself while the app thread
  is still stuck (threads.answer_504), and logs every thread's stack.

Either way the worker then stops taking requests, finishes the ones it has, and says so
in its heartbeat cell (heartbeat.TIMED_OUT); the master starts its replacement at once.
The request that hung is never retried.
"""
import faulthandler
import threading
import time

from .. import hooks
from ..supervise import heartbeat
from .respond import RequestTimeout, Responder
from .fileparts import in_order
from .threads import rearm
from .wsgi import error_response

SERVE = Responder.serve.__code__
SLACK = 0.05            # seconds: the worker's clock, read a moment before the master's
MAX_EXTENSION = 10      # a request may run at most this many times --timeout, extended or not


def raise_in_app(w, frame):
    """The SIGUSR2 handler of a worker without threads: raise RequestTimeout where the app is."""
    timeout = w.cfg.timeout
    if w.timed_out or not timeout:
        return          # raised once already: if the app swallows it, the master aborts the worker
    meter = w.meter
    now = time.monotonic()
    ran = now - meter.times[meter.at]
    if not meter.counts[meter.at - 1] or ran < timeout - SLACK:
        return          # no request in progress, or it is not late by our clock: it just ended
    f = frame
    while f is not None and f.f_code is not SERVE:
        f = f.f_back
    if f is None:
        return          # the loop, between requests
    w.timed_out = ran
    w.due = 0.0         # the loop's end_turn recycles the worker once the 504 is out
    raise RequestTimeout("the request ran %.1fs, past --timeout %g" % (ran, timeout))


def answer_threads(w, now):
    """With threads, from the loop: answer 504 to every request in a thread past its deadline
    (one whose client left already counts too: its thread is stuck all the same). The first
    time, log every thread's stack (where the stuck one is)."""
    timeout = w.cfg.timeout
    if not timeout:
        return
    late = {key: entry for key, entry in list(w.meter.starts.items())
            if now - entry[0] >= timeout - SLACK and entry not in w.answered}
    if not late:
        return
    starts = w.meter.starts
    for conn in list(w.conns.values()):
        key = conn.key
        if conn.running and key in late and starts.get(key) is late[key]:   # that request, not its thread's next
            answer_504(conn)
            rearm(w, conn)
    w.answered = set(late.values()) | (w.answered & set(w.meter.starts.values()))
    named = ", ".join("%s after %.1fs" % (entry[1].decode("latin-1"), now - entry[0]) for entry in late.values())
    if w.timed_out:
        w.log.warning("worker=%d pid=%d: answered 504 to %s (--timeout %g)", w.slot, w.pid, named, timeout)
        return
    w.timed_out = max(now - entry[0] for entry in late.values())
    w.log.warning("worker=%d pid=%d: answered 504 to %s (--timeout %g); its threads' stacks follow",
                  w.slot, w.pid, named, timeout)
    w.log.stream.flush()
    faulthandler.dump_traceback(file=w.log.stream, all_threads=True)


def answer_504(conn):
    """From the loop: the request in a thread passed --timeout. Its client gets 504 now and
    the connection closes once it is out (cut, if the response had begun); what the stuck
    thread hands later is dropped, and it still holds its thread (pool.inflight) until it ends."""
    with conn.pool.lock:
        conn.timed_out = True
        begun = getattr(conn, "sent", False)    # the head went out (or is on its way): too late for a 504
    conn.keep = False
    conn.queued.clear()
    conn.refusal = None
    conn.running = False       # the loop lets go of it; drain() counts the thread's end
    if begun:
        conn.close()
        return
    data = error_response(504)
    if conn.later is None:       # after what a response before it left unsent, in order
        conn.unsent = memoryview(data) if conn.unsent is None else memoryview(bytes(conn.unsent) + data)
    else:
        conn.unsent, conn.later = in_order(conn.unsent, conn.later, [data])
    conn.on_writable()


def recycle(w):
    """After the 504: Gunicorn's worker_abort hook, no new requests, the cell says TIMED_OUT
    (the master starts a replacement at once), the requests in hand finish."""
    hooks.call(w.cfg.hooks, w.log, "worker_abort", w)
    busy = w.meter.busy() if w.pool is not None else 0
    w.log.warning("worker=%d pid=%d: recycling after a timeout: no new requests%s",
                  w.slot, w.pid, "; %d other request%s in progress finish within --graceful-timeout %g" % (
                      busy - 1, "" if busy == 2 else "s", w.cfg.graceful_timeout) if busy > 1 else "")
    w.flags |= heartbeat.TIMED_OUT
    w.stop()
    w.wake_master()


def extend(w, seconds):
    """environ["pyfork.extend_timeout"](seconds): the calling request's deadline becomes
    at least `seconds` from now, never more than MAX_EXTENSION x --timeout after its start.
    Moves the request's `since` in the heartbeat cell (the master counts from it). ->
    seconds left until its deadline, or None (no --timeout, or called outside a request)."""
    timeout = w.cfg.timeout
    if not timeout:
        return None
    meter = w.meter
    now = time.monotonic()
    if w.pool is None:
        key, since, token = 0, meter.times[meter.at], meter.requests   # one request at a time
    else:
        key = threading.get_ident()
        token = meter.starts.get(key)
        if token is None:
            return None
        since = token[0]
    first = w.extended.get(key)
    start = first[0] if first is not None and first[1] == token else since
    cap = start + MAX_EXTENSION * timeout
    deadline = min(max(since + timeout, now + float(seconds)), cap)
    if deadline - timeout > since:
        if w.pool is None:
            meter.times[meter.at] = deadline - timeout
        else:
            with meter.lock:
                if meter.starts.get(key) is token:
                    token = meter.starts[key] = (deadline - timeout, token[1])
                    meter._write_work()
    w.extended[key] = (start, token)
    w.log.debug("worker=%d pid=%d: %s extended its timeout: deadline in %.1fs (asked %gs; at most %gs from its start)",
                w.slot, w.pid, w.beats.get(w.cell).what or "a request", deadline - now, seconds,
                MAX_EXTENSION * timeout)
    return deadline - now
