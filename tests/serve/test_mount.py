"""SCRIPT_NAME from the environment, as Gunicorn reads it (issue 25), end to end: the
environ's SCRIPT_NAME, PATH_INFO without it, 404 outside it, and a bad value refused at start."""
import json
import subprocess
import sys

import pytest

from conftest import APPS, get, free_port

APP = "http_app:unvalidated"


@pytest.mark.parametrize("how", ["environment", "flag", "threads"])
def test_script_name_mounts_the_app(server, how):
    if how == "flag":
        s = server(APP, "-e", "SCRIPT_NAME=/app/")
    else:
        s = server(APP, *(["--threads", "4"] if how == "threads" else []), env={"SCRIPT_NAME": "/app"})
    status, _, body = get(s.port, "/app/env%20x?q=1")
    env = json.loads(body)
    assert status == 200
    assert (env["SCRIPT_NAME"], env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"]) == \
        ("/app", "/env x", "q=1", "/app/env%20x?q=1")
    for outside in ("/env", "/application/env", "/"):
        assert get(s.port, outside)[0] == 404, outside


def test_no_script_name_is_the_root(server):
    s = server(APP, env={"SCRIPT_NAME": ""})
    env = json.loads(get(s.port, "/env")[2])
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/env")


def test_a_script_name_that_is_no_path_is_refused_at_start():
    cmd = [sys.executable, "-m", "supervisor", "run", APP, "-b", "127.0.0.1:%d" % free_port()]
    env = {"SCRIPT_NAME": "app", "PYTHONPATH": APPS, "PATH": "/usr/bin:/bin"}
    done = subprocess.run(cmd, env=env, cwd=APPS, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "SCRIPT_NAME='app': give the path the app is mounted at, such as /app" in done.stderr
