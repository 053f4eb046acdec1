"""Exit codes, named. Gunicorn's numbers where Gunicorn has one."""
OK = 0
ERROR = 1          # an unexpected error in the master (a bug: the traceback is logged)
USAGE = 2          # bad flag, setting, environment value, app name or bind address
WORKER_BOOT = 3    # workers kept dying before they ever served (crash loop at boot)
APP_LOAD = 4       # the app raised while being imported
HOOK = 5           # a server hook from the config file raised (its traceback is logged)
KILLED_BY_US = -1000   # an exit "code" for a SIGKILL the master sent itself

MEANING = {
    OK: "ok",
    ERROR: "internal error",
    USAGE: "bad configuration",
    WORKER_BOOT: "workers failed to boot",
    APP_LOAD: "the app failed to load",
    HOOK: "a config-file hook raised",
}


def exit_description(code):
    """-9 -> 'killed by SIGKILL: out of memory?'; 4 -> 'exit code 4 (the app failed to load)'."""
    import signal as _signal   # value-level: the names of signal numbers
    if code == KILLED_BY_US:
        return "killed by SIGKILL from the master (it would not stop in time)"
    if code < 0:
        try:
            name = _signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        if -code == _signal.SIGKILL:
            return "killed by %s: out of memory?" % name
        return "killed by %s" % name
    if code in MEANING and code:
        return "exit code %d (%s)" % (code, MEANING[code])
    return "exit code %d" % code


class StartError(Exception):
    """The master cannot start as configured (an address, the pidfile, a user); the
    message says what to fix. The master logs it and exits with USAGE."""
