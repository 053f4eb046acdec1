"""Gunicorn's logging configuration, end to end: logconfig_dict in a gunicorn.conf.py,
--log-config (an ini file) and --log-config-json send pyfork's error and access lines to the
loggers gunicorn.error and gunicorn.access, through the handlers and formats the file names
(JSON lines here, as teams ship them to Datadog or ELK). A handler that starts a thread is
refused before anything forks; the master keeps one thread."""
import json
import os

import pytest

from conftest import free_port, get, wait_for
from test_config_e2e import Pyfork, run_cli, write



def dict_config(error, access):
    return {
        "version": 1,
        "root": {"level": "WARNING", "handlers": []},     # Gunicorn's defaults' root names its console handler
        "formatters": {"json": {"()": "jsonlog.JsonFormatter"}},
        "handlers": {"errors": {"class": "logging.FileHandler", "filename": error, "formatter": "json"},
                     "access": {"class": "logging.FileHandler", "filename": access, "formatter": "json"}},
        "loggers": {"gunicorn.error": {"handlers": ["errors"], "level": "INFO", "propagate": False},
                    "gunicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False}},
    }


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def serve_and_read(tmp_path, args, error, access, port):
    p = Pyfork("sup_apps:app", "-b", "127.0.0.1:%d" % port, "-w", "2", *args, cwd=tmp_path, port=port,
               workers=2, log_path=error)
    try:
        for _ in range(3):
            assert get(port, "/x")[0] == 200
        assert wait_for(lambda: os.path.exists(access) and len(lines(access)) == 3, 5)
        assert p.ps.num_threads() == 1          # the master: no handler started a thread
        assert p.stop() == 0
    finally:
        p.close()
    errors = lines(error)
    assert {e["logger"] for e in errors} == {"gunicorn.error"}
    assert any(e["message"].startswith("master pid=") and e["level"] == "INFO" for e in errors), errors
    assert sum("booted in" in e["message"] for e in errors) == 2
    hits = lines(access)
    assert {h["logger"] for h in hits} == {"gunicorn.access"}
    assert all('"GET /x HTTP/1.1" 200' in h["message"] for h in hits), hits


@pytest.mark.timeout(60)
def test_logconfig_dict_in_a_gunicorn_conf(tmp_path):
    port = free_port()
    error, access = str(tmp_path / "error.json"), str(tmp_path / "access.json")
    conf = write(tmp_path / "gunicorn.conf.py", "logconfig_dict = %r\n" % dict_config(error, access))
    serve_and_read(tmp_path, ["-c", conf], error, access, port)


@pytest.mark.timeout(60)
def test_log_config_json_file(tmp_path):
    port = free_port()
    error, access = str(tmp_path / "error.json"), str(tmp_path / "access.json")
    path = write(tmp_path / "logging.json", json.dumps(dict_config(error, access)))
    serve_and_read(tmp_path, ["--log-config-json", path], error, access, port)


INI = """\
[loggers]
keys=root, gunicorn.error, gunicorn.access

[handlers]
keys=errors, access

[formatters]
keys=json

[logger_root]
level=WARNING
handlers=

[logger_gunicorn.error]
level=INFO
handlers=errors
propagate=0
qualname=gunicorn.error

[logger_gunicorn.access]
level=INFO
handlers=access
propagate=0
qualname=gunicorn.access

[handler_errors]
class=FileHandler
formatter=json
args=(%(error)r,)

[handler_access]
class=FileHandler
formatter=json
args=(%(access)r,)

[formatter_json]
class=jsonlog.JsonFormatter
"""


@pytest.mark.timeout(60)
def test_log_config_ini_file(tmp_path):
    port = free_port()
    error, access = str(tmp_path / "error.json"), str(tmp_path / "access.json")
    path = write(tmp_path / "logging.ini", INI % {"error": error, "access": access})
    serve_and_read(tmp_path, ["--log-config", path], error, access, port)


THREADED = '''\
import logging
import threading


class Handler(logging.Handler):
    def __init__(self):
        super().__init__()
        threading.Thread(target=threading.Event().wait, name="shipper", daemon=True).start()

    def emit(self, record):
        pass
'''


def test_a_handler_that_starts_a_thread_is_refused(tmp_path):
    write(tmp_path / "shipping.py", THREADED)
    config = {"version": 1, "root": {"handlers": []}, "handlers": {"ship": {"()": "shipping.Handler"}},
              "loggers": {"gunicorn.error": {"handlers": ["ship"]}}}
    code, out, err, _ = run_cli("run", "sup_apps:app", "--log-config-dict", json.dumps(config), cwd=tmp_path,
                                env={"PYTHONPATH": str(tmp_path)})
    assert code == 2, err
    assert "the logging configuration started a thread in the master (shipper)" in err, err


def test_a_broken_configuration_names_itself(tmp_path):
    code, out, err, _ = run_cli("run", "sup_apps:app", "--log-config", str(tmp_path / "nope.ini"), cwd=tmp_path)
    assert (code, err) == (2, "pyfork: error: --log-config %s: no such file\n" % (tmp_path / "nope.ini"))
    code, out, err, _ = run_cli("run", "sup_apps:app", "--log-config-dict", '{"version": 1, "handlers": '
                                '{"h": {"class": "no.Such"}}}', cwd=tmp_path)
    assert code == 2 and err.startswith("pyfork: error: logconfig_dict: "), err
    code, out, err, _ = run_cli("run", "sup_apps:app", "--log-config-dict", '{"version": 1, "handlers": {}}',
                                cwd=tmp_path)
    assert code == 2 and "give 'root' and 'loggers' too" in err, err


@pytest.mark.timeout(60)
def test_syslog_over_udp(tmp_path):
    """--log-syslog: Gunicorn's SysLogHandler lines (facility, prefix) to a UDP server the test reads;
    stderr keeps the error log."""
    import socket
    import time
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.5)
    port = free_port()
    p = Pyfork("sup_apps:app", "-b", "127.0.0.1:%d" % port, "--log-syslog", "--log-syslog-prefix", "web",
               "--log-syslog-to", "udp://127.0.0.1:%d" % udp.getsockname()[1], "--log-syslog-facility", "local0",
               cwd=tmp_path, port=port)
    try:
        assert get(port, "/x")[0] == 200
        got = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("gunicorn.web.access:" in g for g in got):
            try:
                got.append(udp.recv(65536).decode())
            except socket.timeout:
                pass
        # <134> is local0 (16) * 8 + info (6)
        assert any(g.startswith("<134>gunicorn.web.error: [%d] master pid=" % p.pid) for g in got), got
        assert any(g.startswith("<134>gunicorn.web.access: [") and '"GET /x HTTP/1.1" 200' in g for g in got), got
        assert "master pid=%d" % p.pid in p.log()            # and still on stderr
        assert p.stop() == 0
    finally:
        p.close()
        udp.close()
