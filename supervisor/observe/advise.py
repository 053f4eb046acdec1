"""`pyfork advise [LOG|-]`: how many workers fit each dyno size, from a captured log.

Reads pyfork's metrics lines (per worker and master: the honest USS/PSS numbers) or, from
`heroku logs`, Heroku's own log-runtime-metrics lines (dyno-wide only: then the worker count
they were measured with must be given, and each worker is charged memory_total / workers,
an upper bound, since the master and the shared pages are counted in every worker).
Lines of any other kind are skipped. `table()` is pure; `main()` only reads its input.
"""
import argparse
import dataclasses
import sys

from . import dynos, sizing
from .. import exits
from .dynos import GB
from .metrics import MB, ProcSample, parse_line, proc_sample


class NoAdvice(ValueError):
    """The log cannot support advice; the message says what to do."""


def _mean(samples):
    """The last sample, its memory averaged over the samples of the same process.
    Hazard: a respawned worker keeps its slot but starts small; mixing it with its
    predecessor would halve a leak, so only the last pid's samples count."""
    last = samples[-1]
    same = [s for s in samples if s.pid == last.pid]

    def avg(attr):
        values = [getattr(s, attr) for s in same]
        return None if None in values else round(sum(values) / len(values))
    return dataclasses.replace(last, rss=avg("rss"), pss=avg("pss"), uss=avg("uss"), swap=avg("swap"))


@dataclasses.dataclass
class _Source:
    procs: dict = dataclasses.field(default_factory=dict)    # slot -> [(line no, ProcSample)]
    totals: list = dataclasses.field(default_factory=list)   # memory_total, bytes
    quota: int = None
    workers: int = None                                      # from pyfork's tasks line
    lines: int = 0


def _gather(samples):
    sources = {}
    for n, parsed in enumerate(samples):
        if parsed is None or not parsed.get("source"):
            continue
        s = sources.setdefault(parsed["source"], _Source())
        got = parsed["samples"]
        p = proc_sample(parsed)
        if p is not None:
            s.procs.setdefault(p.slot, []).append((n, p))
        if "memory_total" in got:
            s.totals.append(got["memory_total"])
        if "memory_quota" in got:
            s.quota = got["memory_quota"]
        if "workers" in got:
            s.workers = int(got["workers"])
        s.lines += 1
    # sources with nothing to size by (Postgres, Redis add-on lines) do not count
    return {k: v for k, v in sources.items() if v.procs or v.totals}


def _pick(sources, source):
    if not sources:
        raise NoAdvice("no memory samples found (expected pyfork's or Heroku's "
                       "log-runtime-metrics lines: source=... sample#memory_...)")
    if source is not None:
        if source not in sources:
            raise NoAdvice("no memory samples for source %s; seen: %s" % (source, ", ".join(sources)))
        return source
    # the dyno with per-worker lines, then the one with the most lines
    return max(sources, key=lambda k: (bool(sources[k].procs), sources[k].lines))


def _fleet(s, workers, last):
    """(master, [workers], note) for one source."""
    slots = sorted((k for k in s.procs if k >= 0), key=lambda k: s.procs[k][-1][0])
    if slots:
        master = _mean([p for _, p in s.procs[-1][-last:]]) if -1 in s.procs else None
        if s.workers:
            slots = slots[-s.workers:]     # slots retired by TTOU or a reload leave old lines
        fleet = [_mean([p for _, p in s.procs[k][-last:]]) for k in sorted(slots)]
        return master, fleet, "from pyfork's per-worker lines"
    if not s.totals:
        raise NoAdvice("no worker lines and no memory_total: nothing to size workers by")
    if not workers:
        raise NoAdvice("the log has only dyno-wide lines (Heroku's memory_total, no per-worker "
                       "lines): give the worker count they were measured with, --workers N "
                       "(the app's WEB_CONCURRENCY)")
    totals = s.totals[-last:]
    each = round(sum(totals) / len(totals) / workers)
    fleet = [_estimated(slot, each) for slot in range(workers)]
    return None, fleet, ("estimated as memory_total / %d workers, an upper bound: the master and "
                         "shared memory are counted in every worker" % workers)


def _estimated(slot, private):
    """A worker known only by an estimate of its private memory."""
    return ProcSample(slot=slot, pid=0, rss=private, pss=None, uss=None, swap=None, threads=0,
                      fds=0, children=0, zombies=0, requests=0, cpu=0.0, uptime=0.0)


