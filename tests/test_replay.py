"""Real Gunicorn command lines, as people write them in Procfiles, Dockerfiles and systemd
units, replayed with `gunicorn` changed to `pyfork run` and nothing else: each is started for
real and either serves or exits 2 naming the flag (a line that starts with `pyfork` is run as
written: README's "change gunicorn to pyfork"), and `pyfork check-config` with the same
line reports what the line asked for.

Two changes the harness makes to every line, so tests stay on loopback and never collide:
`$PORT` is a free port, and 0.0.0.0 is 127.0.0.1. A line with no --bind gets its address
from PYFORK_BIND, as a platform's environment would give it. The apps are written into
tmp_path under the names such lines use (app:app, myproject.wsgi:application, ...).
"""
import os
import shlex
import subprocess
import sys

import pytest

from conftest import free_port, get, wait_for
from test_config_e2e import Pyfork, clean_env, parse_check_config, run_cli

APP = '''\
import os


def app(environ, start_response):
    body = " ".join([str(os.getpid()), environ["wsgi.url_scheme"], os.environ.get("REPLAY_MARK", "-"),
                     __name__]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


application = app


def create_app():
    return app
'''

# (id, extra environment, the line as written, what it gives: {setting: check-config value text,
#  or (value text, source)}
#  or ("refused", the flag named in the error), and what the app answers: (scheme, REPLAY_MARK,
#  module)). The request says X-Forwarded-Proto: https from 127.0.0.1, which --forwarded-allow-ips
#  trusts by default, as in Gunicorn.
LINES = [
    ("heroku basic", {}, "gunicorn app:app --bind 0.0.0.0:$PORT",
     {"workers": "2", "bind": "'127.0.0.1:$PORT'"}, ("https", "-", "app")),
    ("heroku docs", {}, "gunicorn myproject.wsgi --log-file -",
     {"error_logfile": "'-'"}, ("https", "-", "myproject.wsgi")),
    ("django workers", {}, "gunicorn myproject.wsgi:application -w 3 --bind 0.0.0.0:$PORT --timeout 120",
     {"workers": "3", "timeout": "120.0"}, ("https", "-", "myproject.wsgi")),
    ("container tmp dir", {}, "gunicorn --bind 0.0.0.0:$PORT --worker-tmp-dir /dev/shm --workers=2 "
     "--threads=4 --worker-class=gthread --log-file=- app:app",
     {"threads": "4", "worker_class": "'gthread'", "workers": "2"}, ("https", "-", "app")),
    ("gthread short", {}, "gunicorn -k gthread --threads 8 -w 1 -b 0.0.0.0:$PORT app:app",
     {"threads": "8", "worker_class": "'gthread'"}, ("https", "-", "app")),
    ("max requests", {}, "gunicorn app:app -b 0.0.0.0:$PORT --max-requests 1000 --max-requests-jitter 50 -w 2",
     {"max_requests": "1000", "max_requests_jitter": "50"}, ("https", "-", "app")),
    ("access log stdout", {}, "gunicorn --access-logfile - --error-logfile - -b 0.0.0.0:$PORT app:app",
     {"access_logfile": "'-'"}, ("https", "-", "app")),
    ("log level", {}, "gunicorn app:app --log-level debug --bind=0.0.0.0:$PORT",
     {"loglevel": "'debug'"}, ("https", "-", "app")),
    ("log level upper", {}, "gunicorn app:app --log-level=INFO --bind=0.0.0.0:$PORT",
     {"loglevel": "'info'"}, ("https", "-", "app")),
    ("behind a proxy", {}, "gunicorn app:app --forwarded-allow-ips '*' -b 0.0.0.0:$PORT",
     {"forwarded_allow_ips": "('*',)"}, ("https", "-", "app")),
    ("proxy address only", {}, "gunicorn app:app --forwarded-allow-ips=10.1.2.3,10.1.2.4 -b 0.0.0.0:$PORT",
     {"forwarded_allow_ips": "(IPv4Network('10.1.2.3/32'), IPv4Network('10.1.2.4/32'))"}, ("http", "-", "app")),
    ("preload", {}, "gunicorn --preload -w 2 -b 0.0.0.0:$PORT app:app", {"preload": "True"}, ("https", "-", "app")),
    ("sync spelled out", {}, "gunicorn -k sync --worker-class sync --worker-connections 1000 -b 0.0.0.0:$PORT app:app",
     {"worker_class": "'sync'"}, ("https", "-", "app")),
    ("factory", {}, "gunicorn 'app:create_app()' -b 0.0.0.0:$PORT", {"workers": "2"}, ("https", "-", "app")),
    ("chdir", {}, "gunicorn --chdir src wsgi:app -b 0.0.0.0:$PORT", {"chdir": "'src'"}, ("https", "-", "wsgi")),
    ("pythonpath", {}, "gunicorn --pythonpath lib,src service:app -b 0.0.0.0:$PORT",
     {"pythonpath": "('lib', 'src')"}, ("https", "-", "service")),
    ("env flag", {}, "gunicorn -e REPLAY_MARK=seen --env OTHER=1 app:app -b 0.0.0.0:$PORT",
     {"raw_env": "('REPLAY_MARK=...', 'OTHER=...')"}, ("https", "seen", "app")),
    ("systemd unit", {}, "gunicorn --workers 3 --bind unix:$TMP/app.sock --bind 127.0.0.1:$PORT "
     "--pid $TMP/gunicorn.pid --capture-output --name web --graceful-timeout 10 app:app",
     {"pidfile": "'$TMP/gunicorn.pid'", "graceful_timeout": "10.0"}, ("https", "-", "app")),
    ("keep-alive and limits", {}, "gunicorn app:app -b 0.0.0.0:$PORT --keep-alive 2 --limit-request-line 8190 "
     "--limit-request-fields 50 --limit-request-field_size 16380 --backlog 512",
     {"keepalive": "2.0", "limit_request_line": "8190", "limit_request_field_size": "16380", "backlog": "512"},
     ("https", "-", "app")),
    ("statsd and stdio", {}, "gunicorn app:app -b 0.0.0.0:$PORT --statsd-host localhost:8125 --statsd-prefix web "
     "-R --no-sendfile", {"statsd_host": "('localhost', 8125)", "statsd_prefix": "'web'"}, ("https", "-", "app")),
    ("GUNICORN_CMD_ARGS", {"GUNICORN_CMD_ARGS": "--bind=127.0.0.1:$PORT --workers=3 --timeout 60 "
                                                "--access-logfile -"},
     "gunicorn app:app", {"workers": ("3", "environment variable GUNICORN_CMD_ARGS"), "timeout": "60.0",
                          "access_logfile": "'-'"}, ("https", "-", "app")),
    ("GUNICORN_CMD_ARGS under flags", {"GUNICORN_CMD_ARGS": "--workers=4 --keep-alive 9", "WEB_CONCURRENCY": "3"},
     "gunicorn app:app -w 1 -b 0.0.0.0:$PORT", {"workers": ("1", "flag --workers"),
                                                "keepalive": ("9.0", "environment variable GUNICORN_CMD_ARGS")},
     ("https", "-", "app")),
    ("WEB_CONCURRENCY", {"WEB_CONCURRENCY": "3"}, "gunicorn app:app --bind 0.0.0.0:$PORT",
     {"workers": "3"}, ("https", "-", "app")),
    ("gunicorn config file", {}, "gunicorn -c gunicorn.conf.py app:app",
     {"workers": "2", "timeout": "45.0"}, ("https", "-", "app")),
    # Gunicorn reads ./gunicorn.conf.py by default, and so does pyfork
    ("default config file", {}, "gunicorn app:app", {"workers": "2", "timeout": "45.0"}, ("https", "-", "app")),
    # lines that would change behaviour pyfork lacks: exit 2, naming the flag, nothing started
    ("reload", {}, "gunicorn app:app --reload --reload-engine poll -b 0.0.0.0:$PORT", {"reload": "True",
     "reload_engine": "'poll'"}, ("https", "-", "app")),
    ("gevent", {}, "gunicorn -k gevent --worker-connections 1000 app:app -b 0.0.0.0:$PORT",
     ("refused", "--worker-class"), None),
    ("uvicorn", {}, "gunicorn main:app -w 4 -k uvicorn.workers.UvicornWorker -b 0.0.0.0:$PORT",
     ("refused", "--worker-class"), None),
    ("tls", {}, "gunicorn --certfile=server.crt --keyfile=server.key -b 0.0.0.0:$PORT app:app",
     {"certfile": "'server.crt'", "keyfile": "'server.key'"}, ("https", "-", "app")),
    ("paste", {}, "gunicorn --paste development.ini -b 0.0.0.0:$PORT", ("refused", "--paste"), None),
    ("daemon", {}, "gunicorn -D -b 0.0.0.0:$PORT app:app", ("refused", "--daemon"), None),
    ("umask and forwarders", {}, "gunicorn app:app -b 0.0.0.0:$PORT -m 0o027 --forwarder-headers "
     "SCRIPT_NAME,REMOTE_USER", {"umask": "23", "forwarder_headers": "('SCRIPT_NAME', 'REMOTE_USER')"},
     ("https", "-", "app")),
    ("behind haproxy", {}, "gunicorn app:app -b 0.0.0.0:$PORT --proxy-protocol --proxy-allow-from 127.0.0.1,10.1.0.0/16",
     {"proxy_protocol": "'auto'"}, ("https", "-", "app")),
    ("json logs", {}, "gunicorn app:app -b 0.0.0.0:$PORT --log-config-json $TMP/logging.json --log-level info",
     {"logconfig_json": "'$TMP/logging.json'"}, ("https", "-", "app")),
    # the same line with only the name changed, as README tells a Gunicorn user
    ("name changed", {}, "pyfork app:app -w 3 -b 0.0.0.0:$PORT --timeout 30 --max-requests 1000 --access-logfile -",
     {"workers": "3", "max_requests": "1000", "access_logfile": "'-'"}, ("https", "-", "app")),
    ("zero workers", {"WEB_CONCURRENCY": "0"}, "gunicorn app:app -b 0.0.0.0:$PORT",
     ("refused", "WEB_CONCURRENCY"), None),
]

