"""A real headless Chromium for the page tests, driven through Debian's chromedriver over
the W3C WebDriver protocol (plain HTTP and JSON: no client library to install).

    with Browser(tmp_path) as b:
        b.open("http://127.0.0.1:PORT/")
        b.run("return document.querySelectorAll('path.series').length")
        b.errors()               # the console's SEVERE entries
        b.screenshot(path)

Flags as this machine's notes require: headless, no sandbox (root), and no background
networking, which a closed network answers with a flood of refused connections.
"""
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import psutil
import pytest

from conftest import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1100,1400"]


class Browser:
    def __init__(self, tmp_path):
        if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
            pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
        self.port = free_port()
        self.log = open(os.path.join(str(tmp_path), "chromedriver.log"), "w")
        self.proc = subprocess.Popen([DRIVER, "--port=%d" % self.port], stdout=self.log, stderr=subprocess.STDOUT)
        self.base = "http://127.0.0.1:%d" % self.port
        self.session = None
        deadline = time.monotonic() + 15
        while True:
            try:
                self.call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": CHROMIUM, "args": FLAGS + [
                    "--user-data-dir=" + os.path.join(str(tmp_path), "chromium-profile")]}}
        for attempt in range(3):
            try:
                self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
                break
            except ConnectionError:     # seen once on a loaded machine: the driver hung up on the first try
                if attempt == 2:
                    self.close()
                    raise

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            raise AssertionError("webdriver %s %s: %s" % (method, path, exc.read()[:2000])) from None

    def open(self, url):
        self.call("POST", "/session/%s/url" % self.session, {"url": url})

    def run(self, script, *args):
        return self.call("POST", "/session/%s/execute/sync" % self.session, {"script": script, "args": list(args)})

    def errors(self):
        """Console entries of level SEVERE since the last call (errors and failed loads)."""
        entries = self.call("POST", "/session/%s/se/log" % self.session, {"type": "browser"}) or []
        return [e for e in entries if e.get("level") == "SEVERE"]

    def screenshot(self, path):
        png = base64.b64decode(self.call("GET", "/session/%s/screenshot" % self.session))
        with open(path, "wb") as f:
            f.write(png)
        return png

    def close(self):
        try:
            leftovers = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            leftovers = []
        if self.session:
            try:
                self.call("DELETE", "/session/%s" % self.session)
            except Exception:   # noqa: BLE001 - the driver is killed below either way
                pass
            self.session = None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for p in leftovers:             # chromium's processes, should the quit not have ended them
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
