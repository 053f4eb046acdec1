"""dynos.py: the size table against Heroku's published numbers, and name lookup."""
import pytest

from supervisor.observe import dynos

MB = 1 << 20


@pytest.mark.parametrize("name, canonical, quota, tasks, cpus, workers", [
    ("eco", "eco", 536870912, 256, 1, 2),
    ("Basic", "basic", 536870912, 256, 1, 2),
    ("standard-1x", "standard-1x", 536870912, 256, 1, 2),
    ("Standard-1X", "standard-1x", 536870912, 256, 1, 2),
    ("1X", "standard-1x", 536870912, 256, 1, 2),
    (" standard_1x ", "standard-1x", 536870912, 256, 1, 2),
    ("hobby", "basic", 536870912, 256, 1, 2),
    ("free", "eco", 536870912, 256, 1, 2),
    ("2X", "standard-2x", 1073741824, 512, 2, 4),
    ("Standard-2X", "standard-2x", 1073741824, 512, 2, 4),
    # the byte values Heroku's support article shows from memory.limit_in_bytes
    ("Performance-M", "performance-m", 2684354560, 16384, 2, 5),
    ("performance-l", "performance-l", 15032385536, 32768, 8, 17),
    ("performance-l-ram", "performance-l-ram", 30 << 30, 24576, 4, 9),
    ("performance-xl", "performance-xl", 62 << 30, 32768, 8, 17),
    ("Performance-2XL", "performance-2xl", 126 << 30, 65536, 16, 33),
    ("private-s", "private-s", 1 << 30, 512, 2, 4),
    ("Shield-M", "shield-m", 2684354560, 16384, 2, 5),
    ("private-2xl", "private-2xl", 126 << 30, 65536, 16, 33),
])
def test_lookup(name, canonical, quota, tasks, cpus, workers):
    d = dynos.lookup(name)
    assert (d.name, d.quota, d.tasks, d.cpus, d.workers) == (canonical, quota, tasks, cpus, workers)


@pytest.mark.parametrize("name", ["standard-3x", "", "px", "performance"])
def test_lookup_unknown_names_the_valid_ones(name):
    with pytest.raises(ValueError) as e:
        dynos.lookup(name)
    assert str(e.value).startswith("unknown dyno size %r; valid sizes: eco, basic, standard-1x, " % name)
    assert "performance-2xl" in str(e.value) and "1x, 2x" in str(e.value)


@pytest.mark.parametrize("d", dynos.DYNOS, ids=lambda d: d.name)
def test_default_workers_follow_herokus_rule(d):
    # the Python buildpack: min(RAM MB / 256, 2 * cores + 1); holds for every row
    assert d.workers == min(d.quota // MB // 256, 2 * d.cpus + 1)


def test_shared_dynos_are_the_standard_tiers():
    assert [d.name for d in dynos.DYNOS if not d.dedicated] == ["eco", "basic", "standard-1x", "standard-2x"]


def test_groups():
    assert [names for names, _ in dynos.groups()] == [
        ("eco", "basic", "standard-1x"),
        ("standard-2x", "private-s", "shield-s"),
        ("performance-m", "private-m", "shield-m"),
        ("performance-l", "private-l", "shield-l"),
        ("performance-l-ram", "private-l-ram", "shield-l-ram"),
        ("performance-xl", "private-xl", "shield-xl"),
        ("performance-2xl", "private-2xl", "shield-2xl"),
    ]


@pytest.mark.parametrize("args, cpus", [
    (["--dyno-size", "standard-1x"], "1 CPU (dyno size standard-1x)"),
    (["--dyno-size", "performance-l"], "8 CPUs (dyno size performance-l)"),
])
def test_advice_counts_the_dyno_sizes_cpus_not_the_hosts(args, cpus):
    """nproc shows the host's cores on a shared dyno: with a size given, its compute counts."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "supervisor", "check-config", "supervisor.demo"] + args,
                         capture_output=True, text=True).stdout
    assert "limited by cpu: %s keep" % cpus in out, out
