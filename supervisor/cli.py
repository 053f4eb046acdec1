"""`pyfork run MODULE:APP [options]`: flags from the settings table, failures to exit codes."""
import argparse
import os
import sys

from . import __version__, exits
from .config import SETTINGS, ConfigError, env_name, resolve
from .log import Log


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own wording names the flag; keep it to one line and exit 2
        self.exit(exits.USAGE, "pyfork: error: %s (see pyfork run --help)\n" % message)


def parser():
    top = Parser(prog="pyfork", description="A pre-fork WSGI server and worker supervisor.")
    top.add_argument("--version", action="version", version="pyfork " + __version__)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("advise", help="read pyfork's or Heroku's metrics lines; print how many workers fit each dyno size",
                   add_help=False)
    run = sub.add_parser("run", help="serve a WSGI app", description="Serve a WSGI app from pre-forked workers.",
                         epilog="Every setting is also read from PYFORK_<SETTING> (e.g. PYFORK_TIMEOUT); "
                                "flags win over the environment.")
    run.add_argument("app", metavar="MODULE:APP",
                     help="the WSGI callable: module:name, module:factory() or module (then application, app)")
    for s in SETTINGS:
        kw = {"dest": s.name, "default": None, "help": "%s [env %s%s]" % (
            s.help, env_name(s), (", " + s.env) if s.env else "")}
        if s.action == "store_true":
            kw.update(action="store_const", const=True)
        else:
            kw.update(metavar=s.metavar or "VALUE")
            if s.action == "append":
                kw.update(action="append")
        run.add_argument(*s.flags, **kw)
    return top


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["advise"]:
        from . import advise
        return advise.main(argv[1:])
    args = parser().parse_args(argv)
    if args.command != "run":
        parser().print_help(sys.stderr)
        return exits.USAGE
    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    try:
        cfg = resolve(args.app, flags, os.environ)
    except ConfigError as exc:
        sys.stderr.write("pyfork: error: %s\n" % exc)
        return exits.USAGE
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
    from .master import Master     # imported late: `pyfork --help` stays fast
    try:
        return Master(cfg, log).run()
    except Exception:
        log.exception("master crashed (a bug in pyfork; please report it)")
        return exits.ERROR
