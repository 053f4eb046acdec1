"""recycle.py: reasons made from their category, and the memory guard's decision. Pure tables."""
import pytest

from supervisor.supervise import recycle
from supervisor.supervise.recycle import Act, Category, Held, Limits

MB = 1048576
Q = 512 * MB


def held(slot, private_mb, grown_mb, rate_mb=0.0):
    return Held(slot, 100 + slot, private_mb * MB, grown_mb * MB, rate_mb * MB)


@pytest.mark.parametrize("limits, threads, zombies, memory, label, text", [
    (Limits(zombies=32), 1, 32, None, "zombies", "32 unreaped children (--max-worker-zombies 32)"),
    (Limits(threads=64), 64, 0, None, "threads", "64 threads (--max-worker-threads 64)"),
    (Limits(memory=80 * MB), 1, 0, 81 * MB, "memory", "memory_pss=81.00MB over --max-worker-memory 80.00MB"),
    (Limits(zombies=32, threads=64), 70, 40, None, "zombies", "40 unreaped children (--max-worker-zombies 32)"),
])
def test_reason_text_is_made_from_its_category(limits, threads, zombies, memory, label, text):
    why = recycle.reason(limits, threads, zombies, memory)
    assert recycle.category(why) == label and str(why) == text


@pytest.mark.parametrize("limits, threads, zombies, memory", [
    (Limits(), 500, 500, 10 ** 12),                 # all off
    (Limits(zombies=32, threads=64, memory=80 * MB), 63, 31, 80 * MB - 1),
])
def test_no_reason(limits, threads, zombies, memory):
    assert recycle.reason(limits, threads, zombies, memory) is None


def test_tasks_reason():
    why = recycle.why(Category.TASKS, value=200, limit=256, held=150)
    assert (recycle.category(why), str(why)) == ("tasks", "tasks=200 near the task limit 256; it holds 150")


LEAKER = [held(0, 400, 385, 16), held(1, 20, 2), held(2, 20, 2), held(3, 20, 2)]

# (used MB, mark, workers, master MB, leaving) -> (act, slot)
CASES = [
    (400, 90, LEAKER, 15, False, Act.CLEAR, None),         # 78%: under the mark
    (460, 90, LEAKER, 15, False, Act.CLEAR, None),         # 89.8%
    (461, 90, LEAKER, 15, False, Act.RECYCLE, 0),          # past 90%: the biggest holder
    (461, 0, LEAKER, 15, False, Act.CLEAR, None),          # --memory-pressure 0: off
    (461, 90, LEAKER, 15, True, Act.WAIT, None),           # one at a time
    (420, 80, LEAKER, 15, False, Act.RECYCLE, 0),          # a lower mark
    # the leak spread over all four: still the biggest, ties to the lowest slot
    (470, 90, [held(0, 100, 85), held(1, 110, 95), held(2, 110, 95), held(3, 100, 85)], 15, False, Act.RECYCLE, 1),
    # nobody grew: too many workers, not a leak; recycling would loop
    (470, 90, [held(i, 110, 3) for i in range(4)], 15, False, Act.CANNOT_HELP, None),
    # the master and shared memory alone past the mark
    (490, 90, [held(i, 5, 30) for i in range(4)], 400, False, Act.CANNOT_HELP, None),
    (480, 90, [], 400, False, Act.CANNOT_HELP, None),
]


@pytest.mark.parametrize("used, mark, workers, master, leaving, act, slot", CASES)
def test_memory_pressure(used, mark, workers, master, leaving, act, slot):
    p = recycle.memory_pressure(used * MB, Q, mark, workers, master * MB, leaving)
    assert (p.act, p.slot) == (act, slot)


def test_memory_pressure_no_quota():
    assert recycle.memory_pressure(500 * MB, None, 90, LEAKER, 0, False).act is Act.CLEAR
    assert recycle.memory_pressure(None, Q, 90, LEAKER, 0, False).act is Act.CLEAR


def test_memory_pressure_names_the_worker_and_its_memory():
    p = recycle.memory_pressure(470 * MB, Q, 90, LEAKER, 15 * MB, False)
    assert recycle.category(p.why) == "memory"
    assert str(p.why) == ("memory at 470MB of 512MB (92%), past the 90% mark (--memory-pressure 90); "
                          "it holds the most private memory, memory_uss=400.00MB, growing 16.0MB/s")


