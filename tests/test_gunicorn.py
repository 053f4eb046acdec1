"""supervisor/gunicorn.py's table against Gunicorn's own settings list, the judgement of each
kind, and the environment's PYFORK_* check (supervisor/environ.py). Pure: no processes."""
import argparse

import pytest

from supervisor import environ, gunicorn
from supervisor.cli import _settings_arguments, build
from supervisor.config import BY_NAME, SETTINGS, ConfigError, resolve, resolve_sources
from supervisor.gunicorn import Arg, Kind

gconfig = pytest.importorskip("gunicorn.config")      # in the test extra: present in CI


def test_every_gunicorn_setting_is_in_the_table_once():
    theirs = [s.name for s in gconfig.KNOWN_SETTINGS]
    ours = [r.name for r in gunicorn.TABLE]
    assert len(ours) == len(set(ours))
    assert sorted(theirs) == sorted(ours)


@pytest.mark.parametrize("setting", gconfig.KNOWN_SETTINGS, ids=lambda s: s.name)
def test_row_has_gunicorns_flags_and_way_of_taking_a_value(setting):
    row = gunicorn.BY_NAME[setting.name]
    assert row.flags == tuple(setting.cli or ())
    want = {None: Arg.VALUE, "store_true": Arg.SWITCH, "store_const": Arg.SWITCH, "append": Arg.APPEND}
    arg = Arg.NONE if not setting.cli else Arg.OPTIONAL if getattr(setting, "nargs", None) == "?" else want[
        setting.action]
    assert row.arg is arg
    if row.kind is Kind.REFUSED:
        # the default that makes a refused setting harmless is Gunicorn's own
        assert gunicorn.is_default(row, setting.default), (row.default, setting.default)
    assert row.why and row.why[-1] != "."


def test_same_rows_are_carried_by_pyfork():
    """A SAME row names a pyfork setting (or Gunicorn's name for one), a hook, or something
    the command line does itself; a row pyfork only judges is carried by no pyfork flag."""
    from supervisor.conffile import ALIASES
    from supervisor.hooks import HOOKS
    flags = {f: s.name for s in SETTINGS for f in s.flags}
    cli_only = {"config", "wsgi_app", "check_config", "print_config"}
    for row in gunicorn.TABLE:
        if row.kind is Kind.SAME:
            assert row.name in BY_NAME or row.name in ALIASES or row.name in HOOKS or row.name in cli_only, row.name
            for f in row.flags:
                assert f in flags or row.name in cli_only, (row.name, f)
        else:
            taken = [f for f in row.flags if f in flags]
            assert not taken, "%s: %s is now a pyfork flag; make the row's kind SAME" % (row.name, taken)


def test_counts():
    c = gunicorn.counts()
    assert sum(c.values()) == len(gconfig.KNOWN_SETTINGS)
    assert all(c[k] > 0 for k in Kind)


def parse(argv):
    return _settings_arguments(argparse.ArgumentParser(prog="t")).parse_args(argv)


def sample(row):
    if row.arg is Arg.SWITCH or row.arg is Arg.OPTIONAL:
        return [row.flags[-1]]
    return [row.flags[-1], "/dev/shm" if "dir" in row.name else "7"]


@pytest.mark.parametrize("row", [r for r in gunicorn.TABLE if r.flags], ids=lambda r: r.name)
def test_every_gunicorn_flag_parses(row):
    args = parse(["m:app"] + sample(row))
    assert args.app == "m:app"


# (argv, the notes or errors build() gives: (kind, exact text))
JUDGED = [
    (["--worker-tmp-dir", "/dev/shm"], "note",
     "flag --worker-tmp-dir: Gunicorn-only, ignored: pyfork's heartbeat is shared memory, not a file"),
    (["--capture-output"], "note", "flag --capture-output: Gunicorn-only, ignored: the workers' stdout and stderr "
     "are the master's, which the platform (or --error-logfile's shell redirect) already collects"),
    (["--name", "web"], "note", "flag --name: Gunicorn-only, ignored: process titles are pyfork's own "
     "(pyfork master [app], pyfork worker N [app]); log lines say which process wrote them"),
    (["--enable-backlog-metric"], "note", "flag --enable-backlog-metric: Gunicorn-only, ignored: pyfork sends no "
     "gunicorn.backlog (the listen queue); the other statsd metrics are sent"),
    (["-D"], "error", "flag --daemon: not available in pyfork: pyfork stays in the foreground, as a platform, "
     "systemd or a container expects; start it with systemd (conf/) or your process manager"),
    # a refused setting at Gunicorn's default asks for nothing pyfork lacks
    (["--http-protocols", "h1"], "note", "flag --http-protocols: 'h1' is Gunicorn's default; ignored: pyfork "
     "speaks HTTP/1.1 only; HTTP/2 ends at the router or proxy in front"),
    (["--http-protocols", "h2,h1"], "error", "flag --http-protocols: not available in pyfork: pyfork "
     "speaks HTTP/1.1 only; HTTP/2 ends at the router or proxy in front"),
]


