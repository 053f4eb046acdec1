"""Converters: a raw setting value (text from a flag or the environment, any Python object
from a config file) -> the typed value, or a ConfigError whose sentence names the setting,
its source and how to fix it. Pure: no I/O."""
import dataclasses
import enum
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


class Workers(enum.Enum):
    """A worker count that is not a number."""
    AUTO = "auto"      # -w auto: follow the memory advice

    def __repr__(self):
        return repr(self.value)      # check-config prints workers = 'auto'


AUTO = Workers.AUTO


def _workers(value, name):
    if str(value).strip().lower() == "auto":
        return AUTO
    n = _int(-(1 << 62))(value, name)
    if n < 1:
        # 0 workers would listen and never answer (issue 11)
        raise ConfigError("%s: %d workers would never answer; give 1 or more, or auto" % (name, n))
    return n


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


def _choice_of(options):
    return _choice(*options)


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
    why = "pyfork runs sync or threaded workers"
    if "uvicorn" in text.lower() or "asgi" in text.lower():
        why += ", for WSGI apps only (an ASGI app needs an ASGI server such as uvicorn)"
    raise ConfigError("%s: %r is not available: %s; use --threads N" % (name, value, why))


def _header_map(value, name):
    """Gunicorn's header_map for header names with '_': drop them (the default) or refuse
    the request (400). 'dangerous' (pass them as if '-') is refused: it is what lets a
    client's X_Forwarded_For pose as the proxy's X-Forwarded-For."""
    text = str(value).strip().lower()
    if text in ("drop", "refuse"):
        return text
    if text == "dangerous":
        raise ConfigError("%s: 'dangerous' is not available: a client's X_Forwarded_For would pose as the "
                          "proxy's X-Forwarded-For; use drop or refuse" % name)
    raise ConfigError("%s: %r is not one of drop, refuse" % (name, value))


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
        binds = tuple(parse_bind(v) for piece in items for v in str(piece).split(",") if v.strip())
    except ConfigError as exc:
        raise ConfigError("%s: %s" % (name, exc)) from None
    for i, b in enumerate(binds):
        for other in binds[:i]:
            clash = _clash(b, other)
            if clash:
                raise ConfigError("%s: %s" % (name, clash))
    return binds


def _clash(b, other):
    """Why two binds cannot both listen (the second would fail with 'address in use')."""
    if b == other and not (b.kind == "tcp" and b.port == 0):
        return "%s is given twice; give each address once" % b
    if b.kind == other.kind == "tcp" and b.port == other.port != 0 and ":" not in b.host + other.host:
        if "0.0.0.0" in (b.host, other.host):
            return ("%s and %s: 0.0.0.0 already listens on every IPv4 address; give one of them"
                    % (other, b))
    return None


def _env_pairs(value, name):
    """Gunicorn's -e/--env KEY=VALUE (repeatable) -> ((KEY, VALUE), ...)."""
    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        key, sep, val = str(item).partition("=")
        if not sep or not key.strip() or "\0" in key:
            raise ConfigError("%s: %r: write it as KEY=VALUE" % (name, item))
        out.append((key.strip(), val))
    return tuple(out)


def _paths(value, name):
    """Gunicorn's --pythonpath: directories, comma separated (or a list) -> tuple."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(i).strip() for i in items if str(i).strip())


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


def _umask(value, name):
    """Gunicorn's -m/--umask: a number as int(value, 0) reads it ('0o22', '0022', '18', 0o22)."""
    if isinstance(value, bool):
        raise ConfigError("%s: %r is not a file mode mask" % (name, value))
    try:
        n = value if isinstance(value, int) else int(str(value).strip(), 0)
    except ValueError:
        n = _octal_text(value)
    if n is None or not 0 <= n <= 0o777:
        raise ConfigError("%s: %r is not a file mode mask from 0 to 0o777 (write 0o22 or 0022)" % (name, value))
    return n


def _octal_text(value):
    """'0022' (Gunicorn's docs spell it so, which int(x, 0) refuses) -> 18; else None."""
    text = str(value).strip()
    return int(text, 8) if re.fullmatch(r"0[0-7]+", text) else None