def test_memory_pressure_says_why_it_cannot_help():
    p = recycle.memory_pressure(490 * MB, Q, 90, [held(i, 5, 30) for i in range(4)], 400 * MB, False)
    assert p.why.startswith("memory at 490MB of 512MB (96%), past the 90% mark: the master (400MB private) "
                            "and the memory shared by all workers hold 470MB of it")
    p = recycle.memory_pressure(470 * MB, Q, 90, [held(i, 110, 3) for i in range(4)], 15 * MB, False)
    assert "no worker has grown since it booted (the biggest, worker=0, holds 110MB private)" in p.why


@pytest.mark.parametrize("used, quota, mark, near", [
    (0, Q, 90, 0.0),
    (Q // 2, Q, 90, 0.0),
    (Q * 0.7, Q, 90, 0.5),                           # half way from half the quota to the mark
    (Q * 0.9, Q, 90, 1.0),
    (Q * 0.9, Q, 0, 0.0),                            # off
    (Q * 0.9, None, 90, 0.0),
])
def test_memory_nearness(used, quota, mark, near):
    assert recycle.memory_nearness(used, quota, mark) == pytest.approx(near)


# -- a recycle that does not help, and room first ------------------------------------------

LAST = recycle.Recycled(when=100.0, slot=1, pid=101, grown=150 * MB)


@pytest.mark.parametrize("last, workers, now, back", [
    (LAST, [held(0, 170, 150), Held(1, 555, 170 * MB, 130 * MB, 0.0)], 110.0, 1),   # grew back: 130 of 150
    (LAST, [held(0, 170, 150), Held(1, 555, 60 * MB, 40 * MB, 0.0)], 110.0, None),  # small still
    (LAST, [held(0, 170, 150), Held(1, 555, 170 * MB, 130 * MB, 0.0)], 161.0, None),  # a minute later: a leak's pace
    (LAST, [held(0, 170, 150), held(1, 170, 150)], 110.0, None),      # the same pid: not its replacement
    (None, [held(0, 170, 150)], 110.0, None),
])
def test_regrew(last, workers, now, back):
    got = recycle.regrew(last, workers, now)
    assert (got.slot if got else None) == back


@pytest.mark.parametrize("why, used, private, room", [
    (recycle.why(recycle.Category.PRESSURE, value=470, limit=512, pct=92, mark=90, metric="uss", private=170,
                 growth="x"), 470 * MB, 170 * MB, True),                       # past the mark: never both
    (recycle.why(recycle.Category.MEMORY, metric="pss", value=310, limit=300), 330 * MB, 300 * MB, True),
    (recycle.why(recycle.Category.MEMORY, metric="pss", value=310, limit=300), 100 * MB, 300 * MB, False),
    (recycle.why(recycle.Category.ZOMBIES, value=40, limit=32), 500 * MB, 100 * MB, False),   # holds no memory
])
def test_needs_room(why, used, private, room):
    assert recycle.needs_room(why, used, Q, 90, private) is room
    assert recycle.needs_room(why, None, None, 90, private) is (why.category is recycle.Category.PRESSURE)


def young(slot, private_mb, grown_mb, age, rate_mb=0.0):
    return Held(slot, 100 + slot, private_mb * MB, grown_mb * MB, rate_mb * MB, age)


@pytest.mark.parametrize("workers, regrow", [
    ([young(0, 170, 150, 3), young(1, 168, 148, 2), young(2, 165, 140, 1)], True),    # 3 x 170 fresh: the count
    # the same sizes, still growing 10MB/s each: a fast leak, which a recycle holds off
    ([young(0, 170, 150, 20, 10), young(1, 168, 148, 20, 10), young(2, 165, 140, 20, 10)], False),
    ([young(0, 170, 150, 3, 146), young(1, 168, 148, 2), young(2, 165, 140, 1)], False),  # one still growing
    ([young(0, 170, 150, 300), young(1, 168, 148, 290), young(2, 165, 140, 280)], False),   # a slow leak all share
    ([young(0, 170, 150, 3), young(1, 40, 20, 2), young(2, 40, 20, 1)], False),       # one worker's spike
    ([young(0, 170, 150, 3)], False),                                                  # one worker: nothing to spare
])
def test_will_regrow(workers, regrow):
    assert recycle.will_regrow(workers[0], workers) is regrow
