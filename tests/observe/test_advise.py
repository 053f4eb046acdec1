"""`pyfork advise` on captured logs: pyfork's own lines and Heroku's log-runtime-metrics."""
import io
import os

import pytest

from conftest import FIXTURES

from supervisor.observe import advise
from supervisor.observe.metrics import parse_line

LOGS = os.path.join(FIXTURES, "logs")
PYFORK = os.path.join(LOGS, "pyfork-metrics.txt")
HEROKU = os.path.join(LOGS, "heroku-logs.txt")

HEAD = "dyno size                                         memory cpus workers limited by     used           left"
FOOT = ["", "* current: memory_quota 512MB in the log",
        "kept free: 10% of each quota; workers bounded by 2 x cpus + 1"]

# master 8MB own, 36MB shared, 4 workers of 110MB own: (460.8 - 44) / 110 = 3.79 on 512MB
PYFORK_TABLE = "\n".join([
    "web.1: 4 workers, about 110MB private each, master and shared 44MB; from pyfork's per-worker lines",
    "",
    HEAD,
    "eco, basic, standard-1x                        *   512MB    1       3 memory        374MB    138MB (27%)",
    "standard-2x, private-s, shield-s                     1GB    2       5 cpu           594MB    430MB (42%)",
    "performance-m, private-m, shield-m                 2.5GB    2       5 cpu           594MB   1966MB (77%)",
    "performance-l, private-l, shield-l                  14GB    8      17 cpu          1914MB  12422MB (87%)",
    "performance-l-ram, private-l-ram, shield-l-ram      30GB    4       9 cpu          1034MB  29686MB (97%)",
    "performance-xl, private-xl, shield-xl               62GB    8      17 cpu          1914MB  61574MB (97%)",
    "performance-2xl, private-2xl, shield-2xl           126GB   16      33 cpu          3674MB 125350MB (97%)",
] + FOOT) + "\n"

# web.1's last memory_total 412.00MB over 2 workers: 206MB each, nothing fixed
HEROKU_TABLE = "\n".join([
    "web.1: 2 workers, about 206MB private each, master and shared 0MB; estimated as memory_total / 2 "
    "workers, an upper bound: the master and shared memory are counted in every worker",
    "also in the log: web.2 (choose with --source)",
    "",
    HEAD,
    "eco, basic, standard-1x                        *   512MB    1       2 memory        412MB    100MB (20%)",
    "standard-2x, private-s, shield-s                     1GB    2       4 memory        824MB    200MB (20%)",
    "performance-m, private-m, shield-m                 2.5GB    2       5 cpu          1030MB   1530MB (60%)",
    "performance-l, private-l, shield-l                  14GB    8      17 cpu          3502MB  10834MB (76%)",
    "performance-l-ram, private-l-ram, shield-l-ram      30GB    4       9 cpu          1854MB  28866MB (94%)",
    "performance-xl, private-xl, shield-xl               62GB    8      17 cpu          3502MB  59986MB (94%)",
    "performance-2xl, private-2xl, shield-2xl           126GB   16      33 cpu          6798MB 122226MB (95%)",
] + FOOT) + "\n"


@pytest.mark.parametrize("argv, out", [
    ([PYFORK], PYFORK_TABLE),
    ([HEROKU, "--workers", "2"], HEROKU_TABLE),
])
def test_tables(capsys, argv, out):
    assert advise.main(argv) == 0
    got = capsys.readouterr()
    assert got.out == out
    assert got.err == ""


def row(out, name):
    return next(line.split()[len(name.split()):] for line in out.splitlines() if line.startswith(name + " "))


