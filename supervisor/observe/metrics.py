"""Sample types and the log-runtime-metrics line format (pure).

Heroku's lines, byte for byte, so drains and parsers that read them today read ours:

    source=web.1 dyno=heroku.x sample#memory_total=21.00MB ... sample#memory_quota=512.00MB
    source=web.1 dyno=heroku.x sample#load_avg_1m=2.46 sample#load_avg_5m=1.06 sample#load_avg_15m=0.99

and pyfork's own, in the same grammar: one per worker (`worker=3 pid=4242`), one for the
master (`process=master`), one with tasks and the advice. MB here is Heroku's: 1048576 bytes,
two decimals. `parse_line` reads all of them back, from pyfork's error log or `heroku logs`.
"""
import dataclasses
import json
import re
from typing import Optional

MB = 1048576


@dataclasses.dataclass(frozen=True)
class ProcSample:
    """One process at one moment. pss/uss/swap are None where smaps_rollup was unreadable."""
    slot: int                  # worker slot, -1 for the master
    pid: int
    rss: int                   # bytes
    pss: Optional[int]
    uss: Optional[int]
    swap: Optional[int]
    threads: int
    fds: int
    children: int              # live children, zombies included
    zombies: int
    requests: int
    cpu: float                 # seconds, user + system
    uptime: float              # seconds
    busy_share: Optional[float] = None   # CPU seconds / seconds inside requests, since the last sample


@dataclasses.dataclass(frozen=True)
class DynoSample:
    """The dyno (cgroup) at one moment; None where the platform does not say."""
    total: Optional[int]       # bytes
    rss: Optional[int]
    cache: Optional[int]
    swap: Optional[int]
    pgpgin: Optional[int]      # pages
    pgpgout: Optional[int]
    quota: Optional[int]       # bytes
    quota_source: str          # 'cgroup' (its own limit), 'cgroup-parent', 'flag', 'dyno-size' or 'machine'
    tasks: Optional[int]
    tasks_max: Optional[int]
    load: tuple                # (1m, 5m, 15m)


def mb(n):
    """88.32MB: bytes in Heroku's unit, two decimals."""
    return "%.2fMB" % (n / MB)


def pages(n):
    return "%dpages" % n


def _line(head, samples):
    """head: [(key, value)], samples: [(name, text or None)]; None values are left out."""
    parts = ["%s=%s" % kv for kv in head]
    parts += ["sample#%s=%s" % (k, v) for k, v in samples if v is not None]
    return " ".join(parts)


def _opt(fmt, value):
    return None if value is None else fmt(value)


def dyno_lines(source, dyno, d):
    """[memory line, load line] exactly as Heroku prints them."""
    head = [("source", source), ("dyno", dyno)]
    memory = _line(head, [
        ("memory_total", _opt(mb, d.total)),
        ("memory_rss", _opt(mb, d.rss)),
        ("memory_cache", _opt(mb, d.cache)),
        ("memory_swap", _opt(mb, d.swap)),
        ("memory_pgpgin", _opt(pages, d.pgpgin)),
        ("memory_pgpgout", _opt(pages, d.pgpgout)),
        ("memory_quota", _opt(mb, d.quota)),
    ])
    load = _line(head, [("load_avg_%s" % name, "%.2f" % v)
                        for name, v in zip(("1m", "5m", "15m"), d.load)])
    return [memory, load]


def process_line(source, p):
    """One worker (`worker=3`) or the master (`process=master`)."""
    who = ("process", "master") if p.slot < 0 else ("worker", p.slot)
    return _line([("source", source), who, ("pid", p.pid)], [
        ("memory_rss", mb(p.rss)),
        ("memory_pss", _opt(mb, p.pss)),
        ("memory_uss", _opt(mb, p.uss)),
        ("memory_swap", _opt(mb, p.swap)),
        ("threads", p.threads),
        ("fds", p.fds),
        ("children", p.children),
        ("zombies", p.zombies),
        ("requests", p.requests),
        ("cpu_seconds", "%.2f" % p.cpu),
        ("uptime_seconds", "%d" % p.uptime),
        ("cpu_busy_share", _opt("%.2f".__mod__, p.busy_share)),
    ])


