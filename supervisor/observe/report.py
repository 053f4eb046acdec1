"""`pyfork report LOG > report.html`: the metrics lines of a log as one self-contained page
(pure: text in, HTML out; the live page at `/` of --metrics-bind uses the same `page`).

Reads pyfork's lines (the per-worker, master, dyno and tasks lines, as text or as
--metrics-format json, and the ledger's
`restarts` lines) and Heroku's log-runtime-metrics and router error lines as `heroku logs`
prints them. Where a line carries no time of its own (pyfork's bare metrics lines), the
time is the master's start (its first stamped log line) plus the master line's uptime;
with no stamped line at all the axis counts from the master's start.
"""
import dataclasses
import datetime
import json
import re

from . import charts, ledger, metrics

_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))\s")
_BRACKET = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4})\]")
# Heroku's own words for a dyno's memory trouble and its process ending
_HEROKU = (("R14", "Error R14"), ("R15", "Error R15"), ("exit", "Process exited with status"))
# sizing.sentence's line, as the live line and `pyfork status` say it; the boot line's dyno size
_SENTENCE = re.compile(r"((?:\d+ workers use |no workers measured yet).*: set WEB_CONCURRENCY=\d+.*?)\s*$")
_BOOT = re.compile(r"\bboot pyfork=\S+ .*\bdyno_size=(\S+)")


def stamp(line):
    """The line's own time (epoch seconds) from an ISO or a Gunicorn-style prefix, or None."""
    m = _ISO.match(line)
    if m:
        text = m.group(1).replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(text).timestamp()
    m = _BRACKET.match(line)
    if m:
        return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S %z").timestamp()
    return None


@dataclasses.dataclass
class Data:
    """Everything the charts draw; times are epoch seconds (or seconds since start when
    `relative`)."""
    memory: dict = dataclasses.field(default_factory=dict)     # series name -> [(t, bytes)]
    measure: str = "PSS"                                        # what `memory` holds
    dyno_total: list = dataclasses.field(default_factory=list)  # [(t, bytes)] the dyno's total (its cgroup's)
    cgroup_total: list = dataclasses.field(default_factory=list)  # a total that is not the dyno's: not drawn
    quota_from: str = None                                      # where the quota came from (tasks line)
    dyno_size: str = None                                       # --dyno-size, from the boot line
    advice: str = None                                          # the last advice sentence logged
    bounds: list = dataclasses.field(default_factory=list)      # the advice's binding limits, in order
    quota: list = dataclasses.field(default_factory=list)       # [(t, bytes)]
    tasks: list = dataclasses.field(default_factory=list)       # [(t, tasks)]
    tasks_max: list = dataclasses.field(default_factory=list)
    zombies: dict = dataclasses.field(default_factory=dict)     # t -> zombies summed over workers
    workers: list = dataclasses.field(default_factory=list)     # [(t, workers alive)]
    advised: list = dataclasses.field(default_factory=list)     # [(t, workers advised)]
    restarts: list = dataclasses.field(default_factory=list)    # [(t, who, reason)]
    relative: bool = False
    lines: int = 0


