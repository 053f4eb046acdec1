"""metrics.py: the line format, byte for byte, and reading lines back. Pure: no processes."""
import ast
import json
import os

import pytest

from supervisor.observe import metrics
from supervisor.observe.metrics import MB, DynoSample, ProcSample, parse_line

HERE = os.path.dirname(os.path.abspath(__file__))


def B(mb):
    """Bytes that print as exactly `mb` MB."""
    return round(mb * MB)


DYNO = DynoSample(total=B(21.00), rss=B(21.22), cache=0, swap=0, pgpgin=348836, pgpgout=343403,
                  quota=512 * MB, quota_source="cgroup", tasks=37, tasks_max=256, load=(2.46, 1.06, 0.99))
V2_DYNO = DynoSample(total=B(180.6), rss=B(168.61), cache=B(8), swap=None, pgpgin=None, pgpgout=None,
                     quota=None, quota_source="machine", tasks=None, tasks_max=None, load=(0.0, 0.05, 1.5))
WORKER = ProcSample(slot=3, pid=4242, rss=B(88.32), pss=B(51.5), uss=B(44.01), swap=0, threads=2,
                    fds=9, children=0, zombies=0, requests=1234, cpu=1.25, uptime=60.7)
MASTER = ProcSample(slot=-1, pid=41, rss=B(40), pss=None, uss=None, swap=None, threads=1, fds=7,
                    children=5, zombies=1, requests=0, cpu=0.5, uptime=3600.0)


@pytest.mark.parametrize("n, text", [
    (0, "0.00MB"),
    (92610232, "88.32MB"),             # Heroku's own sample value
    (512 * MB, "512.00MB"),
    (5242, "0.00MB"),                  # 0.004999 MB
    (5243, "0.01MB"),                  # 0.005000 MB rounds up
    (15032385536, "14336.00MB"),       # performance-l's quota
])
def test_mb(n, text):
    assert metrics.mb(n) == text


def test_pages():
    assert metrics.pages(348836) == "348836pages"


@pytest.mark.parametrize("d, lines", [
    (DYNO, [
        "source=web.1 dyno=heroku.x sample#memory_total=21.00MB sample#memory_rss=21.22MB "
        "sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages "
        "sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB",
        "source=web.1 dyno=heroku.x sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99",
    ]),
    # cgroup v2: no swap file, no pgpg counters, no limit -> those keys are left out
    (V2_DYNO, [
        "source=web.1 dyno=heroku.x sample#memory_total=180.60MB sample#memory_rss=168.61MB "
        "sample#memory_cache=8.00MB",
        "source=web.1 dyno=heroku.x sample#load_avg_1m=0.00 sample#load_avg_5m=0.05 sample#load_avg_15m=1.50",
    ]),
])
def test_dyno_lines(d, lines):
    assert metrics.dyno_lines("web.1", "heroku.x", d) == lines


@pytest.mark.parametrize("p, line", [
    (WORKER, "source=web.1 worker=3 pid=4242 sample#memory_rss=88.32MB sample#memory_pss=51.50MB "
             "sample#memory_uss=44.01MB sample#memory_swap=0.00MB sample#threads=2 sample#fds=9 "
             "sample#children=0 sample#zombies=0 sample#requests=1234 sample#cpu_seconds=1.25 "
             "sample#uptime_seconds=60"),
    (MASTER, "source=web.1 process=master pid=41 sample#memory_rss=40.00MB sample#threads=1 "
             "sample#fds=7 sample#children=5 sample#zombies=1 sample#requests=0 "
             "sample#cpu_seconds=0.50 sample#uptime_seconds=3600"),
])
def test_process_line(p, line):
    assert metrics.process_line("web.1", p) == line


@pytest.mark.parametrize("d, workers, advised, line", [
    (DYNO, 4, 6, "source=web.1 sample#tasks=37 sample#tasks_max=256 sample#workers=4 sample#workers_advised=6 "
              "quota_from=cgroup"),
    (V2_DYNO, 4, None, "source=web.1 sample#workers=4 quota_from=machine"),
])
def test_tasks_line(d, workers, advised, line):
    assert metrics.tasks_line("web.1", d, workers, advised) == line
    assert metrics.quota_from(line) == d.quota_source == metrics.quota_from(metrics.as_json(line))


HEROKU_MEMORY = ("2026-11-27T06:00:00.000000+00:00 heroku[web.1]: source=web.1 dyno=heroku.123.abc "
                 "sample#memory_total=212.50MB sample#memory_rss=210.00MB sample#memory_cache=2.50MB "
                 "sample#memory_swap=0.00MB sample#memory_pgpgin=348836pages "
                 "sample#memory_pgpgout=343403pages sample#memory_quota=512.00MB")


def head(source="web.1", dyno=None, worker=None, process=None, pid=None, **samples):
    return {"source": source, "dyno": dyno, "worker": worker, "process": process, "pid": pid,
            "samples": samples}


