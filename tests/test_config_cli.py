"""The command line's own messages, end to end with the real `python -m supervisor`: every
mistake of a run reported together, the app missing, --help's environment names, sizes as
written, and Gunicorn's --check-config / --print-config. Each process runs to its end (or is
killed by pid by run_cli); nothing is left behind."""
import os
import re

from conftest import APPS

from test_config_e2e import parse_check_config, run_cli, write

MANY = '''\
workers = 2
worker = 4
timeout = -1
daemon = True
worker_tmp_dir = "/dev/shm"


def post_forks(server, worker):
    pass


bind = ["127.0.0.1:9", "127.0.0.1:9"]
graceful_timout = 5
'''


def test_every_mistake_in_one_run(tmp_path):
    conf = write(tmp_path / "gunicorn.conf.py", MANY)
    for command in ("run", "check-config"):
        code, out, err, _ = run_cli(command, "sup_apps:app", "-c", conf, "--paste", "x.ini", cwd=tmp_path,
                                    env={"PYFORK_TIMOUT": "5"})
        assert (code, out) == (2, "")
        lines = err.splitlines()
        assert all(line.startswith("pyfork: error: ") for line in lines), err
        text = [line[len("pyfork: error: "):] for line in lines]
        assert text[0] == "unknown setting 'worker' in gunicorn.conf.py line 2; did you mean 'workers'?"
        assert text[1].startswith("setting 'daemon' in gunicorn.conf.py line 4: not available in pyfork: ")
        assert text[2] == "unknown hook 'post_forks' in gunicorn.conf.py line 8; did you mean 'post_fork'?"
        assert text[3] == ("unknown setting 'graceful_timout' in gunicorn.conf.py line 13; "
                           "did you mean 'graceful_timeout'?")
        assert text[4].startswith("flag --paste: not available in pyfork: pyfork loads a WSGI callable")
        assert text[5] == "unknown setting PYFORK_TIMOUT; did you mean PYFORK_TIMEOUT?"
        assert text[6].startswith("setting 'bind' in %s line 12: 127.0.0.1:9 is given twice" % conf)
        assert text[7] == "setting 'timeout' in %s line 3: -1 is too small; the least allowed is 0" % conf
        assert len(text) == 8, err       # the harmless worker_tmp_dir is no error


def test_no_app_given(tmp_path):
    for command in ("run", "check-config"):
        code, out, err, _ = run_cli(command, cwd=tmp_path)
        assert (code, out, err) == (2, "", "pyfork: error: no app given: pyfork run MODULE:NAME "
                                           "(try pyfork run supervisor.demo)\n")


def test_help_names_each_environment_variable_once():
    code, out, err, _ = run_cli("run", "--help")
    assert code == 0, err
    text = " ".join(out.split())            # argparse wraps lines
    names = re.findall(r"\[env ([A-Z_, ]+)\]", text)
    assert len(names) > 30
    for group in names:
        parts = group.split(", ")
        assert len(parts) == len(set(parts)), group
    assert text.count("PYFORK_DYNO_SIZE") == 1
    assert "[env PYFORK_WORKERS, WEB_CONCURRENCY]" in text
    assert "GUNICORN_CMD_ARGS" in text and "--worker-tmp-dir" not in text   # accepted, not listed


def test_sizes_are_shown_as_written(tmp_path):
    conf = write(tmp_path / "c.py", "max_worker_memory = '0.5GB'\n")
    code, out, err, _ = run_cli("check-config", "sup_apps:app", "-c", conf, env={"PYFORK_MEMORY_QUOTA": "1GB"},
                                cwd=tmp_path)
    table = parse_check_config(out)
    assert table["max_worker_memory"] == ("'0.5GB'", "file " + conf)
    assert table["memory_quota"] == ("'1GB'", "environment variable PYFORK_MEMORY_QUOTA")
    code, out, err, _ = run_cli("check-config", "sup_apps:app", "--memory-quota", "512M", cwd=tmp_path)
    assert parse_check_config(out)["memory_quota"] == ("'512M'", "flag --memory-quota")


