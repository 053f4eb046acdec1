"""What the master shows of itself: the restart ledger, OOM naming, the control socket,
the live page's ring and the boot line, behind a handful of calls the master loop makes.

The master calls, all from its one thread:
- `servers()`: the control socket (if any) to poll with /metrics;
- `guard(now)` about once a second: the OOM counters' baseline;
- `died(...)`, `recycled(...)`, `reloaded(...)` for every worker it loses: the ledger;
- `sampled()` after each metrics sample: the ring, and the ledger's `restarts` lines;
- `document(master)` when `pyfork status` asks.
Decisions and formats are the pure modules' (ledger, oom, status, ring, charts).
"""
import os
import sys
import time

from . import oom, report, status
from ..config import AUTO
from .control import ControlServer, default_path
from .ledger import Cause, Entry, Ledger, cause_of_recycle
from .ring import Ring


def beat_request(beat, now):
    """'GET /path for 1.20s' from a heartbeat Beat with a request in progress, else ''."""
    if beat is None or not beat.busy or not beat.what:
        return ""
    return "%s for %.2fs" % (beat.what, beat.running(now))


def sample_text(sample):
    """A ProcSample's evidence in a few key=value pairs, or ''."""
    if sample is None:
        return ""
    parts = ["%s=%s" % (k, status.size(getattr(sample, k))) for k in ("rss", "pss", "uss")
             if getattr(sample, k) is not None]
    parts += ["threads=%d" % sample.threads, "zombies=%d" % sample.zombies, "fds=%d" % sample.fds]
    return " ".join(parts)


