"""--reload end to end: a real pyfork serving an app from tmp_path, a client sending light
load the whole time, the module edited on disk. New code serves within 2 s of the save (3 s
when polling mtimes once a second), no request fails across the change, a syntax error
keeps the old workers serving (its traceback logged once, by the probe), and the master
keeps its one thread (inotify is read from its loop)."""
import threading
import time

import pytest

from conftest import free_port, get, wait_for
from test_config_e2e import Pyfork, write

APP = '''\
import os


def app(environ, start_response):
    body = b"%s"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
'''


class Load(threading.Thread):
    """GETs every 20 ms, each on a new connection: (monotonic time, status or the error, body)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.seen, self.halt = port, [], threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                status, _, body = get(self.port, "/", timeout=5)
                self.seen.append((time.monotonic(), status, body))
            except OSError as exc:
                self.seen.append((time.monotonic(), exc, b""))
            time.sleep(0.02)

    def first(self, body, since):
        return next((t for t, s, b in self.seen if b == body and t >= since), None)


def edit(path, version):
    path.write_text(APP % version)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("flags, within", [
    ((), 2.0),
    (("--preload",), 2.0),
    (("--reload-engine", "poll"), 3.0),
], ids=["inotify", "preload", "poll"])
def test_changed_module_serves_new_code(tmp_path, flags, within):
    port = free_port()
    app = tmp_path / "app.py"
    edit(app, "v1")
    p = Pyfork("app:app", "-b", "127.0.0.1:%d" % port, "-w", "2", "--reload", *flags, cwd=tmp_path, port=port,
               workers=2)
    load = Load(port)
    try:
        assert wait_for(lambda: "reload: watching 1 files" in p.log(), 10), p.log()
        load.start()
        time.sleep(0.3)
        for version in ("v2", "v3-longer"):
            saved = time.monotonic()
            edit(app, version)
            assert wait_for(lambda: load.first(version.encode(), saved) is not None, 10), p.log()
            assert load.first(version.encode(), saved) - saved < within, (version, p.log())
            time.sleep(0.5)
        # a syntax error: the traceback once, and the workers in use keep serving
        broken = time.monotonic()
        app.write_text(APP % "v4" + "\ndef broken(:\n")
        assert p.wait_log("the new code failed to import", 10), p.log()
        time.sleep(0.5)
        assert [b for t, s, b in load.seen if t > broken][-3:] == [b"v3-longer"] * 3
        assert p.log().count("SyntaxError") == 1
        assert p.ps.num_threads() == 1
    finally:
        load.halt.set()
        load.join(10)
        p.stop()
        p.close()
    failed = [(t, s) for t, s, b in load.seen if s != 200]
    assert not failed and len(load.seen) > 50, (failed, len(load.seen))


@pytest.mark.timeout(60)
def test_extra_file_replaces_the_workers(tmp_path):
    port = free_port()
    edit(tmp_path / "app.py", "v1")
    extra = write(tmp_path / "settings.toml", "a = 1\n")
    p = Pyfork("app:app", "-b", "127.0.0.1:%d" % port, "-w", "1", "--reload", "--reload-extra-file", extra,
               cwd=tmp_path, port=port)
    try:
        assert wait_for(lambda: "reload: watching 2 files" in p.log(), 10), p.log()
        before = p.worker_pids()
        write(tmp_path / "settings.toml", "a = 2\n")
        assert p.wait_log("settings.toml changed", 5), p.log()
        assert wait_for(lambda: p.worker_pids() and set(p.worker_pids()).isdisjoint(before), 10), p.log()
        assert get(port, "/")[2] == b"v1"
        assert p.stop() == 0
    finally:
        p.close()
