"""The report and the live page in a real headless Chromium: the charts render (their
series are in the DOM), the console has no errors, and a screenshot is saved."""
import os
import subprocess
import sys
import time

from browser import Browser
from conftest import APPS, Server, free_port, get, wait_for

SERIES = "return Array.from(document.querySelectorAll('path.series')).map(p => p.dataset.series)"
SIZE = "var s = document.querySelector('svg').getBoundingClientRect(); return [s.width, s.height]"


def drive(s, n=30):
    for i in range(n):
        assert get(s.port, "/hog?2")[0] == 200


def test_live_page_and_report_render_in_chromium(tmp_path):
    mport = free_port()
    log_path = str(tmp_path / "pyfork.log")
    with Browser(tmp_path) as b:
        with Server("metrics_apps:app", "--metrics-interval", "0.2", "--metrics-bind", "127.0.0.1:%d" % mport,
                    "--max-requests", "12", workers=3) as s:
            for _ in range(3):
                drive(s, 12)
                time.sleep(0.5)
            assert wait_for(lambda: "restarts worker=" in s.log(), 5), s.log()
            status, _, body = get(mport, "/")
            assert status == 200 and b"<svg" in body
            b.open("http://127.0.0.1:%d/" % mport)
            live = b.run(SERIES)
            live_errors = b.errors()
            b.screenshot(str(tmp_path / "live.png"))
            with open(log_path, "w") as f:
                f.write(s.log())
        assert {"master", "worker 0", "worker 1", "worker 2", "tasks", "workers running"} <= set(live), live
        assert live_errors == [], live_errors
        out = subprocess.run([sys.executable, "-m", "supervisor", "report", log_path], capture_output=True,
                             timeout=60, env=dict(os.environ, PYTHONPATH=APPS))
        assert out.returncode == 0, out.stderr
        report = tmp_path / "report.html"
        report.write_bytes(out.stdout)
        b.open(report.as_uri())
        series = b.run(SERIES)
        reasons = b.run("return Array.from(document.querySelectorAll('path.restart')).map(p => p.dataset.reason)")
        width, height = b.run(SIZE)
        legend = b.run("return document.querySelector('ul.legend').textContent")
        errors = b.errors()
        png = b.screenshot(str(tmp_path / "report.png"))
    assert {"master", "worker 0", "worker 1", "worker 2", "tasks", "workers advised"} <= set(series), series
    assert "quota" in legend
    assert reasons and set(reasons) == {"max_requests"}, reasons
    assert width > 600 and height > 200
    assert errors == [], errors
    assert png.startswith(b"\x89PNG") and len(png) > 10000
