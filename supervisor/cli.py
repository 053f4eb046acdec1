"""`pyfork run [MODULE:APP] [options]` and the other subcommands; failures to exit codes."""
import argparse
import dataclasses
import os
import sys

from . import __version__, exits
from .config import SETTINGS, Bind, ConfigError, env_name, resolve_sources
from .log import Log


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own wording names the flag; keep it to one line and exit 2
        self.exit(exits.USAGE, "pyfork: error: %s (see pyfork run --help)\n" % message)


def _settings_arguments(p):
    p.add_argument("app", metavar="MODULE:APP", nargs="?",
                   help="the WSGI callable: module:name, module:factory() or module (then application, app); "
                        "may also come from the config file's wsgi_app")
    p.add_argument("-c", "--config", metavar="FILE", default=None,
                   help="a Python config file like gunicorn.conf.py (default: ./pyfork.conf.py when present)")
    for s in SETTINGS:
        kw = {"dest": s.name, "default": None, "help": "%s [env %s%s]" % (
            s.help, env_name(s), (", " + s.env) if s.env else "")}
        if s.action == "store_true":
            kw.update(action="store_const", const=True)
        else:
            kw.update(metavar=s.metavar or "VALUE")
            if s.action == "append":
                kw.update(action="append")
        p.add_argument(*s.flags, **kw)


def parser():
    top = Parser(prog="pyfork", description="A pre-fork WSGI server and worker supervisor.")
    top.add_argument("--version", action="version", version="pyfork " + __version__)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    epilog = ("Precedence: defaults < config file < environment (PORT, WEB_CONCURRENCY, PYFORK_<SETTING>) "
              "< flags.")
    _settings_arguments(sub.add_parser("run", help="serve a WSGI app", epilog=epilog,
                                       description="Serve a WSGI app from pre-forked workers."))
    _settings_arguments(sub.add_parser("check-config", help="print the effective configuration and where "
                                       "each value came from", epilog=epilog))
    sub.add_parser("advise", help="read pyfork's or Heroku's metrics lines; print how many workers fit "
                   "each dyno size", add_help=False)
    return top


def detect_platform(environ):
    """On Heroku ($DYNO set), the dyno size from the cgroup's memory limit, as the lowest
    layer of the configuration: anything the user sets wins."""
    if not environ.get("DYNO"):
        return {}
    from .observe.dynos import DYNOS
    from .observe.sampler import Sampler
    quota = Sampler(None).dyno()
    if quota.quota_source != "cgroup":
        return {}
    for d in DYNOS:
        if d.quota == quota.quota:
            return {"dyno_size": (d.name, "detected (Heroku dyno with a %d MB limit)" % (d.quota >> 20))}
    return {}


def build(args, environ):
    """-> (Config with hooks, {setting: source}, [notes to log]); raises ConfigError."""
    from . import conffile
    path = args.config or (conffile.DEFAULT if os.path.exists(conffile.DEFAULT) else None)
    file_values, hooks, notes, lines = conffile.load(path) if path else ({}, {}, [], {})
    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    cfg, sources = resolve_sources(args.app, flags, environ, file_values, path, detect_platform(environ), lines)
    cfg = dataclasses.replace(cfg, hooks=hooks)
    if sources["bind"] == "default":
        # systemd socket activation: with no bind asked for, serve the sockets handed over
        from .supervise.listeners import inherited_fds
        fds = inherited_fds(environ)
        if fds:
            cfg = dataclasses.replace(cfg, bind=tuple(Bind("fd", fd=fd) for fd in fds))
            sources["bind"] = "systemd socket activation (LISTEN_FDS)"
    return cfg, sources, notes


def check_config(cfg, sources, notes):
    width = max(len(s.name) for s in SETTINGS)
    print("%-*s = %r" % (width, "app", cfg.app))
    for s in SETTINGS:
        value = getattr(cfg, s.name)
        if s.name == "bind":
            value = " ".join(str(b) for b in value)
        print("%-*s = %-30r  (%s)" % (width, s.name, value, sources[s.name]))
    for name in sorted(cfg.hooks):
        print("hook %s defined" % name)
    for note in notes:
        print("note: " + note)
    from .observe import advise
    try:
        print(advise.for_config(cfg))
    except ValueError as exc:          # an unknown dyno size: already refused by resolve
        print("advice: none (%s)" % exc)
    return exits.OK


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["advise"]:
        from .observe import advise
        return advise.main(argv[1:])
    args = parser().parse_args(argv)
    if args.command not in ("run", "check-config"):
        parser().print_help(sys.stderr)
        return exits.USAGE
    try:
        cfg, sources, notes = build(args, os.environ)
    except ConfigError as exc:
        sys.stderr.write("pyfork: error: %s\n" % exc)
        return exits.USAGE
    if args.command == "check-config":
        return check_config(cfg, sources, notes)
    if cfg.chdir:
        try:
            os.chdir(cfg.chdir)
        except OSError as exc:
            sys.stderr.write("pyfork: error: --chdir %s: %s\n" % (cfg.chdir, exc.strerror))
            return exits.USAGE
    try:
        log = Log(cfg.error_logfile, cfg.loglevel, cfg.access_logfile, cfg.access_logformat, cfg.metrics_log)
    except OSError as exc:
        sys.stderr.write("pyfork: error: cannot open log file %s: %s\n" % (exc.filename, exc.strerror))
        return exits.USAGE
    for note in notes:
        log.warning("%s", note)
    if sources.get("dyno_size", "default") != "default":
        log.info("dyno size %s (%s)", cfg.dyno_size, sources["dyno_size"])
    from .supervise.master import Master     # imported late: `pyfork --help` stays fast
    try:
        return Master(cfg, log, reload=lambda: build(args, os.environ)).run()
    except Exception:
        log.exception("master crashed (a bug in pyfork; please report it)")
        return exits.ERROR
