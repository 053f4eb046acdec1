"""scripts/memory.py --dyno SIZE: the pyfork modes served inside a real cgroup dyno
(scripts/dyno.py: the size's memory limit and task limit, root and cgroup v1), with
--metrics-interval 2, and what pyfork's own advice makes of them.

Reported per mode, from the server's log after the load (three more metrics intervals):
    memory_fit        the advice's memory bound: how many workers fit 85% of the quota,
                      computed by pyfork's one advice function (supervisor/observe/sizing.py
                      advise) from the last master and worker metrics lines, whatever
                      bound (CPU, tasks) decides the advised count
    workers_advised   the last `sample#workers_advised` of the metrics lines
    advice            the last advice line the master logged (the README's "How many workers?")
    oom_kills, max_usage_mb   the dyno's kernel counters over the run
"""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)          # supervisor, as the running checkout has it

from dyno import SIZES, Dyno, DynoError  # noqa: E402
from supervisor.observe import sizing  # noqa: E402
from supervisor.observe.metrics import MB, parse_line, proc_sample  # noqa: E402

INTERVAL = 2


def read_advice(log, quota):
    """The figures above from a log's text."""
    latest, advised, sentence = {}, None, None
    for line in log.splitlines():
        parsed = parse_line(line)
        if parsed is None:
            if "set WEB_CONCURRENCY=" in line:
                sentence = line.split("] ")[-1].strip()
            continue
        if "workers_advised" in parsed["samples"]:
            advised = parsed["samples"]["workers_advised"]
        sample = proc_sample(parsed)
        if sample is not None:
            latest[sample.slot] = sample
    master = latest.pop(-1, None)
    if not latest:
        return {"memory_fit": None, "workers_advised": advised, "advice": sentence}
    inputs = sizing.Inputs(quota=quota, quota_source="cgroup", cpus=1, cpus_source="dyno")
    a = sizing.advise(inputs, master, list(latest.values()))
    return {"memory_fit": a.memory_fit, "workers_advised": advised, "advice": sentence,
            "advice_private_mb": round(a.private_per_worker / MB, 1), "advice_fixed_mb": round(a.fixed / MB, 1)}


def run_in_dyno(run_mode, app, spec, mode, args, data_dir, cookie):
    """memory.run_mode's result for this mode served in a fresh dyno, with the advice figures."""
    quota = SIZES.get(args.dyno, (None,))[0]

    def after(server):
        time.sleep(3 * INTERVAL + 1)          # fresh lines of the settled workers
        return read_advice(server.log(), quota)

    try:
        with Dyno(size=args.dyno) as dyno:
            result = run_mode(app, spec, mode, args, data_dir, cookie, launch=dyno.run, after=after)
            result["oom_kills"] = dyno.oom_kills()
            result["max_usage_mb"] = round(dyno.usage()["max_usage"] / MB, 1)
            return result
    except (DynoError, ValueError) as exc:
        return {"app": app, "mode": mode, "status": "failed", "reason": "no %s dyno: %s" % (args.dyno, exc)}


def dyno_table(app, results, args):
    """A markdown table of the advice figures, the import-in-each-worker row as reference."""
    ref = next((r for r in results if r["mode"] == "pyfork" and r.get("memory_fit")), None)
    lines = ["#### %s in a %s dyno: the advice's memory bound" % (app, args.dyno), "",
             "| mode | memory-bound workers | vs pyfork | workers_advised | oom kills | max usage MB |",
             "|---|---|---|---|---|---|"]
    for r in results:
        if r["status"] != "ok":
            lines.append("| %s | %s | | | | |" % (r["mode"], r["reason"]))
            continue
        fit = r.get("memory_fit")
        vs = "-" if not (ref and fit) else "%+.0f%%" % (100.0 * fit / ref["memory_fit"] - 100)
        lines.append("| %s | %s | %s | %s | %s | %s |" % (r["mode"], fit, vs, r.get("workers_advised"),
                                                         r.get("oom_kills"), r.get("max_usage_mb")))
    lines += [""] + ["%s: %s" % (r["mode"], r["advice"]) for r in results if r.get("advice")]
    return "\n".join(lines)
