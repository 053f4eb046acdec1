"""Out of file descriptors (issue 25), end to end with scripts/starve.py: one worker at
RLIMIT_NOFILE 64, 150 idle clients held. Without fdlimit the worker spun at a whole CPU,
logged "accept failed" 160,000 times a second and answered no new client."""
import os
import sys

import psutil
import pytest

from conftest import SCRIPTS

sys.path.insert(0, SCRIPTS)
import starve  # noqa: E402

pytestmark = pytest.mark.slow    # 3 s of measured starvation per case: in .ci/run's second command


@pytest.mark.timeout(90)
@pytest.mark.parametrize("threads, kind", [(1, "silent"), (4, "keepalive")])
def test_out_of_fds_the_worker_rests_says_so_once_and_makes_room(threads, kind):
    result = starve.run(limit=64, idle=150, hold=3.0, leave=100, threads=threads, kind=kind)
    try:
        assert result["worker_fds"] == 64, result          # it did run out
        assert starve.missed(result) == [], result          # cpu <= 0.3 s, <= 20 lines, answered in 5 s, then 1 s
        said = [line for line in result["said"] if "out of file descriptors" in line]
        assert len(said) == 1, result["said"]
        assert "accept failed: [Errno 24] Too many open files; limit=64 open_connections=" in said[0]
        assert "accept failed" not in "".join(result["said"]).replace(said[0], "")
    finally:
        os.unlink(result["log"])
    assert not [p for p in psutil.Process().children(recursive=True) if p.status() == psutil.STATUS_ZOMBIE]