def _size(n):
    return "%dMB" % (n >> 20) if n < GB else "%gGB" % round(n / GB, 1)


def _mb(n):
    return "%.0fMB" % (n / MB)


def table(samples, cpus=None, workers=None, headroom=0.10, last=1, source=None):
    """The advice table for parsed lines (parse_line results, None entries allowed).

    cpus: override every size's CPU count (None: each size's own); workers: the worker
    count behind Heroku-only lines; last: average each process over its last N samples.
    Raises NoAdvice when the samples cannot support advice."""
    sources = _gather(samples)
    name = _pick(sources, source)
    s = sources[name]
    master, fleet, how = _fleet(s, workers, max(1, last))
    now = sizing.advise(s.quota or GB, master, fleet, 1, headroom)   # quota/cpus change no number used here
    out = ["%s: %d workers, about %s private each, master and shared %s; %s" % (
        name, now.current, _mb(now.private_per_worker),
        _mb(now.used - now.current * now.private_per_worker), how)]
    others = sorted(set(sources) - {name})
    if others:
        out.append("also in the log: %s (choose with --source)" % ", ".join(others))
    out.append("")
    names_w = max(len(", ".join(ns)) for ns, _ in dynos.groups())
    fmt = "%-*s %1s %7s %4s %7s %-10s %8s %14s"
    out.append(fmt % (names_w, "dyno size", "", "memory", "cpus", "workers", "limited by", "used", "left"))
    for names, d in dynos.groups():
        a = sizing.advise(d.quota, master, fleet, cpus or d.cpus, headroom)
        used = sizing.footprint(a, a.workers)
        left = d.quota - used
        out.append(fmt % (names_w, ", ".join(names), "*" if d.quota == s.quota else "",
                          _size(d.quota), cpus or d.cpus, a.workers, a.limited_by,
                          _mb(used), "%s (%d%%)" % (_mb(left), round(100 * left / d.quota))))
    out.append("")
    if any(d.quota == s.quota for d in dynos.DYNOS):
        out.append("* current: memory_quota %s in the log" % _mb(s.quota))
    elif s.quota:
        out.append("memory_quota %s in the log matches no Heroku size" % _mb(s.quota))
    else:
        out.append("no memory_quota in the log: the current size is not marked")
    out.append("kept free: %d%% of each quota; workers bounded by 2 x cpus + 1" % round(headroom * 100))
    return "\n".join(out) + "\n"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(exits.USAGE, "pyfork advise: error: %s\n" % message)


def parser():
    p = _Parser(prog="pyfork advise",
                description="How many workers fit each Heroku dyno size, from pyfork's "
                            "metrics lines or Heroku's log-runtime-metrics lines.")
    p.add_argument("log", nargs="?", default="-", metavar="LOG",
                   help="a log file, or - for standard input (heroku logs -n 1500 | pyfork advise)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="workers per dyno when the log has only Heroku's dyno-wide lines")
    p.add_argument("--last", type=int, default=1, metavar="N",
                   help="average each process over its last N samples (default 1)")
    p.add_argument("--headroom", type=float, default=10.0, metavar="PERCENT",
                   help="memory kept free (default 10)")
    p.add_argument("--cpus", type=int, metavar="N", help="CPUs for every size (default: each size's own)")
    p.add_argument("--source", metavar="NAME", help="the dyno to size by, e.g. web.2")
    return p


def main(argv=None):
    """argv: the arguments after `advise`. Returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code
    if args.workers is not None and args.workers < 1:
        sys.stderr.write("pyfork advise: error: --workers must be 1 or more\n")
        return exits.USAGE
    label = "standard input" if args.log == "-" else args.log
    try:
        if args.log == "-":
            samples = [parse_line(line) for line in sys.stdin]
        else:
            with open(args.log, encoding="utf-8", errors="replace") as f:
                samples = [parse_line(line) for line in f]
    except OSError as exc:
        sys.stderr.write("pyfork advise: cannot read %s: %s\n" % (label, exc.strerror or exc))
        return exits.USAGE
    try:
        text = table(samples, args.cpus, args.workers, args.headroom / 100.0, args.last, args.source)
    except NoAdvice as exc:
        sys.stderr.write("pyfork advise: %s: %s\n" % (label, exc))
        return exits.USAGE
    sys.stdout.write(text)
    return exits.OK
