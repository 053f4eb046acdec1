"""cgroup.py on fixture files: v1 captured on this kind of machine (a child cgroup limited
like a standard-1x dyno, 512MB and 256 tasks, running 4 forked workers of 40MB; and an
unlimited one), v2 written from the kernel's cgroup-v2 documentation."""
import os

import pytest

from conftest import FIXTURES

from supervisor.observe import cgroup

FIX = os.path.join(FIXTURES, "cgroup")


def files(*where):
    d = os.path.join(FIX, *where)
    return {name: open(os.path.join(d, name)).read() for name in os.listdir(d)}


def text(name):
    return open(os.path.join(FIX, name)).read()


V1 = {name: ("v1", "/") for name in ("name=systemd", "blkio", "freezer", "devices", "cpuset", "cpuacct", "cpu")}


@pytest.mark.parametrize("fixture, expected", [
    ("proc_self_cgroup_v1", {
        **V1, "pids": ("v1", "/pyfork-fixture"),
        "memory": ("v1", "/process_api/9a82d65551729c0ce35f7a3d92517e9a/pyfork-fixture"),
        "": ("v2", "/")}),
    ("proc_self_cgroup_v2", {
        "": ("v2", "/user.slice/user-1000.slice/user@1000.service/app.slice/pyfork.service")}),
    ("proc_self_cgroup_hybrid", {
        **{n: ("v1", "/system.slice/pyfork.service")
           for n in ("pids", "memory", "cpu", "cpuacct", "blkio", "devices", "name=systemd")},
        **{n: ("v1", "/") for n in ("net_cls", "net_prio", "freezer", "perf_event", "hugetlb", "cpuset", "rdma")},
        "": ("v2", "/system.slice/pyfork.service")}),
])
def test_controllers(fixture, expected):
    assert cgroup.controllers(text(fixture)) == expected


@pytest.mark.parametrize("lines, expected", [
    ("", {}),
    ("garbage\n\n4:memory:/a\n", {"memory": ("v1", "/a")}),
    ("0::/a:b\n", {"": ("v2", "/a:b")}),         # a ':' in the path stays in the path
])
def test_controllers_edges(lines, expected):
    assert cgroup.controllers(lines) == expected


@pytest.mark.parametrize("fixture, controller, dirs", [
    ("proc_self_cgroup_v1", "memory", [
        "/sys/fs/cgroup/memory/process_api/9a82d65551729c0ce35f7a3d92517e9a/pyfork-fixture",
        "/sys/fs/cgroup/memory"]),
    ("proc_self_cgroup_v1", "pids", ["/sys/fs/cgroup/pids/pyfork-fixture", "/sys/fs/cgroup/pids"]),
    ("proc_self_cgroup_hybrid", "memory", ["/sys/fs/cgroup/memory/system.slice/pyfork.service",
                                           "/sys/fs/cgroup/memory"]),
    ("proc_self_cgroup_v2", "pids", [
        "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/pyfork.service",
        "/sys/fs/cgroup"]),
])
def test_directories(fixture, controller, dirs):
    assert cgroup.directories(cgroup.controllers(text(fixture)), controller) == dirs


@pytest.mark.parametrize("ctrls, dirs", [
    ({"": ("v2", "/")}, ["/sys/fs/cgroup"]),                # a container's own namespace
    ({"cpu": ("v1", "/")}, []),                             # no memory controller anywhere
])
def test_directories_edges(ctrls, dirs):
    assert cgroup.directories(ctrls, "memory") == dirs


@pytest.mark.parametrize("value, limit", [
    ("536870912\n", 536870912),
    ("max\n", None),
    ("9223372036854771712\n", None),      # v1 "no limit"
    ("9223372036854775807", None),
    ("-1", None),
    ("", None),
    (None, None),
    ("256", 256),
])
def test_parse_limit(value, limit):
    assert cgroup.parse_limit(value) == limit


def test_parse_stat():
    assert cgroup.parse_stat("cache 8388608\nrss 176803840\nbad line here\nnothing\nneg -1\n") == {
        "cache": 8388608, "rss": 176803840, "neg": -1}


