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

HEAD = 'dyno size                                         memory cpus  tasks workers threads limited by   projected'
FOOT = [
    "projected = master and shared + workers x private, kept under 85% of each quota; workers bounded "
    "by cpus / (cpu_busy_share x threads) + 1 and by 80% of the task limit"]

# master 8MB own, 36MB shared, 4 workers of 110MB own: (435.2 - 44) / 110 = 3.56 on 512MB
PYFORK_TABLE = "\n".join([
    "web.1: 4 workers, about 110MB private each, master and shared 44MB, no cpu_busy_share in the log (taken as 0.5); from pyfork's per-worker lines",
    '',
    'dyno size                                         memory cpus  tasks workers threads limited by   projected',
    'eco, basic, standard-1x                        *   512MB    1    256       3       1 memory       374MB 73%',
    'standard-2x, private-s, shield-s                     1GB    2    512       5       1 cpu          594MB 58%',
    'performance-m, private-m, shield-m                 2.5GB    2  16384       5       1 cpu          594MB 23%',
    'performance-l, private-l, shield-l                  14GB    8  32768      17       1 cpu         1914MB 13%',
    'performance-l-ram, private-l-ram, shield-l-ram      30GB    4  24576       9       1 cpu          1034MB 3%',
    'performance-xl, private-xl, shield-xl               62GB    8  32768      17       1 cpu          1914MB 3%',
    'performance-2xl, private-2xl, shield-2xl           126GB   16  65536      33       1 cpu          3674MB 3%',
    '',
    '* current: memory_quota 512MB in the log; as the live line says it with --dyno-size standard-1x:',
    '  4 workers use 484MB of 512MB; each costs about 110MB private, master and shared 44MB; limited by memory: 3 fit under 85% of 512MB (quota from dyno size standard-1x); projected 374MB (73% of the quota): set WEB_CONCURRENCY=3 or use a larger dyno, before an R14 (memory quota exceeded)',
] + FOOT) + "\n"

# web.1's last memory_total 412.00MB over 2 workers: 206MB each, nothing fixed; 435.2 / 206 = 2.11
HEROKU_TABLE = "\n".join([
    'web.1: 2 workers, about 206MB private each, master and shared 0MB, no cpu_busy_share in the log (taken as 0.5); estimated as memory_total / 2 workers, an upper bound: the master and shared memory are counted in every worker',
    'also in the log: web.2 (choose with --source)',
    '',
    'dyno size                                         memory cpus  tasks workers threads limited by   projected',
    'eco, basic, standard-1x                        *   512MB    1    256       2       1 memory       412MB 80%',
    'standard-2x, private-s, shield-s                     1GB    2    512       4       1 memory       824MB 80%',
    'performance-m, private-m, shield-m                 2.5GB    2  16384       5       1 cpu         1030MB 40%',
    'performance-l, private-l, shield-l                  14GB    8  32768      17       1 cpu         3502MB 24%',
    'performance-l-ram, private-l-ram, shield-l-ram      30GB    4  24576       9       1 cpu          1854MB 6%',
    'performance-xl, private-xl, shield-xl               62GB    8  32768      17       1 cpu          3502MB 6%',
    'performance-2xl, private-2xl, shield-2xl           126GB   16  65536      33       1 cpu          6798MB 5%',
    '',
    '* current: memory_quota 512MB in the log; as the live line says it with --dyno-size standard-1x:',
    '  2 workers use 412MB of 512MB; each costs about 206MB private, master and shared 0MB; limited by memory: 2 fit under 85% of 512MB (quota from dyno size standard-1x); projected 412MB (80% of the quota): set WEB_CONCURRENCY=2',
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
    # (107 + 110) / 2; the others (104 + 107 + 110) / 3: 107.375MB mean; 44 + 3 x 107.375 = 366
    ([PYFORK, "--last", "3"],
     "web.1: 4 workers, about 107MB private each, master and shared 44MB, no cpu_busy_share in the log "
     "(taken as 0.5); from pyfork's per-worker lines",
     {"eco, basic, standard-1x": ["*", "512MB", "1", "256", "3", "1", "memory", "366MB", "72%"]}),
    # 99% of the quota: (506.9 - 44) / 110 = 4.2 fit, the 1x share bounds it at 3
    ([PYFORK, "--share", "99"], None,
     {"eco, basic, standard-1x": ["*", "512MB", "1", "256", "3", "1", "cpu", "374MB", "73%"]}),
    ([PYFORK, "--cpus", "4"], None,
     {"standard-2x, private-s, shield-s": ["1GB", "4", "512", "7", "1", "memory", "814MB", "79%"],
      "performance-m, private-m, shield-m": ["2.5GB", "4", "16384", "9", "1", "cpu", "1034MB", "40%"]}),
    # --threads 4: each worker keeps 4 x 0.5 CPUs busy, so 1 / 2 -> 1, + 1 = 2 on a 1x share
    ([PYFORK, "--threads", "4"], None,
     {"eco, basic, standard-1x": ["*", "512MB", "1", "256", "2", "4", "cpu", "264MB", "52%"]}),
    # web.2's last memory_total 302.10MB over 2 workers; 435.2 / 151.05 = 2.88
    ([HEROKU, "--workers", "2", "--source", "web.2"],
     "web.2: 2 workers, about 151MB private each, master and shared 0MB, no cpu_busy_share in the log "
     "(taken as 0.5); estimated as memory_total / 2 workers, an upper bound: the master and shared "
     "memory are counted in every worker",
     {"eco, basic, standard-1x": ["*", "512MB", "1", "256", "2", "1", "memory", "302MB", "59%"]}),
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
    ([PYFORK, "--threads", "0"], "error: --threads must be 1 or more"),
    ([PYFORK, "--share", "100"], "error: --share must be a percent between 0 and 100"),
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
    assert out.splitlines()[0] == ("web.1: 2 workers, about 100MB private each, master and shared 0MB, "
                                   "no cpu_busy_share in the log (taken as 0.5); from pyfork's per-worker lines")
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


def test_table_reads_the_busy_share_and_threads_and_suggests_threads():
    waiting = [parse_line("source=web.1 worker=%d pid=%d sample#memory_rss=60.00MB sample#memory_uss=30.00MB "
                          "sample#memory_pss=30.00MB sample#cpu_busy_share=%s" % (i, 10 + i, share))
               for i, share in ((0, "0.16"), (1, "0.20"))]
    out = advise.table(waiting + [parse_line("source=web.1 sample#workers=2 sample#app_threads=1")])
    assert "cpu_busy_share 0.18;" in out.splitlines()[0]
    # 1 CPU at 0.18: 1 / 0.18 -> 6, + 1 = 7 workers on the 1x share
    assert row(out, "eco, basic, standard-1x")[:7] == ["512MB", "1", "256", "7", "1", "cpu", "210MB"]
    assert out.splitlines()[-1] == ("requests spend 82% of their time waiting: --threads 4 would serve 4x "
                                    "the requests in the same memory")
    threaded = advise.table(waiting + [parse_line("source=web.1 sample#workers=2 sample#app_threads=4")])
    # 1 / (0.18 x 4) -> 2, + 1 = 3; no suggestion once threaded
    assert row(threaded, "eco, basic, standard-1x")[:6] == ["512MB", "1", "256", "3", "4", "cpu"]
    assert "--threads 4 would" not in threaded
