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


def _umask(value, name):
    """Gunicorn's --umask: an int, or a string int() reads with its base (0o22, 0x12,
    18), a leading 0 meaning octal as Gunicorn reads it (0022, 007)."""
    if isinstance(value, bool):
        raise ConfigError("%s: %r is not a umask; give an octal number such as 0o007" % (name, value))
    try:
        if isinstance(value, int):
            mask = value
        else:
            text = str(value).strip()
            mask = int("0o" + text[1:] if re.fullmatch(r"0\d+", text) else text, 0)
    except ValueError:
        raise ConfigError("%s: %r is not a umask; give an octal number such as 0o007" % (name, value)) from None
    if not 0 <= mask <= 0o777:
        raise ConfigError("%s: %r is not a umask; give 0 to 0o777" % (name, value))
    return mask


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


def _marks(value, name):
    """--refork-after: '1000' or '50,500,5000' (or a list) -> rising request counts, a tuple."""
    items = value.split(",") if isinstance(value, str) else (list(value) if isinstance(value, (list, tuple)) else [value])
    items = [i for i in items if str(i).strip()]
    marks = tuple(_int(1)(i.strip() if isinstance(i, str) else i, name) for i in items)
    if any(b <= a for a, b in zip(marks, marks[1:])):
        raise ConfigError("%s: %r must rise, as in 50,500,5000 (requests a worker has served)" % (name, value))
    return marks


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
