"""context.threaded_shed (pure): when a worker with app threads answers "Connection: close"."""
import pytest

from supervisor.serve.context import threaded_shed

HOLD = 1.0
NEVER = -1e9


def asked(answer):
    """waiting() that records being asked: the listen queue is read only when it matters."""
    calls = []

    def waiting():
        calls.append(1)
        return answer
    return waiting, calls


# (now, slow_at, waited_at, full, clients queued) -> (shed, waited_at, queue read)
TABLE = [
    (100.0, NEVER, NEVER, False, False, (False, NEVER, False)),     # idle, nothing slow
    (100.0, 99.5, NEVER, False, True, (False, NEVER, False)),       # slow, but a thread is free
    (100.0, 99.5, NEVER, True, False, (False, NEVER, True)),        # full, nobody queued
    (100.0, 99.5, NEVER, True, True, (True, 100.0, True)),          # full, slow, queued: shed
    (100.0, 99.5, 99.2, False, False, (True, 99.2, False)),         # a request waited lately: shed
    (100.0, 99.5, 98.9, False, False, (False, 98.9, False)),        # ... over `hold` ago: no more
    (100.0, 98.9, 99.9, True, True, (False, 99.9, False)),          # fast requests: never, CPU-bound or not
    (100.0, 98.9, NEVER, True, True, (False, NEVER, False)),
]


@pytest.mark.parametrize("now, slow_at, waited_at, full, queued, expected", TABLE)
def test_threaded_shed(now, slow_at, waited_at, full, queued, expected):
    waiting, calls = asked(queued)
    shed, waited = threaded_shed(now, HOLD, slow_at, waited_at, full, waiting)
    assert (shed, waited, bool(calls)) == expected