class See:
    def __init__(self, cfg, log, monitor, environ=os.environ):
        self.log = log
        self.monitor = monitor
        self.ledger = Ledger()
        self.ring = Ring()
        self.started = time.monotonic()
        self.counters = oom.Counters(monitor.sampler) if monitor else None
        self.control = None
        path = None if cfg.no_control_socket else (cfg.control_socket or default_path(cfg.pidfile, environ))
        if path:
            try:
                self.control = ControlServer(path, self.render_status, log)
                log.info("control socket at %s (pyfork status%s)", path,
                         "" if path == default_path(None, environ) else " --control-socket " + path)
            except OSError as exc:
                # a second master on the same default path, a read-only directory: status
                # is a convenience, serving is the job, so say so and carry on
                log.warning("%s; running without a control socket", exc.strerror or exc)
        self.master = None
        self.evidence = {}          # slot -> its worker's last sample taken alive
        self.drawn = None           # (what it was drawn from, the live page)
        self.oom_killed = False     # the last death `died` filed was the kernel's OOM kill

    def servers(self):
        return [self.control] if self.control else []

    # -- deaths -------------------------------------------------------------------------

    def guard(self, now):
        if self.counters:
            self.counters.refresh(now)

    def last_sample(self, slot, pid):
        s = self.evidence.get(slot)
        return s if s is not None and s.pid == pid else None

    def died(self, death, now):
        """A worker died on its own (or of our timeout), as a supervise.deaths.Death: file it
        in the ledger. Returns what killed it when it was a SIGKILL pyfork did not send ('killed
        by the kernel's OOM killer (cgroup oom_kill 3->4) at USS ..', or 'killed by SIGKILL from
        outside pyfork ..'), for the death line; else None."""
        from .. import exits
        move, named = None, None
        sample = self.last_sample(death.nr, death.pid)
        if death.code == -9 and not death.aborted and self.counters:     # our own SIGKILL is KILLED_BY_US
            move = self.counters.check(now)
            quota = self.monitor.last_dyno.quota if self.monitor.last_dyno else None
            named = oom.sentence(death.nr, death.pid, move, sample, quota).split(" ", 2)[2]
        cause = Cause.OOM_KILL if move is not None else Cause(death.cause.value)
        self.oom_killed = move is not None
        request = "%s for %.2fs" % (death.what or "a request", death.running) if death.busy else ""
        self.ledger.record(Entry(time.time(), death.nr, death.pid, cause,
                                 named or exits.exit_description(death.code, death.ours), request,
                                 sample_text(sample), death.uptime))
        return named

    def recycled(self, slot, pid, category, why, beat, now):
        self.ledger.record(Entry(time.time(), slot, pid, cause_of_recycle(category), str(why),
                                 beat_request(beat, now), sample_text(self.last_sample(slot, pid))))

    def reloaded(self, slot, pid):
        self.ledger.record(Entry(time.time(), slot, pid, Cause.RELOAD, "replaced on HUP"))

    # -- every sample -------------------------------------------------------------------

    def sampled(self):
        m = self.monitor
        advised = m.advice.workers if m and m.advice else None
        for slot, sample in (m.last.items() if m else ()):
            if sample.rss:          # a worker sampled between its death and its reaping shows 0
                self.evidence[slot] = sample
        if m and m.last_master is not None:
            self.ring.add(time.time(), m.last_master, list(m.last.values()), m.last_dyno, advised)
        for line in self.ledger.log_lines():
            self.log.info("%s", line)

    def restarts(self):
        """[(wall, who, reason)] of the deaths the ledger still holds, oldest first."""
        return sorted((e.when, "worker %d" % e.slot, e.cause.value)
                      for slot in self.ledger.entries for e in self.ledger.recent(slot))

    def page(self):
        """The live page at `/` of --metrics-bind. Drawn once per new sample or death and
        kept (about 40 ms at 20 workers and a full ring, in the master's loop), so any
        number of viewers reloading it cost the loop nothing more."""
        m = self.monitor
        key = (len(self.ring.samples), self.ring.samples[-1][0] if self.ring.samples else None,
               sum(self.ledger.by_reason().values()))
        if self.drawn is None or self.drawn[0] != key:
            self.drawn = (key, report.charts.page(self.ring.data(self.restarts()), "pyfork live: %s" % (
                self.master.cfg.app if self.master else ""), refresh=10, advice=m.said if m else None))
        return self.drawn[1]

    def boot_line(self, cfg, target, sources):
        """The one line at start: everything the advice will use, and where each came from."""
        from .. import __version__
        m = self.monitor
        dyno = m.sampler.dyno() if m else None
        sources = sources or {}
        tasks_from = None
        if dyno and dyno.tasks_max is not None:
            pids = m.sampler.cgroups.get("pids")
            tasks_from = "cgroup" if pids and dyno.tasks is not None and m.sampler.tasks_max_flag != dyno.tasks_max \
                else ("dyno-size" if cfg.dyno_size else "rlimit")
        workers_from = "auto" if cfg.workers is AUTO else status.short_source(sources.get("workers"))
        return status.boot_line(
            __version__, "%d.%d.%d" % sys.version_info[:3],
            (cfg.dyno_size, status.short_source(sources.get("dyno_size")) if cfg.dyno_size else None),
            m.cpus if m else (os.cpu_count(), "cpu count"),
            (dyno.quota if dyno else None, dyno.quota_source if dyno else None),
            (dyno.tasks_max if dyno else None, tasks_from), (target, workers_from),
            (getattr(cfg, "threads", 1), status.short_source(sources.get("threads"))))

    # -- status ---------------------------------------------------------------------------

    def render_status(self):
        return self.document(self.master) if self.master else {"error": "the master is starting"}

    def document(self, master):
        from .. import __version__
        from ..supervise import heartbeat
        now = time.monotonic()
        m = self.monitor
        dyno = m.last_dyno if m else None
        workers = []
        for slot in master.table.slots:
            pid = slot.pid
            beat = master.heartbeat.get(slot.cell) if pid else None
            workers.append(status.worker(
                slot.nr, pid, (now - slot.started) if pid else None,
                beat.state if beat else heartbeat.BOOTING, beat.busy if beat else 0,
                beat.running(now) if beat and beat.busy else None, beat.what if beat else "",
                beat.requests if beat else 0, m.last.get(slot.nr) if m else None,
                self.ledger.slot_counts(slot.nr)))
        deaths = sorted((e.as_dict() for s in self.ledger.entries for e in self.ledger.recent(s)),
                        key=lambda d: d["when"])
        info = {"pid": master.pid, "uptime": now - self.started, "app": master.cfg.app,
                "binds": master.binds, "version": __version__,
                "python": "%d.%d.%d" % sys.version_info[:3], "target": master.target,
                "dyno_size": master.cfg.dyno_size, "quota": dyno.quota if dyno else None,
                "quota_source": dyno.quota_source if dyno else None,
                "tasks": dyno.tasks if dyno else None, "tasks_max": dyno.tasks_max if dyno else None,
                "advice": m.said if m else None, "restarts": self.ledger.by_reason(),
                "configured": "auto" if master.cfg.workers is AUTO else master.cfg.workers,
                "step_down": m.stepped[1] if m and m.stepped else None,
                "utilization": m.utilization if m else None}
        return status.document(info, workers, deaths)

