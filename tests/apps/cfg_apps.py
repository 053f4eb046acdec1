"""sup_apps' app, noting which process imported it (for preload_app): the pid is appended
to the file named by $CFG_IMPORTS, when set."""
import os

from sup_apps import app  # noqa: F401

if os.environ.get("CFG_IMPORTS"):
    with open(os.environ["CFG_IMPORTS"], "a") as f:
        f.write("%d\n" % os.getpid())