def tasks_line(source, d, workers, advised, app_threads=None, utilization=None, configured=None):
    """The dyno's tasks, the worker count and the advice; app_threads is --threads;
    utilization: the share of the app threads' time spent in requests over the interval
    (an autoscaler's number); configured: -w N while a step down runs fewer. Last,
    `quota_from=`: where this sample's memory_quota came from (DynoSample.quota_source):
    the dyno line's memory_total is the dyno's, to be held against that quota, only when
    it is `cgroup`, the limit of the very cgroup whose total it is (a report reads it)."""
    line = _line([("source", source)], [
        ("tasks", d.tasks), ("tasks_max", d.tasks_max),
        ("workers", workers), ("workers_configured", configured), ("workers_advised", advised),
        ("app_threads", app_threads), ("utilization", _opt("%.2f".__mod__, utilization)),
    ])
    return line + " quota_from=" + d.quota_source if d.quota_source else line


_QUOTA_FROM = re.compile(r'(?:\squota_from=|"quota_from":")([\w-]+)')


def quota_from(text):
    """The `quota_from` of a tasks line, text or JSON, or None."""
    m = _QUOTA_FROM.search(text)
    return m.group(1) if m else None


# One token of a line: key=value, the value up to the next blank. Heroku's and pyfork's
# values never hold blanks; anything before the first `source=` is a log prefix.
_TOKEN = re.compile(r"(\S+?)=(\S*)")
_VALUE = re.compile(r"^(-?\d+(?:\.\d+)?)(MB|pages|kB|GB|bytes)?$")
_UNITS = {"MB": MB, "kB": 1024, "GB": 1024 * MB, "bytes": 1}
_HEAD = ("source", "dyno", "worker", "process", "pid")
_INTS = ("worker", "pid")


def _number(text):
    return float(text) if "." in text else int(text)


def _tokens(text):
    """(key, value) pairs from `source=` on; [] when the line has no metrics."""
    start = text.find("source=")
    if start < 0 or (start > 0 and not text[start - 1].isspace()):
        return []
    return _TOKEN.findall(text[start:])


def parse_line(text):
    """A metrics line (pyfork's or Heroku's, with or without a log prefix) as a dict:

    {'source', 'dyno', 'worker', 'process', 'pid' (None when absent),
     'samples': {name: bytes for MB, pages for pages, else the plain number}}

    None for any other line (router lines, app output, a line with no sample#)."""
    out = dict.fromkeys(_HEAD)
    samples = {}
    for key, value in _tokens(text):
        if key.startswith("sample#"):
            m = _VALUE.match(value)
            if not m:
                continue        # a value we cannot read is left out, not guessed
            number, unit = m.groups()
            samples[key[7:]] = (int(round(float(number) * _UNITS[unit]))
                                if unit in _UNITS else _number(number))
        elif key in _HEAD and out[key] is None:
            out[key] = int(value) if key in _INTS and value.isdigit() else value
    if not samples:
        return None
    out["samples"] = samples
    return out


def as_json(line):
    """The same line as one JSON object, for --metrics-format json.

    Convention: the head keys as they are (`worker` and `pid` as numbers); each sample under
    its name without `sample#`, with its unit as a suffix when it has one, and the number
    exactly as the text line shows it: `memory_rss_mb: 88.32`, `memory_pgpgin_pages: 348836`,
    `threads: 2`, `load_avg_1m: 2.46`. The key names the unit, so nothing is rescaled and
    the JSON and text forms of one sample never disagree.
    """
    obj = {}
    for key, value in _tokens(line):
        if key.startswith("sample#"):
            m = _VALUE.match(value)
            if not m:
                continue
            number, unit = m.groups()
            obj[key[7:] + ("_" + unit.lower() if unit else "")] = _number(number)
        else:
            obj[key] = int(value) if key in _INTS and value.isdigit() else value
    return json.dumps(obj, separators=(",", ":"))


def proc_sample(parsed):
    """The ProcSample behind a parsed worker or master line; None for other lines."""
    s = parsed["samples"]
    if "memory_rss" not in s or parsed["pid"] is None:
        return None
    if parsed["process"] == "master":
        slot = -1
    elif isinstance(parsed["worker"], int):
        slot = parsed["worker"]
    else:
        return None
    return ProcSample(slot=slot, pid=parsed["pid"], rss=s["memory_rss"], pss=s.get("memory_pss"),
                      uss=s.get("memory_uss"), swap=s.get("memory_swap"),
                      threads=s.get("threads", 0), fds=s.get("fds", 0),
                      children=s.get("children", 0), zombies=s.get("zombies", 0),
                      requests=s.get("requests", 0), cpu=float(s.get("cpu_seconds", 0)),
                      uptime=float(s.get("uptime_seconds", 0)),
                      busy_share=None if "cpu_busy_share" not in s else float(s["cpu_busy_share"]))
