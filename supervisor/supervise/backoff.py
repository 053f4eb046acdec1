"""Restart delays for a crashing slot (pure).

Neither Unicorn nor Gunicorn backs off: a worker that crashes on every request makes
them fork as fast as the app can die. Here the first restart is immediate, then the
delay doubles from FIRST up to CAP, with jitter so slots that died together do not
respawn in lockstep; a worker that stayed up STABLE seconds resets its slot.
"""
FIRST = 0.1      # seconds, the delay after the second quick death
CAP = 30.0       # seconds, the longest base wait (jitter may add a quarter)
STABLE = 10.0    # seconds of uptime that clear a slot's history


def delay(failures, rnd):
    """Delay before respawn after `failures` consecutive quick deaths; rnd in [0, 1)."""
    if failures <= 1:
        return 0.0
    base = min(CAP, FIRST * 2 ** min(failures - 2, 32))   # exponent capped: no float overflow
    return base * (0.75 + 0.5 * rnd)      # +-25% jitter, also at the cap (no lockstep)
