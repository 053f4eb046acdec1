"""Samples processes and the cgroup: the only module that reads /proc and /sys.

Two speeds. `guard(pid)` is cheap (a stat read and the children lists) and runs about
once a second, so a worker leaking zombies or threads is caught long before the task
limit; `process(...)` adds smaps_rollup and the fd count for the metrics lines.
"""
import os
import time

from . import cgroup, procfs
from .metrics import DynoSample, ProcSample

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _read(path):
    """A small /proc or /sys file in one read (no file object: this runs per process
    per sample, and the io layer's setup costs more than the read)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    try:
        return os.read(fd, 65536).decode("ascii", "replace")
    except (ProcessLookupError, OSError):
        return None
    finally:
        os.close(fd)


class Gone(Exception):
    """The process exited between two reads."""


class Sampler:
    def __init__(self, log, quota=None, quota_source="machine", tasks_max=None):
        self.log = log
        self.quota_flag = quota
        self.quota_source = quota_source
        self.tasks_max_flag = tasks_max
        self.smaps_ok = True
        self.btime = procfs.parse_btime(_read("/proc/stat") or "")
        self.cgroups = self.find_cgroups()

    # -- processes ------------------------------------------------------------------

    def stat(self, pid):
        text = _read("/proc/%d/stat" % pid)
        if text is None:
            raise Gone(pid)
        return procfs.parse_stat(text, CLOCK_TICKS)

    def children(self, pid):
        try:
            tids = os.listdir("/proc/%d/task" % pid)
        except (FileNotFoundError, ProcessLookupError):
            raise Gone(pid) from None
        return procfs.parse_children(filter(None, (_read("/proc/%d/task/%s/children" % (pid, t)) for t in tids)))

    def guard(self, pid, st=None):
        """-> (threads, children, zombies): cheap enough to run every second."""
        st = st or self.stat(pid)
        kids = self.children(pid)
        zombies = 0
        for kid in kids:
            text = _read("/proc/%d/stat" % kid)
            if text is not None and text[text.rindex(")") + 2] == "Z":
                zombies += 1
        return st["threads"], len(kids), zombies

    def memory(self, pid):
        """{'rss', 'pss', 'uss', 'swap'} from smaps_rollup, or None where unreadable."""
        if not self.smaps_ok:
            return None
        text = _read("/proc/%d/smaps_rollup" % pid)
        return None if text is None else procfs.parse_smaps_rollup(text)

    def process(self, slot, pid, requests, now_wall):
        """A full ProcSample (memory from smaps_rollup when the kernel lets us)."""
        st = self.stat(pid)
        threads, nkids, zombies = self.guard(pid, st)
        mem = None
        if self.smaps_ok:
            text = _read("/proc/%d/smaps_rollup" % pid)
            # a worker that is dying (a zombie still has /proc/PID) cannot be read either:
            # only when our own file is unreadable too is it the kernel or a permission
            if text is None and os.path.exists("/proc/%d" % pid) and _read("/proc/self/smaps_rollup") is None:
                self.smaps_ok = False
                self.log.warning("cannot read /proc/%d/smaps_rollup (kernel < 4.14 or no permission): "
                                 "logging plain RSS; PSS and USS stay unknown", pid)
            elif text is not None:
                mem = procfs.parse_smaps_rollup(text)
        try:
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except (FileNotFoundError, PermissionError):
            fds = 0
        uptime = now_wall - (self.btime + st["start"] / CLOCK_TICKS)
        return ProcSample(
            slot=slot, pid=pid,
            rss=mem["rss"] if mem else st["rss_pages"] * PAGE,
            pss=mem["pss"] if mem else None, uss=mem["uss"] if mem else None, swap=mem["swap"] if mem else None,
            threads=threads, fds=fds, children=nkids, zombies=zombies, requests=requests,
            cpu=st["cpu"], uptime=max(0.0, uptime))

    # -- the dyno (cgroup) ----------------------------------------------------------

    def find_cgroups(self):
        """Where our memory and pids cgroup files are: {'memory': dir, 'pids': dir, 'version': ...}."""
        found = {}
        ctl = cgroup.controllers(_read("/proc/self/cgroup") or "")
        for name, (version, path) in ctl.items():
            if version == "v2":
                base = "/sys/fs/cgroup"
                for d in (base + path, base):
                    if os.path.exists(d + "/memory.current") or os.path.exists(d + "/pids.current"):
                        found.setdefault("memory", ("v2", d))
                        found.setdefault("pids", ("v2", d))
                        break
            elif name in ("memory", "pids"):
                base = "/sys/fs/cgroup/" + name
                # in a container the cgroup's own directory is often mounted at the root
                for d in (base + path, base):
                    if os.path.isdir(d) and os.path.exists(d + "/%s.%s" % (name, "usage_in_bytes" if name == "memory" else "current")):
                        found[name] = ("v1", d)
                        break
        return found

    def cpu_quota(self):
        """CPUs allowed by the cgroup's CPU quota (cpu.max, cpu.cfs_quota_us), or None."""
        ctl = cgroup.controllers(_read("/proc/self/cgroup") or "")
        version = "v1" if "cpu" in ctl else "v2"
        for d in cgroup.directories(ctl, "cpu"):
            found = cgroup.cpu_quota(version, self.read_files(d, cgroup.CPU_FILES[version]))
            if found is not None:
                return found
        return None

    def read_files(self, directory, names):
        return {n: t for n in names if (t := _read(directory + "/" + n)) is not None}

    def dyno(self):
        mem = {}
        tasks = (None, None)
        if "memory" in self.cgroups:
            version, d = self.cgroups["memory"]
            names = cgroup.FILES["v2" if version == "v2" else "v1_memory"]
            mem = cgroup.memory(version, self.read_files(d, names))
        if "pids" in self.cgroups:
            version, d = self.cgroups["pids"]
            tasks = cgroup.tasks(self.read_files(d, cgroup.FILES["v2" if version == "v2" else "v1_pids"]))
        quota, source = mem.get("limit"), "cgroup" if mem.get("own") else "cgroup-parent"
        if quota is None and self.quota_flag:
            quota, source = self.quota_flag, self.quota_source
        if quota is None:
            quota, source = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "machine"
        current, tasks_max = tasks
        if tasks_max is None:
            tasks_max = self.tasks_max_flag
        return DynoSample(total=mem.get("total"), rss=mem.get("rss"), cache=mem.get("cache"),
                          swap=mem.get("swap"), pgpgin=mem.get("pgpgin"), pgpgout=mem.get("pgpgout"),
                          quota=quota, quota_source=source, tasks=current, tasks_max=tasks_max,
                          load=os.getloadavg())


def timed(fn, *args):
    """(result, seconds of wall time): the master logs what sampling costs it."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0