CONF = "workers = 2\ntimeout = 45\nbind = '127.0.0.1:%(port)d'\nworker_tmp_dir = '/dev/shm'\n"


def tree(tmp_path, port, conf):
    for rel in ("app.py", "myproject/__init__.py", "myproject/wsgi.py", "src/wsgi.py", "lib/service.py"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(APP if rel.endswith(("app.py", "wsgi.py", "service.py")) else "")
    if conf:
        (tmp_path / "gunicorn.conf.py").write_text(CONF % {"port": port})
    (tmp_path / "logging.json").write_text('{"version": 1, "disable_existing_loggers": false}')


def certificate(tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "server.key"),
                    "-out", str(tmp_path / "server.crt"), "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True, timeout=60)


def https_get(port, path, headers):
    import http.client
    import ssl
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=5)
    try:
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def expand(text, port, tmp):
    return text.replace("$PORT", str(port)).replace("$TMP", tmp).replace("0.0.0.0", "127.0.0.1")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case, env, line, gives, answers", LINES, ids=[case[0] for case in LINES])
def test_gunicorn_line_replayed(tmp_path, case, env, line, gives, answers):
    port = free_port()
    tree(tmp_path, port, "config file" in case)
    if "--certfile" in line:
        certificate(tmp_path)
    words = shlex.split(expand(line, port, str(tmp_path)))
    assert words[0] in ("gunicorn", "pyfork")
    command = ("run",) if words[0] == "gunicorn" else ()
    args = words[1:]
    env = {k: expand(v, port, str(tmp_path)) for k, v in env.items()}
    if "-b" not in line and "--bind" not in line and "GUNICORN_CMD_ARGS" not in env and "config file" not in case:
        env["PYFORK_BIND"] = "127.0.0.1:%d" % port

    code, out, err, _ = run_cli("check-config", *args, env=env, cwd=tmp_path)
    if isinstance(gives, tuple):
        assert code == 2 and out == "" and gives[1] in err, (code, out, err)
        assert all(line.startswith("pyfork: error: ") for line in err.splitlines()), err
        code, out, run_err, _ = run_cli(*command, *args, env=env, cwd=tmp_path)
        assert code == 2 and out == "" and run_err == err, (code, out, run_err)    # one line per refused flag
        return
    assert code == 0, err
    # it is a line Gunicorn itself accepts (its --check-config also imports the app; it exits
    # before it applies --pythonpath, so that line cannot be checked this way)
    g = "--pythonpath" not in args and subprocess.run([sys.executable, "-m", "gunicorn", "--check-config"] + args, cwd=tmp_path, env=clean_env(env),
                       capture_output=True, text=True, timeout=30)
    assert not g or g.returncode == 0, (g.stdout, g.stderr)
    table = parse_check_config(out)
    for name, text in gives.items():
        text, source = text if isinstance(text, tuple) else (text, None)
        assert table[name][0] == expand(text, port, str(tmp_path)), (name, table[name])
        assert source in (None, table[name][1]), (name, table[name])
    # every Gunicorn-only flag of the line is named in a note
    for word in args:
        flag = word.split("=")[0]
        if flag.startswith("--") and flag[2:].replace("-", "_") in ("worker_tmp_dir", "capture_output", "name",
                                                                    "no_sendfile"):
            assert "note: flag %s" % flag in out, (flag, out)

    workers = int(table["workers"][0])
    p = Pyfork(*args, workers=workers, env=env, cwd=tmp_path, port=port, command=command)
    try:
        status, _, body = (https_get if "--certfile" in line else get)(port, "/", headers={"X-Forwarded-Proto": "https"})
        assert status == 200, body
        pid, scheme, mark, module = body.decode().split()
        assert int(pid) in p.worker_pids()
        assert (scheme, mark, module) == answers
        if table["access_logfile"][0] == "'-'":
            assert wait_for(lambda: '"GET / HTTP/1.1" 200' in p.output(), 5), p.output()
        if "--capture-output" in args:
            assert "flag --capture-output: Gunicorn-only, ignored" in p.output()
        assert p.stop() == 0
    finally:
        p.close()
    assert not os.path.exists(str(tmp_path / "gunicorn.pid"))      # the pidfile is removed at exit
