"""Heroku's dyno sizes: memory quota, task limit, CPUs, default worker count (pure data).

Sources (Cedar generation; check them again when Heroku changes its line-up):
- memory: https://devcenter.heroku.com/articles/dyno-types (Eco/Basic/Standard-1X 512 MB,
  Standard-2X and Private/Shield-S 1 GB, M 2.5 GB, L 14 GB, L-RAM 30 GB, XL 62 GB, 2XL 126 GB);
  the byte values as `memory.limit_in_bytes` shows them on a dyno:
  https://help.heroku.com/Q386NUGG/how-can-i-determine-the-memory-limit-of-a-dyno
- tasks (processes + threads): https://devcenter.heroku.com/articles/dyno-scaling-and-process-limits
- vCPUs of dedicated dynos: https://help.heroku.com/88G3XLA6/what-is-an-acceptable-amount-of-dyno-load
- default WEB_CONCURRENCY: https://devcenter.heroku.com/articles/python-concurrency, the Python
  buildpack's min(RAM MB / 256, 2 * cores + 1) (heroku-buildpack-python vendor/WEB_CONCURRENCY.sh)

Shared dynos (Eco, Basic, Standard) have no dedicated cores ("vCPU n/a": `nproc` shows the
host's). Their `cpus` is the nominal CPU share (1x, 2x), so that the 2*cpus+1 bound (3, 5)
is never tighter than Heroku's own default (2, 4). Private-S/Shield-S: Heroku lists no vCPU
count; its compute (12x) equals Performance-M's, hence 2.
"""
import dataclasses

GB = 1 << 30


@dataclasses.dataclass(frozen=True)
class Dyno:
    name: str          # as `heroku ps:type` takes it, lower case
    quota: int         # bytes: the cgroup memory limit; R14 past it
    tasks: int         # processes + threads
    cpus: int          # dedicated vCPUs, or the nominal share for shared dynos
    dedicated: bool
    workers: int       # Heroku's default WEB_CONCURRENCY for Python


DYNOS = (
    Dyno("eco", 512 << 20, 256, 1, False, 2),
    Dyno("basic", 512 << 20, 256, 1, False, 2),
    Dyno("standard-1x", 512 << 20, 256, 1, False, 2),
    Dyno("standard-2x", 1 * GB, 512, 2, False, 4),
    Dyno("performance-m", 2560 << 20, 16384, 2, True, 5),
    Dyno("performance-l", 14 * GB, 32768, 8, True, 17),
    Dyno("performance-l-ram", 30 * GB, 24576, 4, True, 9),
    Dyno("performance-xl", 62 * GB, 32768, 8, True, 17),
    Dyno("performance-2xl", 126 * GB, 65536, 16, True, 33),
)


def _like_performance(prefix):
    """Private (Private Spaces) and Shield (the same with compliance controls) sizes
    match the Performance size of the same name."""
    return tuple(dataclasses.replace(d, name=prefix + d.name[len("performance-"):])
                 for d in DYNOS if d.name.startswith("performance-"))


# Private-S has no Performance twin: 1GB, 512 tasks, the compute of Performance-M (an
# inference: 2 CPUs). Shield-S is not in the task-limit list; it is taken to be Private-S.
PRIVATE_S = Dyno("private-s", 1 * GB, 512, 2, True, 4)
DYNOS += ((PRIVATE_S,) + _like_performance("private-")
          + (dataclasses.replace(PRIVATE_S, name="shield-s"),) + _like_performance("shield-"))

_BY_NAME = {d.name: d for d in DYNOS}
# the old names still seen in Procfiles, scripts and `heroku ps` output
ALIASES = {"1x": "standard-1x", "2x": "standard-2x", "free": "eco", "hobby": "basic"}


def lookup(name):
    """'Standard-1X', '1X', 'standard_1x' -> the Dyno; ValueError naming the valid ones."""
    key = str(name).strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    try:
        return _BY_NAME[key]
    except KeyError:
        raise ValueError("unknown dyno size %r; valid sizes: %s (or %s)" % (
            name, ", ".join(_BY_NAME), ", ".join(ALIASES))) from None


def groups():
    """[(names, Dyno)]: sizes that are the same machine for sizing (quota, tasks, cpus),
    in table order, e.g. (('eco', 'basic', 'standard-1x'), <eco>)."""
    out = {}
    for d in DYNOS:
        out.setdefault((d.quota, d.tasks, d.cpus), []).append(d)
    return [(tuple(d.name for d in ds), ds[0]) for ds in out.values()]
