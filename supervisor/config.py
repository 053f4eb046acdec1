"""Settings: one table drives the flags, the environment and the frozen Config.

Pure: no I/O. Precedence is default < detected platform < config file < environment <
GUNICORN_CMD_ARGS < PYFORK_CMD_ARGS < flag. Converters (convert.py) raise ConfigError with a
sentence that names what to fix; every error found is reported, then the CLI exits 2.
"""
import dataclasses

from . import environ as _environ
from .convert import (AUTO, LOG_LEVELS, Bind, ConfigError, _binds, _bool, _choice, _choice_of, _env_pairs,  # noqa: F401
                      _float, _header_map, _int, _ips, _log_format, _loglevel, _marks, _metrics_bind, _optional_path,
                      _paths, _percent, _size, _str, _umask, _worker_class, _workers, parse_bind, parse_size)
from .convert_gunicorn import (SYSLOG_FACILITIES, _cert_reqs, _log_dict, _names, _proxy_protocol, _scheme_headers,
                               _ssl_version, _statsd_host, _syslog_addr)


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    flags: tuple
    convert: object
    default: object
    help: str
    env: str = ""          # a platform variable read besides PYFORK_<NAME>
    action: str = ""       # "store_true" or "append" for argparse
    metavar: str = ""
    const: object = None   # action "optional": the value of the bare flag


