"""`GET /metrics` (and the live page at `/`) served from the master's own loop: no thread,
no blocking call.

The master polls the fds this hands it and calls `handle` with what poll said; every
connection is a small state machine (read the head, then write the answer, then close)
that advances only as far as the socket allows without waiting. What bounds it:

- a head is at most MAX_HEAD bytes (431 past that), and nothing after it is read;
- at most MAX_CONNECTIONS are open; past that the listener is not polled, so further
  scrapers wait in the kernel's backlog (BACKLOG) until a slot frees, instead
  of being turned away while the slots are held by stalled clients;
- every connection is closed TIMEOUT seconds after it was accepted, whatever its state:
  a scraper that stalls, or reads a big body slowly, never holds the master's fds;
- out of descriptors (accept() refused with EMFILE or ENFILE, the listener still
  readable), it does what a worker does (fdlimit.py): closes connections still reading
  that are quiet, oldest first, or rests the listener until one of its own closes or a
  back-off passes, and says so once, then every 10 s while it lasts.

Closing uses shutdown() first: a worker forked while a scrape was open holds a copy of
its fd, and close() alone would leave that connection open until the worker exits.
"""
import enum
import errno
import resource
import select
import socket

from .. import fdlimit

MAX_HEAD = 8192
MAX_CONNECTIONS = 64
BACKLOG = 128               # kernel-held handshakes waiting for a slot; a burst of scrapers fits
ACCEPT_BATCH = 16           # per wake-up, so a connect flood cannot starve the rest of the loop
TIMEOUT = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GONE = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT,     # the peer left,
        errno.EHOSTUNREACH, errno.ENETUNREACH)                                # or its route did
READ = select.POLLIN
WRITE = select.POLLOUT


class Phase(enum.Enum):
    READING = "reading"
    WRITING = "writing"


class Conn:
    def __init__(self, sock, started):
        self.sock = sock
        self.started = started
        self.phase = Phase.READING
        self.head = bytearray()
        self.out = memoryview(b"")


def response(status, body, content_type="text/plain; charset=utf-8", head_only=False, extra=""):
    """The whole answer as bytes: status line, headers, body."""
    head = ("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n"
            % (status, content_type, len(body), extra)).encode("latin-1")
    return head if head_only else head + body


def end_of_head(buf):
    """True once the blank line after the headers is in (CRLF, or bare LF as RFC 9112 allows)."""
    return b"\r\n\r\n" in buf or b"\n\n" in buf


