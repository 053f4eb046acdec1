"""scripts/slowload.py's phases (pure): where each connection's slow request falls."""
import sys

import pytest

from conftest import SCRIPTS

sys.path.insert(0, SCRIPTS)
import slowload  # noqa: E402


@pytest.mark.parametrize("conns,every,seed,expected", [
    (4, 0, None, [0, 0, 0, 0]),                  # no slow requests
    (4, 0, 7, [0, 0, 0, 0]),
    (12, 10, None, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]),   # the fixed pattern: i % every
])
def test_fixed_phases(conns, every, seed, expected):
    assert slowload.phases(conns, every, seed) == expected


def test_seeded_phases_repeat_per_seed_and_differ_between_seeds():
    a = slowload.phases(32, 10, 1)
    assert a == slowload.phases(32, 10, 1)          # every server of a run sees the same pattern
    assert a != slowload.phases(32, 10, 2)
    assert a != slowload.phases(32, 10, None)
    assert all(0 <= p < 10 for p in a) and len(a) == 32
