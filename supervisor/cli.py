"""`pyfork run [MODULE:APP] [options]` (or `pyfork MODULE:APP [options]`, Gunicorn's line with
only the name changed) and the other subcommands; failures to exit codes.

Every flag of Gunicorn's settings list is parsed: pyfork's own settings (config.SETTINGS),
and the Gunicorn-only ones, which gunicorn.py judges (ignored with a note, or exit 2 with
the reason). GUNICORN_CMD_ARGS and PYFORK_CMD_ARGS are read as Gunicorn reads its
variable: after the config file, before the command line. A subcommand is one entry in
COMMANDS: (help, takes pyfork's settings?, the function run with its parsed args).
"""
import argparse
import dataclasses
import difflib
import os
import re
import shlex
import sys

from . import __version__, exits, gunicorn
from .config import SETTINGS, Bind, ConfigError, env_name, resolve_sources
from .environ import CMD_ARGS

SIZES = ("memory_quota", "max_worker_memory")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's own wording names the flag; keep it to one line and exit 2
        self.exit(exits.USAGE, "pyfork: error: %s (see pyfork run --help)\n" % message)


class EnvParser(argparse.ArgumentParser):
    """Parses GUNICORN_CMD_ARGS / PYFORK_CMD_ARGS: a mistake is a ConfigError naming the variable."""
    def error(self, message):
        raise ConfigError("%s: %s" % (self.prog, message))


def _gunicorn_arguments(p):
    """Gunicorn's flags that no pyfork setting carries (hidden from --help; README has the table)."""
    taken = {f for s in SETTINGS for f in s.flags} | {"-c", "--config"}
    for row in gunicorn.TABLE:
        flags = [f for f in row.flags if f not in taken]
        if not flags or row.arg is gunicorn.Arg.NONE:
            continue
        kw = {"dest": "g_" + row.name, "default": None, "help": argparse.SUPPRESS}
        if row.arg is gunicorn.Arg.SWITCH:
            kw.update(action="store_const", const=row.const)
        elif row.arg is gunicorn.Arg.APPEND:
            kw.update(action="append")
        elif row.arg is gunicorn.Arg.OPTIONAL:
            kw.update(nargs="?", const=row.const)
        p.add_argument(*flags, **kw)


def _settings_arguments(p):
    p.add_argument("app", metavar="MODULE:APP", nargs="?",
                   help="the WSGI callable: module:name, module:factory() or module (then application, app); "
                        "may also come from the config file's wsgi_app")
    p.add_argument("-c", "--config", metavar="FILE", default=None,
                   help="a Python config file like gunicorn.conf.py, or python:MODULE (default: ./pyfork.conf.py, "
                        "else ./gunicorn.conf.py, when present)")
    for s in SETTINGS:
        names = [env_name(s)] + ([s.env] if s.env and s.env != env_name(s) else [])
        kw = {"dest": s.name, "default": None, "help": "%s [env %s]" % (s.help, ", ".join(names))}
        if s.action == "store_true":
            kw.update(action="store_const", const=True)
        else:
            kw.update(metavar=s.metavar or "VALUE")
            if s.action == "append":
                kw.update(action="append")
            elif s.action == "optional":
                kw.update(nargs="?", const=s.const)
        p.add_argument(*s.flags, **kw)
    _gunicorn_arguments(p)
    return p


EPILOG = ("Precedence: defaults < config file < environment (PORT, WEB_CONCURRENCY, PYFORK_<SETTING>) "
          "< GUNICORN_CMD_ARGS < PYFORK_CMD_ARGS < flags. Every other Gunicorn flag is accepted too: "
          "pyfork says at start what it does with it, or refuses it with the reason (README has the table).")


def parser():
    top = Parser(prog="pyfork", description="A pre-fork WSGI server and worker supervisor.")
    top.add_argument("--version", action="version", version="pyfork " + __version__)
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (text, settings, _) in COMMANDS.items():
        if settings:
            _settings_arguments(sub.add_parser(name, help=text, description=text, epilog=EPILOG))
        else:
            sub.add_parser(name, help=text, add_help=False)
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


def _gunicorn_only(args, suffix, notes, errors):
    """Judge the Gunicorn-only flags found in `args`; `suffix` says where they were given
    beyond the command line (" in GUNICORN_CMD_ARGS")."""
    for row in gunicorn.TABLE:
        value = getattr(args, "g_" + row.name, None)
        if value is not None and row.kind is not gunicorn.Kind.SAME:
            flag = next(f for f in row.flags if f.startswith("--"))
            kind, text = gunicorn.judge(row, value, "flag %s%s" % (flag, suffix))
            (errors if kind == "error" else notes).append(text)


