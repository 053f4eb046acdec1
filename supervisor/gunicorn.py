"""Every Gunicorn setting and what pyfork does with it: one table, three kinds.

SAME: it works as in Gunicorn (a pyfork setting, hook or command carries it).
HARMLESS: accepted and ignored with one warning naming it and why nothing changes.
REFUSED: exit 2 with why and what to use instead -- unless the value given is Gunicorn's
default, which changes nothing (a gunicorn.conf.py that spells out `daemon = False`).

The command line, GUNICORN_CMD_ARGS, the config file and PYFORK_* variables all judge a
Gunicorn-only name here. Pure: the list is Gunicorn's gunicorn/config.py (27.0), checked
against the installed Gunicorn by tests/test_gunicorn.py.
"""
import dataclasses
import enum


class Kind(enum.Enum):
    SAME = "same"
    HARMLESS = "harmless"
    REFUSED = "refused"


class Arg(enum.Enum):
    """How Gunicorn's flag takes its value (argparse), for the flags pyfork only judges."""
    NONE = "none"           # config file only
    VALUE = "value"
    SWITCH = "switch"       # store_true / store_const
    APPEND = "append"
    OPTIONAL = "optional"   # nargs='?' (--proxy-protocol)


@dataclasses.dataclass(frozen=True)
class Row:
    name: str          # Gunicorn's setting name, as a gunicorn.conf.py spells it
    flags: tuple       # Gunicorn's flags
    kind: Kind
    why: str           # SAME: pyfork's name for it; else the reason, and for REFUSED what to do
    arg: Arg = Arg.VALUE
    default: object = None     # Gunicorn's default: a REFUSED setting left at it is harmless
    const: object = True       # the value a SWITCH or a bare OPTIONAL flag stands for


S, H, R = Kind.SAME, Kind.HARMLESS, Kind.REFUSED
_SW, _AP, _NO = Arg.SWITCH, Arg.APPEND, Arg.NONE
_TLS = "pyfork serves plain HTTP: TLS ends at the router or proxy in front (Heroku's router, nginx, a load balancer)"
_ONLY = "only used with %s, which pyfork does not have"
_LOGS = "pyfork writes its own key=value log lines; use --error-logfile and --log-level, and configure the app's logging in the app"
_STRICT = "pyfork's HTTP parser (httptools) is strict and has no lenient mode; fix the client or the proxy in front"
_DIRTY = "pyfork has no dirty-worker pool; run long tasks in a worker process of their own (a Heroku worker dyno, a queue)"
_HOOK = "hook (as in Gunicorn)"

