"""Apps for --refork-after: a plain one that says which process answered and a random
number, one that starts a thread on its first request ('/thread': an APM agent's), and one
that opens a socket to 127.0.0.1:$REFORK_PEER on a request and keeps it ('/connect', like a
persistent database connection); '/socket' says whether that socket still works here."""
import os
import random
import socket
import threading
import time

held = []


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/thread" and not held:
        held.append(threading.Thread(target=lambda: time.sleep(3600), name="apm.reporter", daemon=True))
        held[-1].start()
    elif path == "/connect" and not held:
        held.append(socket.create_connection(("127.0.0.1", int(os.environ["REFORK_PEER"]))))
    elif path == "/socket":
        try:
            held[0].send(b"x")
            state = "works"
        except OSError as exc:
            state = "closed (%s)" % exc.strerror
        body = state.encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    body = ("%d %d %d" % (os.getpid(), os.getppid(), random.getrandbits(48))).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
