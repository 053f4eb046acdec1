#!/usr/bin/env python3
"""Respawn latency, pyfork beside Gunicorn: SIGKILL the only worker (-w 1 --preload) and
time until a request is answered by its replacement. With one worker nothing else can
answer, so this times the replacement itself, not how connections spread over workers.

    python scripts/respawn.py [KILLS]      (default 4; 11 s apart so no backoff is in play)
"""
import os, signal, socket, statistics, subprocess, sys, time
import psutil
py = sys.executable
HERE = os.path.dirname(os.path.abspath(__file__))
def measure(cmd, port, n=10):
    p = subprocess.Popen(cmd, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ps = psutil.Process(p.pid); out = []
    try:
        time.sleep(1.5)
        for i in range(n):
            w = [c for c in ps.children() if c.status() != psutil.STATUS_ZOMBIE]
            assert len(w) == 1, w
            time.sleep(11 if i else 0.1)     # stable uptime: no backoff in play
            t0 = time.perf_counter()
            os.kill(w[0].pid, signal.SIGKILL)
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(200); dt = time.perf_counter() - t0; s.close()
            assert data.startswith(b"HTTP/1.1 200"), data
            out.append(dt * 1000)
    finally:
        p.send_signal(signal.SIGTERM); p.wait(30)
    return out
for name, cmd in [("pyfork", [py, "-m", "supervisor", "run", "hello:app", "-w", "1", "--preload", "-b", "127.0.0.1:8161"]),
                  ("gunicorn", [py, "-m", "gunicorn", "-w", "1", "--preload", "--no-control-socket", "-b", "127.0.0.1:8161", "hello:app"])]:
    xs = measure(cmd, 8161, int(sys.argv[1]) if len(sys.argv) > 1 else 4)
    print("%-8s kill -> answered by the replacement: median %.1f ms, min %.1f, max %.1f  %s" % (name, statistics.median(xs), min(xs), max(xs), ["%.1f" % x for x in xs]))
