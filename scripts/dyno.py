#!/usr/bin/env python3
"""Run a command inside a simulated dyno: a real kernel memory limit and task limit.

A Heroku dyno is a cgroup: its memory quota is the v1 `memory.limit_in_bytes`, its task
limit (processes + threads, zombies included until reaped) is `pids.max`. Root on these
machines may create child cgroups below the one it already runs in, so this makes

    <memory cgroup of this process>/pyfork-dyno-<pid>/   memory.limit_in_bytes (and
                                                         memory.memsw.limit_in_bytes, so
                                                         swap cannot hide the limit)
    <pids cgroup of this process>/pyfork-dyno-<pid>/     pids.max

puts the command into both before it execs, waits for it, passes signals through, prints
what the dyno went through and removes both cgroups (also on Ctrl-C and errors).

    python scripts/dyno.py --size standard-1x -- python -m supervisor run app:app -w 4
    python scripts/dyno.py --memory 300MB --tasks 128 -- sh -c 'cat /proc/self/cgroup'
    python scripts/dyno.py --list

At the end (stderr):

    dyno: standard-1x exit=0 oom_kills=0 max_usage=87.31MB failcnt=0 tasks_peak=9 (pids.events max=0)

oom_kills is the kernel's count of processes it killed for the memory limit
(memory.oom_control `oom_kill`), failcnt how often a charge hit the limit (memory.failcnt,
or memsw's if larger; the kernel reclaims first, so failcnt > 0 without an OOM kill is
normal, and some kernels leave it 0 even with one: trust oom_kills), tasks_peak the most tasks at
once (pids.peak where the kernel has it, else polled), pids.events max how many forks or
thread creations the task limit refused.

The command runs in its own process group (tini's model, krallin/tini src/tini.c:
isolate_child): TERM, INT, HUP, USR1, USR2, TTIN, TTOU and WINCH sent to this process are
passed to it, and a Ctrl-C at a terminal reaches it once, not twice. This process is the
dyno's init: a child subreaper that reaps the orphans the command leaves, as a dyno's
init does, so a zombie never outlives the command. Exit status: the command's, 128+N when
a signal N killed it, 2 when the dyno could not be made (not root, no cgroup v1 memory or
pids controller, not writable), 127 when the command was not found.

As a library (tests, scripts/replay_incident.py):

    sys.path.insert(0, "scripts"); from dyno import Dyno
    with Dyno(size="standard-1x") as dyno:          # or Dyno(memory="300MB", tasks=128)
        proc = dyno.run(["python", "-m", "supervisor", "run", "app:app"], stderr=f)
        ...
        dyno.usage()      # {'usage':, 'max_usage':, 'limit':, 'failcnt':, ...} bytes
        dyno.oom_kills()  # int
        dyno.tasks()      # {'current':, 'max':, 'peak':}
        dyno.events()     # {'max': N} from pids.events
    dyno.final            # the last readings, kept after the cgroups are gone

run() joins the child from a preexec_fn; from a process with threads (where a
preexec_fn is unsafe) it starts the command through a /bin/sh shim that joins and execs.

Leaving the `with` kills whatever is still inside the cgroups (SIGKILL, by PID) and
removes them. Dyno(subreaper=True) also makes the calling process a child subreaper; call
dyno.reap() now and then to reap the orphans that reach it.
"""
import argparse
import ctypes
import errno
import os
import select
import signal
import subprocess
import sys
import threading
import time

MB = 1024 * 1024
GB = 1024 * MB

# Heroku's sizes (devcenter.heroku.com/articles/dyno-types, /limits: "Process/thread
# limit"): name -> (memory bytes, tasks).
SIZES = {
    "eco": (512 * MB, 256),
    "basic": (512 * MB, 256),
    "standard-1x": (512 * MB, 256),
    "standard-2x": (1 * GB, 512),
    "performance-m": (int(2.5 * GB), 16384),
    "performance-l": (14 * GB, 32768),
}

FORWARD = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGWINCH")
ROOT = "/sys/fs/cgroup"
PR_SET_CHILD_SUBREAPER = 36


class DynoError(Exception):
    """The dyno could not be made; the message says what to check."""


def parse_size(text):
    """'512MB', '2.5GB', '300M', '1g', '4096' (bytes) -> bytes. MB is 2**20, as Heroku's."""
    t = str(text).strip().upper().rstrip("B").rstrip("I")
    units = {"K": 1024, "M": MB, "G": GB, "T": 1024 * GB}
    try:
        if t and t[-1] in units:
            return int(float(t[:-1]) * units[t[-1]])
        return int(t)
    except ValueError:
        raise ValueError("bad size %r: use e.g. 512MB, 2.5GB or a number of bytes" % text) from None