TABLE = (
    Row("config", ("-c", "--config"), S, "-c/--config FILE or python:MODULE (default ./pyfork.conf.py, else "
        "./gunicorn.conf.py)"),
    Row("wsgi_app", (), S, "the app argument, or wsgi_app in the config file", _NO),
    Row("bind", ("-b", "--bind"), S, "bind", _AP),
    Row("backlog", ("--backlog",), S, "backlog"),
    Row("workers", ("-w", "--workers"), S, "workers (also $WEB_CONCURRENCY; pyfork's default is 2)"),
    Row("worker_class", ("-k", "--worker-class"), S, "worker_class: sync and gthread; event loops are refused"),
    Row("threads", ("--threads",), S, "threads"),
    Row("worker_connections", ("--worker-connections",), H, _ONLY % "event-loop workers (gevent, eventlet)"),
    Row("max_requests", ("--max-requests",), S, "max_requests"),
    Row("max_requests_jitter", ("--max-requests-jitter",), S, "max_requests_jitter"),
    Row("timeout", ("-t", "--timeout"), S, "timeout"),
    Row("graceful_timeout", ("--graceful-timeout",), S, "graceful_timeout (pyfork's default is 25)"),
    Row("keepalive", ("--keep-alive",), S, "keepalive (pyfork's default is 5)"),
    Row("limit_request_line", ("--limit-request-line",), S, "limit_request_line"),
    Row("limit_request_fields", ("--limit-request-fields",), S, "limit_request_fields"),
    Row("limit_request_field_size", ("--limit-request-field_size",), S, "limit_request_field_size"),
    Row("reload", ("--reload",), S, "reload: inotify or mtimes from the master's loop (no thread); the new code is "
        "imported in a probe first; works with --preload", _SW),
    Row("reload_engine", ("--reload-engine",), S, "reload_engine: auto, poll or inotify (through ctypes)"),
    Row("reload_extra_files", ("--reload-extra-file",), S, "reload_extra_files", _AP),
    Row("spew", ("--spew",), H, "a debugging tracer of every line the server runs; serving is unchanged without it", _SW),
    Row("check_config", ("--check-config",), S, "check the configuration, import the app, exit 0, 2 or 4 "
        "(the app raised)", _SW),
    Row("print_config", ("--print-config",), S, "the same as pyfork check-config", _SW),
    Row("preload_app", ("--preload",), S, "preload", _SW),
    Row("sendfile", ("--no-sendfile",), H, "the response bytes are the same; pyfork sends wsgi.file_wrapper "
        "with os.sendfile", _SW, None, False),
    Row("reuse_port", ("--reuse-port",), S, "reuse_port", _SW),
    Row("chdir", ("--chdir",), S, "chdir"),
    Row("daemon", ("-D", "--daemon"), R, "pyfork stays in the foreground, as a platform, systemd or a container "
        "expects; start it with systemd (conf/) or your process manager", _SW, False),
    Row("raw_env", ("-e", "--env"), S, "raw_env", _AP),
    Row("pidfile", ("-p", "--pid"), S, "pidfile"),
    Row("worker_tmp_dir", ("--worker-tmp-dir",), H, "pyfork's heartbeat is shared memory, not a file"),
    Row("user", ("-u", "--user"), S, "user"),
    Row("group", ("-g", "--group"), S, "group"),
    Row("umask", ("-m", "--umask"), S, "umask"),
    Row("initgroups", ("--initgroups",), H, "with --user, pyfork always sets the worker's groups with initgroups", _SW),
    Row("tmp_upload_dir", (), H, "unused by Gunicorn too; pyfork spools bodies over 1 MiB to a temporary file", _NO),
    Row("secure_scheme_headers", (), S, "secure_scheme_headers (also --secure-scheme-headers NAME=VALUE,...)", _NO),
    Row("forwarded_allow_ips", ("--forwarded-allow-ips",), S, "forwarded_allow_ips (also $FORWARDED_ALLOW_IPS)"),
    Row("accesslog", ("--access-logfile",), S, "access_logfile"),
    Row("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",), S, "disable_redirect_access_to_syslog", _SW),
    Row("access_log_format", ("--access-logformat",), S, "access_logformat"),
    Row("errorlog", ("--error-logfile", "--log-file"), S, "error_logfile"),
    Row("loglevel", ("--log-level",), S, "loglevel"),
    Row("capture_output", ("--capture-output",), H, "the workers' stdout and stderr are the master's, which "
        "the platform (or --error-logfile's shell redirect) already collects", _SW),
    Row("logger_class", ("--logger-class",), R, "a Logger class is written against Gunicorn's own config object; "
        "configure the loggers gunicorn.error and gunicorn.access with --log-config, --log-config-json or "
        "logconfig_dict instead (pyfork sends its lines there)", Arg.VALUE, "gunicorn.glogging.Logger"),
    Row("logconfig", ("--log-config",), S, "logconfig: the lines go to gunicorn.error and gunicorn.access"),
    Row("logconfig_dict", (), S, "logconfig_dict (also --log-config-dict JSON)", _NO),
    Row("logconfig_json", ("--log-config-json",), S, "logconfig_json"),
    Row("syslog_addr", ("--log-syslog-to",), S, "syslog_addr"),
    Row("syslog", ("--log-syslog",), S, "syslog: a SysLogHandler on gunicorn.error and gunicorn.access, as Gunicorn's", _SW),
    Row("syslog_prefix", ("--log-syslog-prefix",), S, "syslog_prefix"),
    Row("syslog_facility", ("--log-syslog-facility",), S, "syslog_facility"),
    Row("enable_stdio_inheritance", ("-R", "--enable-stdio-inheritance"), H,
        "pyfork never daemonizes: workers always keep stdio", _SW),
    Row("statsd_host", ("--statsd-host",), S, "statsd_host: Gunicorn's metric names, batched per loop turn, "
        "plus pyfork.worker.N.* memory gauges"),
    Row("dogstatsd_tags", ("--dogstatsd-tags",), S, "dogstatsd_tags"),
    Row("statsd_prefix", ("--statsd-prefix",), S, "statsd_prefix"),
    Row("enable_backlog_metric", ("--enable-backlog-metric",), H, "pyfork sends no gunicorn.backlog (the listen "
        "queue); the other statsd metrics are sent", _SW),
    Row("proc_name", ("-n", "--name"), H, "process titles are pyfork's own (pyfork master [app], pyfork worker N [app]); "
        "log lines say which process wrote them"),
    Row("default_proc_name", (), H, "process titles are pyfork's own", _NO),
    Row("pythonpath", ("--pythonpath",), S, "pythonpath"),
    Row("paste", ("--paste", "--paster"), R, "pyfork loads a WSGI callable, not a PasteDeploy file; write a module "
        "with app = paste.deploy.loadapp('config:/path/app.ini') and run MODULE:app"),
    *(Row(h, (), S, _HOOK, _NO) for h in (
        "on_starting", "on_reload", "when_ready", "pre_fork", "post_fork", "post_worker_init", "worker_int",
        "worker_abort", "pre_exec", "pre_request", "post_request", "child_exit", "worker_exit",
        "nworkers_changed", "on_exit")),
    Row("ssl_context", (), S, _HOOK, _NO),
    Row("proxy_protocol", ("--proxy-protocol",), S, "proxy_protocol: v1, v2 or auto; REMOTE_ADDR, REMOTE_PORT, "
        "PROXY_PROTOCOL, PROXY_ADDR, PROXY_PORT as in Gunicorn", Arg.OPTIONAL, "off", "auto"),
    Row("proxy_allow_ips", ("--proxy-allow-from",), S, "proxy_allow_ips: another peer's header closes the connection"),
    Row("protocol", ("--protocol",), R, "pyfork speaks HTTP/1.1 only, not uwsgi; point the proxy at pyfork "
        "over HTTP", Arg.VALUE, "http"),
    Row("uwsgi_allow_ips", ("--uwsgi-allow-from",), H, _ONLY % "--protocol uwsgi"),
    Row("keyfile", ("--keyfile",), S, "keyfile"),
    Row("certfile", ("--certfile",), S, "certfile: the handshake runs in the worker's loop, never blocking it"),
    Row("ssl_version", ("--ssl-version",), S, "ssl_version"),
    Row("cert_reqs", ("--cert-reqs",), S, "cert_reqs"),
    Row("ca_certs", ("--ca-certs",), S, "ca_certs"),
    Row("suppress_ragged_eofs", ("--suppress-ragged-eofs",), S, "suppress_ragged_eofs", _SW),
    Row("do_handshake_on_connect", ("--do-handshake-on-connect",), H, "the handshake always runs as the connection "
        "opens, in the worker's loop and never blocking it, before HTTP is read", _SW),
    Row("ciphers", ("--ciphers",), S, "ciphers"),
    Row("http_protocols", ("--http-protocols",), R, "pyfork speaks HTTP/1.1 only; HTTP/2 ends at the router or "
        "proxy in front", Arg.VALUE, "h1"),
    Row("http2_cleartext", ("--http2-cleartext",), R, "pyfork speaks HTTP/1.1 only; HTTP/2 ends at the router or "
        "proxy in front", Arg.VALUE, "off"),
    *(Row("http2_" + n, ("--http2-" + n.replace("_", "-"),), H, _ONLY % "HTTP/2") for n in (
        "max_concurrent_streams", "initial_window_size", "max_frame_size", "max_header_list_size")),
    Row("raw_paste_global_conf", ("--paste-global",), H, _ONLY % "--paste", _AP),
    Row("permit_obsolete_folding", ("--permit-obsolete-folding",), R, _STRICT, _SW, False),
    Row("strip_header_spaces", ("--strip-header-spaces",), R, _STRICT, _SW, False),
    Row("permit_unconventional_http_method", ("--permit-unconventional-http-method",), R, _STRICT, _SW, False),
    Row("permit_unconventional_http_version", ("--permit-unconventional-http-version",), R, _STRICT, _SW, False),
    Row("casefold_http_method", ("--casefold-http-method",), R, _STRICT, _SW, False),
    Row("forwarder_headers", ("--forwarder-headers",), S, "forwarder_headers: SCRIPT_NAME from a "
        "--forwarded-allow-ips peer sets the environ's SCRIPT_NAME"),
    Row("header_map", ("--header-map",), S, "header_map: drop (the default) or refuse; 'dangerous' is refused"),
    Row("asgi_loop", ("--asgi-loop",), H, _ONLY % "ASGI workers"),
    Row("asgi_lifespan", ("--asgi-lifespan",), H, _ONLY % "ASGI workers"),
    Row("asgi_disconnect_grace_period", ("--asgi-disconnect-grace-period",), H, _ONLY % "ASGI workers"),
    Row("websocket_max_message_size", ("--websocket-max-message-size",), H, _ONLY % "ASGI workers"),
    Row("http_parser", ("--http-parser",), H, "pyfork always parses with httptools (llhttp)"),
    Row("root_path", ("--root-path",), H, _ONLY % "ASGI workers"),
    Row("dirty_apps", ("--dirty-app",), R, _DIRTY, _AP, ()),
    Row("dirty_workers", ("--dirty-workers",), R, _DIRTY, Arg.VALUE, 0),
    Row("dirty_timeout", ("--dirty-timeout",), H, _ONLY % "dirty workers"),
    Row("dirty_threads", ("--dirty-threads",), H, _ONLY % "dirty workers"),
    Row("dirty_graceful_timeout", ("--dirty-graceful-timeout",), H, _ONLY % "dirty workers"),
    *(Row(h, (), H, _ONLY % "dirty workers", _NO) for h in (
        "on_dirty_starting", "dirty_post_fork", "dirty_worker_init", "dirty_worker_exit")),
    Row("control_socket", ("--control-socket",), S, "control_socket (`pyfork status` asks it)"),
    Row("control_socket_mode", ("--control-socket-mode",), R, "pyfork's control socket is always mode 0600 and "
        "answers the master's own user only; run `pyfork status` as that user", Arg.VALUE, 0o600),
    Row("control_socket_disable", ("--no-control-socket",), S, "no_control_socket", _SW),
)

