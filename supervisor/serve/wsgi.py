"""WSGI without sockets: environ keys, a validating start_response, response heads.

Pure: bytes and dicts in, bytes out. The hot path leans on caches: a header name's
environ key, an encoded status line and an encoded header line are each worked out
(and validated) once, then reused, so a steady stream of requests pays dict lookups.
"""
import http
import re
import sys
from urllib.parse import unquote_to_bytes

from .strict import Refused

# PEP 3333 / RFC 9110 7.6.1: an application must not set these; the server owns framing.
HOP_BY_HOP = frozenset((
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
))

# Statuses that never carry a body (RFC 9110 6.4.1).
NO_BODY = frozenset((204, 304)) | frozenset(range(100, 200))

REASONS = {s.value: s.phrase for s in http.HTTPStatus}

# Headers that change how a request is read or answered: framing, expectations, a
# protocol upgrade, the scheme. A request with none of them (most GETs) skips the checks
# they need (strict.py).
FRAMING = {"CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING", "HTTP_EXPECT", "HTTP_UPGRADE",
           "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL", "HTTP_X_FORWARDED_PROTOCOL"}

ENV_KEYS = {}        # header name -> environ key, for ordinary names only (not FRAMING, not dropped)
_framing_keys = {}   # the same for FRAMING names, kept apart


def environ_key(name):
    """b'X-Forwarded-For' -> 'HTTP_X_FORWARDED_FOR'; Content-Type/Length unprefixed.
    A name with '_' maps to '' (dropped): 'Content_Length' would otherwise reach the app
    as CONTENT_LENGTH behind a proxy that only checked 'Content-Length' (Gunicorn drops
    them too). Only ordinary names are remembered in ENV_KEYS, so that a hit there tells
    the request path the header needs no further look."""
    key = ENV_KEYS.get(name) or _framing_keys.get(name)
    if key is None:
        if b"_" in name:
            return ""
        text = name.decode("latin-1").upper().replace("-", "_")
        # interned: the request path looks keys up by literal ("HTTP_HOST"), found by identity
        key = sys.intern(text if text in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + text)
        cache = _framing_keys if key in FRAMING else ENV_KEYS
        if len(cache) < 4096:
            cache[name] = key
    return key


def framing(keys):
    """The worker's secure_scheme_headers join FRAMING (at boot, before any request), so a
    request carrying one takes the checked way (Connection.check_head)."""
    FRAMING.update(keys)
    for name, key in list(ENV_KEYS.items()):
        if key in FRAMING:
            _framing_keys[name] = ENV_KEYS.pop(name)


REQUESTS = {}   # method bytes -> {target bytes -> (REQUEST_METHOD, PATH_INFO, QUERY_STRING, RAW_URI)}


def targets_of(method):
    """One method's cache of request lines (a dict), remembered for any method but CONNECT,
    whose target is checked on every request (a fresh dict each time); bounded."""
    cache = REQUESTS.get(method)
    if cache is None:
        cache = {}
        if method != b"CONNECT":
            if len(REQUESTS) >= 64:
                REQUESTS.clear()
            REQUESTS[method] = cache
    return cache


def request_line(method, url, cache, mount=b""):
    """Method and target bytes -> (REQUEST_METHOD, PATH_INFO, QUERY_STRING, RAW_URI),
    remembered in `cache` (targets_of(method), bounded) for an origin-form target, so a
    repeated request gets the very same tuple: meter.py tells a repeat by `is`. `mount`:
    the SCRIPT_NAME prefix, as bytes (mount_point), fixed for the process."""
    line = (method.decode("latin-1"), *split_target(url, mount))
    if url[:1] == b"/":
        if len(cache) >= 1024:
            cache.clear()
        cache[url] = line
    return line


def split_target(target, mount=b""):
    """Request target bytes -> (PATH_INFO, QUERY_STRING, RAW_URI) as PEP 3333 strings;
    PATH_INFO without the `mount` prefix (SCRIPT_NAME)."""
    raw = target.decode("latin-1")
    target, _, _ = target.partition(b"#")     # a fragment is never part of path or query
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        if path == b"*":
            return "", "", raw       # OPTIONS *: no path (PEP 3333 allows PATH_INFO empty)
        # absolute-form (RFC 9112 3.2.2): drop scheme and authority
        scheme, sep, rest = path.partition(b"://")
        if not sep:
            # authority-form (CONNECT host:port, 3.2.3) or no form at all: no path; the
            # target is in RAW_URI, and nothing that is not a path poses as one
            return "", "", raw
        _, slash, tail = rest.partition(b"/")
        path = slash + tail or b"/"
    if mount:
        path = unmounted(path, mount)
    if b"%" in path:
        path = unquote_to_bytes(path)
    return path.decode("latin-1"), query.decode("latin-1"), raw


