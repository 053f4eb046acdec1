"""Parsers for the /proc files the sampler reads (pure: text in, numbers out).

Reading /proc ourselves keeps a full sample of 32 workers to a few milliseconds:
smaps_rollup gives RSS, PSS, USS and swap in one read (the kernel sums the mappings),
stat gives state, threads and CPU, task/*/children lists children without scanning
every process on the machine as psutil's children() must.
"""

KB = 1024


def parse_stat(text, clock_ticks):
    """/proc/PID/stat -> dict(state, ppid, threads, cpu seconds, start ticks, rss pages).
    The command name (field 2) may hold spaces and parentheses: split after the last ')'."""
    rest = text[text.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N - 3]
    return {
        "state": rest[0],
        "ppid": int(rest[1]),
        "cpu": (int(rest[11]) + int(rest[12])) / clock_ticks,
        "threads": int(rest[17]),
        "start": int(rest[19]),
        "rss_pages": int(rest[21]),
    }


def parse_smaps_rollup(text):
    """/proc/PID/smaps_rollup -> dict(rss, pss, uss, swap) in bytes. USS is the private
    part (clean + dirty + hugetlb): what the process frees when it exits."""
    fields = {}
    for line in text.splitlines()[1:]:
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * KB
    return {
        "rss": fields.get("Rss", 0),
        "pss": fields.get("Pss", 0),
        "uss": fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0) + fields.get("Private_Hugetlb", 0),
        "swap": fields.get("Swap", 0),
    }


def parse_children(texts):
    """The text of each /proc/PID/task/TID/children -> child pids."""
    return [int(p) for text in texts for p in text.split()]


def parse_btime(stat_text):
    """/proc/stat -> boot time in seconds since the epoch (for process uptimes)."""
    for line in stat_text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    return 0
