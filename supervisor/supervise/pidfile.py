"""The pidfile: written atomically at start, refused while another live pyfork holds it,
removed on a clean stop only if it still names us."""
import os

from ..exits import StartError


def write_pidfile(path, pid):
    try:
        with open(path) as f:
            old = int(f.read().strip() or 0)
    except (OSError, ValueError):
        old = 0
    if old and old != pid:
        try:
            os.kill(old, 0)
        except ProcessLookupError:
            pass
        except PermissionError:
            raise StartError("--pid %s: pid %d in it is running (another pyfork?)" % (path, old)) from None
        else:
            raise StartError("--pid %s: pid %d in it is running (another pyfork?)" % (path, old))
    tmp = "%s.%d.tmp" % (path, pid)
    try:
        with open(tmp, "w") as f:
            f.write("%d\n" % pid)
        os.rename(tmp, path)
    except OSError as exc:
        raise StartError("--pid %s: cannot write it: %s" % (path, exc.strerror)) from None


def remove_pidfile(path, pid):
    try:
        with open(path) as f:
            if int(f.read().strip() or 0) == pid:
                os.unlink(path)
    except (OSError, ValueError):
        pass
