"""What the master does on HUP and USR2: re-read the configuration and replace the
workers, or re-exec a fresh pyfork in place handing the listeners over."""
import dataclasses
import enum
import os
import signal
import sys

from . import plan, recycle
from .. import exits, hooks
from ..config import AUTO, ConfigError
from .. import logconfig
from .listeners import hand_over


def reload(master, now):
    """HUP: re-read the configuration (flags and environment as at start, the config
    file afresh), then replace every worker, each new one ready before its old one
    stops. New workers import the app afresh. A preloaded app lives in the master,
    so forks of it would serve the old code (Gunicorn's issue #2449): then HUP re-executes
    the master in place, as USR2 does, and the new master imports the new code."""
    if master.cfg.preload:
        probe(master, now, Then.REEXEC)
        return
    replace(master, now)


def replace(master, now):
    """HUP without --preload: the configuration afresh, then every worker replaced."""
    if master.reload_config is not None:
        try:
            cfg, _, notes = master.reload_config()
        except ConfigError as exc:
            master.log.error("reload: %s; keeping the configuration in use", exc)
        else:
            use_config(master, cfg, notes)
    if master.monitor and master.monitor.try_again(master.cfg):      # a step down held fewer
        master.set_target(master.table.target if master.cfg.workers is AUTO else master.cfg.workers)
    hooks.call(master.cfg.hooks, master.log, "on_reload", master)
    if master.notifier:
        master.notifier.reloading(master.status)
    master.waiting_ready = True
    for slot in master.table.slots:
        if slot.pid:
            master.see.reloaded(slot.nr, slot.pid)
    plan.reload(master.table, now)


class Then(enum.Enum):
    """What the master does once a probe has imported the new code (exit 0)."""
    REEXEC = "re-execute the master"      # HUP (or --reload) with --preload
    REPLACE = "replace the workers"       # --reload without --preload
    LIST = "watch the files"              # --reload's first probe: only the app's files are wanted


def probe(master, now, then=Then.REEXEC):
    """HUP with --preload, first step: import the new code in a process of its own
    (`pyfork run ... --check-config`), so that code that fails to import leaves this
    master and its workers serving, as a reload without --preload does. Its traceback
    goes to the error log; the master re-executes once it exits 0 (probed). --reload
    probes the same way, first (LIST) and on each change; the probe writes the files of
    the modules it imported where $PYFORK_RELOAD_LIST says (reloader.py watches them)."""
    if master.probe is not None:
        master.log.warning("reload: still importing the new code in pid=%d; this HUP changes nothing", master.probe.pid)
        return
    argv = [sys.executable, "-m", "supervisor"] + sys.argv[1:] + ["--check-config"]
    env = dict(os.environ, PYFORK_RELOAD_LIST=master.reloader.listing) if master.reloader else os.environ
    out = os.open(os.devnull, os.O_WRONLY)
    try:
        pid = os.posix_spawn(sys.executable, argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, master.log.stream.fileno(), 2)])
    except (OSError, ValueError) as exc:
        master.log.error("reload: cannot start a process to import the new code (%s); keeping the code in use", exc)
        return
    finally:
        os.close(out)
    master.probe = Probe(pid, now, then)
    if then is Then.REEXEC:
        master.log.info("reload: the app is preloaded in the master; importing the new code in pid=%d first", pid)
    else:
        master.log.info("reload: importing the app in pid=%d to %s", pid, then.value)


class Probe:
    """The process importing new code for a HUP of a preloaded master, or for --reload."""
    def __init__(self, pid, started, then=Then.REEXEC):
        self.pid, self.started, self.then = pid, started, then


def probed(master, code, now):
    """The import probe exited: re-execute the master or replace the workers (0), or keep
    everything as it is."""
    then, master.probe = master.probe.then, None
    if master.reloader:
        master.reloader.probed(code == 0, now)
    if code == 0:
        if then is Then.REEXEC:
            master.log.info("reload: the new code imports; re-executing the master so that it serves (as USR2)")
            reexec(master)
        elif then is Then.REPLACE:
            master.log.info("reload: the new code imports; replacing the workers")
            replace(master, now)
    else:
        master.log.error("reload: the new code failed to import (%s; its error is above); the master and its "
                         "workers keep serving the code in use", exits.exit_description(code, ours=True))


def probe_overdue(master, now):
    """A probe still importing after --boot-timeout is killed (reaped, it reports its signal)."""
    limit = master.cfg.boot_timeout
    if master.probe is not None and limit and now - master.probe.started > limit:
        master.log.error("reload: importing the new code took over %gs (--boot-timeout); stopping pid=%d",
                         limit, master.probe.pid)
        master.kill(master.probe.pid, signal.SIGKILL)
        master.probe.started = float("inf")    # killed once


def use_config(master, cfg, notes):
    for note in notes:
        master.log.warning("%s", note)
    if cfg.bind != master.cfg.bind:
        master.log.warning("reload: a change of bind needs a restart or USR2; listening as before")
    logs = ("error_logfile", "loglevel", "access_logfile", "access_logformat", "metrics_log", "logconfig",
            "logconfig_dict", "logconfig_json", "syslog", "syslog_addr", "syslog_prefix", "syslog_facility")
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
        log = logconfig.make(cfg)
    except OSError as exc:
        master.log.error("reload: cannot open log file %s: %s; logging as before", exc.filename, exc.strerror)
        return
    except logconfig.ConfigFailed as exc:
        master.log.error("reload: %s; logging as before", exc)
        return
    log.statsd = master.log.statsd
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
