"""Gunicorn's access-log atoms from one request's plain data (pure).

A Gunicorn `--access-logformat` string gives the same line here. Atoms:
h remote address, l '-', u user, t time, r request line, m method, U path,
q query, H protocol, s status, B body bytes, b body bytes or '-', f referer,
a user agent, T seconds, M milliseconds, D microseconds, L decimal seconds,
p pid, {name}i request header, {name}o response header, {name}e environ.
"""
import base64
import time


class Atoms(dict):
    """Missing keys: '{header}i', '{header}o', '{var}e' looked up lazily, else '-'."""

    def __init__(self, values, env, headers):
        super().__init__(values)
        self.env = env
        self.headers = headers

    def __getitem__(self, key):
        # like Gunicorn's SafeAtoms: a '"' from the client cannot close a quoted field
        # early and forge the rest of the line
        value = super().__getitem__(key)
        return value.replace('"', '\\"') if '"' in value else value

    def __missing__(self, key):
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


def _user(env):
    auth = env.get("HTTP_AUTHORIZATION", "")
    if auth[:6].lower() == "basic ":
        try:
            return base64.b64decode(auth[6:]).decode("utf-8").split(":", 1)[0] or "-"
        except (ValueError, UnicodeDecodeError):
            return "-"
    return "-"


def atoms(env, status, headers, sent, seconds, now, pid):
    raw = env.get("RAW_URI", "")
    micros = round(seconds * 1000000)
    values = {
        "h": env.get("REMOTE_ADDR") or "-",
        "l": "-",
        "u": _user(env),
        "t": time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now)),
        "r": "%s %s %s" % (env.get("REQUEST_METHOD", ""), raw, env.get("SERVER_PROTOCOL", "")),
        "m": env.get("REQUEST_METHOD", "-"),
        "U": env.get("PATH_INFO", "-"),
        "q": env.get("QUERY_STRING", ""),
        "H": env.get("SERVER_PROTOCOL", "-"),
        "s": str(status),
        "B": str(sent),
        "b": str(sent) if sent else "-",
        "f": env.get("HTTP_REFERER", "-"),
        "a": env.get("HTTP_USER_AGENT", "-"),
        "T": str(int(micros // 1000000)),
        "M": str(micros // 1000),
        "D": str(micros),
        "L": "%.6f" % seconds,
        "p": "<%d>" % pid,
    }
    return Atoms(values, env, headers)


def format_line(fmt, env, status, headers, sent, seconds, now, pid):
    return fmt % atoms(env, status, headers, sent, seconds, now, pid)
