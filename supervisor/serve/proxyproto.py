"""The PROXY protocol's header (HAProxy's proxy-protocol.txt, versions 1 and 2): the bytes a
proxy sends before HTTP -> what they say about the client. Pure: bytes in, a Header out.

Version 1 is one text line of at most 107 bytes: `PROXY TCP4 src dst sport dport\\r\\n` (or
TCP6, or UNKNOWN followed by anything). Version 2 is binary: a 12-byte signature, version and
command, family and transport, a 2-byte length, then the addresses (and TLVs, skipped).
LOCAL (a health check from the proxy itself), UNKNOWN and UNSPEC carry no client: the
connection's own addresses stand. Gunicorn refuses v1 UNKNOWN; the spec says to accept it.
"""
import dataclasses
import enum
import ipaddress

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107                  # the longest v1 line, CRLF included
V2_FIXED = 16                 # signature, version/command, family/transport, length
MODES = {"off": (False, False), "v1": (True, False), "v2": (False, True), "auto": (True, True)}


class Verdict(enum.Enum):
    MORE = "more"             # it may be (or is) a header not yet whole: read more
    NONE = "none"             # no header: HTTP from the first byte
    BAD = "bad"               # a header, malformed: close
    OK = "ok"                 # a whole header of `length` bytes


@dataclasses.dataclass(frozen=True)
class Header:
    verdict: Verdict
    length: int = 0           # the header's bytes (OK), or at least this many are needed (MORE)
    protocol: str = ""        # TCP4, TCP6, UNKNOWN, LOCAL or UNSPEC (Gunicorn's PROXY_PROTOCOL)
    source: tuple = None      # (address text, port) of the client, or None: the connection's own
    dest: tuple = None        # (address text, port) the client connected to
    why: str = ""             # BAD: what is wrong, for the debug line


def parse(data, mode="auto"):
    """-> Header for `data`, the first bytes of a connection (as many as have come)."""
    v1, v2 = MODES[mode]
    data = bytes(data)
    if v2 and data[:12] == V2_SIGNATURE[:len(data)]:
        return _v2(data) if len(data) >= 12 else Header(Verdict.MORE, 12)
    if v1 and data[:6] == V1_PREFIX[:len(data)]:
        return _v1(data) if len(data) >= 6 else Header(Verdict.MORE, 6)
    return Header(Verdict.NONE)


def _bad(why):
    return Header(Verdict.BAD, why=why)


def _v1(data):
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        return _bad("a v1 line longer than %d bytes" % V1_MAX) if len(data) >= V1_MAX else Header(Verdict.MORE, len(data) + 1)
    words = data[:end].split(b" ")
    if words[1:2] == [b"UNKNOWN"]:
        return Header(Verdict.OK, end + 2, "UNKNOWN")
    if len(words) != 6 or words[1] not in (b"TCP4", b"TCP6"):
        return _bad("v1 line %r is not PROXY TCP4|TCP6 SRC DST SPORT DPORT" % data[:end][:V1_MAX])
    family = 4 if words[1] == b"TCP4" else 6
    try:
        src, dst = (_address(w.decode("ascii"), family) for w in words[2:4])
        sport, dport = (_port(w) for w in words[4:6])
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad("v1 line: %s" % exc)
    return Header(Verdict.OK, end + 2, words[1].decode(), (src, sport), (dst, dport))


def _address(text, family):
    ip = ipaddress.ip_address(text)
    if ip.version != family:
        raise ValueError("%r is not an IPv%d address" % (text, family))
    return str(ip)


def _port(word):
    if not (word.isdigit() and len(word) <= 5 and int(word) <= 65535):
        raise ValueError("%r is not a port" % word[:8])
    return int(word)


_V2_ADDRESSES = {1: (4, ipaddress.IPv4Address, "TCP4"), 2: (16, ipaddress.IPv6Address, "TCP6")}


def _v2(data):
    if len(data) < V2_FIXED:
        return Header(Verdict.MORE, V2_FIXED)
    version, command = data[12] >> 4, data[12] & 0x0F
    family, transport = data[13] >> 4, data[13] & 0x0F
    size = V2_FIXED + int.from_bytes(data[14:16], "big")
    if version != 2:
        return _bad("v2 header of version %d" % version)
    if command > 1:
        return _bad("v2 command %d is neither LOCAL nor PROXY" % command)
    if len(data) < size:
        return Header(Verdict.MORE, size)
    if command == 0:
        return Header(Verdict.OK, size, "LOCAL")
    if family == 0 or family == 3:          # UNSPEC, or AF_UNIX: no address to give
        return Header(Verdict.OK, size, "UNSPEC")
    if family not in _V2_ADDRESSES:
        return _bad("v2 address family %d" % family)
    if transport != 1:
        return _bad("v2 transport %d is not a stream (TCP)" % transport)
    width, kind, protocol = _V2_ADDRESSES[family]
    body = data[V2_FIXED:size]
    if len(body) < 2 * width + 4:
        return _bad("v2 %s addresses in %d bytes" % (protocol, len(body)))
    src, dst = str(kind(body[:width])), str(kind(body[width:2 * width]))
    sport = int.from_bytes(body[2 * width:2 * width + 2], "big")
    dport = int.from_bytes(body[2 * width + 2:2 * width + 4], "big")
    return Header(Verdict.OK, size, protocol, (src, sport), (dst, dport))


def environ(header):
    """The environ keys a header sets, as Gunicorn names them (none when it names no client)."""
    if header.source is None:
        return {"PROXY_PROTOCOL": header.protocol}
    return {"PROXY_PROTOCOL": header.protocol, "REMOTE_ADDR": header.source[0], "REMOTE_PORT": str(header.source[1]),
            "PROXY_ADDR": header.dest[0], "PROXY_PORT": str(header.dest[1])}
