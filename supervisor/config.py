"""Settings: one table drives the flags, the environment and the frozen Config.

Pure: no I/O. Precedence is default < environment < flag. Each converter raises
ConfigError with a sentence that names what to fix; the CLI turns that into exit 2.
"""
import dataclasses
import ipaddress
import re


class ConfigError(ValueError):
    """A setting's value is wrong; the message says which and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Bind:
    kind: str  # "tcp", "unix" or "fd"
    host: str = ""
    port: int = 0
    path: str = ""
    fd: int = -1

    def __str__(self):
        if self.kind == "unix":
            return "unix:" + self.path
        if self.kind == "fd":
            return "fd://%d" % self.fd
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)


def parse_bind(text):
    """'HOST:PORT', '[::1]:PORT', ':PORT', 'HOST', 'unix:PATH' or 'fd://N' -> Bind."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ConfigError("bind %r: give a path after 'unix:'" % text)
        return Bind("unix", path=path)
    if text.startswith("fd://"):
        fd = text[5:]
        if not (fd.isascii() and fd.isdigit()):
            raise ConfigError("bind %r: give a file descriptor number, like fd://3" % text)
        return Bind("fd", fd=int(fd))
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError("bind %r: write an IPv6 address as [::1]:8000" % text)
        port = rest[1:] if rest else "8000"
    elif text.count(":") > 1:
        raise ConfigError("bind %r: write an IPv6 address in brackets, like [::1]:8000" % text)
    else:
        host, _, port = text.partition(":")
        port = port or "8000"
    host = host or "0.0.0.0"
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ConfigError("bind %r: the port must be a number from 0 to 65535" % text)
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError("bind %r: %r is not an IPv6 address" % (text, host)) from None
    elif not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        raise ConfigError("bind %r: %r is not a host name or address" % (text, host))
    return Bind("tcp", host=host, port=int(port))


def _int(minimum):
    def convert(value, name):
        # 2.5 or True is a mistake, not 2 or 1 (Gunicorn refuses them too)
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError("%s: %r is not a whole number" % (name, value))
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ConfigError("%s: %r is not a whole number" % (name, value)) from None
        if n < minimum:
            raise ConfigError("%s: %d is too small; the least allowed is %d" % (name, n, minimum))
        return n
    return convert


def _float(minimum):
    def convert(value, name):
        try:
            n = float(value)
        except (TypeError, ValueError):
            raise ConfigError("%s: %r is not a number" % (name, value)) from None
        if not n >= minimum:
            raise ConfigError("%s: %s is too small; the least allowed is %s" % (name, value, minimum))
        return n
    return convert


AUTO = -1   # workers: follow the memory advice (-w auto)


def _workers(value, name):
    if str(value).strip().lower() == "auto":
        return AUTO
    return _int(0)(value, name)


_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "KIB": 1024, "M": 1024 ** 2, "MB": 1024 ** 2, "MIB": 1024 ** 2,
          "G": 1024 ** 3, "GB": 1024 ** 3, "GIB": 1024 ** 3}


