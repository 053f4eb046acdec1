"""Exit codes, named. Gunicorn's numbers where Gunicorn has one."""
OK = 0
ERROR = 1          # an unexpected error in the master (a bug: the traceback is logged)
USAGE = 2          # bad flag, setting, environment value, app name or bind address
WORKER_BOOT = 3    # workers kept dying before they ever served (crash loop at boot)
APP_LOAD = 4       # the app raised while being imported
HOOK = 5           # a server hook from the config file raised (its traceback is logged)

MEANING = {
    OK: "ok",
    ERROR: "internal error",
    USAGE: "bad configuration",
    WORKER_BOOT: "workers failed to boot",
    APP_LOAD: "the app failed to load",
    HOOK: "a config-file hook raised",
}
