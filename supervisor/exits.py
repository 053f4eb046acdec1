"""Exit codes, named. Gunicorn's numbers where Gunicorn has one."""
OK = 0
ERROR = 1          # an unexpected error in pyfork (a bug: the traceback is logged)
USAGE = 2          # bad flag, setting, environment value, app name or bind address
WORKER_BOOT = 3    # workers kept dying before they ever served (crash loop at boot)
APP_LOAD = 4       # the app raised while being imported
HOOK = 5           # a server hook from the config file raised (its traceback is logged)
PRELOAD_UNSAFE = 6  # --preload, and the app's import left sockets, threads or children to share
REFORK_REFUSED = 7  # a worker told to become the refork template holds what it cannot share
KILLED_BY_US = -1000   # an exit "code" for a SIGKILL the master sent itself

MEANING = {
    OK: "ok",
    ERROR: "internal error",
    USAGE: "bad configuration",
    WORKER_BOOT: "workers failed to boot",
    APP_LOAD: "the app failed to load",
    HOOK: "a config-file hook raised",
    PRELOAD_UNSAFE: "the preloaded app holds what workers cannot share",
    REFORK_REFUSED: "the refork template holds what workers cannot share",
}


FROM_THE_APP = "from the app, or a library it called"


def _signal_name(signum):
    import signal as _signal   # value-level: the names of signal numbers
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


def exit_description(code, ours=False):
    """-9 -> 'killed by SIGKILL: out of memory?'; 4 -> 'exit code 4 (the app failed to load)'
    when pyfork's code chose it (ours), else 'exit code 4 (from the app, or a library it called)'."""
    if code == KILLED_BY_US:
        return "killed by SIGKILL from the master (it would not stop in time)"
    if code < 0:
        name = _signal_name(-code)
        return "killed by %s%s" % (name, ": out of memory?" if name == "SIGKILL" else "")
    if not code:
        return "exit code 0"
    return "exit code %d (%s)" % (code, MEANING[code] if ours and code in MEANING else FROM_THE_APP)


def death_cause(code, ours):
    """A death line's parenthesis: 'signal 11, SIGSEGV', 'exit code 13, from the app, or a
    library it called', 'exit code 4, the app failed to load' (pyfork's own code)."""
    if code == KILLED_BY_US:
        return "signal 9, SIGKILL from the master"
    if code < 0:
        name = _signal_name(-code)
        return "signal %d, %s%s" % (-code, name, ": out of memory?" if name == "SIGKILL" else "")
    if ours:
        return "exit code %d, %s" % (code, MEANING[code]) if code in MEANING and code else "exit code %d" % code
    return "exit code %d, %s" % (code, FROM_THE_APP)


class StartError(Exception):
    """The master cannot start as configured (an address, the pidfile, a user); the
    message says what to fix. The master logs it and exits with USAGE."""
