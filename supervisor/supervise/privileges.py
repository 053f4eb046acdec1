"""What the master process is: a child subreaper (so orphans come to it), and the user
and group its workers switch to when it starts as root."""
import os

from ..exits import StartError

PR_SET_CHILD_SUBREAPER = 36


def make_subreaper():
    """Orphaned grandchildren get reparented to us, not to PID 1, so we reap them."""
    if os.getpid() == 1:
        return "pid 1"
    try:
        import ctypes     # here, not at the top: only this call needs it (5 ms of import)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0:
            return "subreaper"
    except (OSError, AttributeError):
        pass
    return None


def user_ids(user, group):
    """--user/--group -> (name, uid, gid) to switch workers to, or None."""
    if user is None and group is None:
        return None
    import grp
    import pwd
    try:
        pw = pwd.getpwuid(int(user)) if user and user.isdigit() else (pwd.getpwnam(user) if user else None)
    except KeyError:
        raise StartError("--user %s: no such user on this machine" % user) from None
    try:
        gid = (int(group) if group.isdigit() else grp.getgrnam(group).gr_gid) if group else pw.pw_gid
    except KeyError:
        raise StartError("--group %s: no such group on this machine" % group) from None
    if os.geteuid() != 0:
        raise StartError("--user/--group need the master to start as root")
    return (pw.pw_name if pw else None, pw.pw_uid if pw else os.getuid(), gid)


def drop_privileges(name, uid, gid):
    if name:
        os.initgroups(name, gid)
    else:
        os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)