SETTINGS = (
    Setting("bind", ("-b", "--bind"), _binds, None, "address to listen on: HOST:PORT, [::1]:PORT, unix:PATH or fd://N; repeatable (default 0.0.0.0:$PORT, else 127.0.0.1:8000)", action="append", metavar="ADDRESS"),
    Setting("workers", ("-w", "--workers"), _workers, 2, "number of worker processes, or 'auto' to follow the memory advice (default $WEB_CONCURRENCY, else 2)", env="WEB_CONCURRENCY", metavar="N"),
    Setting("threads", ("--threads",), _int(1), 1, "app threads per worker; the worker's loop reads and writes the sockets and hands whole requests to them", metavar="N"),
    Setting("worker_class", ("-k", "--worker-class"), _worker_class, "sync", "sync or gthread (threads come from --threads, as in Gunicorn)", metavar="CLASS"),
    Setting("min_workers", ("--min-workers",), _int(1), 1, "with -w auto: never fewer workers than this", metavar="N"),
    Setting("max_workers", ("--max-workers",), _int(1), 64, "with -w auto: never more workers than this", metavar="N"),
    Setting("backlog", ("--backlog",), _int(1), 2048, "listen queue length", metavar="N"),
    Setting("chdir", ("--chdir",), _optional_path, None, "change to this directory before loading the app", metavar="DIR"),
    Setting("pythonpath", ("--pythonpath",), _paths, (), "directories to put first on the import path, comma separated", metavar="DIRS"),
    Setting("raw_env", ("-e", "--env"), _env_pairs, (), "set an environment variable for the app: KEY=VALUE; repeatable", action="append", metavar="KEY=VALUE"),
    Setting("preload", ("--preload",), _bool, False, "import the app in the master before forking, so workers share its memory", action="store_true"),
    Setting("reload", ("--reload",), _bool, False, "development: when a file of the app changes, import the new code in a probe, then replace the workers (re-execute the master with --preload); code that fails to import keeps the workers serving", action="store_true"),
    Setting("reload_extra_files", ("--reload-extra-file",), _paths, (), "with --reload: watch this file too (templates, configuration); repeatable", action="append", metavar="FILE"),
    Setting("reload_engine", ("--reload-engine",), _choice("auto", "poll", "inotify"), "auto", "with --reload: inotify (read from the master's loop, no thread), or poll (mtimes once a second); auto: inotify where there is one", metavar="ENGINE"),
    Setting("preload_unsafe", ("--preload-unsafe",), _bool, False, "with --preload: fork even when the app's import left sockets, threads or children in the master (they are named in a warning); for what you know survives a fork", action="store_true"),
    Setting("refork_after", ("--refork-after",), _marks, (), "once a worker has served this many requests, fork the others' replacements from it (warm, sharing its memory); a list such as 50,500,5000 reforks at each", metavar="N[,N...]"),
    Setting("keepalive", ("--keep-alive",), _float(0), 5.0, "seconds an idle keep-alive connection stays open (0 closes after each response)", metavar="SECONDS"),
    Setting("limit_request_line", ("--limit-request-line",), _int(0), 4094, "longest request line in bytes, else 414 (0 means 8190)", metavar="BYTES"),
    Setting("limit_request_fields", ("--limit-request-fields",), _int(0), 100, "most header fields in a request, else 431 (0 means 32768)", metavar="N"),
    Setting("limit_request_field_size", ("--limit-request-field_size", "--limit-request-field-size"), _int(0), 8190, "longest header field (name and value) in bytes, else 431 (0 means the default, 8190, as in Gunicorn)", metavar="BYTES"),
    Setting("header_map", ("--header-map",), _header_map, "drop", "header names with '_': drop them, or refuse the request with 400 (Gunicorn's drop and refuse)", metavar="drop|refuse"),
    Setting("limit_request_body", ("--limit-request-body",), _int(0), 0, "largest request body in bytes, else 413 (0: no limit)", metavar="BYTES"),
    Setting("max_requests", ("--max-requests",), _int(0), 0, "restart a worker after this many requests (0: never)", metavar="N"),
    Setting("max_requests_jitter", ("--max-requests-jitter",), _int(0), 0, "add up to this many requests at random to --max-requests per worker", metavar="N"),
    Setting("timeout", ("-t", "--timeout"), _float(0), 30.0, "kill a worker silent for this many seconds (0: never)", metavar="SECONDS"),
    Setting("boot_timeout", ("--boot-timeout",), _float(0), 60.0, "kill a worker that has not booted (loaded the app) within this many seconds (0: never)", metavar="SECONDS"),
    Setting("graceful_timeout", ("--graceful-timeout",), _float(0), 25.0, "seconds workers get to finish requests on stop", metavar="SECONDS"),
    Setting("access_logfile", ("--access-logfile",), _optional_path, None, "access log file, '-' for stdout (default: none)", metavar="FILE"),
    Setting("access_logformat", ("--access-logformat",), _log_format, '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"', "access log line, in Gunicorn's atoms", metavar="FORMAT"),
    Setting("error_logfile", ("--error-logfile", "--log-file"), _str, "-", "error log file, '-' for stderr", metavar="FILE"),
    Setting("loglevel", ("--log-level",), _loglevel, "info", "error log level: " + ", ".join(LOG_LEVELS), metavar="LEVEL"),
    Setting("logconfig", ("--log-config",), _optional_path, None, "a logging.config.fileConfig file: the error and access lines go to the loggers gunicorn.error and gunicorn.access, as in Gunicorn", metavar="FILE"),
    Setting("logconfig_dict", ("--log-config-dict",), _log_dict, None, "a logging.config.dictConfig dictionary (JSON here, a dict in the config file) over Gunicorn's defaults, for gunicorn.error and gunicorn.access", metavar="JSON"),
    Setting("logconfig_json", ("--log-config-json",), _optional_path, None, "a JSON file holding a dictConfig dictionary, as logconfig_dict", metavar="FILE"),
    Setting("syslog", ("--log-syslog",), _bool, False, "send the error log (and the access log) to syslog too, as Gunicorn does", action="store_true"),
    Setting("syslog_addr", ("--log-syslog-to",), _syslog_addr, "udp://localhost:514", "where syslog listens: unix://PATH[#dgram|#stream], udp://HOST:PORT or tcp://HOST:PORT", metavar="ADDRESS"),
    Setting("syslog_prefix", ("--log-syslog-prefix",), _optional_path, None, "the program name in syslog lines: gunicorn.PREFIX.error (default: the app's name)", metavar="PREFIX"),
    Setting("syslog_facility", ("--log-syslog-facility",), _choice_of(SYSLOG_FACILITIES), "user", "syslog facility name", metavar="FACILITY"),
    Setting("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",), _bool, False, "with --log-syslog: keep the access log out of syslog", action="store_true"),
    Setting("forwarded_allow_ips", ("--forwarded-allow-ips",), _ips, "127.0.0.1,::1", "peers whose X-Forwarded-Proto is trusted, comma separated, '*' for all", env="FORWARDED_ALLOW_IPS", metavar="IPS"),
    Setting("secure_scheme_headers", ("--secure-scheme-headers",), _scheme_headers, "X-FORWARDED-PROTOCOL=ssl,X-FORWARDED-PROTO=https,X-FORWARDED-SSL=on", "headers from a --forwarded-allow-ips peer that mean https, with the value that says so: a dict in the config file, NAME=VALUE,... here (Gunicorn's default)", metavar="NAME=VALUE,..."),
    Setting("forwarder_headers", ("--forwarder-headers",), _names, "SCRIPT_NAME,PATH_INFO", "header names with '_' a --forwarded-allow-ips peer may send (kept as HTTP_<NAME>; SCRIPT_NAME also sets the environ's SCRIPT_NAME), '*' for all", metavar="NAMES"),
    Setting("certfile", ("--certfile",), _optional_path, None, "serve HTTPS with this certificate (PEM; the chain after it); the handshake runs in the worker's loop, never blocking it", metavar="FILE"),
    Setting("keyfile", ("--keyfile",), _optional_path, None, "the certificate's private key (PEM), when it is not in --certfile", metavar="FILE"),
    Setting("ca_certs", ("--ca-certs",), _optional_path, None, "CA certificates to verify clients' certificates with (see --cert-reqs)", metavar="FILE"),
    Setting("cert_reqs", ("--cert-reqs",), _cert_reqs, 0, "client certificates: 0 not asked (the default), 1 optional, 2 required", metavar="0|1|2"),
    Setting("ciphers", ("--ciphers",), _optional_path, None, "OpenSSL cipher list (default: Python's)", metavar="CIPHERS"),
    Setting("ssl_version", ("--ssl-version",), _ssl_version, 17, "ssl protocol: TLS_SERVER (the default: the highest both sides speak), TLS, TLSv1_2", metavar="VERSION"),
    Setting("suppress_ragged_eofs", ("--suppress-ragged-eofs",), _bool, True, "read a TLS connection closed without close_notify as an end (Gunicorn's default)", action="store_true"),
    Setting("proxy_protocol", ("--proxy-protocol",), _proxy_protocol, "off", "read a PROXY protocol header (HAProxy, an AWS network load balancer) before HTTP: off, v1, v2 or auto (the bare flag); the client's address becomes REMOTE_ADDR", action="optional", metavar="MODE", const="auto"),
    Setting("proxy_allow_ips", ("--proxy-allow-from",), _ips, "127.0.0.1,::1", "peers that may send a PROXY header, comma separated, '*' for all; another's closes the connection", metavar="IPS"),
    Setting("pidfile", ("-p", "--pid"), _optional_path, None, "write the master's pid to this file", metavar="FILE"),
    Setting("user", ("-u", "--user"), _optional_path, None, "run workers as this user (name or uid) when started as root", metavar="USER"),
    Setting("group", ("-g", "--group"), _optional_path, None, "run workers as this group (name or gid) when started as root", metavar="GROUP"),
    Setting("metrics_interval", ("--metrics-interval",), _float(0), 20.0, "seconds between metrics samples (0: off)", metavar="SECONDS"),
    Setting("metrics_format", ("--metrics-format",), _choice("logfmt", "json"), "logfmt", "metrics lines as Heroku's key=value (logfmt) or JSON", metavar="FORMAT"),
    Setting("metrics_log", ("--metrics-log",), _optional_path, None, "write metrics lines to this file instead of stderr", metavar="FILE"),
    Setting("metrics_bind", ("--metrics-bind",), _metrics_bind, None, "serve Prometheus /metrics from the master at HOST:PORT (host defaults to 127.0.0.1)", metavar="ADDRESS"),
    Setting("statsd_host", ("--statsd-host",), _statsd_host, None, "send Gunicorn's statsd metrics (and pyfork's per-worker gauges) to HOST:PORT (UDP, port 8125 by default) or unix:PATH", metavar="ADDRESS"),
    Setting("statsd_prefix", ("--statsd-prefix",), _str, "", "put this before every statsd metric's name (a '.' is added)", metavar="PREFIX"),
    Setting("dogstatsd_tags", ("--dogstatsd-tags",), _str, "", "DogStatsD tags for every metric: tag1:value1,tag2:value2", metavar="TAGS"),
    Setting("memory_quota", ("--memory-quota",), _size, None, "the dyno's memory when no cgroup limit says (e.g. 512MB)", metavar="SIZE"),
    Setting("dyno_size", ("--dyno-size",), _optional_path, None, "a Heroku dyno size (standard-1x, performance-m, ...) for quota and task limit", metavar="NAME"),
    Setting("max_worker_memory", ("--max-worker-memory",), _size, None, "recycle a worker whose memory passes this (e.g. 300MB)", metavar="SIZE"),
    Setting("memory_metric", ("--memory-metric",), _choice("pss", "uss", "rss"), "pss", "memory measure for --max-worker-memory: pss, uss or rss", metavar="METRIC"),
    Setting("memory_pressure", ("--memory-pressure",), _percent, 90, "past this percent of the memory quota, recycle the worker holding the most private memory, one at a time (0: off)", metavar="PERCENT"),
    Setting("no_step_down", ("--no-step-down",), _bool, False, "when the kernel OOM-kills a worker or a memory recycle does not help, keep the worker count (by default the master runs one fewer until HUP or USR2)", action="store_true"),
    Setting("max_worker_zombies", ("--max-worker-zombies",), _int(0), 32, "recycle a worker with this many unreaped children (0: off)", metavar="N"),
    Setting("max_worker_threads", ("--max-worker-threads",), _int(0), 0, "recycle a worker with this many threads (0: off)", metavar="N"),
    Setting("control_socket", ("--control-socket",), _optional_path, None, "serve `pyfork status` on this unix socket (default: beside the pidfile, else $XDG_RUNTIME_DIR/pyfork.sock)", metavar="PATH"),
    Setting("no_control_socket", ("--no-control-socket",), _bool, False, "serve no control socket", action="store_true"),
    Setting("reuse_port", ("--reuse-port",), _bool, False, "set SO_REUSEPORT on the listening sockets", action="store_true"),
    Setting("umask", ("-m", "--umask"), _umask, 0, "the umask a unix socket is bound with, as in Gunicorn: 0 (its default) makes it mode 0777, so any local user may connect; 0o007 keeps others out. Owned by --user/--group when given", metavar="MASK"),
)

BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Config:
    app: str
    bind: tuple
    workers: int
    threads: int
    worker_class: str
    min_workers: int
    max_workers: int
    backlog: int
    chdir: object
    pythonpath: tuple
    raw_env: tuple
    preload: bool
    reload: bool
    reload_extra_files: tuple
    reload_engine: str
    keepalive: float
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    header_map: str
    limit_request_body: int
    max_requests: int
    max_requests_jitter: int
    timeout: float
    boot_timeout: float
    graceful_timeout: float
    access_logfile: object
    access_logformat: str
    error_logfile: str
    loglevel: str
    logconfig: object
    syslog: bool
    syslog_addr: tuple
    syslog_prefix: object
    syslog_facility: str
    disable_redirect_access_to_syslog: bool
    logconfig_dict: object
    logconfig_json: object
    forwarded_allow_ips: tuple
    secure_scheme_headers: tuple
    certfile: object
    keyfile: object
    ca_certs: object
    cert_reqs: int
    ciphers: object
    ssl_version: int
    suppress_ragged_eofs: bool
    proxy_protocol: str
    proxy_allow_ips: tuple
    forwarder_headers: tuple
    metrics_interval: float
    metrics_format: str
    metrics_log: object
    metrics_bind: object
    statsd_host: object
    statsd_prefix: str
    dogstatsd_tags: str
    memory_quota: object
    dyno_size: object
    max_worker_memory: object
    memory_metric: str
    memory_pressure: int
    max_worker_zombies: int
    max_worker_threads: int
    pidfile: object
    user: object
    group: object
    reuse_port: bool
    control_socket: object = None
    umask: int = 0
    no_control_socket: bool = False
    preload_unsafe: bool = False
    no_step_down: bool = False
    refork_after: tuple = ()
    hooks: dict = dataclasses.field(default_factory=dict, compare=False)   # name -> function, from the config file


