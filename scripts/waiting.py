"""The slow-app benchmark's WSGI apps (scripts/bench.py --slow): requests that wait, as a
web app waits on its database, served identically by pyfork and Gunicorn.

    app    every request waits WAIT_MS (20) milliseconds, then answers "waited"
    mixed  /slow waits 200 ms, anything else answers at once (9 fast to 1 slow in the bench)
"""
import os
import time

WAIT = float(os.environ.get("WAIT_MS", "20")) / 1000
SLOW = 0.2
HEAD = [("Content-Type", "text/plain"), ("Content-Length", "6")]


def app(environ, start_response):
    time.sleep(WAIT)
    start_response("200 OK", HEAD)
    return [b"waited"]


def mixed(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(SLOW)
    start_response("200 OK", HEAD)
    return [b"answer"]
