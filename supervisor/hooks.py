"""Server hooks from the config file, with Gunicorn's names and arguments.

What happens when a hook raises follows what Gunicorn does with it (its arbiter and
workers call most hooks unguarded, so the exception ends the process that ran it):

  STOP  the master logs the traceback and exits (exits.HOOK): a broken on_starting or
        pre_fork would otherwise leave a server that half works;
  BOOT  the worker exits before serving; the master's crash-loop rules take it from
        there (a worker that never boots ends the master with exits.WORKER_BOOT);
  LOG   logged with its traceback and name, and serving goes on (pre_request answers
        that request with a 500, as Gunicorn's handle_error does).
"""
import enum
import inspect


class Policy(enum.Enum):
    STOP = "stops the master"
    BOOT = "fails the worker's boot"
    LOG = "is logged"


HOOKS = {
    # name: (number of arguments, what an exception does)
    "on_starting": (1, Policy.STOP),
    "on_reload": (1, Policy.STOP),
    "when_ready": (1, Policy.STOP),
    "pre_fork": (2, Policy.STOP),
    "post_fork": (2, Policy.BOOT),
    "post_worker_init": (1, Policy.BOOT),
    "post_refork": (2, Policy.BOOT),      # pyfork's: in a worker forked from a template (--refork-after)
    "worker_int": (1, Policy.LOG),
    "worker_abort": (1, Policy.LOG),
    "pre_exec": (1, Policy.STOP),
    "pre_request": (2, Policy.LOG),
    "post_request": (4, Policy.LOG),
    "child_exit": (2, Policy.LOG),
    "worker_exit": (2, Policy.LOG),
    "nworkers_changed": (3, Policy.STOP),
    "on_exit": (1, Policy.LOG),
    "ssl_context": (2, Policy.BOOT),     # (config, default_ssl_context_factory) -> SSLContext (serve/tls.py)
}


class HookFailed(Exception):
    """A hook whose policy is STOP or BOOT raised; the traceback is already logged."""

    def __init__(self, name):
        super().__init__("hook %s raised" % name)
        self.name = name


def check(name, fn):
    """None if `fn` can take the hook's arguments, else a sentence saying what is wrong."""
    want = HOOKS[name][0]
    try:
        inspect.signature(fn).bind(*range(want))
    except TypeError:
        return "hook %s must take %d argument%s (Gunicorn's signature)" % (name, want, "s" * (want != 1))
    except ValueError:
        return None      # a builtin without a signature: trust it
    return None


def call(hooks, log, name, *args):
    """Run the hook if the config file has one. Returns True if it ran cleanly."""
    fn = hooks.get(name)
    if fn is None:
        return True
    try:
        fn(*args)
        return True
    except Exception:
        policy = HOOKS[name][1]
        log.exception("hook %s raised (an exception in %s %s)", name, name, policy.value)
        if policy is not Policy.LOG:
            raise HookFailed(name) from None
        return False


class WorkerInfo:
    """What master-side hooks (pre_fork, child_exit) get as `worker`: Gunicorn's
    attribute names for the slot (nr/age), the pid (0 before the fork) and the log."""

    def __init__(self, nr, pid, log, exit_code=None):
        self.nr = self.age = nr
        self.pid = pid
        self.log = log
        self.exit_code = exit_code


class Request:
    """`req` for pre_request/post_request, in Gunicorn's shape, made only when such a
    hook exists (never on the hot path otherwise)."""

    def __init__(self, env):
        self.method = env.get("REQUEST_METHOD")
        self.uri = env.get("RAW_URI")
        self.path = env.get("PATH_INFO")
        self.query = env.get("QUERY_STRING")
        self.version = env.get("SERVER_PROTOCOL")
        self.remote_addr = env.get("REMOTE_ADDR")
        self.headers = [(k[5:].replace("_", "-"), v) for k, v in env.items() if k.startswith("HTTP_")]
        self.headers += [(k.replace("_", "-"), env[k]) for k in ("CONTENT_TYPE", "CONTENT_LENGTH") if k in env]


class Response:
    """`resp` for post_request: status, headers and bytes sent."""

    def __init__(self, status, headers, sent):
        self.status = status
        self.status_code = int(status.split(" ", 1)[0]) if status else 500
        self.headers = list(headers or ())
        self.sent = sent