@pytest.mark.parametrize("text, parsed", [
    (HEROKU_MEMORY, head(dyno="heroku.123.abc", memory_total=B(212.5), memory_rss=B(210),
                         memory_cache=B(2.5), memory_swap=0, memory_pgpgin=348836,
                         memory_pgpgout=343403, memory_quota=512 * MB)),
    ("2026-11-27T06:00:00+00:00 heroku[web.1]: source=web.1 dyno=heroku.123.abc "
     "sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99",
     head(dyno="heroku.123.abc", load_avg_1m=2.46, load_avg_5m=1.06, load_avg_15m=0.99)),
    # pyfork's error-log prefix
    ("[2026-11-27 06:00:00 +0000] [42] [INFO] source=web.1 worker=3 pid=4242 "
     "sample#memory_rss=88.32MB sample#threads=2 sample#cpu_seconds=1.25 sample#uptime_seconds=60",
     head(worker=3, pid=4242, memory_rss=B(88.32), threads=2, cpu_seconds=1.25, uptime_seconds=60)),
    # pyfork's line as `heroku logs` shows app output
    ("2026-11-27T06:00:00.5+00:00 app[web.1]: [2026-11-27 06:00:00 +0000] [42] [INFO] "
     "source=web.1 process=master pid=42 sample#memory_rss=40.00MB",
     head(process="master", pid=42, memory_rss=B(40))),
    ("source=web.1 sample#tasks=37 sample#tasks_max=256 sample#workers=4 sample#workers_advised=6",
     head(tasks=37, tasks_max=256, workers=4, workers_advised=6)),
    # 2013's announcement printed whole megabytes
    ("source=web.1 dyno=d sample#memory_total=21MB", head(dyno="d", memory_total=21 * MB)),
    # an add-on's line: other units, kept as they are; `advise` ignores the source
    ("heroku-postgres[postgresql-x]: source=DATABASE addon=postgresql-x sample#db_size=9711247bytes "
     "sample#memory-total=3944212kB sample#load-avg-1m=0.015 sample#note=hello",
     head(source="DATABASE", db_size=9711247, **{"memory-total": 3944212 * 1024, "load-avg-1m": 0.015})),
    ("2026-11-27T06:00:02+00:00 heroku[router]: at=info method=GET path=\"/\" dyno=web.1 "
     "connect=0ms service=41ms status=200", None),
    ("[2026-11-27 06:00:00 +0000] [42] [INFO] worker 3 booted (pid 4242)", None),
    ("source=web.1 dyno=heroku.x", None),                 # no samples
    ("datasource=web.1 sample#x=1", None),                # `source=` inside another key
    ("", None),
])
def test_parse_line(text, parsed):
    assert parse_line(text) == parsed


@pytest.mark.parametrize("p", [WORKER, MASTER])
def test_process_line_reads_back(p):
    back = metrics.proc_sample(parse_line(metrics.process_line("web.1", p)))
    assert back == ProcSample(**{**p.__dict__, "uptime": float(int(p.uptime))})


@pytest.mark.parametrize("text", [HEROKU_MEMORY, "source=web.1 sample#tasks=3"])
def test_proc_sample_needs_a_process_line(text):
    assert metrics.proc_sample(parse_line(text)) is None


@pytest.mark.parametrize("line, obj", [
    (metrics.process_line("web.1", WORKER),
     {"source": "web.1", "worker": 3, "pid": 4242, "memory_rss_mb": 88.32, "memory_pss_mb": 51.5,
      "memory_uss_mb": 44.01, "memory_swap_mb": 0.0, "threads": 2, "fds": 9, "children": 0,
      "zombies": 0, "requests": 1234, "cpu_seconds": 1.25, "uptime_seconds": 60}),
    (metrics.dyno_lines("web.1", "heroku.x", DYNO)[0],
     {"source": "web.1", "dyno": "heroku.x", "memory_total_mb": 21.0, "memory_rss_mb": 21.22,
      "memory_cache_mb": 0.0, "memory_swap_mb": 0.0, "memory_pgpgin_pages": 348836,
      "memory_pgpgout_pages": 343403, "memory_quota_mb": 512.0}),
    (metrics.dyno_lines("web.1", "heroku.x", DYNO)[1],
     {"source": "web.1", "dyno": "heroku.x", "load_avg_1m": 2.46, "load_avg_5m": 1.06, "load_avg_15m": 0.99}),
    ("source=web.1 process=master pid=41 sample#memory_rss=40.00MB",
     {"source": "web.1", "process": "master", "pid": 41, "memory_rss_mb": 40.0}),
])
def test_as_json(line, obj):
    text = metrics.as_json(line)
    assert json.loads(text) == obj
    assert list(json.loads(text)) == list(obj)        # same order as the text line
    assert "\n" not in text and " " not in text        # one compact JSON line


PURE = ["metrics", "sizing", "dynos", "cgroup"]
FORBIDDEN = {"os", "socket", "select", "signal", "time", "mmap", "psutil", "subprocess", "threading"}


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_nothing_that_acts(name):
    path = os.path.join(HERE, "..", "..", "supervisor", "observe", name + ".py")
    tree = ast.parse(open(path).read())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            assert node.module in PURE, "%s imports .%s, which is not pure" % (name, node.module)
    assert not imported & FORBIDDEN
