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
    own_group(pid)      # in the parent too: whichever runs first, no signal finds it half-made
    signal.pthread_sigmask(signal.SIG_UNBLOCK, MASTER)
    plan.spawned(master.table, nr, pid, cell, now)
    master.log.debug("worker=%d pid=%d spawned", nr, pid)


def own_group(pid):
    """Make `pid` (0: this process) lead a process group of its own, so that what the app
    starts can be found and ended after the worker dies (sweep.py).

    The hazard is what else is sent to groups. A terminal's Ctrl-C (SIGINT), Ctrl-\\ and
    Ctrl-Z reach the foreground group, now the master's alone: the master passes INT on
    to each worker's group (plan.stop's quick stop), TERM to each worker; Ctrl-Z stops
    the master only (its workers serve on; the stall guard forgives the stop). `kill --
    -PGID` by a process manager (foreman, honcho) reaches the master, which passes it on.
    Heroku, Docker and Kubernetes signal processes, not groups (Heroku: every process of
    the dyno, each in whatever group it is). A background group that writes to the terminal
    under `stty tostop` gets SIGTTOU: workers ignore it (signals.py), so the write goes on."""
    try:
        os.setpgid(pid, 0)
    except (PermissionError, ProcessLookupError):
        pass      # EACCES: the child already ran on and made it; ESRCH: it is gone already


def child(master, nr, cell):
    """After fork, in the worker. Never returns: the master's stack must not unwind here."""
    try:
        own_group(0)
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
