"""The listening sockets: bind each address, or adopt the fds handed over by systemd or
by our own USR2 re-exec (LISTEN_FDS), and say clearly why an address cannot be used."""
import errno
import fcntl
import os
import socket
import stat
import struct

from ..exits import StartError

LISTEN_FDS_START = 3    # systemd's convention, also used by our own re-exec


class BindError(StartError):
    """A listener could not be made; the message says which address and why."""


def inherited_fds(environ):
    """Listening fds handed over by systemd or by our own re-exec (LISTEN_FDS)."""
    try:
        if int(environ.get("LISTEN_PID", "-1")) != os.getpid():
            return []
        n = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return list(range(LISTEN_FDS_START, LISTEN_FDS_START + n))


def bind(cfg, inherited, ids=None):
    """Make (or adopt) one listening socket per bind. Inherited fds (systemd's, or our
    own across a USR2 re-exec) are matched by fd number for fd://N binds and by address
    otherwise, so a re-exec with the same binds opens nothing new; the unmatched ones
    are closed. `ids`: the (name, uid, gid) of --user/--group, who own unix sockets."""
    adopted = {fd: socket.socket(fileno=fd) for fd in inherited}
    out = []
    for b in cfg.bind:
        try:
            if b.kind == "fd":
                sock = adopted.pop(b.fd, None) or socket.socket(fileno=b.fd)
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    raise BindError("bind fd://%d: the socket is not listening" % b.fd)
            else:
                sock = _adopt(adopted, b) or (_unix(b, cfg, ids) if b.kind == "unix" else _tcp(b, cfg))
        except OSError as exc:
            raise BindError("cannot listen on %s: %s" % (b, _why(exc))) from None
        sock.setblocking(False)
        out.append(sock)
    for sock in adopted.values():
        sock.close()
    return out


def _adopt(adopted, b):
    """The inherited socket listening where `b` asks, if any."""
    for fd, sock in list(adopted.items()):
        name = sock.getsockname()
        if b.kind == "unix":
            if name == b.path:
                return adopted.pop(fd)
        elif isinstance(name, tuple) and name[1] == b.port:
            host = b.host if ":" in b.host else socket.gethostbyname(b.host)
            if name[0] == host:
                return adopted.pop(fd)
    return None


def _why(exc):
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (is another server running on it?)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root; on a platform use $PORT)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    return exc.strerror or str(exc)


def _tcp(b, cfg):
    try:
        infos = socket.getaddrinfo(b.host, b.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError("cannot listen on %s: cannot resolve %r (%s)" % (b, b.host, exc.strerror)) from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if cfg.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(addr)
        # accept() only once the client has sent data: a one-shot request is read right
        # after accept and never enters the poller
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # inherited by accepted sockets
        sock.listen(cfg.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _unix(b, cfg, ids):
    """A unix socket bound as Gunicorn binds it: with --umask (default 0, so mode 0777:
    any local user may connect) in place of the process's umask, and owned by --user and
    --group when given (the socket file's mode and owner decide who may connect)."""
    try:
        if stat.S_ISSOCK(os.stat(b.path).st_mode):
            os.unlink(b.path)     # a stale socket left by a killed server
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(cfg.umask)
    try:
        sock.bind(b.path)
        if ids is not None:
            os.chown(b.path, ids[1], ids[2])
        sock.listen(cfg.backlog)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
    return sock


def hand_over(listeners):
    """Put the listeners at fds 3, 4, ... (inheritable) for a re-exec -> (fds, undo).
    Each listener is copied first, so no move clobbers one still to be moved; what
    those fds held before (the log file, a pipe) is kept aside, and `undo()` puts it
    back and closes the copies if the exec fails: no fd is leaked or lost."""
    above = LISTEN_FDS_START + len(listeners)     # copies go above the range being filled

    def copy(fd):
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above)
    sources = [copy(sock.fileno()) for sock in listeners]
    saved = {}
    for i, src in enumerate(sources):
        fd = LISTEN_FDS_START + i
        try:
            saved[fd] = copy(fd)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            saved[fd] = None           # nothing was there
        os.dup2(src, fd, inheritable=True)

    def undo():
        for fd, old in saved.items():
            if old is None:
                os.close(fd)
            else:
                os.dup2(old, fd, inheritable=False)
                os.close(old)
        for src in sources:
            os.close(src)
    return list(saved), undo


# struct tcp_info's tcpi_unacked: for a listening socket, Linux reports the length of its
# accept queue there (tcp_get_info: sk_ack_backlog), and the queue's limit in tcpi_sacked.
_UNACKED_AT = 24
_UNACKED = struct.Struct("=I")


def queued(sock):
    """Connections waiting in a TCP listener's accept queue (one getsockopt, about 0.6 us).
    Unix sockets have no such count: 0."""
    if sock.family == socket.AF_UNIX:
        return 0
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _UNACKED_AT + _UNACKED.size)
    return _UNACKED.unpack_from(info, _UNACKED_AT)[0]