def test_gunicorn_check_config_imports_the_app(tmp_path):
    write(tmp_path / "good.py", "def app(environ, start_response):\n    return []\n")
    write(tmp_path / "bad.py", "raise RuntimeError('no database')\n")
    code, out, err, _ = run_cli("run", "good:app", "--check-config", "-w", "3", cwd=tmp_path)
    assert (code, out, err) == (0, "pyfork: configuration ok; app good:app loaded\n", "")
    code, out, err, _ = run_cli("run", "good:application", "--check-config", cwd=tmp_path)
    assert (code, err) == (2, "pyfork: error: app 'good:application': module 'good' has no 'application'; "
                              "did you mean 'app'?\n")
    code, out, err, _ = run_cli("run", "bad:app", "--check-config", cwd=tmp_path)
    assert code == 4 and "RuntimeError: no database" in err
    code, out, err, _ = run_cli("run", "good:app", "--print-config", "-w", "3", cwd=tmp_path)
    assert code == 0 and parse_check_config(out)["workers"] == ("3", "flag --workers")


def test_config_file_found_as_gunicorn_finds_it(tmp_path):
    write(tmp_path / "gunicorn.conf.py", "workers = 3\n")
    table = parse_check_config(run_cli("check-config", "sup_apps:app", cwd=tmp_path)[1])
    assert table["workers"] == ("3", "file gunicorn.conf.py")
    # ours wins, and says the other was not read
    write(tmp_path / "pyfork.conf.py", "timeout = 7\n")
    code, out, err, _ = run_cli("check-config", "sup_apps:app", cwd=tmp_path)
    table = parse_check_config(out)
    assert table["workers"] == ("2", "default") and table["timeout"] == ("7.0", "file pyfork.conf.py")
    assert "note: ./gunicorn.conf.py not read: ./pyfork.conf.py is (give -c gunicorn.conf.py to read it instead)" in out
    # -c python:MODULE, as in Gunicorn
    (tmp_path / "settings").mkdir()
    write(tmp_path / "settings" / "__init__.py", "")
    write(tmp_path / "settings" / "web.py", "keepalive = 9\n")
    code, out, err, _ = run_cli("check-config", "sup_apps:app", "-c", "python:settings.web", cwd=tmp_path,
                                env={"PYTHONPATH": str(tmp_path) + os.pathsep + APPS})
    assert parse_check_config(out)["keepalive"] == ("9.0", "file " + str(tmp_path / "settings" / "web.py")), err
    code, out, err, _ = run_cli("check-config", "sup_apps:app", "-c", "python:settings.nope", cwd=tmp_path,
                                env={"PYTHONPATH": str(tmp_path) + os.pathsep + APPS})
    assert (code, err) == (2, "pyfork: error: config file python:settings.nope: no such module "
                              "(check the name and PYTHONPATH)\n")



# `pyfork` with Gunicorn's line: (argv, files present in the working directory, routed argv or the error)
ROUTES = [
    (["app:app", "-w", "3"], (), ["run", "app:app", "-w", "3"]),
    (["--bind", "127.0.0.1:9", "app:app"], (), ["run", "--bind", "127.0.0.1:9", "app:app"]),
    (["-c", "gunicorn.conf.py"], (), ["run", "-c", "gunicorn.conf.py"]),
    (["myproject.wsgi"], (), ["run", "myproject.wsgi"]),
    (["app:create_app()"], (), ["run", "app:create_app()"]),
    (["status", "--json"], (), ["status", "--json"]),
    (["run", "app:app"], (), ["run", "app:app"]),
    (["--version"], (), ["--version"]),
    ([], (), []),
    (["stauts"], (), "unknown command 'stauts': did you mean 'pyfork status'?"),
    (["reports"], ("reports.py",), ["run", "reports"]),       # a module of that name here: the app
    (["reports"], (), "unknown command 'reports': did you mean 'pyfork report'?"),
    (["my-app"], (), "'my-app' is neither a command (run, check-config, advise, status, report) nor an app "
                     "(MODULE:APP): did you mean 'pyfork run my-app'?"),
]


def test_route_table():
    from supervisor.cli import route
    for argv, files, want in ROUTES:
        got, error = route(list(argv), lambda path, files=files: path in files)
        assert (error if isinstance(want, str) else got) == want, (argv, got, error)


def test_gunicorn_line_with_the_name_changed(tmp_path):
    """The first thing a Gunicorn user types: an unknown word is named with the way out."""
    code, out, err, _ = run_cli("my-app", cwd=tmp_path)
    assert (code, out) == (2, "") and err.endswith("did you mean 'pyfork run my-app'?\n"), err
    code, out, err, _ = run_cli("check-config", "sup_apps:app", "-w", "3", cwd=APPS)
    code2, out2, err2, _ = run_cli("sup_apps:app", "-w", "3", "--print-config", cwd=APPS)
    assert (code, code2) == (0, 0) and parse_check_config(out2)["workers"][0] == "3", (err, err2)
