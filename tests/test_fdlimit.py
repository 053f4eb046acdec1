"""fdlimit: what to close, when to rest the listeners and what to say when out of descriptors."""
import pytest

from supervisor import fdlimit
from supervisor.fdlimit import BACKOFF, EVERY, QUIET, Say, Strain


def conns(*lasts):
    """(last, key) pairs keyed by position."""
    return [(last, i) for i, last in enumerate(lasts)]


@pytest.mark.parametrize("closable, now, expect", [
    ([], 10.0, ()),                                    # nothing open: nothing to close
    (conns(9.5, 9.9), 10.0, ()),                       # all spoke within QUIET: none
    (conns(9.0), 10.0, (0,)),                          # exactly QUIET: closable
    (conns(5.0, 9.5, 3.0), 10.0, (2,)),                # an 8th, at least one: the oldest
    (conns(*[float(i) for i in range(16)]), 20.0, (0, 1)),      # 16 quiet: 2, oldest first
    (conns(*[float(100 - i) for i in range(100)]), 200.0, (99, 98, 97, 96, 95, 94, 93, 92)),  # at most 8
    (conns(*[1.0] * 7 + [9.5] * 60), 10.0, (0,)),     # the share counts the quiet ones only
])
def test_choose(closable, now, expect):
    assert fdlimit.choose(closable, now) == expect


def test_first_refusal_with_nothing_quiet_rests_the_listeners_and_says_so():
    r = fdlimit.refused(None, 10.0, conns(9.8, 9.9), 2, "[Errno 24] Too many open files")
    assert r.say is Say.START and r.close == ()
    assert r.strain == Strain(since=10.0, last=10.0, said=10.0, why="[Errno 24] Too many open files",
                              refused=1, reclaimed=0, paused_until=10.0 + BACKOFF, open_at_pause=2)


def test_a_refusal_that_makes_room_keeps_polling_and_says_nothing_more():
    first = fdlimit.refused(None, 10.0, [], 0).strain
    r = fdlimit.refused(first, 12.0, conns(1.0, 11.5), 2)
    assert r.say is None and r.close == (0,)
    assert (r.strain.refused, r.strain.reclaimed, r.strain.last, r.strain.since) == (2, 1, 12.0, 10.0)


@pytest.mark.parametrize("paused_until, open_at_pause, now, open_conns, expect", [
    (None, 0, 10.0, 0, False),          # not resting
    (10.5, 5, 10.1, 5, False),          # resting, nothing closed yet
    (10.5, 5, 10.1, 4, True),           # one of ours closed
    (10.5, 5, 10.5, 5, True),           # the back-off is over
    (10.5, 5, 10.5, 9, True),           # even with more open (a stop): time is up
])
def test_resumes(paused_until, open_at_pause, now, open_conns, expect):
    strain = Strain(since=9.0, last=10.0, said=9.0, paused_until=paused_until, open_at_pause=open_at_pause)
    assert fdlimit.resumes(strain, now, open_conns) is expect
    assert fdlimit.resumes(None, now, open_conns) is False
    assert fdlimit.resumed(strain).paused_until is None


@pytest.mark.parametrize("last, said, paused_until, now, expect_say, over", [
    (10.0, 10.0, None, 15.0, None, False),              # lasting, said recently
    (19.0, 10.0, None, 20.0, Say.STILL, False),         # EVERY since the last line: a summary
    (10.0, 10.0, None, 20.0, Say.OVER, True),           # EVERY without a refusal: over
    (10.0, 10.0, 30.5, 20.0, Say.STILL, False),         # still resting: not over
])
def test_tick(last, said, paused_until, now, expect_say, over):
    strain = Strain(since=5.0, last=last, said=said, paused_until=paused_until)
    new, say = fdlimit.tick(strain, now)
    assert say is expect_say
    assert (new is None) is over
    if say is Say.STILL:
        assert new.said == now
    assert fdlimit.tick(None, now) == (None, None)


def test_next_due_is_the_first_of_pause_end_summary_and_end():
    assert fdlimit.next_due(Strain(since=0.0, last=3.0, said=1.0)) == 1.0 + EVERY
    assert fdlimit.next_due(Strain(since=0.0, last=3.0, said=5.0)) == 3.0 + EVERY
    assert fdlimit.next_due(Strain(since=0.0, last=3.0, said=5.0, paused_until=3.5)) == 3.5


def test_lines_per_episode_are_few_however_long_it_lasts():
    """A minute of refusals every BACKOFF, ticked every second: 1 + 6 summaries + 1 end."""
    strain, said, t = None, [], 0.0
    while t < 60.0:
        r = fdlimit.refused(strain, t, [], 3)
        strain = r.strain
        said += [r.say] if r.say else []
        t += BACKOFF
        if fdlimit.resumes(strain, t, 3):
            strain = fdlimit.resumed(strain)
        if t == int(t):
            strain, say = fdlimit.tick(strain, t)
            said += [say] if say else []
    for s in range(61, 75):
        strain, say = fdlimit.tick(strain, float(s))
        said += [say] if say else []
    assert said == [Say.START] + [Say.STILL] * 6 + [Say.OVER]


def test_lines_name_the_limit_the_counts_and_what_to_do():
    strain = Strain(since=10.0, last=14.0, said=10.0, why="[Errno 24] Too many open files", refused=7, reclaimed=3)
    start = fdlimit.line(Say.START, strain, 10.0, "worker=1 pid=42", 64, 57)
    assert start == ("worker=1 pid=42 out of file descriptors: accept failed: [Errno 24] Too many open files; "
                     "limit=64 open_connections=57; closing connections quiet for %gs, oldest first, and "
                     "accepting as room is made (raise ulimit -n, or add workers)" % QUIET)
    assert fdlimit.line(Say.STILL, strain, 20.0, "worker=1 pid=42", 64, 50) == (
        "worker=1 pid=42 still out of file descriptors: for=10s refused=7 reclaimed=3 limit=64 open_connections=50")
    assert fdlimit.line(Say.OVER, strain, 24.0, "master metrics server", 64, 1) == (
        "master metrics server out of file descriptors no more: lasted=4.0s refused=7 reclaimed=3 open_connections=1")
