"""prometheus.py: every number reads back through prometheus_client's parser; a value not
measured is absent, never 0. Pure: no processes, no sockets."""
import ast
import dataclasses
import math
import pathlib

import pytest
from prometheus_client.parser import text_string_to_metric_families

from supervisor.observe import prometheus
from supervisor.observe.metrics import MB, DynoSample, ProcSample

MASTER = ProcSample(slot=-1, pid=41, rss=40 * MB, pss=None, uss=None, swap=None, threads=1, fds=7,
                    children=3, zombies=1, requests=0, cpu=0.5, uptime=3600.0)
W0 = ProcSample(slot=0, pid=4240, rss=92610232, pss=54001664, uss=46147584, swap=0, threads=2,
                fds=9, children=0, zombies=0, requests=1234, cpu=1.25, uptime=60.7)
W1 = dataclasses.replace(W0, slot=1, pid=4241, rss=80 * MB, pss=None, uss=None, swap=None, requests=7, cpu=0.01)
DYNO = DynoSample(total=22020096, rss=22250783, cache=0, swap=0, pgpgin=348836, pgpgout=343403,
                  quota=512 * MB, quota_source="cgroup", tasks=37, tasks_max=256, load=(2.46, 1.06, 0.99))
V2_DYNO = DynoSample(total=180 * MB, rss=168 * MB, cache=8 * MB, swap=None, pgpgin=None, pgpgout=None,
                     quota=None, quota_source="machine", tasks=None, tasks_max=None, load=(0.0, 0.05, 1.5))
EMPTY_DYNO = DynoSample(total=None, rss=None, cache=None, swap=None, pgpgin=None, pgpgout=None, quota=None,
                        quota_source="machine", tasks=None, tasks_max=None, load=(None, None, None))

PROCESS_FIELDS = {name: field for name, _, _, field in prometheus.PROCESS}
DYNO_FIELDS = {name: field for name, _, _, field in prometheus.DYNO}


def parse(text):
    """{(sample name, frozenset of labels): value}, checking each family's HELP/TYPE on the way."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.documentation, fam.name
        assert fam.type in ("gauge", "counter"), fam.name
        for s in fam.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, key
            out[key] = s.value
    return out


def expected(master, workers, dyno, advised, restarts, target):
    """What render must say, built from the inputs independently of render's own loops."""
    out = {}
    for p in ([master] if master else []) + list(workers):
        labels = frozenset({"worker": "master" if p.slot < 0 else str(p.slot), "pid": str(p.pid)}.items())
        for name, field in PROCESS_FIELDS.items():
            if getattr(p, field) is not None:
                out[(name, labels)] = getattr(p, field)
    out[("pyfork_workers", frozenset())] = len(workers)
    out[("pyfork_workers_target", frozenset())] = target
    if advised is not None:
        out[("pyfork_workers_advised", frozenset())] = advised
    for reason in set(prometheus.RESTART_REASONS) | set(restarts):
        out[("pyfork_worker_restarts_total", frozenset({"reason": reason}.items()))] = restarts.get(reason, 0)
    if dyno is not None:
        for name, field in DYNO_FIELDS.items():
            if getattr(dyno, field) is not None:
                out[(name, frozenset())] = getattr(dyno, field)
        if dyno.quota is not None:
            out[("pyfork_dyno_memory_quota_bytes", frozenset({"source": dyno.quota_source}.items()))] = dyno.quota
        for period, v in zip(("1m", "5m", "15m"), dyno.load):
            if v is not None:
                out[("pyfork_load_average", frozenset({"period": period}.items()))] = v
    return out


CASES = [
    # id, master, workers, dyno, advised, restarts, target
    ("everything measured", MASTER, [W0], DYNO, 3, {"crash": 2, "memory": 1}, 4),
    ("pss/uss/swap unreadable for one worker", MASTER, [W0, W1], DYNO, 3, {}, 2),
    ("only workers without smaps_rollup", MASTER, [W1], DYNO, None, {}, 1),
    ("cgroup v2 without limit or pgpg counters", MASTER, [W0], V2_DYNO, None, {"timeout": 5}, 1),
    ("platform says nothing", MASTER, [W0], EMPTY_DYNO, None, {}, 1),
    ("no dyno sample", MASTER, [W0, W1], None, None, {"reload": 2}, 2),
    ("no workers alive", MASTER, [], DYNO, 2, {"crash": 9}, 2),
    ("no master sample", None, [W0], None, 1, {}, 1),
    ("a reason outside the known list", MASTER, [W0], None, 1, {"oom-guess": 1}, 1),
]


