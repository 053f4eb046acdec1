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
    threads: int = None                                      # --threads, from pyfork's tasks line
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
        if "app_threads" in got:
            s.threads = int(got["app_threads"])
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


def size_inputs(d, cpus=None, threads=1, share=sizing.SHARE, name=None):
    """The advice's inputs for one dyno size (what --dyno-size gives the live advice)."""
    return sizing.Inputs(quota=d.quota, quota_source="dyno size " + (name or d.name),
                         cpus=cpus or d.cpus, cpus_source="--cpus" if cpus else "dyno size " + (name or d.name),
                         tasks_max=d.tasks, threads=threads, share=share)


def table(samples, cpus=None, workers=None, share=sizing.SHARE, last=1, source=None, threads=None):
    """The advice table for parsed lines (parse_line results, None entries allowed): one
    row per dyno size, each from sizing.advise with that size's inputs.

    cpus: override every size's CPU count (None: each size's own); workers: the worker
    count behind Heroku-only lines; last: average each process over its last N samples;
    threads: --threads (None: as the log says, else 1).
    Raises NoAdvice when the samples cannot support advice."""
    sources = _gather(samples)
    name = _pick(sources, source)
    s = sources[name]
    master, fleet, how = _fleet(s, workers, max(1, last))
    threads = threads or s.threads or 1
    rows = [(names, sizing.advise(size_inputs(d, cpus, threads, share, names[-1]), master, fleet))
            for names, d in dynos.groups()]
    a = rows[0][1]
    busy = ("cpu_busy_share %.2f" % a.busy_share if a.busy_share is not None
            else "no cpu_busy_share in the log (taken as %.1f)" % sizing.ASSUMED_BUSY_SHARE)
    out = ["%s: %d workers, about %s private each, master and shared %s, %s; %s" % (
        name, a.current, _mb(a.private_per_worker), _mb(a.fixed), busy, how)]
    others = sorted(set(sources) - {name})
    if others:
        out.append("also in the log: %s (choose with --source)" % ", ".join(others))
    out.append("")
    names_w = max(len(", ".join(ns)) for ns, _ in rows)
    fmt = "%-*s %1s %7s %4s %6s %7s %7s %-10s %11s"
    out.append(fmt % (names_w, "dyno size", "", "memory", "cpus", "tasks", "workers", "threads",
                      "limited by", "projected"))
    current = None
    for names, r in rows:
        mark = "*" if r.inputs.quota == s.quota else ""
        if mark and current is None:
            current = (names, r)
        out.append(fmt % (names_w, ", ".join(names), mark, _size(r.inputs.quota), "%g" % r.inputs.cpus,
                          r.inputs.tasks_max, r.workers, r.threads, r.limited_by.value,
                          "%s %d%%" % (_mb(r.projected), round(100 * r.projected_share))))
    out.append("")
    return "\n".join(out + _footer(s.quota, current, a, share)) + "\n"


def _footer(quota, current, a, share):
    """The lines under the table: the current size's live line, the model, threads."""
    if current is not None:
        out = ["* current: memory_quota %s in the log; as the live line says it with --dyno-size %s:"
               % (_mb(quota), current[0][-1]), "  " + sizing.sentence(current[1])]
    elif quota:
        out = ["memory_quota %s in the log matches no Heroku size" % _mb(quota)]
    else:
        out = ["no memory_quota in the log: the current size is not marked"]
    out.append("projected = master and shared + workers x private, kept under %d%% of each quota; "
               "workers bounded by cpus / (cpu_busy_share x threads) + 1 and by %d%% of the task limit"
               % (round(share * 100), sizing.TASK_LEVEL))
    if a.suggest_threads:
        out.append("requests spend %d%% of their time waiting: --threads %d would serve %dx the requests "
                   "in the same memory" % (round(100 * (1 - a.busy_share)), a.suggest_threads, a.suggest_threads))
    return out


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
    p.add_argument("--share", type=float, default=sizing.SHARE * 100, metavar="PERCENT",
                   help="the share of the quota the advised workers may use (default %d)" % (sizing.SHARE * 100))
    p.add_argument("--threads", type=int, metavar="N", help="--threads of the app (default: as the log says, else 1)")
    p.add_argument("--cpus", type=int, metavar="N", help="CPUs for every size (default: each size's own)")
    p.add_argument("--source", metavar="NAME", help="the dyno to size by, e.g. web.2")
    return p


def main(argv=None):
    """argv: the arguments after `advise`. Returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code
    for flag, value in (("--workers", args.workers), ("--threads", args.threads), ("--cpus", args.cpus)):
        if value is not None and value < 1:
            sys.stderr.write("pyfork advise: error: %s must be 1 or more\n" % flag)
            return exits.USAGE
    if not 0 < args.share < 100:
        sys.stderr.write("pyfork advise: error: --share must be a percent between 0 and 100\n")
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
        text = table(samples, args.cpus, args.workers, args.share / 100.0, args.last, args.source, args.threads)
    except NoAdvice as exc:
        sys.stderr.write("pyfork advise: %s: %s\n" % (label, exc))
        return exits.USAGE
    sys.stdout.write(text)
    return exits.OK


def for_config(cfg):
    """check-config's advice line: the live advice's inputs for this configuration, and the
    samples in its --metrics-log when there is one (else the assumed worker size)."""
    from . import monitor
    sampler = monitor.make_sampler(cfg, None)
    inputs = monitor.inputs(cfg, sampler.dyno(), monitor.cpus(cfg, sampler))
    master, fleet = None, []
    how = "no --metrics-log to measure from yet"
    if cfg.metrics_log:
        try:
            with open(cfg.metrics_log, encoding="utf-8", errors="replace") as f:
                sources = _gather([parse_line(line) for line in f])
            s = sources[_pick(sources, None)]
            master, fleet, how = _fleet(s, None, 1)
            how += " in " + cfg.metrics_log
        except (OSError, NoAdvice) as exc:
            how = "nothing to measure from in %s (%s)" % (cfg.metrics_log, getattr(exc, "strerror", None) or exc)
    return "advice: %s (%s)" % (sizing.sentence(sizing.advise(inputs, master, fleet)), how)
