# pyfork.conf.py: an example configuration file. Copy it next to your app (pyfork reads
# ./pyfork.conf.py when it is there) or pass it with -c:
#
#     pyfork run app:wsgi -c pyfork.conf.py
#     pyfork check-config -c pyfork.conf.py      # the effective values and where each came from
#
# It is Python, like gunicorn.conf.py: settings are module-level names (the names of
# `pyfork run --help`'s flags with '_' for '-'), hooks are functions with Gunicorn's names
# and arguments. Precedence: defaults < this file < environment (PORT, WEB_CONCURRENCY,
# PYFORK_<SETTING>) < command-line flags. A misspelt name stops pyfork with the nearest
# known one; name your own helpers with a leading underscore.

# --- listening --------------------------------------------------------------------------
# Left out, pyfork listens on 0.0.0.0:$PORT (else 127.0.0.1:8000), or adopts the sockets
# systemd hands it (LISTEN_FDS): keep it commented out under systemd socket activation and
# on Heroku, where a bind here would win over $PORT.
# bind = ["0.0.0.0:8000"]            # HOST:PORT, [::1]:PORT, unix:PATH or fd://N
backlog = 2048

# --- workers ----------------------------------------------------------------------------
# WEB_CONCURRENCY, where set, wins over this line. "auto" follows the memory advice,
# between min_workers and max_workers.
workers = 2
preload = True                       # import the app once, gc.freeze(), fork: shared pages

# --- timeouts ---------------------------------------------------------------------------
timeout = 30                         # a worker silent this long: SIGABRT (stack logged), then SIGKILL
graceful_timeout = 25                # on TERM, seconds to finish requests in hand
keepalive = 5                        # behind a load balancer: a little above its idle timeout
max_requests = 0                     # recycle after N requests (0: never) ...
max_requests_jitter = 0              # ... plus up to this many, so workers do not restart together

# --- recycling and the memory quota -----------------------------------------------------
# memory_quota = "512MB"             # only where no cgroup limit says (a VM, a laptop)
# dyno_size = "standard-1x"          # or take a whole preset: -c conf/dyno-standard-1x.py
max_worker_memory = "200MB"          # replace a worker whose PSS passes this
max_worker_zombies = 32              # ... or that has this many unreaped children
max_worker_threads = 64              # ... or this many threads (0: off)

# --- logs and metrics -------------------------------------------------------------------
loglevel = "info"
access_logfile = "-"                 # '-' is stdout; leave unset for none
error_logfile = "-"                  # '-' is stderr
metrics_interval = 20                # seconds between memory lines (0: off)
# metrics_bind = "127.0.0.1:9100"    # Prometheus text at /metrics (off unless set)
forwarded_allow_ips = "127.0.0.1,::1"   # peers whose X-Forwarded-Proto is trusted


# --- hooks ------------------------------------------------------------------------------
# Gunicorn's hooks, names and arguments. `server` is the master, `worker` the worker (in
# the master's own hooks, a record of it: nr, pid, log). Delete the ones you do not need.
# A hook that raises is logged with its name and traceback; whether that stops pyfork
# follows Gunicorn: in the master's start-up hooks it does, in per-request ones it does not.

def on_starting(server):
    server.log.info("hook on_starting: master starting, before the listeners are made")


def on_reload(server):
    server.log.info("hook on_reload: HUP received, replacing the workers")


def when_ready(server):
    server.log.info("hook when_ready: listening; workers start next")


def pre_fork(server, worker):
    server.log.info("hook pre_fork: about to fork worker %s", worker.nr)


def post_fork(server, worker):
    server.log.info("hook post_fork: in the new worker, before it loads or serves the app")


def post_worker_init(worker):
    worker.log.info("hook post_worker_init: app loaded, worker about to serve")


def worker_int(worker):
    worker.log.info("hook worker_int: worker got SIGINT (quick stop)")


def worker_abort(worker):
    worker.log.info("hook worker_abort: worker got SIGABRT (timed out; its stack is in the log)")


def pre_exec(server):
    server.log.info("hook pre_exec: USR2, re-executing the master in place")


def pre_request(worker, req):
    worker.log.debug("hook pre_request: %s %s", req.method, req.path)


def post_request(worker, req, environ, resp):
    worker.log.debug("hook post_request: %s %s -> %s", req.method, req.path, resp.status)


def child_exit(server, worker):
    server.log.info("hook child_exit: worker pid %s exited (in the master)", worker.pid)


def worker_exit(server, worker):
    server.log.info("hook worker_exit: worker exiting (in the worker)")


def nworkers_changed(server, new_value, old_value):
    server.log.info("hook nworkers_changed: workers %s -> %s", old_value, new_value)


def on_exit(server):
    server.log.info("hook on_exit: master exiting")