@pytest.mark.parametrize("argv, kind, text", JUDGED, ids=[" ".join(j[0]) for j in JUDGED])
def test_gunicorn_only_flag_is_noted_or_refused(argv, kind, text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)       # no ./pyfork.conf.py
    args = parse(["m:app"] + argv)
    if kind == "note":
        assert build(args, {})[2] == [text]
    else:
        with pytest.raises(ConfigError) as info:
            build(args, {})
        assert str(info.value) == text


def test_every_mistake_on_the_command_line_is_reported_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse(["m:app", "-D", "--paste", "k", "-w", "0", "--timeout", "soon"])
    with pytest.raises(ConfigError) as info:
        build(args, {"PYFORK_TIMOUT": "5"})
    assert str(info.value).splitlines() == [
        "flag --daemon: not available in pyfork: pyfork stays in the foreground, as a platform, systemd or a "
        "container expects; start it with systemd (conf/) or your process manager",
        "flag --paste: not available in pyfork: pyfork loads a WSGI callable, not a PasteDeploy file; write a "
        "module with app = paste.deploy.loadapp('config:/path/app.ini') and run MODULE:app",
        "unknown setting PYFORK_TIMOUT; did you mean PYFORK_TIMEOUT?",
        "flag --workers: 0 workers would never answer; give 1 or more, or auto",
        "flag --timeout: 'soon' is not a number",
    ]


# -- GUNICORN_CMD_ARGS and PYFORK_CMD_ARGS ---------------------------------------------------

# (environment, command line, setting, value, source)
CMD_ARGS = [
    ({"GUNICORN_CMD_ARGS": "--timeout 9 -w 3"}, [], "timeout", 9.0, "environment variable GUNICORN_CMD_ARGS"),
    ({"GUNICORN_CMD_ARGS": "--timeout 9"}, ["-t", "4"], "timeout", 4.0, "flag --timeout"),
    # after the environment's settings (Heroku's WEB_CONCURRENCY is set for you; the flags win)
    ({"GUNICORN_CMD_ARGS": "-w 3", "WEB_CONCURRENCY": "5"}, [], "workers", 3,
     "environment variable GUNICORN_CMD_ARGS"),
    ({"GUNICORN_CMD_ARGS": "-w 3", "PYFORK_CMD_ARGS": "-w 6"}, [], "workers", 6,
     "environment variable PYFORK_CMD_ARGS"),
    ({"GUNICORN_CMD_ARGS": "--bind=127.0.0.1:7001 --access-logfile -"}, [], "access_logfile", "-",
     "environment variable GUNICORN_CMD_ARGS"),
    ({"GUNICORN_CMD_ARGS": "-k gthread --threads 4"}, [], "worker_class", "gthread",
     "environment variable GUNICORN_CMD_ARGS"),
    ({"PYFORK_CMD_ARGS": "--keep-alive 2"}, [], "keepalive", 2.0, "environment variable PYFORK_CMD_ARGS"),
]


