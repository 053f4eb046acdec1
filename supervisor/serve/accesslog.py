"""Gunicorn's access-log atoms from one request's plain data (pure).

A Gunicorn `--access-logformat` string gives the same line here. Atoms:
h remote address, l '-', u user, t time, r request line, m method, U path,
q query, H protocol, s status, B body bytes, b body bytes or '-', f referer,
a user agent, T seconds, M milliseconds, D microseconds, L decimal seconds,
p pid, {name}i request header, {name}o response header, {name}e environ.
"""
import base64
import datetime
import functools
import re
import time


def _user(env):
    auth = env.get("HTTP_AUTHORIZATION", "")
    if auth[:6].lower() == "basic ":
        try:
            return base64.b64decode(auth[6:]).decode("utf-8").split(":", 1)[0] or "-"
        except (ValueError, UnicodeDecodeError):
            return "-"
    return "-"


_stamp = {}     # zone -> (its key, the text for that second)
TIME = "[%d/%b/%Y:%H:%M:%S %z]"


def _time(now, zone=None):
    """'[27/Nov/2026:06:00:00 +0000]', formatted once per second, not once per line, in
    `zone` (a tzinfo: the worker gives the zone pyfork started in, log.ZONE, so that an app
    calling tzset() does not move it), or with None the process's local zone of the moment."""
    second = int(now)
    key = (second, time.timezone, time.altzone) if zone is None else second   # a tzset() in between must show
    cached = _stamp.get(zone)
    if cached is None or cached[0] != key:
        text = time.strftime(TIME, time.localtime(second)) if zone is None else \
            datetime.datetime.fromtimestamp(second, zone).strftime(TIME)
        _stamp[zone] = cached = (key, text)
    return cached[1]


def _micros(a):
    return round(a.seconds * 1000000)


# Each atom computed only when the format asks for it.
ATOMS = {
    "h": lambda a: a.env.get("REMOTE_ADDR") or "-",
    "l": lambda a: "-",
    "u": lambda a: _user(a.env),
    "t": lambda a: _time(a.now),
    "r": lambda a: "%s %s %s" % (a.env.get("REQUEST_METHOD", ""), a.env.get("RAW_URI", ""),
                                 a.env.get("SERVER_PROTOCOL", "")),
    "m": lambda a: a.env.get("REQUEST_METHOD", "-"),
    "U": lambda a: a.env.get("PATH_INFO", "-"),
    "q": lambda a: a.env.get("QUERY_STRING", ""),
    "H": lambda a: a.env.get("SERVER_PROTOCOL", "-"),
    "s": lambda a: str(a.status),
    "B": lambda a: str(a.sent),
    "b": lambda a: str(a.sent) if a.sent else "-",
    "f": lambda a: a.env.get("HTTP_REFERER", "-"),
    "a": lambda a: a.env.get("HTTP_USER_AGENT", "-"),
    "T": lambda a: str(_micros(a) // 1000000),
    "M": lambda a: str(_micros(a) // 1000),
    "D": lambda a: str(_micros(a)),
    "L": lambda a: "%.6f" % a.seconds,
    "p": lambda a: "<%d>" % a.pid,
}


class Atoms:
    """The mapping a format string is applied to: '%(h)s' and friends from ATOMS;
    '{header}i', '{header}o', '{var}e' looked up by name; anything else '-'."""
    __slots__ = ("env", "status", "headers", "sent", "seconds", "now", "pid")

    def __init__(self, env, status, headers, sent, seconds, now, pid):
        self.env, self.status, self.headers, self.sent = env, status, headers, sent
        self.seconds, self.now, self.pid = seconds, now, pid

    def __getitem__(self, key):
        return _safe(_getter(key)(self))

    def named(self, key):
        if key.startswith("{") and len(key) > 3 and key[-2] == "}":
            name, kind = key[1:-2], key[-1]
            if kind == "i":
                return self.env.get("HTTP_" + name.upper().replace("-", "_"), "-")
            if kind == "o":
                lname = name.lower()
                for k, v in self.headers or ():
                    if k.lower() == lname:
                        return v
                return "-"
            if kind == "e":
                lname = name.lower()
                for k, v in self.env.items():
                    if k.lower() == lname:
                        return str(v)
                return "-"
        return "-"


def _getter(name):
    """The function that gives atom `name` of an Atoms."""
    return ATOMS.get(name) or functools.partial(Atoms.named, key=name)


def _safe(value):
    """Like Gunicorn's SafeAtoms: a '"' from the client cannot close a quoted field early
    and forge the rest of the line."""
    return value.replace('"', '\\"') if '"' in value else value


def atoms(env, status, headers, sent, seconds, now, pid):
    return Atoms(env, status, headers, sent, seconds, now, pid)


_FIELD = re.compile(r"%%|%\(([^)]*)\)s")


def compile_format(fmt, zone=None):
    """A Gunicorn access-log format -> line(env, status, headers, sent, seconds, now, pid),
    its time atom in `zone` (see _time).

    Worked out once per format: its text with a positional %s per atom, and the atoms'
    functions in order. `fmt % mapping` would call Atoms.__getitem__ through the mapping
    protocol once per atom, half the cost of a line. Raises ValueError for a format
    Python cannot apply (a lone '%', another conversion than %(name)s)."""
    names = []

    def field(m):
        if m.group(1) is None:
            return "%%"
        names.append(m.group(1))
        return "%s"
    text = _FIELD.sub(field, fmt)
    try:
        text % (("",) * len(names))
    except (TypeError, ValueError) as exc:
        raise ValueError("access log format %r: %s (atoms are written %%(h)s, a literal %% as %%%%)"
                         % (fmt, exc)) from None
    getters = tuple((lambda a: _time(a.now, zone)) if n == "t" else _getter(n) for n in names)

    def line(env, status, headers, sent, seconds, now, pid):
        a = Atoms(env, status, headers, sent, seconds, now, pid)
        return text % tuple([_safe(get(a)) for get in getters])
    return line


@functools.lru_cache(maxsize=64)
def _compiled(fmt):
    return compile_format(fmt)


def format_line(fmt, env, status, headers, sent, seconds, now, pid):
    return _compiled(fmt)(env, status, headers, sent, seconds, now, pid)
