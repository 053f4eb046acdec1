#!/usr/bin/env python3
"""CPU time per request of one pyfork worker (psutil user+sys), plain HTTP against TLS
(--certfile), keep-alive and a new connection per request: what TLS costs the worker.
Client: http.client, 4 connections in turn, 2,000 requests; a self-signed RSA 2048
certificate made by openssl for the run. psutil's clock ticks are 10 ms: +-5 us here.

    python scripts/tls_cost.py
"""
import http.client
import os
import ssl
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ports import free_port  # noqa: E402

TMP = tempfile.mkdtemp(prefix="pyfork-tls-cost-")
CERT, KEY = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", KEY, "-out", CERT, "-days", "1",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

def run(tls, close, n=2000):
    """-> microseconds of the worker's CPU per request."""
    port = free_port("127.0.0.1")
    args = [sys.executable, "-m", "supervisor", "run", "hello:app", "-w", "1", "-b", "127.0.0.1:%d" % port]
    if tls:
        args += ["--certfile", CERT, "--keyfile", KEY]
    p = subprocess.Popen(args, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctx = ssl.create_default_context(cafile=CERT)
        def conn():
            return (http.client.HTTPSConnection("127.0.0.1", port, context=ctx) if tls
                    else http.client.HTTPConnection("127.0.0.1", port))
        for _ in range(100):
            try:
                c = conn(); c.request("GET", "/"); c.getresponse().read(); c.close(); break
            except OSError:
                time.sleep(0.1)
        worker = psutil.Process(p.pid).children()[0]
        conns = [conn() for _ in range(4)]
        t = worker.cpu_times(); before = t.user + t.system
        for i in range(n):
            c = conns[i % 4]
            c.request("GET", "/", headers={"Connection": "close"} if close else {})
            c.getresponse().read()
            if close:
                c.close(); conns[i % 4] = conn()
        t = worker.cpu_times(); after = t.user + t.system
        return (after - before) / n * 1e6
    finally:
        p.terminate(); p.wait(30)

for close in (False, True):
    plain, tls = run(False, close), run(True, close)
    print("%-10s plain %.1f us/request, TLS %.1f us/request (x%.2f)" % ("close" if close else "keep-alive", plain, tls, tls / plain))

import shutil  # noqa: E402
shutil.rmtree(TMP, ignore_errors=True)
