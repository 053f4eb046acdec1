"""An app whose import leaves something behind in the process that imports it, chosen by
$PRELOAD_LEAVES: 'thread' (a named Python thread), 'socket' (a connection to
127.0.0.1:$PRELOAD_PEER), 'closed' (the same connection, closed again), 'child' (a
`sleep 60` child), 'tz' (sets TZ and calls tzset(), as Django does), or nothing.
`/` answers the worker's pid and the module's VERSION."""
import os
import socket
import subprocess
import threading
import time

VERSION = "v1"
LEAVES = os.environ.get("PRELOAD_LEAVES", "")

if LEAVES == "thread":
    threading.Thread(target=lambda: time.sleep(3600), name="ddtrace.writer", daemon=True).start()
elif LEAVES in ("socket", "closed"):
    held = socket.create_connection(("127.0.0.1", int(os.environ["PRELOAD_PEER"])))
    if LEAVES == "closed":
        held.close()
elif LEAVES == "child":
    child = subprocess.Popen(["sleep", "60"])
elif LEAVES == "tz":
    os.environ["TZ"] = "America/Chicago"
    time.tzset()


def app(environ, start_response):
    body = ("%d %s" % (os.getpid(), VERSION)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