BY_NAME = {r.name: r for r in TABLE}
HOOKS = frozenset(r.name for r in TABLE if r.why == _HOOK)
# Gunicorn's config-file names for the SAME settings pyfork names otherwise
ALIASES = {"preload_app": "preload", "accesslog": "access_logfile", "access_log_format": "access_logformat",
           "errorlog": "error_logfile", "control_socket_disable": "no_control_socket"}


def counts():
    """{Kind: how many of Gunicorn's settings are of that kind}."""
    return {k: sum(r.kind is k for r in TABLE) for k in Kind}


def _number(text):
    try:
        return int(text, 0)       # '0o600' and '384' are one mode, as Gunicorn reads them
    except ValueError:
        return text


def _normal(value):
    if isinstance(value, str):
        text = value.strip().lower()
        return {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                "off": False, "": None, "none": None}.get(text, _number(text))
    if isinstance(value, dict):
        return {str(k).upper(): _normal(v) for k, v in value.items()} or None
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value) or None
    return value


def is_default(row, value):
    """A value that asks for nothing beyond what Gunicorn does by default (for a dict such
    as secure_scheme_headers: some of the default's entries)."""
    if callable(value) and not isinstance(value, type):
        return False
    mine, default = _normal(value), _normal(row.default)
    if isinstance(mine, dict) and isinstance(default, dict):
        return mine.items() <= default.items()
    return mine == default


def judge(row, value, where):
    """-> ('note', text) for a Gunicorn-only setting pyfork ignores, ('error', text) for one it
    refuses. `where` names it and its source: "flag --reload", "setting 'daemon' in
    gunicorn.conf.py line 4", "environment variable PYFORK_RELOAD"."""
    if row.kind is Kind.REFUSED and not is_default(row, value):
        return "error", "%s: not available in pyfork: %s" % (where, row.why)
    if row.kind is Kind.REFUSED:
        return "note", "%s: %r is Gunicorn's default; ignored: %s" % (where, value, row.why)
    return "note", "%s: Gunicorn-only, ignored: %s" % (where, row.why)
