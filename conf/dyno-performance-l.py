# pyfork preset: Heroku Performance-L dyno (also Private-L and Shield-L: the same memory, tasks and CPUs).
#
#     web: pyfork run app:wsgi -c conf/dyno-performance-l.py
#
# Precedence: defaults < this file < environment < flags. So WEB_CONCURRENCY, PORT and
# PYFORK_<SETTING> (e.g. PYFORK_MAX_WORKER_MEMORY=600MB) set with `heroku config:set` win
# over what is written here, and a flag on the Procfile line wins over both.
# `bind` is left out on purpose: on Heroku pyfork listens on 0.0.0.0:$PORT, and a bind
# written here would win over $PORT and the router could not reach the dyno (R10).
#
# The numbers below agree with supervisor/observe/dynos.py (tests/test_conf.py checks them).

# --- the dyno -------------------------------------------------------------------------
# 14 GB of memory; past it Heroku logs R14 (memory quota exceeded), further past it
# R15 restarts the dyno (in Private Spaces there may be no swap: the platform kills the
# biggest processes instead).
# https://devcenter.heroku.com/articles/dyno-types
# https://devcenter.heroku.com/articles/dyno-memory-behavior
# On the dyno the cgroup says the same (memory.limit_in_bytes = 15032385536), and pyfork
# prefers the cgroup's number when it can read it:
# https://help.heroku.com/Q386NUGG/how-can-i-determine-the-memory-limit-of-a-dyno
# The quota here is what pyfork uses where no cgroup limit is readable (a laptop, a VM).
dyno_size = "performance-l"
memory_quota = "14GB"
# Task limit (processes + threads, `ulimit -u`): 32768 on Performance-L. Far from
# tight for a pre-fork server, but at the limit every fork() and pthread_create() in the
# dyno fails with EAGAIN.
# https://devcenter.heroku.com/articles/dyno-scaling-and-process-limits
# (Not a setting: dyno_size gives pyfork the limit for its warnings at 80% and for
# recycling the biggest task holder at 75%.)

# --- workers ----------------------------------------------------------------------------
# 17 workers: what pyfork's advice (supervisor/observe/sizing.py, the same function as
# the live line, -w auto, `pyfork advise` and check-config) gives on this size for a typical
# Flask or Django app: 150 MB private per worker, 60 MB for the master and the shared
# pages, cpu_busy_share not yet measured (taken as 0.5). tests/test_conf.py recomputes it.
# - memory: 80 fit under 85% of the quota ((quota x 0.85 - 60 MB) / 150 MB);
# - CPU: 8 dedicated vCPUs (https://help.heroku.com/88G3XLA6/what-is-an-acceptable-amount-of-dyno-load), cpus / 0.5 + 1 = 17;
# so the CPUs bind: 17 workers, projected 2610 MB (18% of the quota).
# Heroku's Python buildpack agrees: it exports WEB_CONCURRENCY=17 on this size. An app that
# mostly waits on I/O measures a low cpu_busy_share, and the advice then allows more
# workers (or suggests --threads): read it in the live line or `pyfork advise`.
# Your app is not the typical one: the live line says what fits it (every metrics
# interval), and `pyfork advise` on a day of logs prints the same for every size.
workers = 17

# --- timeouts ---------------------------------------------------------------------------
# Heroku's router answers 503 (H12 request timeout) once a request has run 30 s; from then
# on nothing the worker sends reaches the client, so a worker silent for 30 s is killed
# (SIGABRT first, so its stack is in the log) and its slot freed for requests that can
# still be answered. https://devcenter.heroku.com/articles/request-timeout
timeout = 30
# On restart or deploy Heroku sends SIGTERM to every process in the dyno and SIGKILL 30 s
# later. 25 s for requests in hand leaves the master 5 s to kill stragglers and exit
# cleanly before the SIGKILL. https://devcenter.heroku.com/articles/dyno-shutdown-behavior
graceful_timeout = 25
# Heroku's Router 2.0 keeps connections to the dyno open while idle and closes them after
# 90 s; staying open 5 s longer means the router, not pyfork, closes an idle connection,
# so a request is never sent down a connection pyfork is closing at that instant.
# In pyfork an idle connection costs a file descriptor, not a worker.
# https://devcenter.heroku.com/articles/http-routing#keepalives
keepalive = 95

# --- recycling before the platform steps in --------------------------------------------
# A ceiling per worker, so one leaky worker is replaced (it finishes its request first)
# long before the dyno as a whole reaches R14:
#   (quota x 85% - master and shared) / workers = 713.3 MB -> 710MB,
# each worker's part of what the advice above allows (60 MB for the master and shared
# pages, as there). Measured as PSS (the default memory_metric), so the workers' numbers
# add up to what the dyno uses. Besides this ceiling pyfork recycles, by default, the
# worker holding the most private memory once the dyno passes 90% of the quota
# (--memory-pressure): the ceiling catches one worker growing while the dyno has room. Few apps
# need 750 MB per sync worker: a worker that gets there is leaking, or one request loads
# far too much; lower it to taste, the sum only has to stay under the quota.
# With WEB_CONCURRENCY=25 lower it too: PYFORK_MAX_WORKER_MEMORY=480MB.
max_worker_memory = "710MB"
# 32768 tasks for the whole dyno leave room for anything legitimate, so the limits aim
# at leaks, not at the budget: a worker is recycled at 32 unreaped children (a library
# that forks and never waits: the incident pyfork was written for) or 256 threads (a sync
# worker needs a handful; DB pools and APM agents a few dozen). Worst case just under
# both, 17 * (255 + 31) + master = 4863 tasks: under 15% of the limit.
max_worker_zombies = 32
max_worker_threads = 256
# Off: a request count recycles healthy workers too; the memory ceiling above aims at
# the ones that actually grow.
max_requests = 0

# --- sharing memory -----------------------------------------------------------------------
# Import the app once in the master, then gc.freeze(), then fork: workers share the app's
# pages copy-on-write, and the frozen objects are never touched by the collector, so the
# pages stay shared. Each worker then costs only what it writes. What the import leaves
# open is checked before the first fork: a database connection, a thread or a child
# process in the master would be shared by every worker, so pyfork refuses to start and
# names it (close it in when_ready: connections.close_all() for Django). A HUP re-executes
# the master once the new code imports, so new code serves. README: "Preloading safely".
preload = True

# --- metrics ----------------------------------------------------------------------------
# Heroku's log-runtime-metrics cadence: one set of memory lines every 20 s, so pyfork's
# per-worker lines line up with Heroku's dyno lines.
# https://devcenter.heroku.com/articles/log-runtime-metrics
metrics_interval = 20

# --- behind the router ------------------------------------------------------------------
# From outside, only Heroku's router reaches a web dyno, from addresses that change, so
# its X-Forwarded-Proto is trusted from any peer (the Python buildpack exports
# FORWARDED_ALLOW_IPS='*' for Gunicorn, which pyfork also reads).
forwarded_allow_ips = "*"