class Reader:
    """Feed lines in order; `data` holds what they said."""

    def __init__(self):
        self.data = Data()
        self.start = None           # the master's start, wall seconds
        self.t = None               # the time of the current bare sample group
        self.pending = []           # bare dyno lines waiting for their group's master line
        self.counts = {}            # slot -> {reason: count} from the last `restarts` line
        self.pss_lines = self.rss_lines = 0     # process lines with PSS, and with RSS alone
        self.sources = set()        # the quota_from values of pyfork's tasks lines

    def feed(self, line):
        own = stamp(line)
        if own is not None and self.start is None:
            self.start = own
        if self.said(line):
            return
        counts = ledger.parse_log_line(line)
        if counts is not None:
            self.restarts(own if own is not None else self.t, *counts)
            return
        for reason, words in _HEROKU:
            if words in line and own is not None:
                self.data.restarts.append((own, _source(line), reason))
                return
        parsed = metrics.parse_line(line) or from_json(line)
        if parsed is None:
            return
        self.data.lines += 1
        source = metrics.quota_from(line)
        if source:
            self.sources.add(source)
            self.data.quota_from = source
        if own is not None:
            self.take(own, parsed)
        elif parsed["process"] == "master":
            uptime = parsed["samples"].get("uptime_seconds", 0)
            if self.start is None:
                self.data.relative = True
            self.t = (self.start or 0) + uptime
            for p in self.pending + [parsed]:
                self.take(self.t, p)
            self.pending = []
        elif self.t is None or "memory_total" in parsed["samples"] or "load_avg_1m" in parsed["samples"]:
            self.pending.append(parsed)     # a new group's dyno lines come before its master line
        else:
            self.take(self.t, parsed)

    def take(self, t, p):
        s, d = p["samples"], self.data
        if p["worker"] is not None or p["process"] == "master":
            name = "master" if p["process"] == "master" else "worker %s" % p["worker"]
            value = s.get("memory_pss")
            if value is None:
                value = s.get("memory_rss")
                self.rss_lines += 1
            else:
                self.pss_lines += 1
            if value is not None:
                d.memory.setdefault(name, []).append((t, value))
            if p["worker"] is not None:
                d.zombies[t] = d.zombies.get(t, 0) + s.get("zombies", 0)
        elif "memory_total" in s or "memory_quota" in s:
            if "memory_quota" in s:
                d.quota.append((t, s["memory_quota"]))
            if "memory_total" in s:
                d.dyno_total.append((t, s["memory_total"]))
                # Heroku's own lines: one series per dyno; pyfork's workers are drawn instead
                d.memory.setdefault("dyno " + (p["source"] or "?"), []).append((t, s["memory_total"]))
        elif "tasks" in s or "workers" in s:
            for key, series in (("tasks", d.tasks), ("tasks_max", d.tasks_max),
                                ("workers", d.workers), ("workers_advised", d.advised)):
                if key in s:
                    series.append((t, s[key]))

    def said(self, line):
        """The boot line's dyno size and the advice sentences: True when the line was one."""
        d = self.data
        m = _SENTENCE.search(line)
        if m and "-w auto:" not in line:
            d.advice = m.group(1)
            bound = re.search(r"; limited by (\w+)", d.advice)
            if bound and (not d.bounds or d.bounds[-1] != bound.group(1)):
                d.bounds.append(bound.group(1))
            return True
        m = _BOOT.search(line)
        if m:
            d.dyno_size = None if m.group(1) == "-" else m.group(1)
            return True
        return False

    def restarts(self, t, slot, counts):
        if t is None:
            return
        before = self.counts.get(slot, {})
        for reason, n in counts.items():
            for _ in range(n - before.get(reason, 0)):
                self.data.restarts.append((t, "worker %d" % slot, reason))
        self.counts[slot] = counts

    def finish(self):
        for p in self.pending:
            if self.t is not None:
                self.take(self.t, p)
        self.pending = []
        d = self.data
        if self.sources - {"cgroup"}:
            # the cgroup's own limit is not the quota: its total is another thing than the dyno's
            d.cgroup_total, d.dyno_total = d.dyno_total, []
        workers = [k for k in d.memory if k.startswith("worker") or k == "master"]
        if workers:     # pyfork's per-process lines: draw processes, the dyno as its total line
            d.memory = {k: d.memory[k] for k in workers}
        d.measure = measure(self.pss_lines, self.rss_lines)
        if not workers:
            d.measure = "memory_total"
        return d


def measure(pss_lines, rss_lines):
    """What the memory chart stacks: PSS, RSS, or PSS with RSS for the samples (a worker read
    while it died, a kernel without smaps_rollup) where PSS was unknown."""
    if not rss_lines:
        return "PSS"
    return "RSS" if not pss_lines else "PSS, RSS where unknown"


def from_json(line):
    """A --metrics-format json line (metrics.as_json), as parse_line would give its text form."""
    at = line.find('{"source"')
    if at < 0:
        return None
    try:
        obj = json.loads(line[at:])
    except ValueError:
        return None
    out = {k: obj.get(k) for k in ("source", "dyno", "worker", "process", "pid")}
    samples = {}
    for key, value in obj.items():
        if key in out or not isinstance(value, (int, float)):
            continue
        if key.endswith("_mb"):
            samples[key[:-3]] = int(round(value * metrics.MB))
        elif key.endswith("_pages"):
            samples[key[:-6]] = value
        else:
            samples[key] = value
    if not samples:
        return None
    out["samples"] = samples
    return out


def _source(line):
    m = re.search(r"(?:heroku|app)\[([\w.-]+)\]", line)
    return m.group(1) if m else "dyno"


def read(lines):
    r = Reader()
    for line in lines:
        r.feed(line.rstrip("\n"))
    return r.finish()


def page(lines, title="pyfork report", refresh=None, advice=None):
    """The whole HTML page for these log lines."""
    return charts.page(read(lines), title, refresh=refresh, advice=advice)


def main(argv, out=None, err=None):
    """`pyfork report LOG [LOG...]` ('-' for stdin): the page to stdout."""
    import sys
    out, err = out or sys.stdout, err or sys.stderr
    if not argv or argv[0] in ("-h", "--help"):
        (out if argv else err).write("usage: pyfork report LOG [LOG...] > report.html\n"
                                     "  LOG: pyfork's error log (or --metrics-log file), or `heroku logs` output; "
                                     "'-' reads stdin\n")
        return 0 if argv else 2
    lines = []
    for path in argv:
        try:
            if path == "-":
                lines.extend(sys.stdin)
            else:
                with open(path, encoding="utf-8", errors="replace") as f:
                    lines.extend(f)
        except OSError as exc:
            err.write("pyfork report: cannot read %s: %s\n" % (path, exc.strerror))
            return 2
    data = read(lines)
    if not data.lines:
        err.write("pyfork report: no metrics lines in %s; pyfork writes them every --metrics-interval "
                  "(Heroku: enable log-runtime-metrics)\n" % " ".join(argv))
        return 1
    out.write(charts.page(data, "pyfork report: " + ", ".join(argv)))
    return 0
