"""TLS (--certfile, --keyfile, --ca-certs, --cert-reqs, --ciphers, --ssl-version and the
ssl_context hook), with the standard library's ssl, inside the worker's loop.

A new connection's handshake is a Handshake in the worker's connection table: it steps
do_handshake() each time its socket is ready for what OpenSSL wants (read or write), so a
slow or broken client costs a registered fd, never a thread or a blocked loop. A failed
handshake is one debug line and a close. Then the connection is a TLSConnection over a
TLSSock: the Connection's recv_into/send with MSG_DONTWAIT become the SSL socket's
non-blocking calls (OpenSSL's want-read/want-write is EAGAIN), and a file wrapper is
sent through the SSL socket, not os.sendfile (which would write plaintext to the wire).

The context is made from the files in each worker after fork (a HUP's new workers read
renewed certificates), and once by the master at start, so a missing key exits 2 there.
"""
import select
import socket
import ssl

from .connection import Connection
from .proxied import BeforeHttp, adopt as plain_adopt
from .threads import ThreadedConnection

CERT_REQS = {"0": ssl.CERT_NONE, "1": ssl.CERT_OPTIONAL, "2": ssl.CERT_REQUIRED, "none": ssl.CERT_NONE,
             "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def default_context(cfg):
    """Gunicorn's ssl_context factory: the server context from the settings."""
    ctx = ssl.SSLContext(cfg.ssl_version)
    ctx.load_cert_chain(cfg.certfile, cfg.keyfile or None)
    ctx.verify_mode = cfg.cert_reqs
    if cfg.ca_certs:
        ctx.load_verify_locations(cfg.ca_certs)
    if cfg.ciphers:
        ctx.set_ciphers(cfg.ciphers)
    return ctx


def context(cfg):
    """The SSLContext: the config file's ssl_context(conf, factory) hook if any, as in Gunicorn."""
    hook = cfg.hooks.get("ssl_context")
    if hook is not None:
        return hook(cfg, lambda: default_context(cfg))
    return default_context(cfg)


def start(w, sock, base, trust, registered):
    """A connection accepted (and its PROXY header read, if any): begin its handshake."""
    raw = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    try:
        tls = w.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False,
                                suppress_ragged_eofs=w.cfg.suppress_ragged_eofs)
    except OSError as exc:
        w.log.debug("tls: cannot wrap fd %d: %s", raw.fileno(), exc)
        raw.close()
        return
    tls.setblocking(False)
    base["wsgi.url_scheme"] = "https"        # the connection's own copy of the listener's environ
    Handshake(w, tls, base, trust, registered).step()


class Handshake(BeforeHttp):
    """Stepping the TLS handshake: registered for what OpenSSL wants next."""
    __slots__ = ()

    def __init__(self, w, sock, base, trust, registered):
        super().__init__(w, sock, base, trust, select.EPOLLIN if registered else 0, registered)
        w.conns[self.fd] = self

    def between_requests(self):
        """Mid-request: a client that stops half-way is closed after the read timeout."""
        return False

    def step(self):
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            return self.wait(select.EPOLLIN)
        except ssl.SSLWantWriteError:
            return self.wait(select.EPOLLOUT)
        except (ssl.SSLError, OSError) as exc:
            self.w.log.debug("tls handshake failed on fd %d: %s", self.fd, exc)
            return self.close()
        self.closed = True          # the handshake is done; the socket lives on in the connection
        adopt(self.w, TLSSock(self.sock), self.base, self.trust, self.registered)

    on_readable = on_writable = step

    def wait(self, mask):
        if mask != self.mask:
            if self.registered:
                self.w.ep.modify(self.fd, mask)
            else:
                self.w.ep.register(self.fd, mask)
                self.registered = True
            self.mask = mask


def adopt(w, sock, base, trust, registered):
    """The connection serves HTTP over `sock` from here, level-triggered on EPOLLIN."""
    return plain_adopt(w, sock, base, trust, registered, TLSConnection, TLSThreadedConnection)


def _through_tls(self, env, wrapper, fileno):
    """A file wrapper's blocks go through the SSL socket: os.sendfile would write plaintext."""
    return self.respond_iter(env, (block for block in wrapper))   # not a FileWrapper: no sendfile


class TLSConnection(Connection):
    __slots__ = ()
    send_file = _through_tls


class TLSThreadedConnection(ThreadedConnection):
    __slots__ = ()
    send_file = _through_tls


class TLSSock:
    """The SSL socket as the Connection calls a plain one: flags refused by SSLSocket are
    dropped (it is non-blocking), OpenSSL's want-read/want-write is BlockingIOError, and
    settimeout(None) (the end of a blocking send) goes back to non-blocking."""
    __slots__ = ("tls",)

    def __init__(self, tls):
        self.tls = tls

    def fileno(self):
        return self.tls.fileno()

    def recv_into(self, buf, nbytes=0, flags=0):
        size = nbytes or len(buf)
        try:
            n = self.tls.recv_into(buf, size)
            while n and n < size and self.tls.pending():    # decrypted bytes epoll cannot see
                n += self.tls.recv_into(memoryview(buf)[n:], size - n)
            return n
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError() from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return 0

    def send(self, data, flags=0):
        try:
            return self.tls.send(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise BlockingIOError() from None

    def sendall(self, data):
        self.tls.sendall(data)

    def settimeout(self, seconds):
        if seconds is None:
            self.tls.setblocking(False)
        else:
            self.tls.settimeout(seconds)

    def close(self):
        self.tls.close()
