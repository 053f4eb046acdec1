"""scripts/soak.py, short (about 35 s in all, to keep the suite under its 5 minutes): each
leak in a real standard-1X dyno (512 MB, 256 tasks), 4 workers, pyfork's defaults plus
--dyno-size standard-1x, 20 requests a second; the memory leak at 2 MiB a request, twice
the full soak's, so that its recycles come within seconds.
No request may fail and the kernel may kill nothing: pyfork recycles the leaking worker
first (memory pressure, the zombie limit, the task guard), and each memory recycle line
names the worker and its memory. The full 10-minute soaks: python scripts/soak.py."""
import re
import sys

import pytest

from conftest import SCRIPTS, no_cgroups

sys.path.insert(0, SCRIPTS)
import soak  # noqa: E402
from dyno import DynoError  # noqa: E402


pytestmark = [pytest.mark.cgroup, pytest.mark.slow]


def run(leak, seconds, path=None):
    try:
        r = soak.soak(leak, seconds, path=path)
    except DynoError as exc:
        no_cgroups(exc)
    assert not r["error"], r["error"]
    assert r["failed"] == 0 and r["oom_kills"] == 0, (r["kinds"], r["log"][-20:])
    assert r["master_alive"], r["log"][-20:]
    return r


@pytest.mark.timeout(60)
def test_memory_leak_recycled_before_the_oom_killer():
    r = run("memory", 16, "/hog?mb=2&add=1")     # 40 MB/s: the 90% mark (461 MB) within ~12 s
    assert r["recycled"], r["log"][-20:]
    for line in r["recycled"]:
        assert re.search(r"worker=\d pid=\d+ recycled: memory at \d+MB of 512MB \(\d+%\), past the 90% "
                         r"mark .* memory_uss=\d+\.\d\dMB", line), line
    assert r["peak_memory"] < 512 * 1048576


@pytest.mark.timeout(60)
def test_zombie_leak():
    r = run("zombie", 5)         # 32 zombies in one worker within 2 s
    assert any("unreaped children" in line for line in r["recycled"]), r["log"][-20:]
    assert r["peak_tasks"] < 256 and r["limit_hits"] == 0


@pytest.mark.timeout(60)
def test_thread_leak():
    r = run("thread", 12)        # one thread a request: 75% of 256 tasks within ~10 s
    assert any("near the task limit 256" in line for line in r["recycled"]), r["log"][-20:]
    assert r["peak_tasks"] < 256 and r["limit_hits"] == 0
