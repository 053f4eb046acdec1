"""scripts/memory.py (issue 28's measurement): a smoke run of the Flask shop under pyfork with
and without --preload, and the pure pieces it relies on (who is a worker, the advice read
back from a dyno run's log)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import SCRIPTS

sys.path.insert(0, SCRIPTS)
import memdyno  # noqa: E402
import memserve  # noqa: E402

MB = 1024 * 1024


@pytest.mark.parametrize("title,worker", [
    ("pyfork worker 3 [flaskshop.wsgi:app]", True),
    ("gunicorn: worker [djshop.wsgi:application]", True),
    ("pyfork master [flaskshop.wsgi:app] workers=4/4 bind=127.0.0.1:8000", False),
    ("pyfork worker 0 [app] template", False),          # a refork template serves no one
    ("pyfork mold [app]", False),
    ("python -m supervisor run app", False),
])
def test_worker_titles(title, worker):
    assert memserve.is_worker_title(title) is worker


LOG = """\
[2026-12-08 01:31:33 +0000] [7] [INFO] worker=0 pid=11 booted in 11ms
source=web.1 process=master pid=7 sample#memory_rss=30.00MB sample#memory_pss=12.00MB sample#memory_uss=8.00MB sample#memory_swap=0.00MB sample#threads=1 sample#fds=9 sample#children=2 sample#zombies=0 sample#requests=0 sample#cpu_seconds=0.1 sample#uptime_seconds=9
source=web.1 worker=0 pid=11 sample#memory_rss=40.00MB sample#memory_pss=20.00MB sample#memory_uss=16.00MB sample#memory_swap=0.00MB sample#threads=1 sample#fds=9 sample#children=0 sample#zombies=0 sample#requests=900 sample#cpu_seconds=3.0 sample#uptime_seconds=9
source=web.1 worker=1 pid=12 sample#memory_rss=40.00MB sample#memory_pss=20.00MB sample#memory_uss=16.00MB sample#memory_swap=0.00MB sample#threads=1 sample#fds=9 sample#children=0 sample#zombies=0 sample#requests=900 sample#cpu_seconds=3.0 sample#uptime_seconds=9
source=web.1 sample#tasks=3 sample#tasks_max=256 sample#workers=2 sample#workers_advised=3
[2026-12-08 01:31:35 +0000] [7] [INFO] 2 workers use 40MB of 512MB; each costs about 16MB private; set WEB_CONCURRENCY=3
source=web.1 worker=1 pid=12 sample#memory_rss=40.00MB sample#memory_pss=24.00MB sample#memory_uss=20.00MB sample#memory_swap=0.00MB sample#threads=1 sample#fds=9 sample#children=0 sample#zombies=0 sample#requests=950 sample#cpu_seconds=3.2 sample#uptime_seconds=11
"""


def test_advice_from_the_last_lines():
    got = memdyno.read_advice(LOG, 512 * MB)
    # master 8 private + shared (12+20+24 PSS - 8+16+20 USS = 12) = 20 MB fixed; workers'
    # private mean (16+20)/2 = 18 MB (worker 1's later line wins): floor((435.2 - 20) / 18) = 23
    assert (got["advice_fixed_mb"], got["advice_private_mb"], got["memory_fit"]) == (20.0, 18.0, 23)
    assert got["workers_advised"] == 3
    assert got["advice"] == "2 workers use 40MB of 512MB; each costs about 16MB private; set WEB_CONCURRENCY=3"


def test_no_worker_lines_no_memory_bound():
    assert memdyno.read_advice("nothing here\n", 512 * MB)["memory_fit"] is None


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_run_of_the_flask_shop(tmp_path):
    pytest.importorskip("flask", reason="the Flask shop needs flask: pip install flask (it is in the test extras)")
    out = tmp_path / "memory.json"
    run = subprocess.run([sys.executable, os.path.join(SCRIPTS, "memory.py"), "--quick", "--apps", "flask",
                          "--modes", "pyfork,pyfork-preload", "--json", str(out)],
                         capture_output=True, text=True, timeout=540)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| pyfork | " in run.stdout and "| pyfork-preload | " in run.stdout, run.stdout
    rows = {r["mode"]: r for r in json.loads(out.read_text())["apps"]["flask"]}
    for mode, r in rows.items():
        assert r["status"] == "ok", r
        assert r["failures"] == 0 and r["requests"] >= 4 * 60, r
        assert 3 < r["uss_per_worker"] <= r["pss_per_worker"] < 200, r
        assert r["total_pss"] > 4 * r["pss_per_worker"], r      # the master counts too
        assert len(r["workers"]) == 4, r
        assert r["first_ms"] and r["first_ms"] > 0 and r["warm_ms"] > 0, r
    # the measurement sees what preload shares: well under the import-in-each-worker figure
    assert rows["pyfork-preload"]["uss_per_worker"] < 0.8 * rows["pyfork"]["uss_per_worker"], rows
