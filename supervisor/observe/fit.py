"""Fitting the dyno by itself (pure): how `-w auto` grows, when the master runs one worker
fewer than configured, when the advice is worth a line, and how busy the capacity was.

Growth (`grow`). `-w auto` starts at its floor (--min-workers, 1 by default): a worker's
size is unknown until it has served, and a guess that is too small overshoots (the old
start of 3 x an assumed 100MB, in a dyno where 2 fit, ended in OOM kills). It adds one
worker at a time, at a metrics sample, and only when
- the advice (sizing.steady: held until the measure settles) asks for more;
- every running worker has been in two samples and has served SETTLE_REQUESTS requests
  (or been in SETTLE_SAMPLES samples, for a quiet app): its size is near its steady size;
- no worker's private memory rose by more than ROSE of the quota since the last sample
  (a fleet still growing is no measure);
- one more worker at the largest worker's size stays under the advice's share (85%) of
  the quota: master and shared + (n + 1) x largest private;
- the CPU and task bounds, --max-workers and a step down's hold allow it.
It moves down one worker per sample when the advice asks for fewer.

Step down (`step_down`). When the kernel OOM-kills a worker, or recycling for memory does
not help (the replacement grows back), the master runs one worker fewer and holds that
until a HUP or USR2: one line says why, with the measured sizes. A fixed count that does
not fit otherwise loops through OOM kills for as long as it runs.
"""
import dataclasses
from typing import Optional

from .metrics import MB
from .sizing import SETTLE_REQUESTS, SETTLE_SAMPLES

ROSE = 0.01                # of the quota: a worker's growth between samples that is no steady size
ADVICE_EVERY = 60.0        # seconds: a changed advice is said at most this often, unless urgent
SETTLE = 5.0               # seconds after a step down in which another kill is of the same squeeze


@dataclasses.dataclass(frozen=True)
class Measure:
    """One running worker as growth sees it at a sample."""
    private: int               # bytes (USS, RSS where unknown)
    rose: int                  # bytes gained since the previous sample (0 at its first)
    samples: int               # samples it has been in, this one included
    requests: int


def _mb(n):
    return "%dMB" % round(n / MB)


def can_add(current, advice, measures):
    """Whether one more worker fits by measurement (the rules in the module's docstring,
    but for the count bounds): -> (bool, why not or the projection)."""
    if len(measures) < current or not measures:
        return False, "not every worker is sampled yet"
    if not all(m.samples >= 2 and (m.requests >= SETTLE_REQUESTS or m.samples >= SETTLE_SAMPLES)
               for m in measures):
        return False, "the workers' size is still being measured"
    quota = advice.inputs.quota
    if any(m.rose > ROSE * quota for m in measures):
        return False, "memory rose in the last interval"
    peak = max(m.private for m in measures)
    projected = advice.fixed + (current + 1) * peak
    text = "%d x %s private (the largest) + %s master and shared = %s, %d%% of %s" % (
        current + 1, _mb(peak), _mb(advice.fixed), _mb(projected), round(100.0 * projected / quota), _mb(quota))
    if projected > advice.inputs.share * quota:
        return False, text + ", over %d%%" % round(100 * advice.inputs.share)
    if current + 1 > advice.cpu_bound or (advice.tasks_bound is not None and current + 1 > advice.tasks_bound):
        return False, "the CPU or task bound"
    return True, text


def grow(current, advice, measures, lo=1, hi=None, cap=None):
    """-> (the worker count for -w auto after this sample, the projection behind a step
    up, else ''). advice: sizing.steady's advice (None while the measure settles);
    measures: [Measure] of the running workers; lo, hi: --min-workers, --max-workers;
    cap: the count a step down holds, or None."""
    limits = [x for x in (hi, cap) if x is not None]
    top = min(limits) if limits else current + 1

    def bound(n):
        return max(lo, min(top, n))
    if advice is None:
        return bound(current), ""
    if advice.workers < current:
        return bound(current - 1), ""
    if advice.workers > current and current < top:
        ok, why = can_add(current, advice, measures)
        if ok:
            return bound(current + 1), why
    return bound(current), ""


