"""The environment as a source of settings, checked like the config file.

Every PYFORK_* variable must be a name pyfork knows: PYFORK_<SETTING> (PYFORK_KEEPALIVE),
its flag's spelling (PYFORK_KEEP_ALIVE for --keep-alive, PYFORK_PID for --pid), Gunicorn's
name for it (PYFORK_PRELOAD_APP), a Gunicorn-only setting (judged by gunicorn.py), or one
of pyfork's own non-setting variables. Anything else is a typo that would otherwise be
ignored without a word, so it is an error with the nearest name. Pure: `environ` is a dict.
"""
import difflib

from . import gunicorn

PREFIX = "PYFORK_"
# pyfork's own variables that are not settings
OWN = {
    "PYFORK_CMD_ARGS": "more flags, read like GUNICORN_CMD_ARGS and after it",
    "PYFORK_OLD_WORKERS": "set by pyfork itself across a USR2 re-exec (the old master's workers)",
    "PYFORK_RELOAD_LIST": "set by pyfork itself for --reload's probe: where it writes the app's files",
    "PYFORK_CONF": "a config file's text, written out by conf/container/entrypoint.sh's example",
}
# platform variables read besides the settings' own (see also Setting.env)
PLATFORM = {
    "PORT": "the port to bind on 0.0.0.0 when no bind is given (Heroku sets it)",
    "WEB_CONCURRENCY": "the default worker count (Heroku's buildpacks set it)",
    "FORWARDED_ALLOW_IPS": "the same as --forwarded-allow-ips, as Gunicorn reads it",
    "GUNICORN_CMD_ARGS": "Gunicorn flags, read after the config file and before the command line",
    "DYNO": "on Heroku: the dyno's name; the dyno size is detected from the cgroup limit",
    "LISTEN_FDS": "systemd socket activation: the sockets to serve when no bind is given",
    "NOTIFY_SOCKET": "systemd Type=notify: READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1",
    "SCRIPT_NAME": "the path the app is mounted at, as Gunicorn reads it: taken off PATH_INFO",
}
CMD_ARGS = ("GUNICORN_CMD_ARGS", "PYFORK_CMD_ARGS")


def names(settings):
    """{variable: setting name} for every PYFORK_ spelling of a pyfork setting."""
    out = {}
    for s in settings:
        out[PREFIX + s.name.upper()] = s.name
        for flag in s.flags:
            if flag.startswith("--"):
                out.setdefault(PREFIX + flag[2:].upper().replace("-", "_"), s.name)
    for gname, name in gunicorn.ALIASES.items():
        out.setdefault(PREFIX + gname.upper(), name)
    return out


def read(environ, settings):
    """-> ({setting: (raw value, variable)}, notes, errors) for the PYFORK_* variables and
    each setting's platform variable (Setting.env). A PYFORK_ name wins over the platform
    name; two PYFORK_ spellings of one setting with different values are an error."""
    known = names(settings)
    values, notes, errors = {}, [], []
    for s in settings:
        if s.env and environ.get(s.env, "") != "":
            values[s.name] = (environ[s.env], s.env)
    given = {}
    for var in sorted(environ):
        if not var.startswith(PREFIX) or var in OWN:
            continue
        raw = environ[var]
        if var in known:
            name = known[var]
            if raw == "":
                continue
            if name in given and environ[given[name]] != raw:
                errors.append("environment variables %s=%r and %s=%r both set %s; keep one"
                              % (given[name], environ[given[name]], var, raw, name))
                continue
            if name not in given or var == PREFIX + name.upper():
                given[name] = var
                values[name] = (raw, var)
            continue
        row = gunicorn.BY_NAME.get(var[len(PREFIX):].lower())
        if row is not None and row.kind is not gunicorn.Kind.SAME:
            kind, text = gunicorn.judge(row, raw, "environment variable " + var)
            (errors if kind == "error" else notes).append(text)
            continue
        near = difflib.get_close_matches(var, list(known) + list(OWN), n=1, cutoff=0.75)
        errors.append("unknown setting %s%s" % (var, "; did you mean %s?" % near[0] if near else
                                                "; see pyfork run --help for the settings"))
    return values, notes, errors

