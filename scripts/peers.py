"""Servers that answer raw bytes, for scripts/corpus.py and scripts/fuzz.py.

Starts pyfork, Gunicorn (sync, gthread) or waitress on 127.0.0.1 serving scripts/echo.py,
sends one connection's worth of raw bytes, and reads back what came: the responses, each
parsed (status, headers, body, and the echo app's JSON reading when it answered), and
whether the server closed. Every server started is stopped by PID and waited for.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from ports import free_port  # noqa: E402   scripts/ports.py, beside this file

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = "127.0.0.1"
KINDS = ("pyfork", "gunicorn-sync", "gunicorn-gthread", "waitress")


def argv(kind, port, python=sys.executable, flags=()):
    bind = "%s:%d" % (HOST, port)
    if kind == "pyfork":
        return [python, "-m", "supervisor", "run", "echo:app", "-w", "1", "-b", bind,
                "--log-level", "warning"] + list(flags)
    if kind.startswith("gunicorn"):
        cmd = [python, "-m", "gunicorn", "-w", "1", "-b", bind, "--log-level", "warning"]
        if kind == "gunicorn-gthread":
            cmd += ["-k", "gthread", "--threads", "2"]
        return cmd + list(flags) + ["echo:app"]
    if kind == "waitress":
        return [python, "-m", "waitress", "--listen=" + bind, "--threads=2"] + list(flags) + ["echo:app"]
    raise ValueError("unknown server %r (one of %s)" % (kind, ", ".join(KINDS)))


class Peer:
    """One server process of `kind`, started with `flags`; stop() kills it by PID."""

    def __init__(self, kind, flags=(), python=sys.executable):
        self.kind = kind
        self.port = free_port(HOST)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYFORK_", "GUNICORN")) and k not in ("PORT", "WEB_CONCURRENCY")}
        env["PYTHONPATH"] = HERE + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), "peer-%s-%d.log" % (kind, self.port)), "w+")
        self.proc = subprocess.Popen(argv(kind, self.port, python, flags), cwd=HERE, env=env,
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            got = exchange(self.port, b"GET / HTTP/1.0\r\n\r\n", 2.0)    # fits any limit
            if got.responses and got.responses[0].status == 200:
                return
            time.sleep(0.1)
        self.log.seek(0)
        text = self.log.read()[-2000:]
        self.stop()
        raise RuntimeError("%s did not start:\n%s" % (self.kind, text))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)    # its own session: master and workers
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # [(lowercased name, value)]
        self.body = body

    def header(self, name):
        return ",".join(v for k, v in self.headers if k == name) or None

    def seen(self):
        """The echo app's reading, or None when the body is not the app's JSON."""
        if self.status != 200:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Exchange:
    def __init__(self, responses, closed, rest):
        self.responses = responses  # parsed, in order
        self.closed = closed        # the server closed (or reset) the connection
        self.rest = rest            # bytes after the last response that do not parse

    def statuses(self):
        return [r.status for r in self.responses]


def exchange(port, data, timeout=2.0, shut=True):
    """Send `data` on one connection, half-close, read until EOF or `timeout` of silence."""
    chunks = []
    closed = False
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            try:
                s.sendall(data)
                if shut:
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass        # the server refused early and closed: read what it said
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    closed = True
                    break
                if not b:
                    closed = True
                    break
                chunks.append(b)
    except OSError:
        closed = True
    responses, rest = parse_responses(b"".join(chunks))
    return Exchange(responses, closed, rest)


def parse_responses(data):
    """Bytes from a server -> ([Response], unparsed rest)."""
    out = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0 or not data.startswith(b"HTTP/"):
            break
        lines = data[:end].decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            break
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        rest = data[end + 4:]
        fields = dict(headers)
        if status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            body, rest = _dechunk(rest)
            if body is None:
                break
        elif "content-length" in fields:
            n = int(fields["content-length"])
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        if status != 100:
            out.append(Response(status, headers, body))
        data = rest
    return out, data


def _dechunk(data):
    body = []
    while True:
        line, sep, data = data.partition(b"\r\n")
        if not sep:
            return None, data
        size = int(line.split(b";")[0], 16)
        if size == 0:
            _, _, data = data.partition(b"\r\n")
            return b"".join(body), data
        body.append(data[:size])
        data = data[size + 2:]
