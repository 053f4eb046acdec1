"""Gunicorn's logging configuration (logconfig, logconfig_dict, logconfig_json): when one is
given, pyfork's error and access lines go through Python's logging, to the loggers Gunicorn
uses (`gunicorn.error`, `gunicorn.access`), so a configuration written for Gunicorn (JSON
lines for Datadog or an ELK stack) works unchanged. When none is given, make() returns
log.py's direct writer: no logging call on the request path.

As in Gunicorn (glogging.Logger.setup): gunicorn.error gets --log-level and a handler on
--error-logfile, gunicorn.access one on --access-logfile when given, then the configuration
is applied over Gunicorn's defaults (CONFIG_DEFAULTS: a dict's top-level keys replace
theirs). With a configuration, every request makes an access line for gunicorn.access,
as Gunicorn does, whether --access-logfile is given or not.

The master forks its workers after this runs, so a handler that starts a thread (a
QueueHandler with a listener) would leave the workers a lock held by a thread they do not
have: check() refuses it, naming the thread.
"""
import json
import logging
import logging.config
import os
import re
import threading

from .log import Log, NAMES, _open

CONFIG_DEFAULTS = {
    "version": 1,
    "disable_existing_loggers": False,
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": True,
                           "qualname": "gunicorn.error"},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": True,
                            "qualname": "gunicorn.access"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stdout"},
        "error_console": {"class": "logging.StreamHandler", "formatter": "generic", "stream": "ext://sys.stderr"},
    },
    "formatters": {
        "generic": {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(message)s",
                    "datefmt": "[%Y-%m-%d %H:%M:%S %z]", "class": "logging.Formatter"},
    },
}
ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"


class ConfigFailed(Exception):
    """The logging configuration could not be applied; the message says why."""


def given(cfg):
    return bool(cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json or cfg.syslog)


