"""What `pyfork status` shows (pure): the master's snapshot as a JSON-able document, and
that document as a table.

The master builds the document from plain values (control.py gathers them); the client
prints `table(document)`, or the document itself with --json, so both show the same.
"""
import datetime

from . import metrics

STATES = {0: "booting", 1: "idle", 2: "stopping"}   # heartbeat.BOOTING, READY, STOPPING


def state_of(beat_state, busy):
    """The heartbeat's state and requests in progress -> booting/idle/busy/stopping."""
    name = STATES.get(beat_state, "booting")
    return "busy" if name == "idle" and busy else name


def worker(slot, pid, age, beat_state, busy, running_for, what, requests, sample, restarts):
    """One worker's row. sample: its last ProcSample (or None); restarts: {reason: count}."""
    mem = {}
    if sample is not None and sample.pid == pid:
        mem = {"rss": sample.rss, "pss": sample.pss, "uss": sample.uss, "threads": sample.threads,
               "fds": sample.fds, "zombies": sample.zombies}
    return {"slot": slot, "pid": pid, "age": age, "state": state_of(beat_state, busy),
            "busy": busy, "request": what if busy else "", "request_seconds": running_for if busy else None,
            "requests": requests, "rss": mem.get("rss"), "pss": mem.get("pss"), "uss": mem.get("uss"),
            "threads": mem.get("threads"), "fds": mem.get("fds"), "zombies": mem.get("zombies"),
            "restarts": sum(restarts.values()), "restart_reasons": restarts}


def document(master, workers, deaths):
    """master: {pid, uptime, app, binds, dyno_size, quota, quota_source, advice, version, ...};
    workers: rows from `worker`; deaths: ledger Entry.as_dict()s, newest last."""
    return {"master": master, "workers": sorted(workers, key=lambda w: w["slot"]), "deaths": deaths}


def duration(seconds):
    """3s, 4m05s, 2h03m, 3d04h: short and sortable by eye."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return "%ds" % s if seconds >= 10 else "%.1fs" % seconds
    if s < 3600:
        return "%dm%02ds" % divmod(s, 60)
    if s < 86400:
        return "%dh%02dm" % (s // 3600, s % 3600 // 60)
    return "%dd%02dh" % (s // 86400, s % 86400 // 3600)


def size(n):
    return "-" if n is None else "%.1fMB" % (n / metrics.MB)


def _dash(v):
    return "-" if v is None else str(v)


COLUMNS = ("SLOT", "PID", "AGE", "STATE", "REQUEST", "FOR", "SERVED", "RSS", "PSS", "USS",
           "THR", "FDS", "ZMB", "RESTARTS")


def _row(w):
    reasons = ", ".join("%s %d" % kv for kv in w["restart_reasons"].items())
    return (str(w["slot"]), str(w["pid"] or "-"), duration(w["age"]), w["state"], (w["request"] or "-")[:32],
            duration(w["request_seconds"]), str(w["requests"]), size(w["rss"]), size(w["pss"]), size(w["uss"]),
            _dash(w["threads"]), _dash(w["fds"]), _dash(w["zombies"]),
            str(w["restarts"]) + (" (%s)" % reasons if reasons else ""))


def table(doc, deaths=5):
    """The document as text: a master header, one row per worker, the last deaths."""
    m = doc["master"]
    lines = ["pyfork %s master pid=%d up %s app=%s bind=%s" % (
        m.get("version", "?"), m["pid"], duration(m["uptime"]), m["app"], m["binds"]),
        "dyno=%s quota=%s (%s) tasks=%s/%s workers=%d/%d configured=%s utilization=%s" % (
        m.get("dyno_size") or "-", size(m.get("quota")), m.get("quota_source") or "?",
        _dash(m.get("tasks")), _dash(m.get("tasks_max")), len(doc["workers"]), m.get("target", 0),
        _dash(m.get("configured")), "-" if m.get("utilization") is None else "%.2f" % m["utilization"])]
    if m.get("step_down"):
        lines.append("step down: " + m["step_down"])
    if m.get("advice"):
        lines.append("advice: " + m["advice"])
    rows = [COLUMNS] + [_row(w) for w in doc["workers"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines.append("")
    for r in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    if doc["deaths"] and deaths:
        lines.append("")
        lines.append("last deaths:")
        for d in doc["deaths"][-deaths:]:
            lines.append("  " + death_line(d))
    return "\n".join(lines) + "\n"


def death_line(d):
    """One ledger entry as a line: when, who, cause, detail and the evidence."""
    when = datetime.datetime.fromtimestamp(d["when"]).strftime("%H:%M:%S")
    parts = ["%s worker=%d pid=%d %s" % (when, d["slot"], d["pid"], d["cause"])]
    if d.get("detail"):
        parts.append(d["detail"])
    if d.get("request"):
        parts.append("while serving " + d["request"])
    if d.get("sample"):
        parts.append("last sample: " + d["sample"])
    return "; ".join(parts)


def short_source(text):
    """check-config's sources in one token: 'flag --workers' -> 'flag:--workers'."""
    if not text:
        return "default"
    for long, short in (("flag ", "flag:"), ("environment variable ", "env:"), ("file ", "file:"),
                        ("dyno size ", "dyno-size:")):
        if text.startswith(long):
            return short + text[len(long):].strip()
    if text.startswith("detected"):
        return "detected"
    return text.split()[0]


def boot_line(version, python, dyno_size, cpus, quota, tasks_max, workers, threads):
    """The one line at start with everything the advice uses; each argument after
    python is (value, where it came from)."""
    def part(name, pair, fmt=str):
        value, source = pair
        source = "-".join(str(source).split()) if source else "-"     # one token: 'dyno size x' -> 'dyno-size-x'
        return "%s=%s %s_from=%s" % (name, "-" if value is None else fmt(value), name, source)
    return " ".join(["boot pyfork=%s python=%s" % (version, python), part("dyno_size", dyno_size),
                     part("cpus", cpus), part("quota", quota, metrics.mb), part("tasks_max", tasks_max),
                     part("workers", workers), part("threads", threads)])