def mount_point(value):
    """The SCRIPT_NAME environment variable (Gunicorn reads it: the app is mounted there)
    -> (SCRIPT_NAME for the environ, the prefix as bytes for split_target). A trailing '/'
    is dropped (PEP 3333: SCRIPT_NAME never ends in one, PATH_INFO begins with it).
    ValueError, saying what to fix, for a value that is not a path."""
    if not value or value == "/":
        return "", b""
    if not value.startswith("/") or any(c in value for c in "?# \t\r\n"):
        raise ValueError("SCRIPT_NAME=%r: give the path the app is mounted at, such as /app" % value[:80])
    try:
        prefix = value.rstrip("/").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("SCRIPT_NAME=%r: give the path as the request sends it (percent-encoded)" % value[:80]) from None
    return prefix.decode("latin-1"), prefix


def unmounted(path, mount):
    """A request path (still percent-encoded, as Gunicorn compares it) without the mount
    prefix; one outside the mount is 404. Unlike Gunicorn (a 500, earlier 400, and
    /application read as /app + 'lication'), the prefix must end at a '/'."""
    rest = path[len(mount):]
    if not path.startswith(mount) or rest[:1] not in (b"", b"/"):
        raise Refused(404, "request path %r is outside SCRIPT_NAME %r" % (path[:80], mount[:80]))
    return rest


class StartResponseError(Exception):
    """The application broke PEP 3333's start_response contract."""


_status_lines = {}
_header_lines = {}


def status_line(status):
    """'200 OK' -> (200, b'HTTP/1.1 200 OK\\r\\n'), validated once per distinct status."""
    if type(status) is not str:
        raise StartResponseError("status must be a str, got %r" % (status,))
    hit = _status_lines.get(status)
    if hit is not None:
        return hit
    code = status[:3]
    if len(status) < 4 or not code.isdigit() or status[3] != " " or not 100 <= int(code) <= 999:
        raise StartResponseError("status must look like '200 OK', got %r" % (status,))
    if "\r" in status or "\n" in status:
        raise StartResponseError("status contains CR or LF: %r" % (status,))
    try:
        hit = (int(code), ("HTTP/1.1 %s\r\n" % status).encode("latin-1"))
    except UnicodeEncodeError:
        raise StartResponseError("status %r is not latin-1" % (status,)) from None
    if len(_status_lines) < 256:
        _status_lines[status] = hit
    return hit


def header_line(name, value):
    """('Content-Type', 'text/plain') -> b'Content-Type: text/plain\\r\\n', validated once."""
    key = (name, value)
    if type(name) is not str or type(value) is not str:
        raise StartResponseError("header name and value must be str, got %r" % (key,))
    hit = _header_lines.get(key)
    if hit is not None:
        return hit
    if not _TOKEN(name):
        raise StartResponseError("invalid header name %r" % (name,))
    if "\r" in value or "\n" in value or "\0" in value:
        raise StartResponseError("header %s has CR, LF or NUL in its value" % name)
    if name.lower() in HOP_BY_HOP and not (name.lower() == "connection" and value.lower() == "close"):
        raise StartResponseError("hop-by-hop header %r is the server's to set (PEP 3333)" % name)
    try:
        hit = ("%s: %s\r\n" % key).encode("latin-1")
    except UnicodeEncodeError:
        raise StartResponseError("header %s is not latin-1" % name) from None
    if len(_header_lines) < 4096:
        _header_lines[key] = hit
    return hit


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+").fullmatch     # RFC 9110 5.6.2