def _env_layers(environ, notes, errors):
    """GUNICORN_CMD_ARGS, then PYFORK_CMD_ARGS -> [(variable, parsed args)]."""
    out = []
    for var in CMD_ARGS:
        text = environ.get(var, "").strip()
        if not text:
            continue
        try:
            args = _settings_arguments(EnvParser(prog=var, add_help=False)).parse_args(shlex.split(text))
        except (ConfigError, ValueError) as exc:     # shlex: "No closing quotation"
            errors.append(str(exc) if isinstance(exc, ConfigError) else "%s: %s" % (var, exc))
            continue
        _gunicorn_only(args, " in " + var, notes, errors)
        out.append((var, args))
    return out


def build(args, environ, written=None):
    """-> (Config with hooks, {setting: source}, [notes to log]); raises one ConfigError
    holding every mistake found (one line each)."""
    from . import conffile
    notes, errors = [], []
    env_args = _env_layers(environ, notes, errors)
    given = [args] + [a for _, a in reversed(env_args)]           # the command line first
    app = next((a.app for a in given if a.app), None)
    file_values, hooks, lines, path = {}, {}, {}, None
    try:
        path, note = conffile.find(next((a.config for a in given if a.config), None), os.path.exists)
        notes += [note] if note else []
        if path:
            file_values, hooks, file_notes, lines, file_errors = conffile.load(path)
            notes += file_notes
            errors += file_errors
    except ConfigError as exc:
        errors.append(str(exc))
    _gunicorn_only(args, "", notes, errors)
    layers = [(var, {s.name: getattr(a, s.name) for s in SETTINGS}) for var, a in env_args]
    flags = {s.name: getattr(args, s.name) for s in SETTINGS}
    try:
        cfg, sources = resolve_sources(app, flags, environ, file_values, path, detect_platform(environ), lines,
                                       layers=layers, notes=notes, written=written)
    except ConfigError as exc:
        errors.extend(str(exc).splitlines())
    if errors:
        raise ConfigError("\n".join(errors))
    cfg = dataclasses.replace(cfg, hooks=hooks)
    if sources["bind"] == "default":
        # systemd socket activation: with no bind asked for, serve the sockets handed over
        from .supervise.listeners import inherited_fds
        fds = inherited_fds(environ)
        if fds:
            cfg = dataclasses.replace(cfg, bind=tuple(Bind("fd", fd=fd) for fd in fds))
            sources["bind"] = "systemd socket activation (LISTEN_FDS)"
    return cfg, sources, notes