def env_name(setting):
    return "PYFORK_" + setting.name.upper()


def resolve(app, flags, environ, file_values=None, file_name=None, detected=None):
    """The Config alone; see resolve_sources."""
    return resolve_sources(app, flags, environ, file_values, file_name, detected)[0]


def _convert(s, raw, where):
    """Run a setting's converter; any failure becomes a ConfigError naming the setting
    and where the value came from (a file value may be any Python object)."""
    if raw is None:
        if s.default is None:
            return None
        raise ConfigError("%s: None is not allowed; remove the line to get the default (%r)" % (where, s.default))
    try:
        return s.convert(raw, where)
    except ConfigError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError("%s: %r is not a valid value (%s)" % (where, raw, exc)) from None


def _check_app(app):
    if not app:
        raise ConfigError("no app given: pyfork run MODULE:NAME (try pyfork run supervisor.demo)")
    module, _, expr = app.partition(":")
    if not module or (":" in expr and "(" not in expr):
        raise ConfigError("app %r: give the app as MODULE:NAME, for example myapp:app" % (app,))


def _layers(detected, file_values, file_name, file_lines, env_values, layers, flags):
    """Each setting's raw values from the lowest source to the highest, as
    (setting name, raw, source, where) -- `where` is what an error message names."""
    for name, (raw, source) in detected.items():
        yield name, raw, source, source
    for name, raw in file_values.items():
        yield name, raw, "file " + (file_name or ""), "setting %r in %s line %s" % (
            name, file_name, file_lines.get(name, "?"))
    for name, (raw, var) in env_values.items():
        yield name, raw, "environment variable " + var, "environment variable " + var
    for var, values in layers:
        for name, raw in values.items():
            if raw is not None:
                yield name, raw, "environment variable " + var, "flag %s in %s" % (BY_NAME[name].flags[-1], var)
    for name, raw in flags.items():
        if raw is not None:
            yield name, raw, "flag " + BY_NAME[name].flags[-1], "flag " + BY_NAME[name].flags[-1]