def validate_head(status, headers):
    """PEP 3333's start_response checks -> (code, head bytes, Content-Length or None,
    whether the app asked to close, fast length). The fast length is the Content-Length
    when nothing else about the head needs a look (a status with a body, no close), else
    -1: the request path compares it with the body's length and is done. Raises
    StartResponseError naming the fault."""
    code, line = status_line(status)
    if type(headers) is not list:
        raise StartResponseError("headers must be a list, got %r" % type(headers).__name__)
    parts = [line]
    length = None
    close = False
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            raise StartResponseError("each header must be a (name, value) tuple, got %r" % (item,))
        parts.append(header_line(*item))
        n = item[0].lower()
        if n == "content-length":
            if not (item[1].isascii() and item[1].isdigit()):
                raise StartResponseError("Content-Length %r is not a number" % item[1])
            if length is not None and length != int(item[1]):
                raise StartResponseError("two different Content-Length values: %d and %s" % (length, item[1]))
            length = int(item[1])
        elif n == "connection":
            close = True
    fast = length if length is not None and not close and code not in NO_BODY else -1
    return code, b"".join(parts), length, close, fast


HEADS = {}


def head_for(status, headers):
    """validate_head, remembered for a status and header list seen before. Apps send the
    same few heads over and over; a dynamic value (a cookie) only costs a cache miss."""
    if type(headers) is not list:
        return validate_head(status, headers)
    try:
        key = (status, *headers)
        hit = HEADS.get(key)
    except TypeError:      # unhashable: not a list of tuples of str; let validation say so
        return validate_head(status, headers)
    if hit is None:
        hit = validate_head(status, headers)
        if len(HEADS) >= 1024:
            HEADS.clear()
        HEADS[key] = hit
    return hit


class EmptyInput:
    """wsgi.input for a request without a body: shared, stateless, nothing to allocate."""

    def read(self, size=-1):
        return b""

    def readline(self, size=-1):
        return b""

    def readlines(self, hint=-1):
        return []

    def __iter__(self):
        return iter(())

    def close(self):
        pass


EMPTY_INPUT = EmptyInput()


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds):
    """RFC 9110 IMF-fixdate, locale-free: 'Fri, 27 Nov 2026 06:00:00 GMT'."""
    import time as _time     # value-level: gmtime of a given instant, no clock read
    t = _time.gmtime(seconds)
    return "%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


def chunk(data):
    """One chunk of a chunked body (RFC 9112 7.1)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"


class FileWrapper:
    """wsgi.file_wrapper: the worker sends it with os.sendfile when it has a fileno."""

    def __init__(self, filelike, blksize=65536):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration


def error_response(code, close=True):
    """A complete plain-text response for a status the server decides itself."""
    reason = REASONS.get(code, "Error")
    body = ("%d %s\n" % (code, reason)).encode()
    return b"HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s" % (
        code, reason.encode(), len(body), b"Connection: close\r\n" if close else b"", body)


def base_environ(server_software):
    return {
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.errors": sys.stderr,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "wsgi.input": EMPTY_INPUT,       # replaced when the request has a body
        "SERVER_SOFTWARE": server_software,
        "SCRIPT_NAME": "",
        "SERVER_PROTOCOL": "HTTP/1.1",   # the request's own, when it says otherwise
    }


def listener_environ(base, name):
    """The environ keys one listener fixes for all its requests, from its socket name
    (a (host, port) tuple, or a unix path)."""
    env = base.copy()
    if type(name) is tuple:
        env["SERVER_NAME"], env["SERVER_PORT"] = str(name[0]), str(name[1])
    else:
        env["SERVER_NAME"], env["SERVER_PORT"] = "localhost", "0"
    env["wsgi.url_scheme"] = "http"
    return env


def peer_trusted(peer, allowed):
    """Whether a peer address may set X-Forwarded-Proto: `allowed` holds '*' and
    ip_network objects (config's --forwarded-allow-ips)."""
    import ipaddress       # value-level: only parsing
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(a == "*" or ip in a for a in allowed)


def roomy(template):
    """The environ template as a dict with room to grow: each request's environ is its copy
    (dict.copy clones the hash table at its size), filled with the request's keys. Cloned
    from a table of the template's own size, a hello-world request's 22nd key made the copy
    grow (a new table, every key re-inserted: 800 instructions, 2.7% of a keep-alive
    request, when "pyfork.extend_timeout" became the template's 17th key), as any request
    with a header or two more did before. Grown once here, the copies start with room.
    Falls back to a plain copy if this Python's dict does not keep the room."""
    d, size, fill = dict(template), sys.getsizeof(template), []
    while sys.getsizeof(d) == size and len(fill) < 64:
        fill.append("\0room%d" % len(fill))
        d[fill[-1]] = None
    for key in fill:
        del d[key]
    return d if sys.getsizeof(d.copy()) > size else dict(template)
