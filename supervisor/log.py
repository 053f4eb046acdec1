"""Error and access logs: one line per event, files reopened on USR1.

Error lines follow Gunicorn's shape, `[2026-11-27 06:00:00 +0000] [4242] [INFO] msg`,
so log drains that already parse Gunicorn keep working. The access log formats
Gunicorn's atoms from `accesslog.atoms`.

Time stamps keep the zone pyfork started in (ZONE, read when this module is first
imported, before any app is): an app may set TZ and call tzset() at import (Django does,
from its TIME_ZONE setting), and the master's and workers' lines must not change zone
halfway through a log.
"""
import datetime
import os
import sys
import time
import traceback
import zoneinfo

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
NAMES = {v: k.upper() for k, v in LEVELS.items()}


def _open(path, std, buffering=1):
    if path in (None, "-"):
        return std
    return open(path, "a", buffering=buffering, encoding="utf-8", errors="backslashreplace")


def start_zone(environ=os.environ):
    """The local time zone as of now: $TZ's zone, else /etc/localtime's, else today's offset."""
    name = environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return zoneinfo.ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return zoneinfo.ZoneInfo.from_file(f)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return datetime.datetime.now().astimezone().tzinfo    # a POSIX TZ string, or no zone files


ZONE = start_zone()


def stamp(now, fmt="%Y-%m-%d %H:%M:%S %z"):
    """`now` (seconds since the epoch) in the zone pyfork started in."""
    return datetime.datetime.fromtimestamp(now, ZONE).strftime(fmt)


class Log:
    statsd = None      # observe/statsd.py's client with --statsd-host: counts warning and error lines

    def __init__(self, path="-", level="info", access_path=None, access_format=None, metrics_path=None):
        self.path = path
        self.level = LEVELS[level]
        self.stream = _open(path, sys.stderr)
        self.access_path = access_path
        self.access_format = access_format
        # block-buffered: the worker flushes once per loop turn (flush_access), so a burst
        # of requests costs one write, and no line waits longer than the turn it was made in
        self.access_stream = _open(access_path, sys.stdout, -1) if access_path else None
        self.metrics_path = metrics_path
        self.metrics_stream = _open(metrics_path, sys.stderr) if metrics_path else None

    def reopen(self):
        """USR1: logrotate moved the files; write to fresh ones at the same paths."""
        for attr, path, std in (("stream", self.path, sys.stderr),
                                ("access_stream", self.access_path, sys.stdout),
                                ("metrics_stream", self.metrics_path, sys.stderr)):
            old = getattr(self, attr)
            if old is None or old is std:
                continue
            setattr(self, attr, _open(path, std, -1 if attr == "access_stream" else 1))
            old.close()

    def close(self):
        """Close the files this log opened (never stdout or stderr)."""
        for stream in (self.stream, self.access_stream, self.metrics_stream):
            if stream is not None and stream not in (sys.stdout, sys.stderr):
                stream.close()

    def write(self, levelno, msg, args, metric=None):
        if levelno >= 30 and self.statsd is not None:
            self.statsd.count(metric or "gunicorn.log." + NAMES[levelno].lower())
        if levelno < self.level:
            return
        if args:
            msg = msg % args
        try:
            self.stream.write("[%s] [%d] [%s] %s\n" % (stamp(time.time()), os.getpid(), NAMES[levelno], msg))
            self.stream.flush()
        except (OSError, ValueError):
            pass   # a full disk or a closed stderr must not take the server down

    def debug(self, msg, *args):
        self.write(10, msg, args)

    def info(self, msg, *args):
        self.write(20, msg, args)

    def warning(self, msg, *args):
        self.write(30, msg, args)

    def error(self, msg, *args):
        self.write(40, msg, args)

    def critical(self, msg, *args):
        self.write(50, msg, args)

    def exception(self, msg, *args):
        self.write(40, (msg % args if args else msg) + "\n" + traceback.format_exc().rstrip(), (),
                   "gunicorn.log.exception")

    def metric(self, line):
        """A metrics line, bare (no timestamp or level): log drains parse it as Heroku's."""
        stream = self.metrics_stream or self.stream
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass

    def access(self, line):
        """Queue an access-log line; flush_access() writes what is queued."""
        try:
            self.access_stream.write(line + "\n")
        except (OSError, ValueError):
            pass

    def flush_access(self):
        try:
            self.access_stream.flush()
        except (OSError, ValueError):
            pass
