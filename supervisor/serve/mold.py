"""The refork template, the worker's side (--refork-after; the master's side is
supervise/reforking.py, the rules supervise/refork.py).

A worker told to become the template (SIGURG) finishes its requests and stops taking new
ones, keeping the listeners. Then it checks what it holds, like --preload's check: a
Python thread other than its own (an APM agent's, say: it would not exist in the workers
it forks, and a lock it held would stay held there) or a child process refuses the
template. So does a socket other than the listeners (a database connection kept from a
request) unless the config file has `post_refork`, the app's place to reopen it: in
each forked worker such a socket is replaced by a closed one (its fd number stays taken,
so a library writing to it gets an error, never another connection's bytes).

Ready, the template runs gc.collect() and gc.freeze() (what it built while serving is
shared and never touched by the collector), says "ready" and waits for requests. For each
it forks twice: the worker for the slot is reparented to the master, and its pid goes
back up the pipe. The template exits on SIGTERM or when the master is gone.
"""
import gc
import os
import select
import signal
import socket

from .. import exits
from ..supervise import preload
from ..supervise.signals import MASTER, WORKER, Command
from .worker import Worker, live

REPARENT_WITHIN = 2.0    # seconds a forked worker waits to become the master's child


def become(worker):
    """After serve() returned in a worker told to become the template. -> exit code."""
    req, rep = worker.refork_fds
    worker.ep.close()
    listeners = [sock for sock, _ in worker.listeners]
    held = preload.hazards({}, {sock.fileno() for sock in listeners})
    sockets = [h for h in held if h.kind is preload.Kind.SOCKET]
    refusal = refused(held, "post_refork" in worker.cfg.hooks)
    if refusal:
        worker.log.error("refork: worker=%d pid=%d cannot be the template: %s", worker.slot, os.getpid(), refusal)
        return exits.REFORK_REFUSED
    if sockets:
        worker.log.info("refork: the template's %s: closed in each worker forked from it; post_refork reopens them",
                        preload.listed([h.what for h in sockets]))
    gc.collect()
    gc.freeze()
    answer(rep, b"ready\n")
    return serve_forks(worker, req, rep, listeners, [socket_fd(h) for h in sockets])


def refused(held, can_reopen):
    """Why these holdings refuse a template, or '' (pure)."""
    shared = [h for h in held if h.kind in (preload.Kind.THREAD, preload.Kind.CHILD)]
    sockets = [h for h in held if h.kind is preload.Kind.SOCKET]
    if not can_reopen:
        shared += sockets
    if not shared:
        return ""
    why = "it holds %s, which the workers forked from it would share" % preload.listed([h.what for h in shared])
    if sockets and not can_reopen:
        why += "; close sockets after each request, or reopen them in a post_refork(server, worker) hook"
    if any(h.kind is preload.Kind.THREAD for h in shared):
        why += "; start threads in post_fork and post_refork"
    return why + ". Reforking is off for this run"


def socket_fd(held):
    """'a socket to 127.0.0.1:5432 (fd 7)' -> 7"""
    return int(held.what.rsplit("(fd ", 1)[1].rstrip(")"))


def answer(rep, data):
    try:
        os.write(rep, data)
    except OSError:
        pass      # the master is gone: the next look at the parent ends us


def serve_forks(worker, req, rep, listeners, sockets):
    """Fork a worker for each request until told to stop. -> exit code."""
    poller = select.poll()
    poller.register(req, select.POLLIN)
    poller.register(worker.signals.r, select.POLLIN)
    while True:
        for fd, _ in poller.poll(1000):
            if fd == worker.signals.r:
                if any(c in (Command.STOP, Command.QUICK_STOP) for c in worker.signals.commands()):
                    return exits.OK
            else:
                line = os.read(req, 64).split()
                if len(line) == 2 and all(p.isdigit() for p in line):
                    fork_worker(worker, int(line[0]), int(line[1]), rep, listeners, sockets)
        if os.getppid() != worker.ppid:
            return exits.OK          # the master is gone


def fork_worker(worker, nr, cell, rep, listeners, sockets):
    """Fork twice: the grandchild serves slot `nr` as the master's child; its pid goes up."""
    blocked = set(MASTER) | set(WORKER)    # a signal meant for the new worker must not reach our pipe
    signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        middle = os.fork()
        if middle == 0:
            try:
                pid = os.fork()
                if pid == 0:
                    reforked(worker, nr, cell, listeners, sockets)      # never returns
                answer(rep, b"%d\n" % pid)
            except BaseException:
                answer(rep, b"0\n")
            finally:
                os._exit(0)
    except OSError as exc:
        worker.log.error("refork: cannot fork worker=%d: %s", nr, exc.strerror)
        answer(rep, b"0\n")
        return
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
    os.waitpid(middle, 0)


def reforked(template, nr, cell, listeners, sockets):
    """In the worker forked for slot `nr`. Never returns."""
    try:
        os.setpgid(0, 0)      # a group of its own, as spawn.own_group gives every worker: not the template's,
        template.signals.close()      # whose leftovers are swept when it dies (supervise/sweep.py)
        waited = 0.0
        while os.getppid() != template.ppid:    # the middle process exits at once: then we are the master's
            if waited > REPARENT_WITHIN:
                os._exit(exits.ERROR)
            select.select([], [], [], 0.001)
            waited += 0.001
        for fd in sockets:
            dead, other = socket.socketpair()
            other.close()
            os.dup2(dead.fileno(), fd)
            dead.close()
        worker = Worker(template.cfg, nr, cell, listeners, template.app, template.beats, template.log,
                        template.ppid, template.ready_fd)
        worker.refork_fds = template.refork_fds
        worker.server = getattr(template, "server", None)
    except BaseException:
        template.log.exception("worker=%d: could not start from the template", nr)
        os._exit(exits.ERROR)
    live(worker, "post_refork")
