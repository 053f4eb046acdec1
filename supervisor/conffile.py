"""Read a Python config file (like gunicorn.conf.py): settings as module-level names,
hooks as functions. Returns plain values for config.resolve; every mistake is a
ConfigError that names the file, the line and, for a misspelling, the nearest name."""
import ast
import difflib
import os
import traceback
import types

from .config import BY_NAME, ConfigError
from .hooks import HOOKS, check

DEFAULT = "pyfork.conf.py"

# Gunicorn's names for settings pyfork has under another name.
ALIASES = {
    "preload_app": "preload",
    "accesslog": "access_logfile",
    "access_log_format": "access_logformat",
    "errorlog": "error_logfile",
    "loglevel": "loglevel",
    "keepalive": "keepalive",
    "pidfile": "pidfile",
    "wsgi_app": "wsgi_app",
}

# Gunicorn settings pyfork does not have: reported by name, once, and ignored.
GUNICORN_ONLY = frozenset("""
    worker_connections daemon raw_env umask initgroups tmp_upload_dir
    secure_scheme_headers forwarder_headers proxy_protocol proxy_allow_ips keyfile certfile
    ssl_version cert_reqs ca_certs suppress_ragged_eofs do_handshake_on_connect ciphers
    raw_paste_global_conf strip_header_spaces permit_unconventional_http_method
    permit_unconventional_http_version casefold_http_method header_map worker_tmp_dir syslog
    syslog_addr syslog_prefix syslog_facility enable_stdio_inheritance statsd_host
    statsd_prefix dogstatsd_tags logconfig logconfig_dict logconfig_json logger_class
    capture_output disable_redirect_access_to_syslog proc_name default_proc_name pythonpath
    paste reload reload_engine reload_extra_files spew check_config print_config sendfile
    control_socket control_socket_disable limit_request_field_size_override
    worker_abort_timeout ssl_context on_starting_timeout
""".split())


def _lines(source):
    """name -> the line where the file assigns or defines it last."""
    out = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            targets = [node.name]
        for t in targets:
            out[t] = node.lineno
    return out


def _nearest(name, known):
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return match[0] if match else None


def load(path, log=None):
    """-> (settings {name: raw value}, hooks {name: function}, notes [sentences to log],
    {setting name: line})."""
    where = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigError("config file %s: %s" % (path, exc.strerror)) from None
    namespace = {"__file__": os.path.abspath(path), "__name__": "__config__"}
    try:
        exec(compile(source, path, "exec"), namespace)
    except SyntaxError as exc:
        raise ConfigError("%s line %s: syntax error: %s" % (where, exc.lineno, exc.msg)) from None
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        line = next((fr.lineno for fr in reversed(tb) if fr.filename == path), "?")
        raise ConfigError("%s line %s: %s: %s" % (where, line, type(exc).__name__, exc)) from None
    lines = _lines(source)
    settings, hooks, notes, ignored = {}, {}, [], []
    known = sorted(set(BY_NAME) | set(ALIASES))
    for name, value in namespace.items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        at = "%s line %s" % (where, lines.get(name, "?"))
        if name in HOOKS:
            if not callable(value):
                raise ConfigError("%s: hook %s must be a function, not %s" % (at, name, type(value).__name__))
            problem = check(name, value)
            if problem:
                raise ConfigError("%s: %s" % (at, problem))
            hooks[name] = value
        elif callable(value) and not isinstance(value, (str, bytes)):
            near = _nearest(name, list(HOOKS))
            if near:
                raise ConfigError("unknown hook %r in %s; did you mean %r?" % (name, at, near))
        elif name in BY_NAME or name in ALIASES:
            settings[ALIASES.get(name, name)] = value
        elif name in GUNICORN_ONLY:
            ignored.append(name)
        else:
            near = _nearest(name, known)
            if near:
                raise ConfigError("unknown setting %r in %s; did you mean %r?" % (name, at, near))
            notes.append("%s: %r is not a pyfork setting; ignored (name helpers with a leading _)" % (at, name))
    if ignored:
        notes.append("%s: Gunicorn settings pyfork does not have, ignored: %s" % (where, ", ".join(sorted(ignored))))
    setting_lines = {ALIASES.get(n, n): lines.get(n, "?") for n in namespace if ALIASES.get(n, n) in settings}
    return settings, hooks, notes, setting_lines
