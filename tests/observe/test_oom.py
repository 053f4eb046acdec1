"""OOM deaths named from the kernel's counters: the parsing and the sentence (pure), and
the Counters' pending rule with a sampler that hands over fixed file texts."""
import pytest

from supervisor.observe import oom
from supervisor.observe.metrics import ProcSample

V1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
V2 = "low 0\nhigh 0\nmax 12\noom 4\noom_kill 4\noom_group_kill 0\n"
VMSTAT = "nr_free_pages 1000\npgfault 5\noom_kill 13\n"
OLD_V1 = "oom_kill_disable 0\nunder_oom 0\n"          # kernels before 4.13 have no oom_kill line


@pytest.mark.parametrize("version, files, vmstat, want", [
    ("v1", {"memory.oom_control": V1}, VMSTAT, {"cgroup": 3, "host": 13}),
    ("v2", {"memory.events": V2}, VMSTAT, {"cgroup": 4, "host": 13}),
    ("v1", {"memory.oom_control": OLD_V1}, None, {"cgroup": None, "host": None}),
    ("v1", {}, VMSTAT, {"cgroup": None, "host": 13}),       # unreadable file
    (None, {}, VMSTAT, {"cgroup": None, "host": 13}),       # no memory cgroup at all
    ("v2", {"memory.events": "garbage\n\n"}, "", {"cgroup": None, "host": None}),
])
def test_counters(version, files, vmstat, want):
    assert oom.counters(version, files, vmstat) == want


@pytest.mark.parametrize("before, after, want", [
    ({"cgroup": 3, "host": 13}, {"cgroup": 4, "host": 14}, ("cgroup", 3, 4)),   # the cgroup's is the better evidence
    ({"cgroup": 3, "host": 13}, {"cgroup": 3, "host": 14}, None),             # another process on the host
    ({"cgroup": None, "host": 13}, {"cgroup": None, "host": 14}, ("host", 13, 14)),   # no cgroup counter
    ({"cgroup": 3, "host": 13}, {"cgroup": 3, "host": 13}, None),
    ({"cgroup": None, "host": None}, {"cgroup": 1, "host": None}, None),       # no baseline: no claim
    (None, {"cgroup": 1, "host": 1}, None),
])
def test_moved(before, after, want):
    assert oom.moved(before, after) == want


def sample(uss=410 * 1048576, pss=None, rss=500 * 1048576):
    return ProcSample(2, 812, rss, pss, uss, 0, 1, 5, 0, 0, 10, 1.0, 5.0)


def test_sentences():
    assert oom.sentence(2, 812, ("cgroup", 3, 4), sample(), 512 * 1048576) == (
        "worker=2 pid=812 killed by the kernel's OOM killer (cgroup oom_kill 3->4) at USS 410.00MB of quota 512.00MB")
    assert oom.sentence(2, 812, ("host", 13, 14), sample(uss=None), None) == (
        "worker=2 pid=812 killed by the kernel's OOM killer (host oom_kill 13->14) at RSS 500.00MB")
    assert oom.sentence(2, 812, None) == (
        "worker=2 pid=812 killed by SIGKILL from outside pyfork (no OOM kill counter moved)")


class FakeSampler:
    """Stands for the Sampler's file reading only: the texts a test sets are what it 'reads'."""
    def __init__(self):
        self.cgroups = {"memory": ("v1", "/cg")}
        self.oom_control, self.vmstat = V1, VMSTAT

    def read_files(self, directory, names):
        text = {"/cg": self.oom_control, "/proc": self.vmstat}[directory]
        return {names[0]: text}


def test_counters_keep_a_move_seen_before_the_death_for_a_while():
    s = FakeSampler()
    c = oom.Counters(s)
    assert c.check(0.0) is None
    s.oom_control = V1.replace("oom_kill 3", "oom_kill 4")
    c.refresh(1.0)                          # the guard sees the kill before the reap does
    assert c.check(2.0) == ("cgroup", 3, 4)  # ...and the death still gets it
    assert c.check(2.5) is None              # once only
    s.oom_control = V1.replace("oom_kill 3", "oom_kill 5")
    c.refresh(3.0)
    assert c.check(3.0 + oom.PENDING + 1) is None   # too old to be this death's


def test_the_host_counter_only_where_the_cgroup_has_none():
    s = FakeSampler()
    s.oom_control = OLD_V1                  # a kernel before 4.13: no oom_kill line
    c = oom.Counters(s)
    assert c.last == {"cgroup": None, "host": 13}
    s.vmstat = VMSTAT.replace("oom_kill 13", "oom_kill 14")
    assert c.check(1.0) == ("host", 13, 14)
    s.oom_control = V1                      # with a cgroup counter the host's is not even read
    s.vmstat = None
    c.refresh(2.0)
    assert c.last == {"cgroup": 3, "host": None}
