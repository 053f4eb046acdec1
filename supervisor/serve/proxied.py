"""--proxy-protocol: a new connection's PROXY header is read before HTTP, then the connection
is handed to a Connection with the client's address as REMOTE_ADDR (proxyproto.py parses),
or to TLS's handshake first (tls.py) with --certfile: a proxy sends the header before TLS.

A Stage stands in the worker's connection table until its header is whole. It only peeks
(MSG_PEEK) and takes the header's bytes once it has them all, so a connection with no header
(plain HTTP, as Gunicorn allows) reaches the Connection untouched. It is registered
edge-triggered: a header that comes in pieces wakes the loop once per piece, never in a
spin. A header from a peer outside --proxy-allow-from, or a malformed one, closes the
connection with one debug line. With --proxy-protocol and --certfile off none of this runs:
the worker's accept path tests one attribute.
"""
import select
import socket

from . import proxyproto
from .connection import Connection
from .threads import ThreadedConnection, rearm
from .wsgi import peer_trusted

PEEK = 536                  # bytes first peeked: a v1 line, or a v2 header with its usual TLVs
_MORE, _NONE, _OK = proxyproto.Verdict.MORE, proxyproto.Verdict.NONE, proxyproto.Verdict.OK


def _next(w, sock, base, trust, registered):
    """After the PROXY header (or without one): TLS's handshake with --certfile, else HTTP."""
    if w.tls is not None:
        from . import tls         # imported only with --certfile: ssl costs every process memory
        return tls.start(w, sock, base, trust, registered)
    adopt(w, sock, base, trust, registered)


_allowed = {}      # peer address -> in --proxy-allow-from? (a worker's few proxies, looked up once)


def adopt(w, sock, base, trust, registered, cls=Connection, threaded=ThreadedConnection):
    """The connection serves HTTP from here, level-triggered on EPOLLIN (the worker's accept
    path, for a socket a stage had: `registered` with the epoll already or not)."""
    if w.pool is None:
        conn = cls(w.ctx, sock, base, trust)
    else:
        conn = threaded(w.ctx, sock, base, trust, w.pool)
        conn.mask = select.EPOLLIN
    w.conns[conn.fd] = conn
    if registered:
        w.ep.modify(conn.fd, select.EPOLLIN)
    else:
        w.ep.register(conn.fd, select.EPOLLIN)
    conn.on_readable()
    if w.pool is not None:
        rearm(w, conn)


def accept(w, sock, base, trusted, addr):
    """The worker accepted `sock` from `addr`: read its PROXY header (or see there is none)
    now if its first bytes are here, else wait for them (edge-triggered). Without
    --proxy-protocol (TLS alone), the handshake starts at once."""
    if w.cfg.proxy_protocol == "off":
        return _next(w, sock, base, trusted, False)
    try:
        first = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        first = None
    except OSError:
        return sock.close()
    if first and first not in b"P\r":      # neither header can begin so: HTTP (or TLS) from the first byte
        return _next(w, sock, base, trusted, False)
    peer = addr[0] if type(addr) is tuple else None
    allowed = _allowed.get(peer)
    if allowed is None:
        allowed = peer is None or peer_trusted(peer, w.cfg.proxy_allow_ips)    # a unix socket: on this host
        if len(_allowed) < 1024:
            _allowed[peer] = allowed
    stage = Stage(w, sock, base, trusted, allowed, peer)
    stage.on_readable()
    if not stage.closed:          # the header is still to come
        w.conns[stage.fd] = stage
        w.ep.register(stage.fd, stage.mask)
        stage.registered = True


class BeforeHttp:
    """A connection before its HTTP (its PROXY header here, its TLS handshake in tls.py): in the
    worker's connection table as a Connection is, with no request yet (serve/timeouts.py
    looks for one), closable to make room when descriptors run out (nofds.py)."""
    running = False
    key = None
    __slots__ = ("w", "sock", "fd", "base", "trust", "last", "closed", "ctx", "mask", "registered")

    def __init__(self, w, sock, base, trust, mask, registered):
        self.w, self.sock, self.fd, self.base, self.trust = w, sock, sock.fileno(), base, trust
        self.last, self.closed, self.ctx = w.clock.now, False, w.ctx
        self.mask, self.registered = mask, registered    # registered: with the worker's epoll

    def wants(self):
        return self.mask

    def reclaimable(self):
        return True

    def close(self):
        if not self.closed:
            self.closed = True
            if self.w.conns.get(self.fd) is self:
                del self.w.conns[self.fd]
            self.sock.close()


class Stage(BeforeHttp):
    """Reading the PROXY header: registered edge-triggered, once it waits for more."""
    __slots__ = ("allowed", "peer", "size")

    def __init__(self, w, sock, base, trust, allowed, peer):
        super().__init__(w, sock, base, trust, select.EPOLLIN | select.EPOLLET, False)
        self.allowed, self.peer, self.size = allowed, peer, PEEK

    def between_requests(self):
        """Idle until the header comes: the keep-alive timeout closes a peer that sends nothing."""
        return True

    def on_readable(self):
        while True:
            try:
                data = self.sock.recv(self.size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                return self.close()
            if not data:
                return self.close()
            header = proxyproto.parse(data, self.w.cfg.proxy_protocol)
            if header.verdict is not _MORE:
                break
            if len(data) < self.size or header.length <= self.size:
                return            # the rest is still to come: the next piece wakes the loop
            self.size = header.length     # a v2 header longer than the peek: peek it whole
        if header.verdict is _NONE:
            return self.hand_over()
        if header.verdict is not _OK or not self.allowed:
            why = header.why if header.verdict is not _OK else "%s is not in --proxy-allow-from" % self.peer
            self.w.log.debug("proxy protocol header refused on fd %d: %s", self.fd, why)
            return self.close()
        self.sock.recv(header.length)         # take the header: it was all peeked, so it is there
        self.base.update(proxyproto.environ(header))
        self.hand_over()

    def hand_over(self):
        """The header is read (or there is none): TLS's handshake next, or HTTP from here."""
        self.closed = True        # the stage is done; the socket lives on
        _next(self.w, self.sock, self.base, self.trust, self.registered)
