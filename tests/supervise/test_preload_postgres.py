"""The incident behind the --preload check, against a real Postgres: a Django app whose WSGI
module runs a query at import, with CONN_MAX_AGE=600 as Heroku's settings have it, started
with a preset that preloads. Before the check all workers shared the master's one
connection and answers crossed; now pyfork refuses with a line naming the connection, and
with the connection closed before the fork every worker has a connection of its own.

Postgres is Debian's (`.ci/run` installs it); a temporary cluster is made for the module on
127.0.0.1 and a free port, run as the `postgres` user when the tests run as root."""
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ROOT, Server, free_port, get
from supervisor import exits

PRESET = os.path.join(ROOT, "conf", "dyno-standard-1x.py")


def postgres_bindir():
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True) + \
            [os.path.dirname(os.path.realpath(shutil.which("pg_ctl") or "/nonexistent"))]:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    return None


@pytest.fixture(scope="module")
def pg():
    """The port of a fresh Postgres cluster on 127.0.0.1, stopped and removed after the module."""
    pytest.importorskip("django", reason="Django is a test dependency: pip install -e '.[test]'")
    psycopg = pytest.importorskip("psycopg", reason="psycopg is a test dependency: pip install -e '.[test]'")
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no Postgres server here (Debian: apt-get install postgresql; .ci/run installs it)")
    user = None
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run Postgres as")
    home = tempfile.mkdtemp(prefix="pyfork-pg-")
    if user:
        os.chown(home, user.pw_uid, user.pw_gid)
    run = dict(user=user.pw_uid if user else None, group=user.pw_gid if user else None,
               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, check=True, cwd=home)
    data, port = os.path.join(home, "data"), free_port()
    subprocess.run([os.path.join(bindir, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   timeout=60, **run)
    subprocess.run([os.path.join(bindir, "pg_ctl"), "-D", data, "-l", os.path.join(home, "log"), "-w", "-t", "30",
                    "-o", "-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories=%s" % (port, home),
                    "start"], timeout=60, **run)
    try:
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True) as c:
            c.execute("CREATE TABLE djpg_note (id serial PRIMARY KEY, text varchar(100) NOT NULL)")
            c.execute("INSERT INTO djpg_note (text) VALUES ('one'), ('two')")
        yield port
    finally:
        subprocess.run([os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"],
                       timeout=60, **dict(run, check=False))
        shutil.rmtree(home, ignore_errors=True)


def test_the_preset_refuses_a_connection_made_at_import(pg):
    s = Server("djpg.wsgi:application", "-c", PRESET, workers=3, wait=False, env={"PG_PORT": str(pg)})
    try:
        code = s.proc.wait(60)
        log = s.log()
    finally:
        s.close()
    assert code == exits.PRELOAD_UNSAFE, log
    assert re.search(r"--preload: the app's import left a socket to 127\.0\.0\.1:%d \(fd \d+\) in the master; "
                     r"every worker would share them\. Close them at import \(Django: CONN_MAX_AGE, "
                     r"connections\.close_all\(\) in the config's when_ready\)" % pg, log), log
    assert "booted in" not in log


WHEN_READY = """
exec(open(%r).read())         # the preset, and then README's fix:

def when_ready(server):
    from django.db import connections
    connections.close_all()
""" % PRESET


@pytest.mark.parametrize("where", ["wsgi module", "when_ready"])
def test_closed_before_the_fork_each_worker_has_its_own_connection(pg, tmp_path, where):
    conf, env = PRESET, {"PG_PORT": str(pg), "DJPG_CLOSE": "1"}
    if where == "when_ready":
        conf, env = str(tmp_path / "pyfork.conf.py"), {"PG_PORT": str(pg)}
        open(conf, "w").write(WHEN_READY)
    with Server("djpg.wsgi:application", "-c", conf, workers=3, env=env) as s:
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: get(s.port, "/", timeout=20), range(200)))
        log = s.log()
    assert [a[0] for a in answers] == [200] * 200, log[-3000:]
    seen = {}
    for _, _, body in answers:
        d = json.loads(body)
        seen.setdefault(d["worker"], set()).add(d["backend"])
        assert d["notes"] == 2
    assert len(seen) >= 2, seen                                     # the load reached several workers
    assert all(len(b) == 1 for b in seen.values()), seen            # each worker on one connection...
    backends = [next(iter(b)) for b in seen.values()]
    assert len(set(backends)) == len(backends), seen                # ...of its own
    assert "preload: the app was imported in the master" in log
    # Django set TIME_ZONE's TZ in the master at import; the log kept the zone pyfork started in
    assert len(set(re.findall(r"^\[[\d-]+ [\d:]+ ([+-]\d{4})\]", log, re.M))) == 1, log[:2000]
