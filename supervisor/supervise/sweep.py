"""What a dead worker left behind: the processes of its process group, signalled by pid.

Each worker leads its own process group (spawn.py), so what the app started (subprocess,
os.fork, a shell pipeline) keeps the worker's pid as its group id even after the worker
is gone and the processes were reparented to the master. A process that made its own
session or group (setsid, start_new_session=True: a daemon on purpose) is not ours to end.

Members are found by reading /proc/PID/stat (field 5, pgrp), only after a worker died
abnormally (deaths.sweeps_group), never on a regular turn. A process whose pid *is* the
group id is not a member: the worker is dead, so that pid was reused by a newcomer, and
its group is not ours.
"""
import os

from . import plan

CMD = 80      # characters of a command line in the log
NAMED = 8     # processes named in one log line; the rest are counted


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def pgrp_of(stat):
    """/proc/PID/stat (bytes) -> its process group. The command (field 2) may hold spaces
    and parentheses: split after the last ')'."""
    return int(stat[stat.rindex(b")") + 2:].split()[2])


def command(pid):
    """'sleep 3600' from /proc/PID/cmdline, cut to CMD characters ('' if gone)."""
    raw = _read("/proc/%d/cmdline" % pid) or b""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace")[:CMD]


def members(pgid):
    """[(pid, command)] of the live processes in group `pgid`, other than a pid `pgid`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == pgid:
            continue
        stat = _read("/proc/%s/stat" % name)
        if stat is None:
            continue
        try:
            if pgrp_of(stat) != pgid:
                continue
        except (ValueError, IndexError):
            continue
        if stat[stat.rindex(b")") + 2:stat.rindex(b")") + 3] == b"Z":
            continue        # a zombie: already dead, the master reaps it
        found.append((int(name), command(int(name))))
    return found


def signal_group(pgid, signum):
    """Send `signum` to each member of `pgid` -> [(pid, command)] it reached."""
    reached = []
    for pid, cmd in members(pgid):
        try:
            os.kill(pid, signum)
            reached.append((pid, cmd))
        except ProcessLookupError:
            pass
    return reached


def line(who, pgid, signame, reached, after=None):
    """'worker=0 pid=812 left 2 processes in its group: sending SIGTERM to pid=901 (sleep 3600), pid=902 (..)'."""
    named = ", ".join("pid=%d (%s)" % (pid, cmd or "?") for pid, cmd in reached[:NAMED])
    more = " and %d more" % (len(reached) - NAMED) if len(reached) > NAMED else ""
    when = "left %d process%s in its group" % (len(reached), "" if len(reached) == 1 else "es") if after is None \
        else "group: %d process%s still alive %gs after SIGTERM" % (len(reached), "" if len(reached) == 1 else "es",
                                                                      after)
    return "%s pid=%d %s: sending %s to %s%s" % (who, pgid, when, signame, named, more)


def carry_out(table, log, action, signum):
    """A plan.Sweep: SIGTERM, then SIGKILL, to what a dead worker left in its group; said in
    one line with each pid and command. Nothing there after the SIGTERM: no second look."""
    reached = signal_group(action.pgid, signum)
    if reached:
        after = None if action.sig is plan.Sig.TERM else plan.SWEEP_GRACE
        log.warning("%s", line(plan.label(action.nr), action.pgid, action.sig.value, reached, after))
    elif action.sig is plan.Sig.TERM:
        table.sweeps.pop(action.pgid, None)