def mb(n):
    return "n/a" if n is None else "%.2fMB" % (n / MB)


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _int(text):
    text = (text or "").strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _keyed(text):
    """'oom_kill 3\nunder_oom 0' -> {'oom_kill': 3, 'under_oom': 0}: pyfork's own parser of
    `name value` files (memory.stat's format)."""
    from supervisor.observe.cgroup import parse_stat
    return parse_stat(text)


def own_cgroups(proc_self_cgroup=None):
    """{'memory': dir, 'pids': dir} of the v1 cgroups this process runs in."""
    text = proc_self_cgroup if proc_self_cgroup is not None else (_read("/proc/self/cgroup") or "")
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3 or not parts[1]:
            continue        # '0::/...' is the v2 hierarchy: no memory/pids controller on v1 hosts
        for name in parts[1].split(","):
            if name in ("memory", "pids"):
                out[name] = os.path.join(ROOT, name) + parts[2].rstrip("/")
    return out


def _set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class Dyno:
    def __init__(self, size=None, memory=None, tasks=None, name=None, subreaper=False):
        if size is not None:
            key = size.lower().replace("_", "-")
            if key not in SIZES:
                raise ValueError("unknown dyno size %r; known: %s" % (size, ", ".join(SIZES)))
            self.size = key
            mem, tsk = SIZES[key]
        else:
            self.size = "custom"
            mem, tsk = None, None
        self.memory = parse_size(memory) if memory is not None else mem
        self.tasks_max = int(tasks) if tasks is not None else tsk
        if self.memory is None or self.tasks_max is None:
            raise ValueError("give a size, or both memory and tasks")
        self.name = name or "pyfork-dyno-%d" % os.getpid()
        self.subreaper = subreaper
        self.dirs = {}              # controller -> the directory we made
        self.memsw = False
        self.procs = []             # Popen objects started by run()
        self.polled_peak = 0
        self.final = None

    # -- making and removing --------------------------------------------------------

    def __enter__(self):
        self.create()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def create(self):
        if os.geteuid() != 0:
            raise DynoError("not root (euid %d): creating cgroups needs root; run as root "
                            "(sudo) or inside the container as root" % os.geteuid())
        parents = own_cgroups()
        for ctl in ("memory", "pids"):
            if ctl not in parents:
                raise DynoError("no cgroup v1 %r controller in /proc/self/cgroup: this tool needs "
                                "v1 memory and pids hierarchies (a cgroup v2-only host is not supported)" % ctl)
            if not os.path.isdir(parents[ctl]):
                raise DynoError("the %s cgroup of this process, %s, is not visible (is %s/%s mounted?)"
                                % (ctl, parents[ctl], ROOT, ctl))
            if not os.access(parents[ctl], os.W_OK):
                raise DynoError("cannot create a child cgroup in %s: not writable (mounted read-only, "
                                "or no delegation)" % parents[ctl])
        name = self.name
        for n in range(1, 100):
            if not any(os.path.exists(os.path.join(parents[c], name)) for c in ("memory", "pids")):
                break
            name = "%s-%d" % (self.name, n + 1)       # a second dyno in this same process
        self.name = name
        try:
            for ctl in ("memory", "pids"):
                d = os.path.join(parents[ctl], name)
                os.mkdir(d)
                self.dirs[ctl] = d
            m = self.dirs["memory"]
            _write(m + "/memory.limit_in_bytes", self.memory)
            if os.path.exists(m + "/memory.memsw.limit_in_bytes"):
                # memsw (memory+swap) must be >= the memory limit, so it is set second
                _write(m + "/memory.memsw.limit_in_bytes", self.memory)
                self.memsw = True
            _write(self.dirs["pids"] + "/pids.max", self.tasks_max)
        except OSError as exc:
            self.remove()
            raise DynoError("cannot set up cgroup %s: %s (check that this process may create and "
                            "write cgroups under %s and %s)" % (name, exc, parents["memory"], parents["pids"])) from None
        if self.subreaper:
            _set_subreaper()
        return self

    def pids(self):
        """PIDs inside the dyno (both cgroups; zombies are not listed)."""
        out = set()
        for d in self.dirs.values():
            for line in (_read(d + "/cgroup.procs") or "").split():
                if line.isdigit():
                    out.add(int(line))
        return out

    def kill_all(self, sig=signal.SIGKILL, wait=5.0):
        """Signal every process left inside (all of them ours: only run() puts any in)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            left = self.pids()
            if not left:
                return True
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            self.reap()
            time.sleep(0.05)
        return not self.pids()

    def close(self):
        if not self.dirs:
            return
        try:
            self.final = self.snapshot()
        except OSError:
            pass
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        self.kill_all()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.reap()
        self.final = self.snapshot()
        self.remove()

    def remove(self):
        for ctl in ("memory", "pids"):
            d = self.dirs.get(ctl)
            if not d:
                continue
            for _ in range(100):                # EBUSY for a moment while the last task exits
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        raise
                    time.sleep(0.05)
            else:
                sys.stderr.write("dyno: warning: could not remove %s (still busy)\n" % d)
                continue
            del self.dirs[ctl]

    # -- running --------------------------------------------------------------------

    def _enter_cgroups(self):
        """In the child between fork and exec: join both cgroups, as raw writes (no
        buffered file objects after fork)."""
        me = str(os.getpid()).encode()
        for ctl in ("memory", "pids"):
            fd = os.open(self.dirs[ctl] + "/cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)

    SHIM = 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"'

    def run(self, cmd, shim=None, **popen_kw):
        """subprocess.Popen(cmd) with the child inside the dyno from before its exec.

        Two ways in: a preexec_fn that writes the child's pid into both cgroup.procs
        (the default), or, with shim=True, `/bin/sh -c 'echo $$ > .../cgroup.procs ...;
        exec "$@"'`, which joins and then execs the command under the same pid. A
        preexec_fn is not safe when the caller has threads (the child of a threaded
        fork may deadlock on a lock held by another thread), so shim defaults to True
        exactly then; a string command or shell=True always takes the preexec_fn."""
        if not self.dirs:
            raise DynoError("the dyno is not created (use `with Dyno(...) as d:` or d.create())")
        theirs = popen_kw.pop("preexec_fn", None)
        listed = not isinstance(cmd, (str, bytes)) and not popen_kw.get("shell")
        if shim is None:
            shim = threading.active_count() > 1
        shim = shim and listed

        def preexec():
            if not shim:
                self._enter_cgroups()
            if theirs is not None:
                theirs()

        if shim:
            cmd = ["/bin/sh", "-c", self.SHIM, "dyno-shim",
                   self.dirs["memory"] + "/cgroup.procs", self.dirs["pids"] + "/cgroup.procs"] + list(cmd)
        try:
            proc = subprocess.Popen(cmd, preexec_fn=preexec if (theirs or not shim) else None, **popen_kw)
        except subprocess.SubprocessError as exc:
            raise DynoError("could not put the command into %s: %s" % (self.name, exc)) from None
        self.procs.append(proc)
        return proc

    def reap(self):
        """Reap orphans that reached us as subreaper; our own Popen children are left for
        Popen (peek with WNOWAIT, then poll() them), so their return codes stay right."""
        ours = {p.pid: p for p in self.procs if p.returncode is None}
        reaped = 0
        if not self.subreaper:          # our only children are our own Popens
            for p in ours.values():
                p.poll()
            return 0
        for _ in range(100000):
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is None:
                break
            if info.si_pid in ours:
                ours.pop(info.si_pid).poll()
            else:
                try:
                    os.waitpid(info.si_pid, 0)
                    reaped += 1
                except ChildProcessError:
                    pass
        return reaped

    # -- readings -------------------------------------------------------------------

    def _m(self, name):
        return _int(_read(self.dirs["memory"] + "/" + name)) if "memory" in self.dirs else None

    def usage(self):
        """Memory numbers in bytes (None where unreadable)."""
        return {"usage": self._m("memory.usage_in_bytes"),
                "max_usage": self._m("memory.max_usage_in_bytes"),
                "limit": self._m("memory.limit_in_bytes"),
                "failcnt": self._m("memory.failcnt"),
                "memsw_usage": self._m("memory.memsw.usage_in_bytes"),
                "memsw_max_usage": self._m("memory.memsw.max_usage_in_bytes"),
                "memsw_failcnt": self._m("memory.memsw.failcnt")}

    def oom_kills(self):
        if "memory" not in self.dirs:
            return None
        return _keyed(_read(self.dirs["memory"] + "/memory.oom_control")).get("oom_kill", 0)

    def tasks(self):
        if "pids" not in self.dirs:
            return {"current": None, "max": self.tasks_max, "peak": self.polled_peak or None}
        d = self.dirs["pids"]
        current = _int(_read(d + "/pids.current"))
        peak = _int(_read(d + "/pids.peak"))
        if current is not None:
            self.polled_peak = max(self.polled_peak, current)
        return {"current": current, "max": _int(_read(d + "/pids.max")) or self.tasks_max,
                "peak": max(peak or 0, self.polled_peak)}

    def events(self):
        if "pids" not in self.dirs:
            return {}
        return _keyed(_read(self.dirs["pids"] + "/pids.events"))

    def snapshot(self):
        if not self.dirs:
            return self.final
        return {"usage": self.usage(), "oom_kills": self.oom_kills(), "tasks": self.tasks(),
                "events": self.events()}

    def report(self, snap=None):
        s = snap or self.snapshot() or self.final
        u, t, e = s["usage"], s["tasks"], s["events"]
        # with memsw limited too, the limit that is hit first is often memory+swap's
        fails = max(u["failcnt"] or 0, u.get("memsw_failcnt") or 0)
        return ("oom_kills=%s max_usage=%s failcnt=%s tasks_peak=%s (pids.events max=%s)"
                % (s["oom_kills"], mb(u["max_usage"]), fails, t["peak"], e.get("max", 0)))


# -- the command line ---------------------------------------------------------------

def _isolate():
    """In the child: its own process group, and the terminal's foreground if we had it
    (tini src/tini.c:isolate_child); ignore SIGTTOU for the handover, then restore."""
    os.setpgid(0, 0)
    try:
        if os.isatty(0) and os.tcgetpgrp(0) == os.getpgid(os.getppid()):
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            os.tcsetpgrp(0, os.getpgrp())
            signal.signal(signal.SIGTTOU, old)
    except OSError:
        pass


def _take_back_terminal():
    try:
        if os.isatty(0):
            old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            os.tcsetpgrp(0, os.getpgrp())
            signal.signal(signal.SIGTTOU, old)
    except OSError:
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="dyno.py", description="Run a command inside a simulated dyno (cgroup v1 memory + pids limits).",
        epilog="sizes: " + ", ".join("%s %s/%d tasks" % (k, mb(m), t) for k, (m, t) in SIZES.items()))
    ap.add_argument("--size", help="dyno size (default standard-1x when no --memory/--tasks)")
    ap.add_argument("--memory", help="memory limit, e.g. 300MB (overrides the size's)")
    ap.add_argument("--tasks", type=int, help="task limit, e.g. 128 (overrides the size's)")
    ap.add_argument("--list", action="store_true", help="list the sizes and exit")
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = ap.parse_args(argv)
    if args.list:
        for k, (m, t) in SIZES.items():
            print("%-14s %10s %6d tasks" % (k, mb(m), t))
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command: dyno.py --size standard-1x -- CMD [ARGS...]")
    size = args.size
    if size is None and (args.memory is None or args.tasks is None):
        size = "standard-1x"
    try:
        dyno = Dyno(size=size, memory=args.memory, tasks=args.tasks, subreaper=True)
    except ValueError as exc:
        ap.error(str(exc))

    pending = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def record(signum, frame):
        pending.append(signum)       # handlers only record; the loop forwards

    forwarded = [getattr(signal, n) for n in FORWARD]
    old_handlers = {s: signal.signal(s, record) for s in forwarded}
    signal.signal(signal.SIGCHLD, lambda s, f: None)     # just wake the loop

    code = 1
    proc = None
    try:
        try:
            dyno.create()
        except DynoError as exc:
            sys.stderr.write("dyno: error: %s\n" % exc)
            return 2
        sys.stderr.write("dyno: %s memory=%s tasks=%d cgroups=%s\n"
                         % (dyno.size, mb(dyno.memory), dyno.tasks_max, ",".join(dyno.dirs.values())))
        # restore the default dispositions in the child before exec (Popen does not
        # reset handlers; a recorded-only SIGTERM would make the command unkillable)
        def child_setup():
            for s in forwarded + [signal.SIGCHLD]:
                signal.signal(s, signal.SIG_DFL)
            _isolate()

        try:
            proc = dyno.run(cmd, preexec_fn=child_setup)
        except FileNotFoundError as exc:
            sys.stderr.write("dyno: error: %s: %s\n" % (cmd[0], exc.strerror))
            code = 127
            return code
        except PermissionError as exc:
            sys.stderr.write("dyno: error: %s: %s\n" % (cmd[0], exc.strerror))
            code = 126
            return code
        while proc.returncode is None:
            while pending:
                sig = pending.pop(0)
                try:
                    os.kill(proc.pid, sig)
                except ProcessLookupError:
                    pass
            dyno.reap()
            dyno.tasks()           # polls the peak where the kernel has no pids.peak
            if proc.returncode is not None:
                break
            try:
                select.select([wake_r], [], [], 0.1)
                while os.read(wake_r, 512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        rc = proc.returncode
        code = 128 - rc if rc < 0 else rc
        return code
    except KeyboardInterrupt:         # only reachable before the handlers are in place
        return 130
    finally:
        _take_back_terminal()
        signal.set_wakeup_fd(-1)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        if dyno.dirs:
            dyno.close()
            exit_text = str(code) if proc is None or proc.returncode is not None else "n/a"
            sys.stderr.write("dyno: %s exit=%s %s\n" % (dyno.size, exit_text, dyno.report(dyno.final)))
        os.close(wake_r)
        os.close(wake_w)


if __name__ == "__main__":
    sys.exit(main())
