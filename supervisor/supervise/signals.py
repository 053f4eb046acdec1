"""Signals as data: handlers only record, the loop reads what arrived.

`signal.set_wakeup_fd` makes the C-level handler write each signal's number into a
pipe; the Python-level handler does nothing. The loop polls the pipe with its other
fds and reads the numbers, so no logging, reaping or exiting ever happens inside a
handler (Gunicorn's arbiter history records deadlocks from doing more there).
"""
import enum
import os
import signal


class Command(enum.Enum):
    STOP = "graceful stop"
    QUICK_STOP = "quick stop"
    RELOAD = "reload"
    REEXEC = "re-exec"
    REOPEN = "reopen logs"
    STOP_WORKERS = "stop workers"
    MORE = "one worker more"
    FEWER = "one worker fewer"
    REAP = "reap"
    MOLD = "become the template"     # a worker: stop serving, fork the others' replacements (refork)
    TIMEOUT = "answer 504"      # a worker's request passed --timeout (plan.Sig.TIMEOUT)


# The master's table (Unicorn's set; TERM graceful as Heroku, Docker and Kubernetes expect).
MASTER = {
    signal.SIGTERM: Command.STOP,
    signal.SIGQUIT: Command.STOP,
    signal.SIGINT: Command.QUICK_STOP,
    signal.SIGHUP: Command.RELOAD,
    signal.SIGUSR2: Command.REEXEC,
    signal.SIGUSR1: Command.REOPEN,
    signal.SIGWINCH: Command.STOP_WORKERS,
    signal.SIGTTIN: Command.MORE,
    signal.SIGTTOU: Command.FEWER,
    signal.SIGCHLD: Command.REAP,
}

# A worker's table: the master tells it to stop, to reopen its logs, (SIGURG, which
# nothing else sends a worker: it has no out-of-band socket data) to become the template
# that forks the other workers' replacements (--refork-after), or to answer a request
# past --timeout with 504 (USR2: the master's own USR2 never reaches a worker, each
# worker being in a process group of its own, and a stray one changes nothing: the
# worker answers only a request that is past its deadline by its own clock).
WORKER = {
    signal.SIGTERM: Command.STOP,
    signal.SIGQUIT: Command.STOP,
    signal.SIGINT: Command.QUICK_STOP,
    signal.SIGUSR1: Command.REOPEN,
    signal.SIGURG: Command.MOLD,
    signal.SIGUSR2: Command.TIMEOUT,
}


def _record(signum, frame):
    """Nothing: the number already went into the wake-up pipe."""


class Signals:
    def __init__(self, table):
        self.table = table
        self.r, self.w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.w, warn_on_full_buffer=False)
        for signum in table:
            signal.signal(signum, _record)
        # a worker ignores HUP/WINCH/TTIN/TTOU/USR2 aimed at the process group; CHLD
        # stays default so the app's own subprocess.wait() keeps working
        for signum in set(MASTER) - set(table) - {signal.SIGCHLD}:
            signal.signal(signum, signal.SIG_IGN)

    def commands(self):
        """Drain the pipe -> commands in arrival order (a repeated signal once each time)."""
        out = []
        while True:
            try:
                data = os.read(self.r, 256)
            except BlockingIOError:
                return out
            if not data:
                return out
            out.extend(self.table[n] for n in data if n in self.table)

    def close(self):
        """In a child after fork: drop the parent's pipe and handlers."""
        signal.set_wakeup_fd(-1)
        os.close(self.r)
        os.close(self.w)
        for signum in self.table:
            signal.signal(signum, signal.SIG_DFL)