class MetricsServer:
    """The listener and its connections. `bind` is a config.Bind of kind "tcp" or a
    (host, port) pair, an empty host meaning 127.0.0.1; `render()` returns the body;
    `address` is the (host, port) actually bound, so port 0 works."""
    WHO = "master metrics server"     # how its log lines about itself begin

    def __init__(self, bind, render, log, timeout=TIMEOUT, page=None):
        if getattr(bind, "kind", "tcp") != "tcp":
            raise ValueError("--metrics-bind %s: give HOST:PORT; /metrics is served over TCP" % bind)
        host, port = (bind.host, bind.port) if hasattr(bind, "host") else bind
        host = host or "127.0.0.1"
        self.render = render
        self.page = page            # () -> the live HTML page at `/`, or None
        self.log = log
        self.timeout = timeout
        self.conns = {}             # fd -> Conn
        self.strain = None          # out of file descriptors: the episode (fdlimit.Strain)
        sock = None
        try:
            # resolved once, before the loop starts: a name lookup must never happen in it
            family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                       flags=socket.AI_PASSIVE)[0]
            sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(BACKLOG)
        except OSError as exc:
            if sock is not None:
                sock.close()
            raise OSError(exc.errno, "cannot serve /metrics on %s:%d: %s; check --metrics-bind and "
                          "whether another process holds the port" % (host, port, exc.strerror)) from None
        self.listener = sock
        self.address = sock.getsockname()[:2]

    # -- what the master polls and when it must come back -------------------------------------

    def fds(self):
        """{fd: poll mask}: the listener while there is room, each connection by its phase."""
        out = {fd: READ if c.phase is Phase.READING else WRITE for fd, c in self.conns.items()}
        strain = self.strain
        resting = strain is not None and strain.paused_until is not None and len(self.conns) >= strain.open_at_pause
        if len(self.conns) < MAX_CONNECTIONS and not resting:
            out[self.listener.fileno()] = READ
        return out

    def next_deadline(self, now):
        """Seconds until `expire` has work (the oldest connection's timeout, or out of
        descriptors: the end of a pause, a summary line), 0 if it has now; None when there is
        nothing to wait for."""
        due = [c.started + self.timeout for c in self.conns.values()]
        if self.strain is not None:
            due.append(fdlimit.next_due(self.strain))
        return max(0.0, min(due) - now) if due else None

    def expire(self, now):
        for fd, c in list(self.conns.items()):
            if now - c.started >= self.timeout:
                self.log.debug("metrics: closing a connection open %.1fs (%s)", now - c.started, c.phase.value)
                self.drop(fd)
        strain = self.strain
        if fdlimit.resumes(strain, now, len(self.conns)):
            strain = fdlimit.resumed(strain)
        self.strain, say = fdlimit.tick(strain, now)
        if say is not None:
            self.say(say, self.strain or strain, now)

    # -- events --------------------------------------------------------------------------------

    def handle(self, fd, events, now):
        """Advance whatever `fd` is as far as it goes without waiting. Unknown fds (closed
        earlier in this same round) are ignored."""
        if fd == self.listener.fileno():
            self.accept(now)
            return
        c = self.conns.get(fd)
        if c is None:
            return
        if events & select.POLLNVAL:
            self.drop(fd)
        elif c.phase is Phase.READING:
            self.read(fd, c)
        else:
            self.write(fd, c)

    def accept(self, now):
        for _ in range(ACCEPT_BATCH):
            if len(self.conns) >= MAX_CONNECTIONS:
                return
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:     # reset before we got to it
                    continue
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    self.out_of_fds(exc, now)
                    return
                raise
            sock.setblocking(False)     # accept() hands back a blocking socket on Linux
            self.conns[sock.fileno()] = Conn(sock, now)

    def out_of_fds(self, exc, now):
        """accept() refused for lack of descriptors: close what fdlimit chooses among the
        connections still reading (a scraper that sent nothing), or rest the listener."""
        closable = [(c.started, fd) for fd, c in self.conns.items() if c.phase is Phase.READING]
        r = fdlimit.refused(self.strain, now, closable, len(self.conns), "[Errno %d] %s" % (exc.errno, exc.strerror))
        self.strain = r.strain
        if r.say is not None:
            self.say(r.say, r.strain, now)
        for fd in r.close:
            self.drop(fd)

    def say(self, say, strain, now):
        self.log.warning(fdlimit.line(say, strain, now, self.WHO, resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                                      len(self.conns)))

    def read(self, fd, c):
        try:
            data = c.sock.recv(MAX_HEAD + 1 - len(c.head))
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in GONE:
                raise
            data = b""
        if not data:                    # the client left before finishing its request
            self.drop(fd)
            return
        c.head += data
        if self.complete(c.head):
            c.out = memoryview(self.answer(bytes(c.head)))
        elif len(c.head) > MAX_HEAD:
            c.out = memoryview(response("431 Request Header Fields Too Large",
                                        b"request head over %d bytes\n" % MAX_HEAD))
        else:
            return
        c.phase = Phase.WRITING
        self.write(fd, c)               # most answers fit the socket buffer: no poll round trip

    def complete(self, head):
        """True once the request is all in (a subclass may speak another protocol)."""
        return end_of_head(head)

    def answer(self, head):
        """The response to one request head."""
        line = head.split(b"\n", 1)[0].rstrip(b"\r").split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/1."):
            return response("400 Bad Request", b"bad request line\n")
        method, target = line[0], line[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return response("405 Method Not Allowed", b"use GET\n", extra="Allow: GET, HEAD\r\n")
        if target == b"/" and self.page is not None:
            render, content_type = self.page, "text/html; charset=utf-8"
        elif target == b"/metrics":
            render, content_type = self.render, CONTENT_TYPE
        else:
            return response("404 Not Found", b"pyfork serves /metrics%s only\n" % (b" and /" if self.page else b""))
        try:
            body = render().encode("utf-8")
        except Exception:
            # a bug in rendering must cost one scrape, not the master loop
            self.log.exception("metrics: rendering %s failed", target.decode("latin-1"))
            return response("500 Internal Server Error", b"rendering failed; see the error log\n")
        return response("200 OK", body, content_type, head_only=method == b"HEAD")

    def write(self, fd, c):
        try:
            n = c.sock.send(c.out, socket.MSG_NOSIGNAL)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in GONE:
                raise
            self.drop(fd)
            return
        c.out = c.out[n:]
        if not c.out:
            self.drop(fd)

    # -- closing -------------------------------------------------------------------------------

    def drop(self, fd):
        c = self.conns.pop(fd)
        try:
            c.sock.shutdown(socket.SHUT_RDWR)
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                raise
        c.sock.close()

    def close(self):
        """In the master: close the listener and every connection."""
        for fd in list(self.conns):
            self.drop(fd)
        self.listener.close()

    def close_after_fork(self):
        """In a worker right after fork: let go of the inherited fds without shutdown(),
        which would cut the master's own scrapes."""
        for c in self.conns.values():
            c.sock.close()
        self.conns = {}
        self.listener.close()
