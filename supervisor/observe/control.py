"""The control socket and `pyfork status`.

The master serves a unix socket from its own loop (no thread), with the same small
state machine as /metrics (metricsserver.py): a peer sends one line (`status`), gets one
JSON document and the socket is closed. The socket is made with mode 0600 and every peer
is asked its uid (SO_PEERCRED): only the master's own uid is answered, so a worker
dropped to another user (--user), or anyone else on the host, learns nothing.

Where it lives: --control-socket PATH; else next to the pidfile (app.pid -> app.sock);
else $XDG_RUNTIME_DIR/pyfork.sock; with none of those, nowhere (say --control-socket).
`pyfork status` finds it the same way from --pid, --control-socket or the environment.
"""
import argparse
import errno
import json
import os
import socket
import stat
import struct
import sys
import time

from . import status
from .metricsserver import MetricsServer, Phase

MAX_REQUEST = 256
PEERCRED = struct.Struct("3i")      # pid, uid, gid
DEFAULT_NAME = "pyfork.sock"


def default_path(pidfile, environ):
    """Where the socket goes when --control-socket is not given; None for nowhere."""
    if pidfile:
        base, ext = os.path.splitext(pidfile)
        return (base if ext == ".pid" else pidfile) + ".sock"
    runtime = environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, DEFAULT_NAME) if runtime else None


def _in_use(path):
    """True if a live process answers on this unix socket path."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def listen(path):
    """A listening unix socket at `path`, mode 0600; a stale socket file is replaced, a
    live one or any other file is refused with a sentence saying what to do."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None:
        if not stat.S_ISSOCK(st.st_mode):
            raise OSError(errno.EEXIST, "control socket %s: a file that is not a socket is in the way; "
                          "remove it or give --control-socket another path" % path)
        if _in_use(path):
            raise OSError(errno.EADDRINUSE, "control socket %s: another pyfork answers there; give "
                          "--control-socket another path (or --no-control-socket)" % path)
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)       # born 0600: no moment where another user could connect
    try:
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, "cannot make control socket %s: %s; check the directory exists and is "
                      "writable, or give --control-socket PATH" % (path, exc.strerror)) from None
    finally:
        os.umask(old)
    return sock


class ControlServer(MetricsServer):
    """`status` -> the document from `render()` as JSON. Polled like the metrics server."""
    WHO = "master control socket"

    def __init__(self, path, render, log, timeout=2.0):
        self.path = path
        self.render = render
        self.log = log
        self.timeout = timeout
        self.conns = {}
        self.strain = None
        self.listener = listen(path)
        self.address = path
        self.uid = os.getuid()

    def accept(self, now):
        before = set(self.conns)
        super().accept(now)
        for fd in set(self.conns) - before:
            c = self.conns[fd]
            pid, uid, _ = PEERCRED.unpack(c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size))
            if uid != self.uid:
                self.log.warning("control socket: refused pid=%d uid=%d (only uid %d may ask)", pid, uid, self.uid)
                c.out = memoryview(b'{"error": "refused: your uid is not the master\'s"}\n')
                c.phase = Phase.WRITING
                self.write(fd, c)

    def complete(self, head):
        return b"\n" in head or len(head) > MAX_REQUEST

    def answer(self, head):
        command = head.split(b"\n", 1)[0].strip()
        if command != b"status":
            return b'{"error": "unknown command; send status"}\n'
        try:
            return (json.dumps(self.render(), sort_keys=True) + "\n").encode("utf-8")
        except Exception:
            self.log.exception("control socket: building the status failed")
            return b'{"error": "building the status failed; see the error log"}\n'

    def close(self):
        super().close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


# -- the client: `pyfork status` -----------------------------------------------------------

def ask(path, command="status", timeout=5.0):
    """Send one command, return the decoded JSON answer. OSError when nobody answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(command.encode("ascii") + b"\n")
        except BrokenPipeError:
            pass            # a refusal comes before we speak; it is still there to read
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return json.loads(b"".join(chunks) or b"{}")


def parser():
    p = argparse.ArgumentParser(prog="pyfork status", description="Show what the master and each "
                                "worker are doing, from the master's control socket.")
    p.add_argument("-p", "--pid", metavar="FILE", help="the running master's pidfile: its socket is beside it")
    p.add_argument("--control-socket", metavar="PATH", help="the socket itself")
    p.add_argument("--json", action="store_true", help="print the document as JSON")
    p.add_argument("--watch", metavar="SECONDS", type=float, help="redraw every SECONDS, like top (Ctrl-C ends)")
    return p


def main(argv, environ=os.environ, out=sys.stdout):
    args = parser().parse_args(argv)
    path = args.control_socket or default_path(args.pid, environ)
    if not path:
        sys.stderr.write("pyfork status: no control socket to ask: give --pid FILE (the master's "
                         "pidfile) or --control-socket PATH, or set XDG_RUNTIME_DIR as the master had it\n")
        return 2
    if args.watch is not None and args.watch <= 0:
        sys.stderr.write("pyfork status: --watch %s: give a number of seconds above 0\n" % args.watch)
        return 2
    try:
        while True:
            code = show(path, args, out)
            if code is not None or args.watch is None:
                return code or 0
            time.sleep(args.watch)
    except KeyboardInterrupt:       # Ctrl-C ends --watch, wherever it lands
        return 0


def show(path, args, out):
    """Print the status once (as a redraw with --watch); an exit code when asking failed."""
    try:
        doc = ask(path)
    except (OSError, ValueError) as exc:
        sys.stderr.write("pyfork status: cannot ask %s: %s; is the master running, and was it "
                         "started with this socket?\n" % (path, getattr(exc, "strerror", None) or exc))
        return 1
    if "error" in doc:
        sys.stderr.write("pyfork status: the master says: %s\n" % doc["error"])
        return 1
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n" if args.json else status.table(doc)
    out.write(text if args.watch is None else "\x1b[H\x1b[2J" + text)     # home and clear, as top redraws
    out.flush()
    return None
