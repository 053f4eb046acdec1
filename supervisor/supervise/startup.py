"""The master's start, once before its loop: bind or adopt the listeners, preload the
app, check the user and the pidfile, open the observers (monitor, systemd, /metrics),
then the signal and ready pipes and the heartbeat cells. Any of it failing is a
StartError-style message and exit 2, before a worker exists."""
import gc
import os
import select
import sys
import time

from . import notify, preload, reforking
from .. import exits, hooks, warm
from ..config import AUTO
from ..exits import StartError
from ..loader import load_logged
from ..observe.metricsserver import MetricsServer
from ..observe.see import See
from .heartbeat import Heartbeat
from .listeners import bind, inherited_fds
from .pidfile import write_pidfile
from .privileges import make_subreaper, user_ids
from .signals import MASTER, Signals


def start(master):
    """Bind, preload, set up signals. Returns None, or an exit code to stop with."""
    hooks.call(master.cfg.hooks, master.log, "on_starting", master)
    master.reaper = make_subreaper()
    inherited = os.environ.pop("PYFORK_OLD_WORKERS", "")
    master.table.inherited = [int(p) for p in inherited.split(",") if p.isdigit()]
    try:
        master.ids = user_ids(master.cfg.user, master.cfg.group)     # before bind: they own unix sockets
        master.listeners = bind(master.cfg, inherited_fds(master.environ), master.ids)
        before = preload.socket_fds() if master.cfg.preload else {}
        if not master.cfg.preload and not master.cfg.refork_after:
            warm.warm()     # what the app will import from the standard library, shared (warm.py)
        if master.cfg.preload:
            t0 = time.monotonic()
            master.app, code = load_logged(master.cfg.app, master.log, "the master (--preload)")
            if code is not None:
                return code
            master.preloaded_in = time.monotonic() - t0
        check_tls(master.cfg)
        if master.cfg.pidfile:
            write_pidfile(master.cfg.pidfile, master.pid)
        open_observers(master)
    except (StartError, ValueError, OSError) as exc:
        master.log.error("%s", exc)
        return exits.USAGE
    master.signals = Signals(MASTER)
    master.ready_r, master.ready_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    master.heartbeat = Heartbeat()
    reforking.open_channel(master)
    master.poller.register(master.signals.r, select.POLLIN)
    master.poller.register(master.ready_r, select.POLLIN)
    say_listening(master)
    # the first sample after one interval: by then the workers have booted
    master.next_sample = time.monotonic() + master.cfg.metrics_interval
    master.title()
    hooks.call(master.cfg.hooks, master.log, "nworkers_changed", master, master.target, None)   # as Gunicorn does
    hooks.call(master.cfg.hooks, master.log, "when_ready", master)
    if master.cfg.preload:
        code = check_preload(master, before)
        if code is not None:
            return code
    if master.reloader:
        master.reloader.start(time.monotonic())
    return None


def check_tls(cfg):
    """--certfile: make the context once here, so a missing file or a key that does not fit
    stops the start (exit 2) instead of every worker's boot; the workers make their own."""
    if not cfg.certfile:
        return
    from ..serve import tls
    try:
        tls.context(cfg)
    except (OSError, ValueError) as exc:
        raise StartError("--certfile %s --keyfile %s: %s (check the paths, and that the key is the "
                         "certificate's)" % (cfg.certfile, cfg.keyfile or "(in the certfile)", exc)) from None


def check_preload(master, before):
    """Just before the first fork: refuse (exit PRELOAD_UNSAFE) when the app's import or
    when_ready left sockets, threads or children the workers would share; then freeze the
    heap so that the collector does not touch (and so copy) the shared pages."""
    t0 = time.monotonic()
    held = preload.hazards(before, own_fds(master), master.table.inherited)
    checked = time.monotonic() - t0
    refusal, warning = preload.refusal(held), preload.warning(held)
    if warning:
        master.log.warning("%s", warning)
    if refusal and not master.cfg.preload_unsafe:
        master.log.error("%s", refusal)
        return exits.PRELOAD_UNSAFE
    if refusal:
        master.log.warning("%s (forking anyway: --preload-unsafe)", refusal)
    master.log.info("preload: the app was imported in the master in %.0fms; checked in %.1fms: %s",
                    master.preloaded_in * 1000, checked * 1000,
                    "nothing for the workers to share" if not refusal else "shared, as --preload-unsafe asks")
    gc.collect()
    gc.freeze()   # keep the collector from touching (and so copying) shared pages
    return None


def own_fds(master):
    """The sockets the master opened after the app was imported: its servers and systemd's."""
    fds = {fd for server in master.servers() for fd in server.fds()}
    if master.notifier:
        fds.add(master.notifier.sock.fileno())
    return fds


def open_observers(master):
    """The monitor (and -w auto's first count), systemd's notifier, the metrics server."""
    from ..observe.monitor import Monitor
    master.monitor = Monitor(master.cfg, master.log, master.pid)
    if master.cfg.workers is AUTO:
        master.table.target = master.monitor.initial_workers()
    master.notifier = notify.Notifier.from_environ(os.environ)      # None outside systemd
    master.see = See(master.cfg, master.log, master.monitor, master.environ)
    master.see.master = master
    if master.cfg.reload:
        from .reloader import Reloader
        sys.dont_write_bytecode = True     # a save within the second of the last would look unchanged to a .pyc
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"      # for the probes and a re-executed master too
        master.reloader = Reloader(master, master.cfg.reload_engine, master.cfg.reload_extra_files)
    if master.cfg.metrics_bind:
        master.mserver = MetricsServer(master.cfg.metrics_bind, master.render_metrics, master.log,
                                       page=master.see.page)


def say_listening(master):
    master.binds = " ".join(str(b) for b in master.cfg.bind)
    for b, sock in zip(master.cfg.bind, master.listeners):
        where = sock.getsockname()
        if isinstance(where, tuple):     # the real port, also for -b 127.0.0.1:0
            scheme = "https" if master.cfg.certfile else "http"
            where = "%s://%s:%d" % (scheme, ("[%s]" % where[0]) if ":" in where[0] else where[0], where[1])
        master.log.info("listening at %s (pid %d)", where or b, master.pid)
    master.log.info("master pid=%d app=%s workers=%d reaper=%s", master.pid, master.cfg.app, master.target,
                    master.reaper or "none (orphans go to pid 1)")
    master.log.info("%s", master.see.boot_line(master.cfg, master.target, master.sources))