@pytest.mark.parametrize("env, argv, name, value, source", CMD_ARGS)
def test_cmd_args_variables(env, argv, name, value, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg, sources, _ = build(parse(["m:app"] + argv), env)
    assert (getattr(cfg, name), sources[name]) == (value, source)


CMD_ARGS_BAD = [
    ({"GUNICORN_CMD_ARGS": "--timeout"}, "GUNICORN_CMD_ARGS: argument -t/--timeout: expected one argument"),
    ({"GUNICORN_CMD_ARGS": "--wokers 3"}, "GUNICORN_CMD_ARGS: unrecognized arguments: --wokers"),
    ({"GUNICORN_CMD_ARGS": "--timeout 'x"}, "GUNICORN_CMD_ARGS: No closing quotation"),
    ({"GUNICORN_CMD_ARGS": "--timeout x"}, "flag --timeout in GUNICORN_CMD_ARGS: 'x' is not a number"),
    ({"PYFORK_CMD_ARGS": "-D"}, "flag --daemon in PYFORK_CMD_ARGS: not available in pyfork: pyfork stays in the "
     "foreground, as a platform, systemd or a container expects; start it with systemd (conf/) or your process "
     "manager"),
]


@pytest.mark.parametrize("env, message", CMD_ARGS_BAD)
def test_cmd_args_mistakes_name_the_variable(env, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        build(parse(["m:app"]), env)
    assert str(info.value) == message


# -- PYFORK_* checked like the config file -------------------------------------------------------

# (environment, setting, value, its source)
ENV_GOOD = [
    ({"PYFORK_KEEP_ALIVE": "3"}, "keepalive", 3.0, "environment variable PYFORK_KEEP_ALIVE"),
    ({"PYFORK_LOG_LEVEL": "debug"}, "loglevel", "debug", "environment variable PYFORK_LOG_LEVEL"),
    ({"PYFORK_PID": "/tmp/p.pid"}, "pidfile", "/tmp/p.pid", "environment variable PYFORK_PID"),
    ({"PYFORK_PRELOAD_APP": "true"}, "preload", True, "environment variable PYFORK_PRELOAD_APP"),
    ({"PYFORK_KEEPALIVE": "3", "PYFORK_KEEP_ALIVE": "3"}, "keepalive", 3.0, "environment variable PYFORK_KEEPALIVE"),
    ({"PYFORK_DYNO_SIZE": "standard-2x"}, "dyno_size", "standard-2x", "environment variable PYFORK_DYNO_SIZE"),
    ({"PYFORK_OLD_WORKERS": "12,13", "PYFORK_CMD_ARGS": ""}, "workers", 2, "default"),
]


@pytest.mark.parametrize("env, name, value, source", ENV_GOOD)
def test_environment_spellings(env, name, value, source):
    cfg, sources = resolve_sources("m:app", {}, env)
    assert (getattr(cfg, name), sources[name]) == (value, source)


ENV_BAD = [
    ({"PYFORK_TIMOUT": "5"}, "unknown setting PYFORK_TIMOUT; did you mean PYFORK_TIMEOUT?"),
    ({"PYFORK_WORKER": "5"}, "unknown setting PYFORK_WORKER; did you mean PYFORK_WORKERS?"),
    ({"PYFORK_XYZZY": "1"}, "unknown setting PYFORK_XYZZY; see pyfork run --help for the settings"),
    ({"PYFORK_KEEPALIVE": "3", "PYFORK_KEEP_ALIVE": "4"},
     "environment variables PYFORK_KEEPALIVE='3' and PYFORK_KEEP_ALIVE='4' both set keepalive; keep one"),
    ({"PYFORK_DAEMON": "1"}, "environment variable PYFORK_DAEMON: not available in pyfork: pyfork stays in the "
     "foreground, as a platform, systemd or a container expects; start it with systemd (conf/) or your process "
     "manager"),
]


@pytest.mark.parametrize("env, message", ENV_BAD)
def test_environment_mistakes(env, message):
    with pytest.raises(ConfigError) as info:
        resolve("m:app", {}, env)
    assert str(info.value) == message


def test_every_pyfork_variable_named_in_help_is_known():
    known = environ.names(SETTINGS)
    for s in SETTINGS:
        assert known["PYFORK_" + s.name.upper()] == s.name


def test_harmless_environment_variable_is_a_note():
    notes = []
    resolve_sources("m:app", {}, {"PYFORK_WORKER_TMP_DIR": "/dev/shm"}, notes=notes)
    assert notes == ["environment variable PYFORK_WORKER_TMP_DIR: Gunicorn-only, ignored: pyfork's heartbeat is "
                     "shared memory, not a file"]


# -- README says what the code does -------------------------------------------------------------

def readme_section(title):
    import pathlib
    text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    return text.split("## " + title + "\n", 1)[1].split("\n## ", 1)[0]


def test_readme_table_matches_the_code():
    text = readme_section("Coming from Gunicorn")
    c = gunicorn.counts()
    assert "%d the same, %d harmless, %d refused" % (c[Kind.SAME], c[Kind.HARMLESS], c[Kind.REFUSED]) in text
    for kind in Kind:
        part = text.split("**%s** (%d settings)" % (kind.value, c[kind]), 1)[1].split("**", 1)[0]
        rows = [line.split("|")[1] for line in part.splitlines() if line.startswith("| `")]
        names = [n.strip("` ") for row in rows for n in row.split(",")]
        assert sorted(names) == sorted(r.name for r in gunicorn.TABLE if r.kind is kind), kind


def test_readme_lists_every_environment_variable():
    text = readme_section("Environment variables")
    missing = [v for v in list(environ.names(SETTINGS)) + list(environ.OWN) + list(environ.PLATFORM)
               if "`%s`" % v not in text]
    assert not missing, "add these to README's Environment variables table: %s" % missing


# (setting, value a config file gives, is it harmless?)
DEFAULTS = [
    ("daemon", False, True), ("daemon", True, False), ("daemon", "false", True),
    ("dirty_workers", 0, True), ("dirty_workers", "0", True), ("dirty_workers", 2, False),
    ("protocol", "http", True), ("protocol", "uwsgi", False),
    ("logger_class", "gunicorn.glogging.Logger", True), ("logger_class", "myapp.MyLogger", False),
    ("control_socket_mode", "0o600", True), ("control_socket_mode", 0o600, True), ("control_socket_mode", 0o660, False),
    ("dirty_apps", [], True), ("dirty_apps", ["tasks:app"], False),
]


@pytest.mark.parametrize("name, value, harmless", DEFAULTS)
def test_refused_setting_at_gunicorns_default_is_only_noted(name, value, harmless):
    kind, text = gunicorn.judge(gunicorn.BY_NAME[name], value, "setting %r in g.conf.py line 1" % name)
    assert kind == ("note" if harmless else "error"), text
    assert text.startswith("setting %r in g.conf.py line 1: " % name)