@pytest.mark.parametrize("master, workers, dyno, advised, restarts, target",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_value_round_trips_and_unmeasured_ones_are_absent(master, workers, dyno, advised, restarts, target):
    text = prometheus.render(master, workers, dyno, advised, restarts, target)
    assert parse(text) == expected(master, workers, dyno, advised, restarts, target)


@pytest.mark.parametrize("master, workers, dyno, advised, restarts, target",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_format_help_and_type_once_before_their_samples(master, workers, dyno, advised, restarts, target):
    text = prometheus.render(master, workers, dyno, advised, restarts, target)
    assert text.endswith("\n") and not text.endswith("\n\n")
    declared = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            declared.append(line.split()[2])
        elif line.startswith("# TYPE "):
            assert line.split()[2] == declared[-1]
        else:
            assert line.startswith(declared[-1] + "{") or line.startswith(declared[-1] + " "), line
    assert len(declared) == len(set(declared))
    assert all(name.startswith("pyfork_") for name in declared)
    # a family with nothing to say is left out whole, not declared empty
    assert all(any(not line.startswith("#") and line.split("{")[0].split()[0] == name
                   for line in text.splitlines()) for name in declared)


def test_unmeasured_memory_is_absent_not_zero():
    text = prometheus.render(MASTER, [W1], None, None, {}, 1)
    assert "pyfork_memory_pss_bytes" not in text
    assert "pyfork_memory_uss_bytes" not in text
    assert "pyfork_dyno_" not in text
    assert "pyfork_workers_advised" not in text


def test_counters_are_typed_counter_and_gauges_gauge():
    text = prometheus.render(MASTER, [W0], DYNO, 3, {}, 1)
    types = {fam.name: fam.type for fam in text_string_to_metric_families(text)}
    # the parser names a counter family without its _total
    assert types["pyfork_requests"] == types["pyfork_cpu_seconds"] == "counter"
    assert types["pyfork_worker_restarts"] == types["pyfork_dyno_memory_pgpgin_pages"] == "counter"
    assert types["pyfork_memory_rss_bytes"] == types["pyfork_uptime_seconds"] == "gauge"
    assert types["pyfork_load_average"] == types["pyfork_dyno_tasks_max"] == "gauge"


@pytest.mark.parametrize("value", [
    'plain', 'quote"d', 'back\\slash', 'new\nline', '\\"\n', 'ünï\u2603', '', '{a="b"} 1',
])
def test_label_values_are_escaped_and_read_back(value):
    dyno = dataclasses.replace(DYNO, quota_source=value)
    got = parse(prometheus.render(MASTER, [], dyno, None, {value: 3}, 0))
    assert got[("pyfork_worker_restarts_total", frozenset({"reason": value}.items()))] == 3
    assert got[("pyfork_dyno_memory_quota_bytes", frozenset({"source": value}.items()))] == 512 * MB


@pytest.mark.parametrize("text, line", [
    ("a\\b", "# HELP x a\\\\b"),
    ("two\nlines", "# HELP x two\\nlines"),
    ('quotes "stay"', '# HELP x quotes "stay"'),
])
def test_help_escaping(text, line):
    assert prometheus.family("x", "gauge", text, [((), 1)])[0] == line


@pytest.mark.parametrize("value, text", [
    (0, "0"),
    (15032385536, "15032385536"),
    (1.25, "1.25"),
    (0.1, "0.1"),
    (1e300, "1e+300"),
    (3600.0, "3600.0"),
    (float("inf"), "+Inf"),
    (float("-inf"), "-Inf"),
    (float("nan"), "NaN"),
])
def test_number(value, text):
    assert prometheus.number(value) == text
    back = parse("# HELP x x\n# TYPE x gauge\nx %s\n" % text)[("x", frozenset())]
    assert back == value or (math.isnan(value) and math.isnan(back))


def test_every_known_restart_reason_starts_at_zero():
    got = parse(prometheus.render(MASTER, [W0], None, None, {}, 1))
    reasons = {dict(labels)["reason"]: v for (name, labels), v in got.items()
               if name == "pyfork_worker_restarts_total"}
    assert reasons == dict.fromkeys(prometheus.RESTART_REASONS, 0)


def test_master_first_then_workers_by_slot():
    text = prometheus.render(MASTER, [W1, W0], None, None, {}, 2)
    rss = [line for line in text.splitlines() if line.startswith("pyfork_memory_rss_bytes{")]
    assert rss == ['pyfork_memory_rss_bytes{worker="master",pid="41"} 41943040',
                   'pyfork_memory_rss_bytes{worker="0",pid="4240"} 92610232',
                   'pyfork_memory_rss_bytes{worker="1",pid="4241"} 83886080']


def test_prometheus_module_is_pure():
    # the import-graph test's rule for the pure core, applied here until it lists this module
    tree = ast.parse((pathlib.Path(prometheus.__file__)).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"math"}


def test_restarts_by_slot_and_reason_from_the_ledger():
    got = parse(prometheus.render(MASTER, [W0], None, None, {(0, "oom_kill"): 2, (3, "timeout"): 1}, 2))
    by = {(dict(labels)["slot"], dict(labels)["reason"]): v for (name, labels), v in got.items()
          if name == "pyfork_worker_restarts_total"}
    assert by[("0", "oom_kill")] == 2 and by[("3", "timeout")] == 1      # a slot past the target still shows
    assert by[("1", "max_requests")] == 0                                 # every slot below the target, every reason
    assert set(s for s, _ in by) == {"0", "1", "3"}
    assert len(by) == 3 * len(prometheus.RESTART_REASONS)
