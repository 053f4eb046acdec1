"""The metrics lines' numbers as Prometheus text exposition format 0.0.4 (pure).

Same sample, second wire format: the master keeps its last sample and `/metrics` renders
it, so a scrape and the log lines of one interval show the same numbers. Units are the
format's base units (bytes, seconds), not Heroku's MB.

A value that was not measured (PSS without smaps_rollup, a cgroup file the platform does not
have) is left out, never written as 0: a 0 would be a lie an alert could fire on. A family
with no samples at all is left out whole.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
"""
import math

# Per process, labelled worker="master"|"<slot>" and pid: (name, type, help, ProcSample field)
PROCESS = (
    ("pyfork_memory_rss_bytes", "gauge",
     "Resident set size; pages shared after fork count once per process.", "rss"),
    ("pyfork_memory_pss_bytes", "gauge",
     "Proportional set size: shared pages divided among the processes sharing them.", "pss"),
    ("pyfork_memory_uss_bytes", "gauge", "Unique set size: memory only this process holds.", "uss"),
    ("pyfork_memory_swap_bytes", "gauge", "Swapped-out memory of the process.", "swap"),
    ("pyfork_threads", "gauge", "Threads in the process.", "threads"),
    ("pyfork_open_fds", "gauge", "Open file descriptors of the process.", "fds"),
    ("pyfork_children", "gauge", "Child processes, zombies included.", "children"),
    ("pyfork_zombies", "gauge", "Exited children not yet reaped.", "zombies"),
    ("pyfork_requests_total", "counter", "Requests served by the process.", "requests"),
    ("pyfork_cpu_seconds_total", "counter", "CPU time of the process, user plus system.", "cpu"),
    ("pyfork_uptime_seconds", "gauge", "Seconds since the process started.", "uptime"),
)

# The dyno (cgroup): (name, type, help, DynoSample field)
DYNO = (
    ("pyfork_dyno_memory_total_bytes", "gauge", "Memory charged to the dyno (cgroup).", "total"),
    ("pyfork_dyno_memory_rss_bytes", "gauge", "Anonymous memory of the dyno.", "rss"),
    ("pyfork_dyno_memory_cache_bytes", "gauge", "Page cache charged to the dyno.", "cache"),
    ("pyfork_dyno_memory_swap_bytes", "gauge", "Swap used by the dyno.", "swap"),
    ("pyfork_dyno_memory_pgpgin_pages_total", "counter", "Pages charged to the dyno.", "pgpgin"),
    ("pyfork_dyno_memory_pgpgout_pages_total", "counter", "Pages uncharged from the dyno.", "pgpgout"),
    ("pyfork_dyno_tasks", "gauge", "Tasks (threads) in the dyno.", "tasks"),
    ("pyfork_dyno_tasks_max", "gauge", "The dyno's task limit.", "tasks_max"),
)

# Every reason is written, 0 until it happens: a counter that first appears at 1 hides
# that first restart from increase() and rate().
RESTART_REASONS = ("crash", "timeout", "memory", "zombies", "threads", "tasks", "max_requests", "reload",
                   "oom_kill")
LOAD_PERIODS = ("1m", "5m", "15m")


def escape_label(value):
    """Backslash, double quote and newline, as the format requires in label values."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text):
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value):
    """Integers exactly; floats in the shortest form that reads back equal."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def family(name, kind, text, samples):
    """Lines of one family; samples are (((label, value), ...), number or None).
    None samples are left out, and the family with them when none is left."""
    lines = []
    for labels, value in samples:
        if value is None:
            continue
        inner = ",".join('%s="%s"' % (k, escape_label(v)) for k, v in labels)
        lines.append("%s%s %s" % (name, "{%s}" % inner if inner else "", number(value)))
    if not lines:
        return []
    return ["# HELP %s %s" % (name, escape_help(text)), "# TYPE %s %s" % (name, kind)] + lines


def process_labels(p):
    return (("worker", "master" if p.slot < 0 else p.slot), ("pid", p.pid))


def restart_samples(restarts, workers_target):
    """restarts: {(slot, reason): n} from the ledger (labelled slot and reason, every slot
    below the target and every known reason written, 0 until it happens), or {reason: n}
    (labelled reason only)."""
    if any(isinstance(k, tuple) for k in restarts):
        slots = sorted(set(range(workers_target)) | {s for s, _ in restarts})
        keys = [(s, r) for s in slots for r in RESTART_REASONS]
        keys += sorted(set(restarts) - set(keys))
        return [((("slot", s), ("reason", r)), restarts.get((s, r), 0)) for s, r in keys]
    reasons = list(RESTART_REASONS) + sorted(set(restarts) - set(RESTART_REASONS))
    return [((("reason", r),), restarts.get(r, 0)) for r in reasons]


def render(master, workers, dyno, advised, restarts, workers_target, use=None, configured=None):
    """The whole exposition, one string ending in a newline.

    master, workers: metrics.ProcSample (master may be None); dyno: metrics.DynoSample or
    None; advised: int or None; restarts: see restart_samples; workers_target: int;
    use: (utilization or None, busy thread-seconds, total thread-seconds) or None;
    configured: -w N (None for -w auto)."""
    procs = ([master] if master is not None else []) + sorted(workers, key=lambda p: p.slot)
    lines = []
    for name, kind, text, field in PROCESS:
        lines += family(name, kind, text, [(process_labels(p), getattr(p, field)) for p in procs])
    lines += family("pyfork_workers", "gauge", "Workers alive at the sample.", [((), len(workers))])
    lines += family("pyfork_workers_target", "gauge", "Workers the master aims to run.", [((), workers_target)])
    lines += family("pyfork_workers_configured", "gauge",
                    "Workers configured (-w); the target is lower while a step down holds.", [((), configured)])
    if use is not None:
        lines += family("pyfork_utilization", "gauge",
                        "Share of the app threads' time spent in requests over the last metrics interval.",
                        [((), use[0])])
        lines += family("pyfork_busy_thread_seconds_total", "counter",
                        "Thread-seconds the app threads spent in requests.", [((), use[1])])
        lines += family("pyfork_thread_seconds_total", "counter",
                        "Thread-seconds of app capacity: workers x threads x seconds.", [((), use[2])])
    lines += family("pyfork_workers_advised", "gauge",
                    "Workers that fit the memory quota, from USS plus shared memory counted once.",
                    [((), advised)])
    lines += family("pyfork_worker_restarts_total", "counter", "Workers replaced, by slot and reason.",
                    restart_samples(restarts, workers_target))
    if dyno is not None:
        for name, kind, text, field in DYNO:
            lines += family(name, kind, text, [((), getattr(dyno, field))])
        lines += family("pyfork_dyno_memory_quota_bytes", "gauge",
                        "The dyno's memory quota; source says where it came from.",
                        [((("source", dyno.quota_source),), dyno.quota)])
        lines += family("pyfork_load_average", "gauge", "Load average of the machine.",
                        [((("period", period),), v) for period, v in zip(LOAD_PERIODS, dyno.load)])
    return "\n".join(lines) + "\n"
