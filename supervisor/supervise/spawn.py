"""Forking a worker: the master's side (signals blocked across fork, the heartbeat cell,
the table told) and the child's first steps until the Worker runs. The child never
returns into the master's stack."""
import errno
import os
import signal

from . import deaths, heartbeat, notify, plan, reforking
from .. import exits, hooks
from ..hooks import WorkerInfo
from .privileges import drop_privileges
from .signals import MASTER
from ..serve.worker import Worker, live, mark_exiting


def spawn(master, nr, now):
    if reforking.holds(master):   # the template is getting ready: the slot waits for a warm worker
        plan.defer(master.table, nr, now + reforking.HOLD)     # its "ready" wakes the loop sooner
        return
    hooks.call(master.cfg.hooks, master.log, "pre_fork", master, WorkerInfo(nr, 0, master.log))
    if reforking.spawn(master, nr, now):
        return
    cell = master.heartbeat.take()
    master.heartbeat.set(cell, 0, heartbeat.BOOTING, now)
    # Block signals across fork: until the child has its own handlers and wake-up
    # pipe, a SIGTERM aimed at it would land in the master's pipe and be lost to it.
    # The child unblocks them (worker.py) once it can record them itself.
    signal.pthread_sigmask(signal.SIG_BLOCK, MASTER)
    try:
        pid = os.fork()
    except OSError as exc:
        # EAGAIN: the task limit (pids.max, RLIMIT_NPROC) is full; ENOMEM: no memory.
        # The master must live through it: try again later, with the slot's backoff.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
        master.heartbeat.give_back(cell)
        delay = deaths.fork_failed(master.table.slots[nr], now, master.rng.random())
        why = "the task limit is full: zombies or threads?" if exc.errno == errno.EAGAIN else "out of memory?"
        master.log.error("cannot fork worker=%d: %s (%s); retrying in %.2fs", nr, exc.strerror, why, delay)
        return
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
        raise
    if pid == 0:
        child(master, nr, cell)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
    plan.spawned(master.table, nr, pid, cell, now)
    master.log.debug("worker=%d pid=%d spawned", nr, pid)


def child(master, nr, cell):
    """After fork, in the worker. Never returns: the master's stack must not unwind here."""
    try:
        master.signals.close()
        os.close(master.ready_r)
        for server in master.servers():
            server.close_after_fork()           # not close(): that would cut the master's scrapes
        if master.notifier:
            master.notifier.close()
        for name in notify.SYSTEMD_ONLY:      # the app's own children are not systemd's business
            os.environ.pop(name, None)
        if master.ids:
            drop_privileges(*master.ids)
        worker = Worker(master.cfg, nr, cell, master.listeners, master.app, master.heartbeat, master.log,
                        master.pid, master.ready_w)
        worker.server = master      # for worker_exit when the worker ends itself (INT, abort)
        worker.refork_fds = master.channel.worker_ends() if master.channel else None
    except BaseException:
        master.log.exception("worker=%d crashed", nr)
        try:
            mark_exiting(master.heartbeat, cell)
        finally:
            os._exit(exits.ERROR)
    live(worker, "post_fork")
