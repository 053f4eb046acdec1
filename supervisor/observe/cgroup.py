"""The dyno's memory and task numbers from cgroup files (pure: the sampler reads the
files and passes their text in; a file it could not read is simply absent).

A dyno is a cgroup: Heroku's quota is the v1 `memory.limit_in_bytes`, its task limit is
`pids.max`. Machines run v1 (Heroku, older Docker), v2 (systemd hosts, newer Docker) or a
hybrid of both (v1 controllers plus an empty v2 hierarchy), so every reader takes the version.

memory_total follows Heroku: log-runtime-metrics prints total = rss + cache + swap (its
samples add up exactly: 88.32MB = 87.66MB rss + 0.66MB cache; 90.07MB = 88.57MB rss +
1.50MB swap). The kernel's own charge (v1 usage_in_bytes, v2 memory.current, which also
counts kernel memory) is kept as `usage`: that is the number the cgroup limit applies to.
"""

FILES = {
    "v2": ["memory.current", "memory.max", "memory.stat", "memory.swap.current",
           "pids.current", "pids.max"],
    "v1_memory": ["memory.usage_in_bytes", "memory.limit_in_bytes", "memory.stat",
                  "memory.memsw.usage_in_bytes"],
    "v1_pids": ["pids.current", "pids.max"],
}

# v1 writes "no limit" as the largest page-aligned long (9223372036854771712); no machine
# has 2**60 bytes (1 EiB), so anything above is "unlimited", not a quota to size against.
UNLIMITED = 1 << 60


def controllers(proc_self_cgroup_text):
    """/proc/self/cgroup -> {controller: (version, path)}.

    v1 lines `4:memory:/process_api/abc` give one entry per controller (`cpu,cpuacct` two);
    the v2 line `0::/user.slice/x` is keyed ''. A hybrid host has both."""
    out = {}
    for line in proc_self_cgroup_text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hid, names, path = parts
        if hid == "0" and names == "":
            out[""] = ("v2", path)
        else:
            for name in names.split(","):
                if name:
                    out[name] = ("v1", path)
    return out


def directories(ctrls, controller, root="/sys/fs/cgroup"):
    """Where to look for `controller`'s files, best first: [] when the host has neither.

    Hazard: in a container without its own cgroup namespace, /proc/self/cgroup names the
    path on the host, while the container's /sys/fs/cgroup shows its own cgroup at the top
    (Heroku documents /sys/fs/cgroup/memory/memory.limit_in_bytes), so the mount root is
    the fallback. On a hybrid host the v2 tree has no memory or pids controller: v1 wins."""
    if controller in ctrls:
        path = ctrls[controller][1].rstrip("/")
        base = "%s/%s" % (root, controller)
    elif "" in ctrls:
        path = ctrls[""][1].rstrip("/")
        base = root
    else:
        return []
    return [base + path, base] if path else [base]


def parse_stat(text):
    """memory.stat (`name value` lines) -> {name: int}; malformed lines are skipped."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_limit(text):
    """'536870912' -> 536870912; 'max', v1's 9223372036854771712, '' or None -> None."""
    text = (text or "").strip()
    if not text.isdigit():
        return None           # 'max', '-1' (written, never read back), unreadable
    value = int(text)
    return value if value < UNLIMITED else None


def _int(files, name):
    text = (files.get(name) or "").strip()
    return int(text) if text.isdigit() else None


def _first(stat, *names):
    for name in names:
        if name in stat:
            return stat[name]
    return None


def _min(*values):
    known = [v for v in values if v is not None]
    return min(known) if known else None


def memory(version, files):
    """{'total', 'rss', 'cache', 'swap', 'pgpgin', 'pgpgout', 'limit', 'usage', 'own'}: bytes
    (pages for pgpg*), None where the files do not say. version: 'v1' or 'v2'. `own`: the
    limit is this cgroup's own, so its total is what the limit applies to (a parent's
    limit also covers processes outside this cgroup)."""
    stat = parse_stat(files.get("memory.stat"))
    if version == "v2":
        usage = _int(files, "memory.current")
        rss, cache = stat.get("anon"), stat.get("file")
        swap = _int(files, "memory.swap.current")
        # v2 counts no pgpgin/pgpgout; pgfault is another thing, so it is not passed off as them
        pgpgin = pgpgout = None
        # hazard: memory.max is this cgroup's own limit only; a parent's tighter one is not seen
        limit = parse_limit(files.get("memory.max"))
        own = limit
    else:
        usage = _int(files, "memory.usage_in_bytes")
        # total_* include child cgroups (the workers may sit in one); plain names do not
        rss = _first(stat, "total_rss", "rss")
        cache = _first(stat, "total_cache", "cache")
        memsw = _int(files, "memory.memsw.usage_in_bytes")
        if memsw is not None and usage is not None:
            # read a moment apart, memsw can come out below usage: swap is never negative
            swap = max(0, memsw - usage)
        else:
            swap = _first(stat, "total_swap", "swap")
        pgpgin = _first(stat, "total_pgpgin", "pgpgin")
        pgpgout = _first(stat, "total_pgpgout", "pgpgout")
        # a limit set on a parent cgroup shows only as hierarchical_memory_limit
        own = parse_limit(files.get("memory.limit_in_bytes"))
        limit = _min(own, parse_limit(str(stat.get("hierarchical_memory_limit", ""))))
    if rss is not None and cache is not None:
        total = rss + cache + (swap or 0)
    else:
        total = usage
    return {"total": total, "rss": rss, "cache": cache, "swap": swap,
            "pgpgin": pgpgin, "pgpgout": pgpgout, "limit": limit, "usage": usage,
            "own": limit is not None and limit == own}


def tasks(files):
    """(pids.current, pids.max) from the pids files; None where missing or unlimited."""
    return _int(files, "pids.current"), parse_limit(files.get("pids.max"))


CPU_FILES = {"v2": ["cpu.max"], "v1": ["cpu.cfs_quota_us", "cpu.cfs_period_us"]}


def cpu_quota(version, files):
    """CPUs the cgroup may use (quota / period, e.g. 1.5), None when unlimited or unread.
    v2 `cpu.max` is 'QUOTA PERIOD' or 'max PERIOD'; v1 writes -1 for no quota."""
    if version == "v2":
        parts = (files.get("cpu.max") or "").split()
        quota, period = (parts + [None, None])[:2]
    else:
        quota, period = (files.get("cpu.cfs_quota_us") or "").strip(), (files.get("cpu.cfs_period_us") or "").strip()
    if not quota or not period or not quota.isdigit() or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)