def parse_size(value, name="size"):
    """'300MB', '512M', '2.5GB', '1048576' -> bytes (binary units, as Heroku and cgroups count)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).upper() not in _UNITS:
        raise ConfigError("%s: %r is not a size; write it like 300MB, 512M or 1GB" % (name, value))
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _percent(value, name):
    n = _int(0)(value, name)
    if n > 99:
        raise ConfigError("%s: %r is not a percent of the quota below 100 (0 turns it off)" % (name, value))
    return n


def _size(value, name):
    return parse_size(value, name) or None


def _choice(*options):
    def convert(value, name):
        text = str(value).lower()
        if text not in options:
            raise ConfigError("%s: %r is not one of %s" % (name, value, ", ".join(options)))
        return text
    return convert


_WORKER_CLASSES = {"sync": "sync", "gthread": "gthread", "egg:gunicorn#sync": "sync", "egg:gunicorn#gthread": "gthread",
                   "gunicorn.workers.sync.SyncWorker": "sync", "gunicorn.workers.gthread.ThreadWorker": "gthread"}


def _worker_class(value, name):
    """Gunicorn's -k: sync and gthread are served (threads come from --threads); an event
    loop worker (gevent, eventlet, tornado, uvicorn.workers.*) is refused, naming the way out."""
    text = str(value).strip()
    if text in _WORKER_CLASSES or text.lower() in _WORKER_CLASSES:
        return _WORKER_CLASSES.get(text) or _WORKER_CLASSES[text.lower()]
    raise ConfigError("%s: %r is not available: pyfork runs sync or threaded workers; use --threads N" % (name, value))


def _metrics_bind(value, name):
    if value in (None, ""):
        return None
    text = str(value).strip()
    b = parse_bind(("127.0.0.1" + text) if text.startswith(":") else text)
    if b.kind != "tcp":
        raise ConfigError("%s: %r: give HOST:PORT; /metrics is served over TCP" % (name, value))
    return b


def _bool(value, name):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError("%s: %r is not true or false" % (name, value))


def _str(value, name):
    return str(value)


def _log_format(value, name):
    from .serve.accesslog import compile_format      # value-level: pure, but only needed here
    try:
        compile_format(str(value))
    except ValueError as exc:
        raise ConfigError("%s: %s" % (name, exc)) from None
    return str(value)


def _optional_path(value, name):
    return None if value in (None, "") else str(value)


def _binds(value, name):
    if not isinstance(value, (str, list, tuple)):
        raise ConfigError("%s: %r is not an address; write 'HOST:PORT' or a list of them" % (name, value))
    items = [value] if isinstance(value, str) else list(value)
    try:
        return tuple(parse_bind(v) for piece in items for v in str(piece).split(",") if v.strip())
    except ConfigError as exc:
        raise ConfigError("%s: %s" % (name, exc)) from None


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _loglevel(value, name):
    text = str(value).lower()
    if text not in LOG_LEVELS:
        raise ConfigError("%s: %r is not one of %s" % (name, value, ", ".join(LOG_LEVELS)))
    return text


def _ips(value, name):
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item == "*":
            out.append("*")
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError("%s: %r is not an IP address or network" % (name, item)) from None
    return tuple(out)


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


SETTINGS = (
    Setting("bind", ("-b", "--bind"), _binds, None, "address to listen on: HOST:PORT, [::1]:PORT, unix:PATH or fd://N; repeatable (default 0.0.0.0:$PORT, else 127.0.0.1:8000)", action="append", metavar="ADDRESS"),
    Setting("workers", ("-w", "--workers"), _workers, 2, "number of worker processes, or 'auto' to follow the memory advice (default $WEB_CONCURRENCY, else 2)", env="WEB_CONCURRENCY", metavar="N"),
    Setting("threads", ("--threads",), _int(1), 1, "app threads per worker; the worker's loop reads and writes the sockets and hands whole requests to them", metavar="N"),
    Setting("worker_class", ("-k", "--worker-class"), _worker_class, "sync", "sync or gthread (threads come from --threads, as in Gunicorn)", metavar="CLASS"),
    Setting("min_workers", ("--min-workers",), _int(1), 1, "with -w auto: never fewer workers than this", metavar="N"),
    Setting("max_workers", ("--max-workers",), _int(1), 64, "with -w auto: never more workers than this", metavar="N"),
    Setting("backlog", ("--backlog",), _int(1), 2048, "listen queue length", metavar="N"),
    Setting("chdir", ("--chdir",), _optional_path, None, "change to this directory before loading the app", metavar="DIR"),
    Setting("preload", ("--preload",), _bool, False, "import the app in the master before forking, so workers share its memory", action="store_true"),
    Setting("keepalive", ("--keep-alive",), _float(0), 5.0, "seconds an idle keep-alive connection stays open (0 closes after each response)", metavar="SECONDS"),
    Setting("limit_request_line", ("--limit-request-line",), _int(0), 4094, "longest request line in bytes, else 414 (0 means 8190)", metavar="BYTES"),
    Setting("limit_request_fields", ("--limit-request-fields",), _int(0), 100, "most header fields in a request, else 431 (0 means 32768)", metavar="N"),
    Setting("limit_request_field_size", ("--limit-request-field_size", "--limit-request-field-size"), _int(0), 8190, "longest header field (name and value) in bytes, else 431 (0 means 65536)", metavar="BYTES"),
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
    Setting("forwarded_allow_ips", ("--forwarded-allow-ips",), _ips, "127.0.0.1,::1", "peers whose X-Forwarded-Proto is trusted, comma separated, '*' for all", env="FORWARDED_ALLOW_IPS", metavar="IPS"),
    Setting("pidfile", ("-p", "--pid"), _optional_path, None, "write the master's pid to this file", metavar="FILE"),
    Setting("user", ("-u", "--user"), _optional_path, None, "run workers as this user (name or uid) when started as root", metavar="USER"),
    Setting("group", ("-g", "--group"), _optional_path, None, "run workers as this group (name or gid) when started as root", metavar="GROUP"),
    Setting("metrics_interval", ("--metrics-interval",), _float(0), 20.0, "seconds between metrics samples (0: off)", metavar="SECONDS"),
    Setting("metrics_format", ("--metrics-format",), _choice("logfmt", "json"), "logfmt", "metrics lines as Heroku's key=value (logfmt) or JSON", metavar="FORMAT"),
    Setting("metrics_log", ("--metrics-log",), _optional_path, None, "write metrics lines to this file instead of stderr", metavar="FILE"),
    Setting("metrics_bind", ("--metrics-bind",), _metrics_bind, None, "serve Prometheus /metrics from the master at HOST:PORT (host defaults to 127.0.0.1)", metavar="ADDRESS"),
    Setting("memory_quota", ("--memory-quota",), _size, None, "the dyno's memory when no cgroup limit says (e.g. 512MB)", metavar="SIZE"),
    Setting("dyno_size", ("--dyno-size",), _optional_path, None, "a Heroku dyno size (standard-1x, performance-m, ...) for quota and task limit", env="PYFORK_DYNO_SIZE", metavar="NAME"),
    Setting("max_worker_memory", ("--max-worker-memory",), _size, None, "recycle a worker whose memory passes this (e.g. 300MB)", metavar="SIZE"),
    Setting("memory_metric", ("--memory-metric",), _choice("pss", "uss", "rss"), "pss", "memory measure for --max-worker-memory: pss, uss or rss", metavar="METRIC"),
    Setting("memory_pressure", ("--memory-pressure",), _percent, 90, "past this percent of the memory quota, recycle the worker holding the most private memory, one at a time (0: off)", metavar="PERCENT"),
    Setting("max_worker_zombies", ("--max-worker-zombies",), _int(0), 32, "recycle a worker with this many unreaped children (0: off)", metavar="N"),
    Setting("max_worker_threads", ("--max-worker-threads",), _int(0), 0, "recycle a worker with this many threads (0: off)", metavar="N"),
    Setting("reuse_port", ("--reuse-port",), _bool, False, "set SO_REUSEPORT on the listening sockets", action="store_true"),
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
    preload: bool
    keepalive: float
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
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
    forwarded_allow_ips: tuple
    metrics_interval: float
    metrics_format: str
    metrics_log: object
    metrics_bind: object
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
    hooks: dict = dataclasses.field(default_factory=dict, compare=False)   # name -> function, from the config file


def env_name(setting):
    return "PYFORK_" + setting.name.upper()


def resolve(app, flags, environ, file_values=None, file_name=None, detected=None):
    """The Config alone; see resolve_sources."""
    return resolve_sources(app, flags, environ, file_values, file_name, detected)[0]


def _convert(s, raw, source, where):
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


def resolve_sources(app, flags, environ, file_values=None, file_name=None, detected=None, file_lines=None):
    """Merge default < detected (the platform) < config file < environment < flags into a
    Config, and say where each value came from. `flags` maps name -> raw value for the
    flags given on the command line only; `file_values` the config file's settings.
    A dyno size (however it was chosen) supplies the defaults of `workers` and
    `memory_quota` that no other source set. Raises ConfigError naming the source."""
    file_values = file_values or {}
    detected = detected or {}
    if not app and file_values.get("wsgi_app"):
        app = file_values["wsgi_app"]          # Gunicorn's name for the app in a config file
    module, _, expr = (app or "").partition(":")
    if not module or (":" in expr and "(" not in expr):
        raise ConfigError("app %r: give the app as MODULE:NAME, for example myapp:app" % (app,))
    values, sources = {}, {}
    for s in SETTINGS:
        raw, source = s.default, "default"
        if s.name in detected:
            raw, source = detected[s.name]
        if s.name in file_values:
            raw, source = file_values[s.name], "file " + (file_name or "")
        for var in (s.env, env_name(s)):
            if var and environ.get(var, "") != "":
                raw, source = environ[var], "environment variable " + var
        if flags.get(s.name) is not None:
            raw, source = flags[s.name], "flag " + s.flags[-1]
        sources[s.name] = source
        if source.startswith("file"):
            where = "setting %r in %s line %s" % (s.name, file_name, (file_lines or {}).get(s.name, "?"))
        else:
            where = source if source != "default" else s.flags[-1]
        values[s.name] = _convert(s, raw, source, where)
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
    if values["limit_request_line"] == 0:
        values["limit_request_line"] = 8190
    if values["limit_request_fields"] == 0:
        values["limit_request_fields"] = 32768
    if values["limit_request_field_size"] == 0:
        values["limit_request_field_size"] = 65536
    if values["max_workers"] < values["min_workers"]:
        raise ConfigError("max_workers (%s) is below min_workers (%s)" % (values["max_workers"], values["min_workers"]))
    return Config(app=app, **values), sources


def _bad_port(port):
    raise ConfigError("environment variable PORT: %r is not a port number" % port)
