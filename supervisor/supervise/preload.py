"""Is a preloaded app safe to fork? What the app's import (and the `when_ready` hook) left
in the master that every worker would share after fork.

The hazard (the incident that made this module): Django with CONN_MAX_AGE ran a query at
import, the master held one Postgres connection, every worker inherited the same socket,
and their queries' answers crossed: responses carried another worker's rows, with no error.
A socket, a Python thread (it does not exist in the child, and may hold a lock the child
then waits on forever) or a child process (the workers would each believe they own it)
cannot be shared by forking. So before the first fork the master lists:

- sockets it did not open itself: each named by its peer (`127.0.0.1:5432`,
  `/run/postgresql/.s.PGSQL.5432`) or, unconnected, by its own address;
- Python threads other than the main one, by name (`ddtrace.writer`);
- child processes other than the workers of a master it replaced (USR2), by pid and command.

Native threads Python does not know about (OpenBLAS's and MKL's pools, started when numpy
is imported) are named in a warning only: those libraries register fork handlers and
rebuild their pools in the child; refusing them would refuse every numpy app.

`hazards()` reads the process (/proc and psutil); `refusal()` and `warning()` are pure.
"""
import dataclasses
import enum
import os
import socket
import threading

import psutil


class Kind(enum.Enum):
    SOCKET = "socket"
    THREAD = "thread"
    CHILD = "child process"
    NATIVE_THREAD = "native thread"


@dataclasses.dataclass(frozen=True)
class Held:
    kind: Kind
    what: str        # 'a socket to 127.0.0.1:5432 (fd 7)', "a thread 'ddtrace.writer'", ...


def socket_fds():
    """{fd: inode} of this process's open sockets."""
    found = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue     # the directory's own fd, gone by now
        if target.startswith("socket:["):
            found[int(name)] = target
    return found


def _address(addr):
    if isinstance(addr, tuple):
        host = "[%s]" % addr[0] if ":" in addr[0] else addr[0]
        return "%s:%d" % (host, addr[1])
    if isinstance(addr, bytes):     # an abstract unix name
        return "@" + addr.lstrip(b"\0").decode("utf-8", "replace")
    return addr or "an unnamed unix socket"


def describe_socket(fd):
    """'a socket to 127.0.0.1:5432 (fd 7)': the peer if connected, else its own address."""
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return "a socket (fd %d)" % fd
    with sock:
        try:
            return "a socket to %s (fd %d)" % (_address(sock.getpeername()), fd)
        except OSError:
            pass
        try:
            return "a socket on %s (fd %d)" % (_address(sock.getsockname()), fd)
        except OSError:
            return "a socket (fd %d)" % fd


def hazards(before, ours, old_workers=()):
    """[Held] in this process now: sockets not in `before` (the fds open before the app
    was imported) nor in `ours` (the master's own, opened since), Python threads other than
    the main one, children other than `old_workers`, native threads."""
    held = [Held(Kind.SOCKET, describe_socket(fd))
            for fd, inode in sorted(socket_fds().items())
            if before.get(fd) != inode and fd not in ours]
    main = threading.main_thread()
    python = [t for t in threading.enumerate() if t is not main]
    held += [Held(Kind.THREAD, "a thread '%s'" % t.name) for t in python]
    me = psutil.Process()
    for child in me.children():
        if child.pid in old_workers:
            continue
        try:
            command = " ".join(child.cmdline()) or child.name()
        except psutil.Error:
            command = "?"
        held.append(Held(Kind.CHILD, "a child process %d (%s)" % (child.pid, command)))
    known = {t.native_id for t in python} | {threading.get_native_id()}
    for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
        if tid not in known:
            held.append(Held(Kind.NATIVE_THREAD, "%d '%s'" % (tid, _comm(tid))))
    return held


def _comm(tid):
    try:
        with open("/proc/self/task/%d/comm" % tid) as f:
            return f.read().strip()
    except OSError:
        return "?"


# -- the words (pure) -----------------------------------------------------------------------

SHARED = (Kind.SOCKET, Kind.THREAD, Kind.CHILD)
ADVICE = ("Close them at import (Django: CONN_MAX_AGE, connections.close_all() in the config's "
          "when_ready), start threads in post_fork, or run without --preload "
          "(--preload-unsafe forks anyway)")


def listed(phrases):
    """['a', 'b', 'c'] -> 'a, b and c'"""
    return ", ".join(phrases[:-1]) + " and " + phrases[-1] if len(phrases) > 1 else "".join(phrases)


def refusal(held):
    """The one line naming what the workers would share, or None when nothing is."""
    if not any(h.kind in SHARED for h in held):
        return None
    return ("--preload: the app's import left %s in the master; every worker would share them. %s"
            % (listed([h.what for h in held if h.kind in SHARED]), ADVICE))


def warning(held):
    """Native threads: a warning line, or None."""
    native = [h.what for h in held if h.kind is Kind.NATIVE_THREAD]
    if not native:
        return None
    return ("--preload: the master runs %d native thread%s Python did not start (%s); forking on, as "
            "libraries that start them at import (OpenBLAS, MKL) rebuild them in each worker"
            % (len(native), "" if len(native) == 1 else "s", ", ".join(native)))
