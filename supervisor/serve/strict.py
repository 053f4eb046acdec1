"""What a request may be: the RFC 9112 rules the connection applies beyond llhttp's own.

Pure: bytes and strings in, a verdict out. Each rule is one named function (or set) that
raises Refused(status, why) or returns what the request path needs; connection.py calls
each at the cheapest point of the parse (most only on requests that are not plain, see its
callbacks). The rules, and where llhttp already enforces the rest, are listed in README's
"What pyfork refuses"; tests/serve/test_strict.py holds one raw-bytes case for each.
"""
import re


HOSTS = {}            # Host values already found valid (bounded), so a plain request skips the look
# Connection.fields_left in a chunked body's trailer section: far below zero, so on_header's
# one limit test sends every trailer field to the slow way at no cost to header fields
TRAILERS = -(1 << 40)


class Refused(Exception):
    """The request is refused with `status`; the connection closes after the answer."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


# -- RFC 9112 3.2 / RFC 3986 3.2.2: Host and the authority of a target -------------------------

_REG_NAME = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
_IP_LITERAL = r"\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
_AUTHORITY = re.compile(r"(%s|%s)(?::([0-9]*))?" % (_IP_LITERAL, _REG_NAME))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")


def check_host_value(host):
    """RFC 9112 3.2: a Host field value is uri-host [":" port] (empty is allowed)."""
    if _AUTHORITY.fullmatch(host) is None:
        raise Refused(400, "invalid Host %r" % host[:80])


def check_host(host, protocol):
    """RFC 9112 3.2: HTTP/1.1 needs a Host, and any Host must be valid (a second Host line
    is refused where it is read, in repeated()). A valid one is remembered in HOSTS."""
    if host is None:
        if protocol == "HTTP/1.1":
            raise Refused(400, "HTTP/1.1 request without Host")
        return
    check_host_value(host)
    if len(HOSTS) >= 1024:
        HOSTS.clear()
    HOSTS[host] = True


# -- RFC 9112 3.2.1-3.2.4: the four forms of a request target -----------------------------------

def check_target(target, method):
    """A target that is not origin-form (RFC 9112 3.2) -> the authority an absolute-form
    target names (for HTTP_HOST), None for the other forms, or Refused. Asterisk-form only
    with OPTIONS, authority-form only (and always) with CONNECT, absolute-form only as a
    valid absolute URI with a host. 3.2.2: a server MUST ignore the Host field for an
    absolute-form target and use the target's authority, so a Host that differs is no
    refusal (the Host field itself must still be there in HTTP/1.1, once, and valid: 3.2)."""
    if target.startswith("/"):
        if method == "CONNECT":
            raise Refused(400, "CONNECT needs an authority-form target, got %r" % target[:80])
        return None
    if target == "*":
        if method != "OPTIONS":
            raise Refused(400, "the asterisk-form target is only for OPTIONS, not %s" % method)
        return None
    scheme, sep, rest = target.partition("://")
    if method == "CONNECT":
        m = _AUTHORITY.fullmatch(target)
        if sep or m is None or not m.group(1) or not m.group(2):
            raise Refused(400, "CONNECT target %r is not host:port" % target[:80])
        return None
    if not sep or _SCHEME.fullmatch(scheme) is None:
        raise Refused(400, "target %r is neither a path nor an absolute URI" % target[:80])
    authority = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    authority = authority.rpartition("@")[2]       # userinfo is not part of the origin, nor of Host
    m = _AUTHORITY.fullmatch(authority)
    if m is None or not m.group(1):                # RFC 9110 4.2.1: an empty host MUST be refused
        raise Refused(400, "target %r has no valid authority" % target[:80])
    return authority


# -- RFC 9110 9.1: a method the parser does not know -------------------------------------------

_REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [!-~]+ HTTP/[0-9]\.[0-9]\r\n")


def unknown_method_status(line_start):
    """llhttp refused the method at the start of `line_start`: 501 when the line is a
    request line whose method is a token (one we do not implement, RFC 9110 9.1), 400
    when it is not even that."""
    return 501 if _REQUEST_LINE.match(line_start.lstrip(b"\r\n")) else 400


# -- RFC 9112 6.1 / 6.3: Transfer-Encoding ---------------------------------------------------

def check_transfer_coding(te, protocol):
    """Only chunked, once, as the final coding, in HTTP/1.1. Faulty framing is 400 (the
    connection closes); a coding we do not decode before a final chunked is 501."""
    if protocol == "HTTP/1.0":
        raise Refused(400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 6.1)")
    codings = [c.strip(" \t").lower() for c in te.split(",")]
    if codings[-1] != "chunked" or codings.count("chunked") > 1:
        raise Refused(400, "chunked is not the final transfer coding, once: %r" % te[:80])
    if len(codings) > 1:
        raise Refused(501, "transfer coding %r is not supported" % te[:80])


# -- RFC 9110 5.3: fields that are one value --------------------------------------------------

# A second line of these cannot be joined into one meaning: which Host routes, which
# credentials were checked? (Content-Length is llhttp's: it refuses any second line.)
SINGLETONS = frozenset(("HTTP_HOST", "CONTENT_TYPE", "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION"))

# -- RFC 9110 6.5.1: trailer fields ------------------------------------------------------------

# Fields that control framing, routing or authentication must not come from a trailer
# (the forwarding fields route too); other trailer fields are dropped.
TRAILER_REFUSED = frozenset(n.encode() for n in (
    "host", "content-length", "transfer-encoding", "trailer", "te", "connection", "upgrade",
    "authorization", "proxy-authorization", "cookie", "forwarded", "x-forwarded-for",
    "x-forwarded-proto", "x-forwarded-host", "x-forwarded-port", "x-forwarded-ssl",
    "x-forwarded-protocol", "x-real-ip"))


def check_trailer(name):
    """A trailer field is never put in the environ; one of the above refuses the request."""
    if name.lower() in TRAILER_REFUSED:
        raise Refused(400, "%r is not allowed in a trailer (RFC 9110 6.5.1)" % name[:40])


# -- RFC 9110 10.1.1: Expect ---------------------------------------------------------------

def check_expect(expect):
    """100-continue is the only expectation (repeated lines of it join as a list)."""
    if any(e.strip(" \t").lower() != "100-continue" for e in expect.split(",")):
        raise Refused(417, "expectation %r is not supported" % expect[:80])


# -- RFC 9112 9.3: close wins ------------------------------------------------------------------

def asks_close(connection):
    """Whether a Connection field value holds the `close` option (in any version)."""
    low = connection.lower()
    return "close" in low and any(o.strip(" \t") == "close" for o in low.split(","))


# -- the scheme from a trusted proxy ----------------------------------------------------------

# header -> the value that means https (Gunicorn's secure_scheme_headers defaults)
SCHEME_HEADERS = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_SSL": "on",
                  "HTTP_X_FORWARDED_PROTOCOL": "ssl"}


def forwarded_key(name, forwarders):
    """HTTP_<NAME> for a header name in forwarder_headers (Gunicorn's: SCRIPT_NAME and
    PATH_INFO by default; '*' for all), else None."""
    text = name.decode("latin-1").upper()
    if text not in forwarders and "*" not in forwarders:
        return None
    return "HTTP_" + text.replace("-", "_")


def mount(env, script):
    """A trusted proxy's SCRIPT_NAME header (forwarder_headers): the app is mounted there, so
    the path loses that prefix, as in Gunicorn, whose 500 a path outside it gets too. It
    wins over the SCRIPT_NAME environment variable's mount, as in Gunicorn."""
    path = env["SCRIPT_NAME"] + env["PATH_INFO"]
    if not path.startswith(script):
        raise Refused(500, "request path %r does not start with SCRIPT_NAME %r" % (path[:80], script[:80]))
    env["SCRIPT_NAME"], env["PATH_INFO"] = script, path[len(script):]


def forwarded_scheme(env, headers=SCHEME_HEADERS):
    """'https', 'http' or None (no scheme header); Refused when two of them disagree.
    `headers`: {environ key: the lower-case value meaning https} (secure_scheme_headers)."""
    found = None
    for key, secure in headers.items():
        value = env.get(key)
        if value is not None:
            scheme = "https" if value.strip(" \t").lower() == secure else "http"
            if found is not None and scheme != found:
                raise Refused(400, "the scheme headers disagree (%s says %s)" % (key, scheme))
            found = scheme
    return found
