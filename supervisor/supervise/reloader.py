"""--reload (development only): watch the app's files from the master's own loop and, on a
change, import the new code in a probe first (commands.probe), then replace the workers as
HUP does, or re-execute a preloaded master. Code that fails to import (a syntax error) has
its traceback logged by the probe, and the workers in use keep serving.

The master never starts a thread (its forks must be safe), so there is no watcher thread
as in Gunicorn or watchfiles: inotify is read through ctypes from an fd the master polls
with its other fds (a Reloader is one of master.servers()), and where inotify is missing,
or with --reload-engine poll, the files' mtimes are compared once a second from the loop.

Which files: those of the modules the app's import loaded, outside the standard library,
site-packages and pyfork itself -- from the master's own modules when preloaded, else
from the probe, which writes them to $PYFORK_RELOAD_LIST -- and --reload-extra-file's.
inotify watches their directories, so an editor that saves by renaming a new file over the
old one is seen too. A change waits SETTLE seconds for the save's other writes.
"""
import ctypes
import os
import struct
import sys
import sysconfig
import tempfile

from . import commands

SETTLE = 0.1          # seconds after a change before the probe starts (an editor writes a file in steps)
POLL = 1.0            # seconds between two looks at the mtimes (--reload-engine poll)
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x8, 0x80, 0x100, 0x200
IN_Q_OVERFLOW = 0x4000
WATCH = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE
EVENT = struct.Struct("iIII")     # struct inotify_event: wd, mask, cookie, len (then the name)
POLLIN = 0x001


def app_files(modules, extra=()):
    """The files worth watching among `modules` (sys.modules' values) and `extra`."""
    skip = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
                 | {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))})
    out = set()
    for m in modules:
        path = getattr(m, "__file__", None)
        if path and path.endswith(".py") and not os.path.abspath(path).startswith(skip):
            out.add(os.path.abspath(path))
    return out | {os.path.abspath(p) for p in extra}


class Inotify:
    """inotify through libc (Linux): a non-blocking fd, directories added by path."""

    def __init__(self):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1: " + os.strerror(ctypes.get_errno()))
        self.dirs = {}        # wd -> directory

    def add(self, directory):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(directory), WATCH)
        if wd >= 0:
            self.dirs[wd] = directory

    def read(self):
        """[path] of the events waiting (None for a queue overflow: anything may have changed)."""
        out = []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return out
        at = 0
        while at + EVENT.size <= len(data):
            wd, mask, _, size = EVENT.unpack_from(data, at)
            name = data[at + EVENT.size:at + EVENT.size + size].rstrip(b"\0")
            at += EVENT.size + size
            if mask & IN_Q_OVERFLOW:
                out.append(None)
            elif wd in self.dirs:
                out.append(os.path.join(self.dirs[wd], os.fsdecode(name)))
        return out

    def close(self):
        os.close(self.fd)


def inotify_or_none():
    try:
        return Inotify()
    except (OSError, AttributeError):      # not Linux, or no inotify in libc
        return None


def listing_path(pid):
    """Where the probe writes its modules' files: made afresh by the master (its own, mode
    0600; the same path across a re-exec, which keeps the pid), only written by the probe."""
    path = os.path.join(tempfile.gettempdir(), "pyfork-reload-%d-%d.txt" % (os.getuid(), pid))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    return path


def write_listing(path, modules):
    """In the probe: the app's files, one a line, into the file the master made."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW)
    with os.fdopen(fd, "w") as f:
        f.write("".join(p + "\n" for p in sorted(app_files(modules))))


class Reloader:
    """One of the master's servers: fds() to poll, handle() when readable, expire() each turn."""

    def __init__(self, master, engine, extra):
        self.master, self.extra = master, tuple(extra)
        self.inotify = None if engine == "poll" else inotify_or_none()
        if engine == "inotify" and self.inotify is None:
            raise OSError("--reload-engine inotify: inotify is not available here; use auto or poll")
        self.engine = "inotify" if self.inotify else "poll"
        self.listing = listing_path(os.getpid())
        self.files, self.stamps = set(), {}
        self.due = None           # when the change seen last settles: probe then
        self.next_poll = 0.0
        self.again = False        # a change came while a probe was importing

    def start(self, now):
        """Watch what the preloaded master imported, or ask a probe what the app imports."""
        if self.master.cfg.preload:
            self.watch(app_files(list(sys.modules.values()), self.extra))
        else:
            self.watch(app_files((), self.extra))
            commands.probe(self.master, now, commands.Then.LIST)

    def watch(self, files):
        added = files - self.files
        self.files |= files
        self.stamps.update((f, self.stamp(f)) for f in added)
        if self.inotify:
            have = set(self.inotify.dirs.values())
            for d in {os.path.dirname(f) for f in added} - have:
                self.inotify.add(d)
        if added or not self.files:
            self.master.log.info("reload: watching %d files (%s)", len(self.files), self.engine)

    @staticmethod
    def stamp(path):
        try:
            st = os.stat(path)
            return st.st_mtime_ns, st.st_size
        except OSError:
            return None

    def probed(self, ok, now):
        """A probe exited: when it imported, its modules' files are watched too."""
        if ok:
            try:
                with open(self.listing) as f:
                    self.watch({line.strip() for line in f if line.strip()} | app_files((), self.extra))
            except OSError:
                pass
        if self.again:
            self.again = False
            self.due = now + SETTLE

    def changed(self, paths, now):
        mine = [p for p in paths if p is None or p in self.files]
        if mine:
            self.master.log.info("reload: %s changed", mine[0] or "something (inotify overflow)")
            self.due = now + SETTLE
            for p in mine:
                if p is not None:
                    self.stamps[p] = self.stamp(p)

    # -- the master's server interface ----------------------------------------------------------

    def fds(self):
        return {self.inotify.fd: POLLIN} if self.inotify else {}

    def handle(self, fd, ev, now):
        self.changed(self.inotify.read(), now)

    def next_deadline(self, now):
        when = [self.due] if self.due is not None else []
        if not self.inotify:
            when.append(self.next_poll)
        return max(0.0, min(when) - now) if when else None

    def expire(self, now):
        if not self.inotify and now >= self.next_poll:
            self.next_poll = now + POLL
            self.changed([f for f in self.files if self.stamp(f) != self.stamps.get(f)], now)
        if self.due is not None and now >= self.due:
            self.due = None
            if self.master.probe is not None:
                self.again = True        # probe again once this one is done
            else:
                then = commands.Then.REEXEC if self.master.cfg.preload else commands.Then.REPLACE
                commands.probe(self.master, now, then)

    def close_after_fork(self):
        """In a worker: the master's inotify fd is not the worker's to hold."""
        if self.inotify:
            os.close(self.inotify.fd)

    def close(self):
        if self.inotify:
            self.inotify.close()
        try:
            os.unlink(self.listing)
        except OSError:
            pass