def show_size(n):
    """Bytes as a person writes them: 536870912 -> '512MB'."""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n and n % size == 0:
            return "%d%s" % (n // size, unit)
    return "%dB" % n


def print_config(cfg, sources, notes, written):
    width = max(len(s.name) for s in SETTINGS)
    print("%-*s = %r" % (width, "app", cfg.app))
    for s in SETTINGS:
        value = getattr(cfg, s.name)
        if s.name == "bind":
            value = " ".join(str(b) for b in value)
        elif s.name in SIZES and value is not None:
            value = str(written[s.name]) if s.name in written else show_size(value)
        elif s.name == "raw_env":
            value = tuple("%s=..." % key for key, _ in value)     # values may be secrets: not printed
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


def _fail(message):
    for line in str(message).splitlines():
        sys.stderr.write("pyfork: error: %s\n" % line)
    return exits.USAGE


def check_config(args):
    written = {}
    try:
        cfg, sources, notes = build(args, os.environ, written)
    except ConfigError as exc:
        return _fail(exc)
    return print_config(cfg, sources, notes, written)


def _prepare(cfg):
    """What the master process takes on before anything else: --chdir, --pythonpath, -e."""
    if cfg.chdir:
        try:
            os.chdir(cfg.chdir)
        except OSError as exc:
            return _fail("--chdir %s: %s" % (cfg.chdir, exc.strerror))
    for d in cfg.pythonpath:           # each to the front, in order: the last ends first, as in Gunicorn
        if os.path.abspath(d) not in sys.path:
            sys.path.insert(0, os.path.abspath(d))
    os.environ.update(dict(cfg.raw_env))
    from .serve.wsgi import mount_point
    try:
        mount_point(os.environ.get("SCRIPT_NAME", ""))     # where the app is mounted, as Gunicorn reads it
    except ValueError as exc:
        return _fail(exc)
    return None


def _gunicorn_check(cfg):
    """Gunicorn's --check-config: the configuration and the app's import; nothing starts."""
    from . import loader
    try:
        loader.load(cfg.app)
    except loader.AppNotFound as exc:
        return _fail(exc)
    except BaseException:
        import traceback
        traceback.print_exc()
        return exits.APP_LOAD
    if os.environ.get("PYFORK_RELOAD_LIST"):          # a probe of --reload: the app's files for the master
        from .supervise.reloader import write_listing
        write_listing(os.environ["PYFORK_RELOAD_LIST"], list(sys.modules.values()))
    print("pyfork: configuration ok; app %s loaded" % cfg.app)
    return exits.OK


def run(args):
    if args.g_print_config:
        return check_config(args)
    try:
        cfg, sources, notes = build(args, os.environ)
    except ConfigError as exc:
        return _fail(exc)
    failed = _prepare(cfg)
    if failed is not None:
        return failed
    if args.g_check_config:
        return _gunicorn_check(cfg)
    from . import logconfig
    try:
        log = logconfig.make(cfg)
    except OSError as exc:
        return _fail("cannot open log file %s: %s" % (exc.filename, exc.strerror))
    except logconfig.ConfigFailed as exc:
        return _fail(exc)
    if cfg.statsd_host:
        from .observe.statsd import Statsd
        try:
            log.statsd = Statsd(cfg.statsd_host, cfg.statsd_prefix, cfg.dogstatsd_tags)
        except OSError as exc:          # a host name that does not resolve
            return _fail("--statsd-host %s: %s" % (":".join(map(str, cfg.statsd_host)), exc.strerror or exc))
    for note in notes:
        log.warning("%s", note)
    if sources.get("dyno_size", "default") != "default":
        log.info("dyno size %s (%s)", cfg.dyno_size, sources["dyno_size"])
    from .supervise.master import Master     # imported late: `pyfork --help` stays fast
    try:
        return Master(cfg, log, reload=lambda: build(args, os.environ), sources=sources).run()
    except Exception:
        log.exception("master crashed (a bug in pyfork; please report it)")
        return exits.ERROR


def advise(argv):
    from .observe import advise as _advise
    return _advise.main(argv)


def status(argv):
    from .observe import control
    return control.main(argv)


def report(argv):
    from .observe import report as _report
    return _report.main(argv)


# name -> (help, takes pyfork's settings, function(args), or function(argv) for the others)
COMMANDS = {
    "run": ("serve a WSGI app from pre-forked workers", True, run),
    "check-config": ("print the effective configuration and where each value came from", True, check_config),
    "advise": ("read pyfork's or Heroku's metrics lines; print how many workers fit each dyno size",
               False, advise),
    "status": ("what the master and each worker are doing now, from the control socket", False, status),
    "report": ("pyfork's or Heroku's metrics lines as an HTML page of charts", False, report),
}


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_TOP_FLAGS = ("-h", "--help", "--version")


def route(argv, exists=lambda path: False):
    """Gunicorn's command line with `gunicorn` changed to `pyfork` runs as `pyfork run`:
    -> (argv for the parser, or None; an error line, or None). A first word that is a
    command is that command; one with ':' (app:app), a flag (-w 3 app:app) or a module name
    (myproject.wsgi) starts `run`, unless it is a command misspelt with no such module here
    (`exists` looks for WORD.py or WORD/)."""
    if not argv or argv[0] in COMMANDS or argv[0] in _TOP_FLAGS:
        return argv, None
    word = argv[0]
    if word.startswith("-") or ":" in word:
        return ["run"] + argv, None
    if _MODULE.fullmatch(word):
        close = difflib.get_close_matches(word, COMMANDS, 1, 0.75)
        top = word.split(".")[0]
        if not close or exists(top + ".py") or exists(top):
            return ["run"] + argv, None
        return None, "unknown command %r: did you mean 'pyfork %s'?" % (word, close[0])
    return None, ("%r is neither a command (%s) nor an app (MODULE:APP): did you mean 'pyfork run %s'?"
                  % (word, ", ".join(COMMANDS), word))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    argv, error = route(argv, os.path.exists)
    if error:
        return _fail(error)
    entry = COMMANDS.get(argv[0]) if argv else None
    if entry is not None and not entry[1]:
        return entry[2](argv[1:])            # a command with its own parser
    args = parser().parse_args(argv)
    if args.command not in COMMANDS:
        parser().print_help(sys.stderr)
        return exits.USAGE
    return COMMANDS[args.command][2](args)