@pytest.mark.parametrize("argv, first, rows", [
    # worker 2 was replaced after the first round: only its new pid's two samples are averaged,
    # (107 + 110) / 2; the others (104 + 107 + 110) / 3: 107.375MB mean, 473.5MB used
    ([PYFORK, "--last", "3"],
     "web.1: 4 workers, about 107MB private each, master and shared 44MB; from pyfork's per-worker lines",
     {"eco, basic, standard-1x": ["*", "512MB", "1", "3", "memory", "366MB", "146MB", "(28%)"]}),
    # no headroom: 4 fit in 512MB, the 1x share bounds it at 3
    ([PYFORK, "--headroom", "0"], None,
     {"eco, basic, standard-1x": ["*", "512MB", "1", "3", "cpu", "374MB", "138MB", "(27%)"]}),
    ([PYFORK, "--cpus", "4"], None,
     {"standard-2x, private-s, shield-s": ["1GB", "4", "7", "memory", "814MB", "210MB", "(21%)"],
      "performance-m, private-m, shield-m": ["2.5GB", "4", "9", "cpu", "1034MB", "1526MB", "(60%)"]}),
    # web.2's last memory_total 302.10MB over 2 workers; (460.8 / 151.05) = 3.05
    ([HEROKU, "--workers", "2", "--source", "web.2"],
     "web.2: 2 workers, about 151MB private each, master and shared 0MB; estimated as memory_total "
     "/ 2 workers, an upper bound: the master and shared memory are counted in every worker",
     {"eco, basic, standard-1x": ["*", "512MB", "1", "3", "memory", "453MB", "59MB", "(11%)"]}),
])
def test_options(capsys, argv, first, rows):
    assert advise.main(argv) == 0
    out = capsys.readouterr().out
    if first:
        assert out.splitlines()[0] == first
    for name, cells in rows.items():
        assert row(out, name) == cells


def test_reads_standard_input(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(open(HEROKU).read()))
    assert advise.main(["-", "--workers", "2"]) == 0
    assert capsys.readouterr().out == HEROKU_TABLE


@pytest.mark.parametrize("argv, err", [
    ([HEROKU], HEROKU + ": the log has only dyno-wide lines (Heroku's memory_total, no per-worker "
               "lines): give the worker count they were measured with, --workers N (the app's WEB_CONCURRENCY)"),
    ([os.path.join(LOGS, "missing.txt")], "cannot read %s: No such file or directory" % os.path.join(LOGS, "missing.txt")),
    ([LOGS], "cannot read %s: Is a directory" % LOGS),
    ([__file__], __file__ + ": no memory samples found (expected pyfork's or Heroku's "
                            "log-runtime-metrics lines: source=... sample#memory_...)"),
    ([PYFORK, "--source", "web.9"], PYFORK + ": no memory samples for source web.9; seen: web.1"),
    ([HEROKU, "--workers", "0"], "error: --workers must be 1 or more"),
])
def test_errors_are_one_line_and_exit_2(capsys, argv, err):
    assert advise.main(argv) == 2
    got = capsys.readouterr()
    assert got.out == ""
    assert got.err == "pyfork advise: %s\n" % err


def test_bad_flag_exits_2(capsys):
    assert advise.main([PYFORK, "--last", "x"]) == 2
    assert capsys.readouterr().err.startswith("pyfork advise: error: argument --last")


def worker_line(slot, pid, uss):
    return parse_line("source=web.1 worker=%d pid=%d sample#memory_rss=%d.00MB sample#memory_uss=%d.00MB "
                      "sample#memory_pss=%d.00MB" % (slot, pid, uss + 30, uss, uss))


def test_table_keeps_only_live_slots():
    # three slots seen, then TTOU: the tasks line says 2 workers; slot 2's lines are the oldest
    samples = [worker_line(2, 12, 500), None, worker_line(0, 10, 100), worker_line(1, 11, 100),
               parse_line("source=web.1 sample#tasks=5 sample#workers=2")]
    out = advise.table(samples)
    assert out.splitlines()[0] == ("web.1: 2 workers, about 100MB private each, master and shared 0MB; "
                                   "from pyfork's per-worker lines")
    assert out.splitlines()[-2] == "no memory_quota in the log: the current size is not marked"
    assert "*" not in out


def test_table_with_a_quota_of_no_heroku_size():
    samples = [worker_line(0, 10, 100),
               parse_line("source=web.1 dyno=d sample#memory_total=130.00MB sample#memory_quota=768.00MB")]
    out = advise.table(samples)
    assert out.splitlines()[-2] == "memory_quota 768MB in the log matches no Heroku size"
    assert "*" not in out


@pytest.mark.parametrize("lines, message", [
    ([None, "source=DATABASE sample#db_size=10bytes"], "no memory samples found"),
    (["source=web.1 process=master pid=4 sample#memory_rss=40.00MB"], "no worker lines and no memory_total"),
])
def test_table_without_samples(lines, message):
    with pytest.raises(advise.NoAdvice) as e:
        advise.table([line and parse_line(line) for line in lines])
    assert str(e.value).startswith(message)