def resolve_sources(app, flags, environ, file_values=None, file_name=None, detected=None, file_lines=None,
                    layers=(), notes=None, written=None):
    """Merge default < detected (the platform) < config file < environment < `layers`
    (flags from GUNICORN_CMD_ARGS, PYFORK_CMD_ARGS: [(variable, {name: raw})]) < flags into a Config, and
    say where each value came from. `flags` maps name -> raw value for the flags given on
    the command line only; `file_values` the config file's settings. A dyno size (however
    it was chosen) supplies the defaults of `workers` and `memory_quota` that no other
    source set. Notes for the log are added to `notes`; `written` gets each value as it was
    given. Every mistake found is raised together: one ConfigError, one line each."""
    file_values = file_values or {}
    if not app and file_values.get("wsgi_app"):
        app = file_values["wsgi_app"]          # Gunicorn's name for the app in a config file
    errors = []
    try:
        _check_app(app)
    except ConfigError as exc:
        errors.append(str(exc))
    env_values, env_notes, env_errors = _environ.read(environ, SETTINGS)
    errors += env_errors
    if notes is not None:
        notes += env_notes
    chosen = {s.name: (s.default, "default", s.flags[-1]) for s in SETTINGS}
    for name, raw, source, where in _layers(detected or {}, file_values, file_name, file_lines or {}, env_values,
                                            layers, flags):
        if name in chosen:
            chosen[name] = (raw, source, where)
    values, sources = {}, {}
    for s in SETTINGS:
        raw, sources[s.name], where = chosen[s.name]
        if written is not None and sources[s.name] != "default":
            written[s.name] = raw
        try:
            values[s.name] = _convert(s, raw, where)
        except ConfigError as exc:
            errors.extend(str(exc).splitlines())
    if errors:
        raise ConfigError("\n".join(errors))
    _derived(values, sources, environ)
    return Config(app=app, **values), sources


def _derived(values, sources, environ):
    """What follows from the values given: a dyno size's presets, the bind from $PORT, the
    limits' 0-means-Gunicorn's-maximum, and the bounds of -w auto."""
    if values["dyno_size"]:
        from .observe.dynos import lookup
        try:
            size = lookup(values["dyno_size"])
        except ValueError as exc:
            raise ConfigError("dyno_size (%s): %s" % (sources["dyno_size"], exc)) from None
        preset = "dyno size " + size.name
        for name, value in (("workers", size.workers), ("memory_quota", size.quota)):
            if sources[name] == "default":
                values[name], sources[name] = value, preset
    if not values["bind"]:
        port = environ.get("PORT", "")
        if port:
            ok = port.isascii() and port.isdigit() and int(port) <= 65535
            values["bind"] = (parse_bind("0.0.0.0:" + port),) if ok else _bad_port(port)
            sources["bind"] = "environment variable PORT"
        else:
            values["bind"] = (Bind("tcp", host="127.0.0.1", port=8000),)
    for name, biggest in (("limit_request_line", 8190), ("limit_request_fields", 32768),
                          ("limit_request_field_size", 8190)):   # 0 is Gunicorn's default, as in its message.py
        if values[name] == 0:
            values[name] = biggest
    if values["max_workers"] < values["min_workers"]:
        raise ConfigError("max_workers (%s) is below min_workers (%s)" % (values["max_workers"], values["min_workers"]))


def _bad_port(port):
    raise ConfigError("environment variable PORT: %r is not a port number" % port)