def start_line(n, threads, advice, interval):
    """What -w auto serves with while it measures, and how it grows."""
    return ("-w auto: serving with %d worker%s x %d thread%s while it measures the workers' size; one more "
            "at a metrics sample (every %gs) once each worker has served %d requests, while one more at the "
            "largest worker's size stays under %d%% of %s; at most %d by the first guess (%s)" % (
                n, "" if n == 1 else "s", threads, "" if threads == 1 else "s", interval, SETTLE_REQUESTS,
                round(100 * advice.inputs.share), _mb(advice.inputs.quota), advice.workers,
                advice.limited_by.value))


@dataclasses.dataclass(frozen=True)
class StepDown:
    running: int               # workers to run from now on
    line: str


def step_down(running, configured, floor, cause, each=None, fixed=0, quota=None, mark=90):
    """One worker fewer than `running` (never below `floor`), as a StepDown; None at the
    floor. configured: -w N, or None for -w auto; cause: what happened ('the kernel
    OOM-killed worker=1 at USS 170MB'); each: the largest worker's private bytes measured
    (None: unknown); fixed: master and shared bytes; quota: bytes or None; mark: percent."""
    n = running - 1
    if n < max(1, floor):
        return None
    head = "running %d of %d workers" % (n, configured if configured is not None else running)
    if configured is None:
        head += " (-w auto holds at most %d)" % n
    if each and quota:
        mb = "%d x %s private" % (running, _mb(each))
        if fixed + running * each > quota * mark / 100.0:
            head += ": %s does not fit under %d%% of %s" % (mb, mark, _mb(quota))
        else:
            head += ": %s was projected to fit under %d%% of %s, but %s" % (mb, mark, _mb(quota), cause)
            cause = ""
    else:
        head += ": " + cause
        cause = ""
    again = "%s%s HUP or USR2 tries %s again" % (cause, "; a" if cause else "a",
                                                 configured if configured is not None else "more")
    return StepDown(n, "%s; set WEB_CONCURRENCY=%d (%s)" % (head, n, again))


def say_advice(said, advice, now, every=ADVICE_EVERY):
    """Whether a line is due for `advice`: said is (key, when) of the last line, or None.
    A line when the count, the binding reason or the threads suggestion changes, at most
    once every `every` seconds, except at once when fewer workers than run now are
    advised for memory (the R14 warning). The same advice is not repeated."""
    if said is None:
        return True
    key, when = said
    if advice_key(advice) == key:
        return False
    urgent = advice.limited_by.value == "memory" and advice.workers < advice.current
    return urgent or now - when >= every


def advice_key(advice):
    return advice.workers, advice.limited_by, advice.suggest_threads


def interval_use(before, fleet, since, threads):
    """Thread-seconds in requests and thread-seconds of capacity since the last sample.
    A worker writes its busy seconds into its cell with the moment it wrote them (its
    beat), about once a second and whenever it goes idle: each worker is measured between
    its own two writes, so a write a second late moves its window, not its share (against
    the master's clock a 2 s interval read 0.09, then 1.0, for a steady 0.5).
    before: {pid: (busy seconds, beat)} at the last sample; fleet: [(pid, busy seconds,
    beat, uptime)] now; since: the last sample's time (a worker new since then counts from
    its start, or from then); threads: --threads."""
    busy = capacity = 0.0
    for pid, b, at, up in fleet:
        b0, at0 = before.get(pid, (0.0, max(since, at - up)))
        busy += max(0.0, b - b0)
        capacity += max(0.0, at - at0)
    return busy, max(1, threads) * capacity


def utilization(busy, capacity) -> Optional[float]:
    """busy / capacity, 0.0 to 1.0, two decimals; None without capacity. Busy time is
    written to a worker's cell about once a second, so a short interval can read a little
    past 1: it is clamped."""
    if capacity <= 0:
        return None
    return round(min(1.0, busy / capacity), 2)