@pytest.mark.parametrize("version, fixture, expected", [
    # captured: memsw == usage, so no swap; total = rss + cache, as Heroku adds it up
    ("v1", ("v1", "dyno"), {"total": 185192448, "rss": 176803840, "cache": 8388608, "swap": 0,
                            "pgpgin": 45221, "pgpgout": 2052, "limit": 536870912, "usage": 186626048, "own": True}),
    # captured: memsw read a moment after usage came out lower; swap stays 0, not negative.
    # pgpg from total_* (this cgroup and its children), not the cgroup's own counters
    ("v1", ("v1", "unlimited"), {"total": 2437120, "rss": 1884160, "cache": 552960, "swap": 0,
                                 "pgpgin": 71059, "pgpgout": 70456, "limit": None, "usage": 4063232, "own": False}),
    ("v2", ("v2", "dyno"), {"total": 189386752, "rss": 176803840, "cache": 8388608, "swap": 4194304,
                            "pgpgin": None, "pgpgout": None, "limit": 536870912, "usage": 186994688, "own": True}),
    # no memory.swap.current (swap accounting off)
    ("v2", ("v2", "unlimited"), {"total": 1847296, "rss": 1716224, "cache": 131072, "swap": None,
                                 "pgpgin": None, "pgpgout": None, "limit": None, "usage": 3305472, "own": False}),
])
def test_memory_from_fixtures(version, fixture, expected):
    assert cgroup.memory(version, files(*fixture)) == expected


STAT_V1 = "cache 100\nrss 1000\nswap 50\npgpgin 7\npgpgout 3\nhierarchical_memory_limit %d\n"


@pytest.mark.parametrize("version, given, expected", [
    # memory.stat unreadable: the kernel's usage is the best total there is
    ("v2", {"memory.current": "4096\n", "memory.max": "8192\n"},
     {"total": 4096, "rss": None, "cache": None, "swap": None, "pgpgin": None, "pgpgout": None,
      "limit": 8192, "usage": 4096, "own": True}),
    ("v1", {}, dict(dict.fromkeys(["total", "rss", "cache", "swap", "pgpgin", "pgpgout", "limit", "usage"]), own=False)),
    # no memsw file (swap accounting off): the stat's own swap; no total_* lines: plain names
    ("v1", {"memory.usage_in_bytes": "2000", "memory.limit_in_bytes": "9223372036854771712",
            "memory.stat": STAT_V1 % 536870912},
     {"total": 1150, "rss": 1000, "cache": 100, "swap": 50, "pgpgin": 7, "pgpgout": 3,
      "limit": 536870912, "usage": 2000, "own": False}),    # the limit set on a parent cgroup: not its own
    ("v1", {"memory.usage_in_bytes": "2000", "memory.limit_in_bytes": "1000000",
            "memory.stat": STAT_V1 % 536870912},
     {"total": 1150, "rss": 1000, "cache": 100, "swap": 50, "pgpgin": 7, "pgpgout": 3,
      "limit": 1000000, "usage": 2000, "own": True}),      # own limit tighter than the parent's
    # workers in child cgroups: total_* count them, the plain names do not
    ("v1", {"memory.stat": "rss 1000\ncache 100\ntotal_rss 3000\ntotal_cache 300\ntotal_swap 30\n"},
     {"total": 3330, "rss": 3000, "cache": 300, "swap": 30, "pgpgin": None, "pgpgout": None,
      "limit": None, "usage": None, "own": False}),
])
def test_memory_partial(version, given, expected):
    assert cgroup.memory(version, given) == expected


@pytest.mark.parametrize("fixture, expected", [
    (("v1", "dyno"), (9, 256)),               # 1 master + 4 workers + their 4 threads
    (("v2", "dyno"), (9, 256)),
    (("v2", "unlimited"), (3, None)),
    (("v1", "unlimited"), (None, None)),      # pids controller at the root: no files
])
def test_tasks(fixture, expected):
    assert cgroup.tasks(files(*fixture)) == expected


def test_files_names_what_the_sampler_reads():
    assert cgroup.FILES == {
        "v2": ["memory.current", "memory.max", "memory.stat", "memory.swap.current", "pids.current", "pids.max"],
        "v1_memory": ["memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat",
                      "memory.memsw.usage_in_bytes"],
        "v1_pids": ["pids.current", "pids.max"],
    }
    for version, d in (("v1_memory", ("v1", "dyno")), ("v1_pids", ("v1", "dyno")), ("v2", ("v2", "dyno"))):
        assert set(cgroup.FILES[version]) <= set(files(*d))


@pytest.mark.parametrize("version, files, cpus", [
    ("v1", {"cpu.cfs_quota_us": "150000\n", "cpu.cfs_period_us": "100000\n"}, 1.5),
    ("v1", {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"}, None),     # no quota
    ("v1", {"cpu.cfs_quota_us": "200000\n"}, None),                                 # period unread
    ("v1", {}, None),
    ("v2", {"cpu.max": "200000 100000\n"}, 2.0),
    ("v2", {"cpu.max": "max 100000\n"}, None),
    ("v2", {"cpu.max": "50000 100000"}, 0.5),
    ("v2", {"cpu.max": "100000 0"}, None),                                          # nonsense period
    ("v2", {}, None),
])
def test_cpu_quota(version, files, cpus):
    assert cgroup.cpu_quota(version, files) == cpus
