"""What the master does on HUP and USR2: re-read the configuration and replace the
workers, or re-exec a fresh pyfork in place handing the listeners over."""
import dataclasses
import os
import signal
import sys

from . import plan, recycle
from .. import hooks
from ..config import AUTO, ConfigError
from ..log import Log
from .listeners import hand_over


def reload(master, now):
    """HUP: re-read the configuration (flags and environment as at start, the config
    file afresh), then replace every worker, each new one ready before its old one
    stops. New workers import the app afresh unless it was preloaded."""
    if master.reload_config is not None:
        try:
            cfg, _, notes = master.reload_config()
        except ConfigError as exc:
            master.log.error("reload: %s; keeping the configuration in use", exc)
        else:
            use_config(master, cfg, notes)
    hooks.call(master.cfg.hooks, master.log, "on_reload", master)
    if master.notifier:
        master.notifier.reloading(master.status)
    master.waiting_ready = True
    for slot in master.table.slots:
        if slot.pid:
            master.see.reloaded(slot.nr, slot.pid)
    plan.reload(master.table, now)


def use_config(master, cfg, notes):
    for note in notes:
        master.log.warning("%s", note)
    if cfg.bind != master.cfg.bind:
        master.log.warning("reload: a change of bind needs a restart or USR2; listening as before")
    logs = ("error_logfile", "loglevel", "access_logfile", "access_logformat", "metrics_log")
    if any(getattr(cfg, n) != getattr(master.cfg, n) for n in logs):
        new_log(master, cfg)
    master.cfg = dataclasses.replace(cfg, bind=master.cfg.bind)
    master.limits = limits_of(cfg)
    master.table.timeouts = timeouts_of(cfg)
    if cfg.workers is not AUTO:
        master.set_target(cfg.workers)


def new_log(master, cfg):
    """The log settings changed on reload: open the new files; new workers inherit them."""
    try:
        log = Log(cfg.error_logfile, cfg.loglevel, cfg.access_logfile, cfg.access_logformat, cfg.metrics_log)
    except OSError as exc:
        master.log.error("reload: cannot open log file %s: %s; logging as before", exc.filename, exc.strerror)
        return
    old, master.log = master.log, log
    if master.monitor:
        master.monitor.log = master.monitor.sampler.log = log
    if master.mserver:
        master.mserver.log = log
    old.close()
    master.log.info("reload: logging to %s at level %s", cfg.error_logfile, cfg.loglevel)


def reexec(master):
    """USR2: exec a fresh pyfork in this very process (same PID), handing over the
    listeners as LISTEN_FDS; the new master stops our workers once its own are ready.
    If the exec fails, everything is as it was: the same signal pipe, no fd left over."""
    argv = [sys.executable, "-m", "supervisor"] + sys.argv[1:]
    hooks.call(master.cfg.hooks, master.log, "pre_exec", master)
    if master.notifier:
        master.notifier.reloading(master.status)
    master.log.info("master pid=%d: re-executing %s", master.pid, " ".join(argv))
    fds, undo = hand_over(master.listeners)
    env = dict(os.environ, LISTEN_FDS=str(len(fds)), LISTEN_PID=str(master.pid),
               PYFORK_OLD_WORKERS=",".join(str(p) for p in plan.pids(master.table)))
    signal.set_wakeup_fd(-1)
    try:
        os.execve(sys.executable, argv, env)
    except OSError as exc:
        signal.set_wakeup_fd(master.signals.w, warn_on_full_buffer=False)
        undo()
        master.log.error("re-exec failed: %s; carrying on with this master and its workers", exc)


def timeouts_of(cfg):
    return plan.Timeouts(cfg.timeout, cfg.boot_timeout, cfg.graceful_timeout)


def limits_of(cfg):
    return recycle.Limits(memory=cfg.max_worker_memory, metric=cfg.memory_metric,
                          zombies=cfg.max_worker_zombies, threads=cfg.max_worker_threads)
