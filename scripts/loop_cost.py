#!/usr/bin/env python3
"""What the master's decisions cost per turn of its loop: read every live worker's Beat
from shared memory, plan.actions, plan.deadline (no processes: a table of ready workers).

    python scripts/loop_cost.py
"""
import os, sys, time
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from supervisor.supervise import plan
from supervisor.supervise.heartbeat import Heartbeat, READY
for n in (1, 4, 16, 64):
    hb = Heartbeat()
    t = plan.new_table(n, plan.Timeouts(30.0, 60.0, 30.0))
    now = time.monotonic()
    for i in range(n):
        cell = hb.take()
        hb.set(cell, 1000 + i, READY, now, 5, 0.1)
        plan.spawned(t, i, 1000 + i, cell, now)
    t.ever_booted = True
    beats = {s.pid: hb.get(s.cell) for s in t.slots}
    plan.actions(t, beats, now)       # notes them ready
    N = 20000
    t0 = time.perf_counter()
    for _ in range(N):
        beats = {s.pid: hb.get(s.cell) for s in t.slots if s.pid}
        plan.actions(t, beats, now)
        plan.deadline(t, beats, now)
    us = (time.perf_counter() - t0) / N * 1e6
    print("workers=%d  %.1f us per loop turn (beats + actions + deadline)" % (n, us))