def syslog_handler(cfg, name):
    """Gunicorn's: a SysLogHandler whose lines say gunicorn.PREFIX.error (or .access)."""
    import logging.handlers
    import socket
    kind, where, sock = cfg.syslog_addr
    socktype = {"dgram": socket.SOCK_DGRAM, "stream": socket.SOCK_STREAM}.get(sock) if kind == "unix" else (
        socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    facility = logging.handlers.SysLogHandler.facility_names[cfg.syslog_facility]
    try:
        h = logging.handlers.SysLogHandler(address=where, facility=facility, socktype=socktype)
    except OSError as exc:
        raise ConfigFailed("--log-syslog-to %s: %s" % (where if kind == "unix" else "%s:%d" % where, exc)) from None
    prefix = "gunicorn.%s.%s" % (cfg.syslog_prefix or cfg.app.replace(":", "."), name)
    h.setFormatter(logging.Formatter("%s: [%%(process)d] %%(message)s" % prefix.replace("%", "%%")))
    h._pyfork = True
    return h


def make(cfg):
    """The Log for `cfg`: log.py's writer, or a LoggingLog when a logging configuration is given.
    Raises OSError (a log file cannot be opened) or ConfigFailed."""
    if not given(cfg):
        return Log(cfg.error_logfile, cfg.loglevel, cfg.access_logfile, cfg.access_logformat, cfg.metrics_log)
    return LoggingLog(cfg)


def _handler(path, std, fmt, datefmt=None):
    h = logging.StreamHandler(_open(path, std)) if path in (None, "-") else logging.FileHandler(path)
    h.setFormatter(logging.Formatter(fmt, datefmt))
    h._pyfork = True
    return h


def apply(cfg):
    """Gunicorn's setup: our handlers first, then the configuration over Gunicorn's defaults."""
    import sys
    error, access = logging.getLogger("gunicorn.error"), logging.getLogger("gunicorn.access")
    for logger in (error, access):
        for h in [h for h in logger.handlers if getattr(h, "_pyfork", False)]:
            logger.removeHandler(h)
            h.close()
    error.setLevel(cfg.loglevel.upper())
    access.setLevel(logging.INFO)
    error.addHandler(_handler(cfg.error_logfile, sys.stderr, ERROR_FORMAT, DATE_FORMAT))
    if cfg.access_logfile:
        access.addHandler(_handler(cfg.access_logfile, sys.stdout, "%(message)s"))
    if cfg.syslog:
        error.addHandler(syslog_handler(cfg, "error"))
        if not cfg.disable_redirect_access_to_syslog:
            access.addHandler(syslog_handler(cfg, "access"))
    try:
        if cfg.logconfig_dict:
            logging.config.dictConfig({**CONFIG_DEFAULTS, **cfg.logconfig_dict})
        elif cfg.logconfig_json:
            with open(cfg.logconfig_json) as f:
                logging.config.dictConfig({**CONFIG_DEFAULTS, **json.load(f)})
        elif cfg.logconfig:
            if not os.path.exists(cfg.logconfig):
                raise ConfigFailed("--log-config %s: no such file" % cfg.logconfig)
            defaults = {"__file__": cfg.logconfig, "here": os.path.dirname(cfg.logconfig)}
            logging.config.fileConfig(cfg.logconfig, defaults=defaults, disable_existing_loggers=False)
    except ConfigFailed:
        raise
    except (OSError, ValueError, TypeError, AttributeError, ImportError, KeyError) as exc:
        which = ("logconfig_dict" if cfg.logconfig_dict else "--log-config-json " + cfg.logconfig_json
                 if cfg.logconfig_json else "--log-config " + cfg.logconfig)
        hint = ("" if not re.match(r"Unable to configure (root )?logger", str(exc)) else " (as in Gunicorn, a dictionary's top-level keys "
                "replace those of its defaults, whose root and gunicorn.* loggers name its 'console' and "
                "'error_console' handlers: with 'handlers' of your own, give 'root' and 'loggers' too)")
        raise ConfigFailed("%s: %s%s" % (which, exc, hint)) from None
    check()
    return error, access


def check():
    """No thread may outlive the configuration in the master (it forks): name any that did."""
    others = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    if others:
        raise ConfigFailed("the logging configuration started a thread in the master (%s); pyfork forks its "
                           "workers from it, so use handlers that write from the process that logs "
                           "(StreamHandler, FileHandler, SysLogHandler, ...) instead of a QueueListener"
                           % ", ".join(others))


class LoggingLog(Log):
    """log.py's Log whose error and access lines go to gunicorn.error and gunicorn.access.
    `stream` (faulthandler's file) is still the --error-logfile; metrics lines stay bare."""
    def __init__(self, cfg):
        super().__init__(cfg.error_logfile, cfg.loglevel, None, cfg.access_logformat, cfg.metrics_log)
        # as Gunicorn: with a configuration every request makes an access line (its handlers decide)
        self.routes_access = bool(cfg.logconfig or cfg.logconfig_dict or cfg.logconfig_json or cfg.access_logfile
                                  or (cfg.syslog and not cfg.disable_redirect_access_to_syslog))
        self.error_logger, self.access_logger = apply(cfg)

    def write(self, levelno, msg, args, metric=None):
        if levelno >= 30 and self.statsd is not None:
            self.statsd.count(metric or "gunicorn.log." + NAMES[levelno].lower())
        try:
            self.error_logger.log(levelno, msg, *args)
        except Exception:      # a handler that fails must not take the server down (logging prints it)
            pass

    def access(self, line):
        self.access_logger.info(line)

    def flush_access(self):
        """Handlers write each record as it comes."""

    def reopen(self):
        """USR1: every file handler of the two loggers (and the root's) opens its file afresh."""
        super().reopen()
        for logger in (self.error_logger, self.access_logger, logging.getLogger()):
            for h in logger.handlers:
                if isinstance(h, logging.FileHandler):
                    with h.lock:
                        if h.stream is not None:
                            h.stream.close()
                        h.stream = h._open()
