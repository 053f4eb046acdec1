"""The restart ledger (pure): causes, the cap of KEEP per slot, counts, the log lines."""
import pytest

from supervisor.observe.ledger import KEEP, Cause, Entry, Ledger, cause_of_recycle, parse_log_line


@pytest.mark.parametrize("category, cause", [
    ("memory", Cause.MEMORY), ("zombies", Cause.ZOMBIES), ("threads", Cause.THREADS),
    ("tasks", Cause.TASKS), ("memory_pressure", Cause.MEMORY), ("something new", Cause.TASKS)])
def test_cause_of_recycle(category, cause):
    assert cause_of_recycle(category) is cause


def entry(slot, pid, cause, when=0.0):
    return Entry(when, slot, pid, cause, "detail", "GET /x for 1.00s", "rss=1MB")


def test_keeps_the_last_twenty_per_slot_and_counts_all():
    ledger = Ledger()
    for i in range(KEEP + 5):
        ledger.record(entry(0, 100 + i, Cause.CRASH if i % 2 else Cause.TIMEOUT))
    ledger.record(entry(1, 7, Cause.OOM_KILL))
    recent = ledger.recent(0)
    assert len(recent) == KEEP
    assert [e.pid for e in recent] == list(range(105, 125))       # oldest dropped first
    assert ledger.total(0) == KEEP + 5
    assert ledger.slot_counts(0) == {"crash": 12, "timeout": 13}
    assert ledger.by_reason() == {"crash": 12, "timeout": 13, "oom_kill": 1}
    assert ledger.metrics() == [(0, "crash", 12), (0, "timeout", 13), (1, "oom_kill", 1)]
    assert ledger.last(1).as_dict()["cause"] == "oom_kill"
    assert ledger.last(5) is None and ledger.recent(5) == []


def test_log_lines_only_for_slots_that_moved_and_read_back():
    ledger = Ledger()
    assert ledger.log_lines() == []
    ledger.record(entry(2, 812, Cause.TIMEOUT))
    ledger.record(entry(2, 813, Cause.OOM_KILL))
    ledger.record(entry(0, 900, Cause.MAX_REQUESTS))
    lines = ledger.log_lines()
    assert lines == ["restarts worker=0 total=1 max_requests=1 last=max_requests last_pid=900",
                     "restarts worker=2 total=2 timeout=1 oom_kill=1 last=oom_kill last_pid=813"]
    assert ledger.log_lines() == []                 # nothing moved since
    ledger.record(entry(2, 814, Cause.OOM_KILL))
    again = ledger.log_lines()
    assert again == ["restarts worker=2 total=3 timeout=1 oom_kill=2 last=oom_kill last_pid=814"]
    prefixed = "[2026-12-06 16:00:00 +0000] [42] [INFO] " + again[0]
    assert parse_log_line(prefixed) == (2, {"timeout": 1, "oom_kill": 2})
    assert parse_log_line("worker=2 pid=3 exited") is None
    assert parse_log_line("restarts worker=x total=1") is None
