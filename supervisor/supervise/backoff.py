"""How soon a slot restarts (pure): exponential backoff for a worker that never became
ready, a token bucket for one that was serving.

Neither Unicorn nor Gunicorn backs off: a worker that crashes on every request makes
them fork as fast as the app can die. A worker that fails to boot will most likely fail
again: its first restart is immediate, then the delay doubles from FIRST up to CAP, with
jitter so slots that died together do not respawn in lockstep; a worker that stayed up
STABLE seconds resets its slot.

A worker that was serving and died (a "query of death", a segfault, an OOM kill) is
restarted at once, or its slot stops answering: each death would lengthen the wait
while requests queue up behind it. What keeps that from spinning is a token bucket per
slot: BURST restarts at once, then RATE a second.
"""
FIRST = 0.1      # seconds, the delay after the second quick death
CAP = 30.0       # seconds, the longest base wait (jitter may add a quarter)
STABLE = 10.0    # seconds of uptime that clear a slot's history
BURST = 3        # restarts a slot makes at once after serving ...
RATE = 1.0       # ... then this many a second


def delay(failures, rnd):
    """Delay before respawn after `failures` consecutive quick deaths; rnd in [0, 1)."""
    if failures <= 1:
        return 0.0
    base = min(CAP, FIRST * 2 ** min(failures - 2, 32))   # exponent capped: no float overflow
    return base * (0.75 + 0.5 * rnd)      # +-25% jitter, also at the cap (no lockstep)


def paced(tokens, refilled, now):
    """Take a restart token from a bucket that held `tokens` at `refilled` ->
    (delay until the token is there, tokens left as of now). The bucket refills RATE a
    second up to BURST; a token taken before it is there leaves the count below zero,
    paid back by the delay."""
    left = min(BURST, tokens + (now - refilled) * RATE) - 1
    return max(0.0, -left / RATE), left
