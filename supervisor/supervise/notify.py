"""systemd's sd_notify protocol, spoken directly (no libsystemd): Type=notify and the watchdog.

The protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to the AF_UNIX socket named
in $NOTIFY_SOCKET, a filesystem path or, with a leading '@', an abstract name. The master
calls this from its loop, so everything here is bounded: the socket is non-blocking, and a
notification that cannot be delivered (systemd busy, gone, or never there) is dropped and
counted, never raised. The watchdog is a deadline like any other: the master asks
`next_watchdog(now)` when it computes its sleep and pings when `watchdog_due(now)`.

The parsing and formatting are the pure functions at the top, tested as tables.
"""
import errno
import os
import socket
import time

# sun_path is 108 bytes: a path needs its terminating NUL, an abstract name does not.
PATH_MAX = 107
ABSTRACT_MAX = 108

# Variables systemd sets for the service's main process only. A worker that kept them
# could speak for the service (NotifyAccess=all) or adopt fds that are not its own.
SYSTEMD_ONLY = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")

# EAGAIN: systemd's receive queue is full; ECONNREFUSED: nobody bound at the address
# (abstract name, or a stale socket file); ENOENT: the socket file is gone.
DROPPED = (errno.EAGAIN, errno.ECONNREFUSED, errno.ENOENT)


def address(notify_socket):
    """$NOTIFY_SOCKET -> what `sendto` takes: the path (str), or the abstract name as bytes
    with a leading NUL. ValueError, naming the variable, for anything else."""
    if notify_socket.startswith("@"):
        name = b"\0" + os.fsencode(notify_socket[1:])
        if len(notify_socket) > 1 and len(name) <= ABSTRACT_MAX:
            return name
    elif notify_socket.startswith("/") and len(os.fsencode(notify_socket)) <= PATH_MAX:
        return notify_socket
    raise ValueError("NOTIFY_SOCKET=%r: expected an absolute socket path or '@name' of at most "
                     "%d bytes; check the unit's Type= and what set the variable"
                     % (notify_socket, PATH_MAX))


def message(**fields):
    """`READY=1\\nSTATUS=...\\n` as bytes, in the order given. A newline inside a value would
    start a new assignment, so it is flattened to a blank."""
    if not fields:
        raise ValueError("a notification needs at least one field")
    lines = []
    for key, value in fields.items():
        if not (key.isascii() and key.replace("_", "").isalnum() and key.isupper()):
            raise ValueError("notification field %r: systemd reads only upper-case names" % key)
        lines.append("%s=%s\n" % (key, " ".join(str(value).splitlines())))
    return "".join(lines).encode("utf-8", "backslashreplace")


def _positive(environ, name):
    text = environ[name]
    if not (text.isascii() and text.isdigit() and int(text) > 0):
        raise ValueError("%s=%r: expected a positive whole number, as systemd sets it" % (name, text))
    return int(text)


def parse_watchdog(environ, pid):
    """Seconds between pings (half of $WATCHDOG_USEC, as sd_watchdog_enabled(3) advises), or
    None when the watchdog is off or meant for another process ($WATCHDOG_PID)."""
    if not environ.get("WATCHDOG_USEC"):
        return None
    if environ.get("WATCHDOG_PID") and _positive(environ, "WATCHDOG_PID") != pid:
        return None
    return _positive(environ, "WATCHDOG_USEC") / 2e6


def clean_environ(environ):
    """A copy of `environ` without the variables that are the main process's alone."""
    return {k: v for k, v in environ.items() if k not in SYSTEMD_ONLY}


def monotonic_usec():
    """CLOCK_MONOTONIC in µs, the clock systemd compares MONOTONIC_USEC with."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """One non-blocking datagram socket to systemd. `sent` and `dropped` count datagrams;
    `last_error` is the errno name of the latest drop, for a log line."""

    @classmethod
    def from_environ(cls, environ, pid=None):
        """None when $NOTIFY_SOCKET is unset or empty (not run by systemd as Type=notify)."""
        if not environ.get("NOTIFY_SOCKET"):
            return None
        pid = os.getpid() if pid is None else pid
        return cls(address(environ["NOTIFY_SOCKET"]), parse_watchdog(environ, pid))

    def __init__(self, addr, watchdog_interval=None):
        self.addr = addr
        self.watchdog_interval = watchdog_interval
        self.last_watchdog = None
        self.sent = 0
        self.dropped = 0
        self.last_error = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)

    def send(self, **fields):
        """One datagram; True if it left, False if it was dropped (see DROPPED)."""
        try:
            self.sock.sendto(message(**fields), self.addr)
        except OSError as exc:
            if exc.errno not in DROPPED:
                raise
            self.dropped += 1
            self.last_error = errno.errorcode[exc.errno]
            return False
        self.sent += 1
        return True

    def _with_status(self, status, **fields):
        if status is not None:
            fields["STATUS"] = status
        return self.send(**fields)

    def ready(self, status=None):
        """Startup or a reload finished: workers are serving."""
        return self._with_status(status, READY=1)

    def reloading(self, status=None):
        """A reload began; send `ready()` again when it is done. systemd >= 253
        (Type=notify-reload) requires the MONOTONIC_USEC that goes with it."""
        return self._with_status(status, RELOADING=1, MONOTONIC_USEC=monotonic_usec())

    def stopping(self, status=None):
        return self._with_status(status, STOPPING=1)

    def status(self, text):
        return self.send(STATUS=text)

    def mainpid(self, pid):
        """The service's main process is now `pid` (needs NotifyAccess=all from a child)."""
        return self.send(MAINPID=pid)

    # -- watchdog: a deadline in the master's sleep -----------------------------------------

    def next_watchdog(self, now):
        """Seconds until the next ping is due (0 if due now), or None without a watchdog."""
        if self.watchdog_interval is None:
            return None
        if self.last_watchdog is None:
            return 0.0
        return max(0.0, self.last_watchdog + self.watchdog_interval - now)

    def watchdog_due(self, now):
        return self.next_watchdog(now) == 0.0

    def watchdog(self, now):
        """Ping. `now` is remembered even when the datagram is dropped: retrying in a tight
        loop would not reach systemd any sooner, and the next ping is half an interval away."""
        self.last_watchdog = now
        return self.send(WATCHDOG=1)

    def close(self):
        """In the master at exit, or in a worker right after fork (the fd is inherited)."""
        self.sock.close()