def _scheme_headers(value, name):
    """Gunicorn's secure_scheme_headers: {header name: the value meaning https} (a dict in the
    config file; on a flag or in the environment NAME=VALUE,NAME=VALUE) -> ((environ key,
    value), ...). Names in any case; a name with '_' never reaches pyfork (header_map)."""
    if isinstance(value, str):
        pairs = [p.partition("=")[::2] for p in value.split(",") if p.strip()]
        if any(not k.strip() or not v.strip() for k, v in pairs):
            raise ConfigError("%s: %r: write NAME=VALUE,NAME=VALUE, like X-Forwarded-Proto=https" % (name, value))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ConfigError("%s: %r is not a mapping of header names to values" % (name, value))
    out = []
    for key, secure in pairs:
        key = str(key).strip()
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^`|~-]+", key):
            raise ConfigError("%s: %r is not a header name this server passes on (letters, digits, '-')" % (name, key))
        out.append(("HTTP_" + key.upper().replace("-", "_"), str(secure).strip()))
    return tuple(out)


def _names(value, name):
    """Gunicorn's forwarder_headers: header names, comma separated (or a list) -> upper-case tuple."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(i).strip().upper() for i in items if str(i).strip())


_PROXY_PROTOCOL = {"off": "off", "false": "off", "0": "off", "none": "off", "": "off",
                   "auto": "auto", "true": "auto", "1": "auto", "v1": "v1", "v2": "v2"}


def _proxy_protocol(value, name):
    """Gunicorn's proxy_protocol: off, v1, v2 or auto; True and False (older config files) are auto and off."""
    if isinstance(value, bool):
        return "auto" if value else "off"
    text = str(value).strip().lower()
    if text not in _PROXY_PROTOCOL:
        raise ConfigError("%s: %r is not one of off, v1, v2, auto" % (name, value))
    return _PROXY_PROTOCOL[text]


def _statsd_host(value, name):
    """Gunicorn's --statsd-host: HOST[:PORT] (port 8125), [IPv6]:PORT, unix:PATH or unix://PATH
    -> ("unix", path) or (host, port); '' or None: no statsd."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    if text.startswith("unix:"):
        path = re.sub(r"^unix:(//)?", "", text)
        if not path:
            raise ConfigError("%s: %r: give a path after unix:" % (name, value))
        return ("unix", path)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "8125"
    else:
        host, _, port = text.partition(":")
        port = port or "8125"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("%s: %r is not HOST:PORT or unix:PATH" % (name, value))
    return (host.lower(), int(port))


def _log_dict(value, name):
    """Gunicorn's logconfig_dict: a dict in the config file, JSON text on a flag; {} is none."""
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        import json       # value-level: parsing only
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError("%s: not JSON: %s" % (name, exc)) from None
    if not isinstance(value, dict):
        raise ConfigError("%s: %r is not a logging.config.dictConfig dictionary" % (name, value))
    return value


# the ssl module's numbers, so that reading a setting does not import ssl (memory in every process)
_SSL_VERSIONS = {"tls": 2, "sslv23": 2, "tls_server": 17, "tlsv1": 3, "tlsv1_1": 4, "tlsv1_2": 5}
_CERT_REQS = {"cert_none": 0, "none": 0, "cert_optional": 1, "optional": 1, "cert_required": 2, "required": 2}


def _ssl_version(value, name):
    """Gunicorn's --ssl-version: a number (ssl.PROTOCOL_*) or its name: TLS_SERVER, TLS, TLSv1_2, ..."""
    text = str(value).strip().lower()
    text = text[len("protocol_"):] if text.startswith("protocol_") else text
    if text.isdigit() and int(text) in _SSL_VERSIONS.values():
        return int(text)
    if text not in _SSL_VERSIONS:
        raise ConfigError("%s: %r is not an ssl protocol: TLS_SERVER (the default), TLS, TLSv1_2" % (name, value))
    return _SSL_VERSIONS[text]


def _cert_reqs(value, name):
    """Gunicorn's --cert-reqs: 0 (none), 1 (optional), 2 (required), or ssl's names."""
    text = str(value).strip().lower()
    if text in ("0", "1", "2"):
        return int(text)
    if text not in _CERT_REQS:
        raise ConfigError("%s: %r is not 0 (none), 1 (optional) or 2 (required)" % (name, value))
    return _CERT_REQS[text]


def _syslog_addr(value, name):
    """Gunicorn's --log-syslog-to: unix://PATH[#dgram|#stream], udp://HOST:PORT or tcp://HOST:PORT
    (port 514 by default) -> ("unix" | "udp" | "tcp", path or (host, port), "dgram" | "stream" | "")."""
    text = str(value).strip()
    if text.startswith("unix://"):
        path, _, kind = text[len("unix://"):].partition("#")
        if not path or kind not in ("", "dgram", "stream"):
            raise ConfigError("%s: %r: write unix://PATH, unix://PATH#dgram or unix://PATH#stream" % (name, value))
        return ("unix", path, kind)
    scheme, sep, rest = text.partition("://")
    if not sep or scheme not in ("udp", "tcp"):
        raise ConfigError("%s: %r: write udp://HOST:PORT, tcp://HOST:PORT or unix://PATH" % (name, value))
    if rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port[1:]
    else:
        host, _, port = rest.partition(":")
    port = port or "514"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("%s: %r: %r is not a port" % (name, value, port))
    return (scheme, (host.lower() or "localhost", int(port)), "")


SYSLOG_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security",
                     "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5",
                     "local6", "local7")
