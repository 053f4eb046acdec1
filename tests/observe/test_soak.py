"""scripts/soak.py, short: each leak in a real standard-1X dyno (512 MB, 256 tasks),
4 workers, pyfork's defaults plus --dyno-size standard-1x, 20 requests a second.
No request may fail and the kernel may kill nothing: pyfork recycles the leaking worker
first (memory pressure, the zombie limit, the task guard), and each memory recycle line
names the worker and its memory. The full 10-minute soaks: python scripts/soak.py."""
import re
import sys

import pytest

from conftest import SCRIPTS

sys.path.insert(0, SCRIPTS)
import soak  # noqa: E402
from dyno import DynoError  # noqa: E402


def run(leak, seconds):
    try:
        r = soak.soak(leak, seconds)
    except DynoError as exc:
        pytest.skip("no cgroups to make a dyno here: %s" % exc)
    assert not r["error"], r["error"]
    assert r["failed"] == 0 and r["oom_kills"] == 0, (r["kinds"], r["log"][-20:])
    assert r["master_alive"], r["log"][-20:]
    return r


@pytest.mark.timeout(90)
def test_memory_leak_recycled_before_the_oom_killer():
    r = run("memory", 32)        # 1 MiB a request: the 90% mark (461 MB) comes within ~25 s
    assert r["recycled"], r["log"][-20:]
    for line in r["recycled"]:
        assert re.search(r"worker=\d pid=\d+ recycled: memory at \d+MB of 512MB \(\d+%\), past the 90% "
                         r"mark .* memory_uss=\d+\.\d\dMB", line), line
    assert r["peak_memory"] < 512 * 1048576


@pytest.mark.timeout(60)
def test_zombie_leak():
    r = run("zombie", 10)
    assert any("unreaped children" in line for line in r["recycled"]), r["log"][-20:]
    assert r["peak_tasks"] < 256 and r["limit_hits"] == 0


@pytest.mark.timeout(60)
def test_thread_leak():
    r = run("thread", 15)        # one thread a request: 75% of 256 tasks within ~10 s
    assert any("near the task limit 256" in line for line in r["recycled"]), r["log"][-20:]
    assert r["peak_tasks"] < 256 and r["limit_hits"] == 0
