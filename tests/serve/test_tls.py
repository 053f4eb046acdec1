"""TLS with certificates made at test time (openssl), end to end: curl --cacert, keep-alive
and large bodies both ways through the SSL socket (a file wrapper too: never os.sendfile),
a stalled handshake holding no worker, a client that is not TLS closed with one debug
line, a PROXY header before the handshake, and a key that does not exist stopping the start."""
import hashlib
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from conftest import Server, free_port
from test_config_e2e import run_cli

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("curl") is None,
                                reason="needs openssl and curl")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def curl(port, cert, path="/", *extra):
    r = subprocess.run(["curl", "-sS", "--cacert", cert, *extra, "https://127.0.0.1:%d%s" % (port, path)],
                       capture_output=True, timeout=30)
    return r.returncode, r.stdout


def client(port, cert):
    ctx = ssl.create_default_context(cafile=cert)
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("threads", [1, 3])
def test_https_served(certs, threads):
    cert, key = certs
    with Server("http_app:unvalidated", "--certfile", cert, "--keyfile", key, "--threads", threads,
                "--log-level", "debug") as s:
        assert "listening at https://127.0.0.1:%d" % s.port in s.log()
        assert curl(s.port, cert) == (0, b"Hello, World!")
        code, body = curl(s.port, cert, "/env")
        assert code == 0 and b'"wsgi.url_scheme": "https"' in body, body
        c = client(s.port, cert)
        try:
            body = os.urandom(300_000)          # a body of many TLS records, read whole before the app
            for _ in range(3):                  # one connection: keep-alive over TLS
                c.request("POST", "/hash", body=body)
                r = c.getresponse()
                assert r.read() == b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
            c.request("GET", "/file?path=" + cert)     # a file wrapper: through the SSL socket
            r = c.getresponse()
            assert (r.status, r.read()) == (200, open(cert, "rb").read())
        finally:
            c.close()
        # a client that never finishes its handshake holds no worker
        stalled = socket.create_connection(("127.0.0.1", s.port))
        stalled.sendall(b"\x16\x03\x01")        # the start of a ClientHello, then nothing
        try:
            t0 = time.monotonic()
            assert curl(s.port, cert) == (0, b"Hello, World!")
            assert time.monotonic() - t0 < 5
        finally:
            stalled.close()
        # plain HTTP to the TLS port: closed, one debug line
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = plain.recv(100)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/1.1 200"), answer
        assert s.wait_log("tls handshake failed on fd")


@pytest.mark.timeout(60)
def test_proxy_header_before_the_handshake(certs):
    cert, key = certs
    with Server("proxy_app:app", "--certfile", cert, "--keyfile", key, "--proxy-protocol", "v1") as s:
        raw = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        raw.sendall(b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n")
        tls = ssl.create_default_context(cafile=cert).wrap_socket(raw, server_hostname="localhost")
        try:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            out = b""
            while True:
                data = tls.recv(65536)
                if not data:
                    break
                out += data
        finally:
            tls.close()
        assert b"REMOTE_ADDR=203.0.113.7" in out and b"wsgi.url_scheme=https" in out, out


def test_a_missing_key_stops_the_start(certs, tmp_path):
    cert, _ = certs
    code, out, err, _ = run_cli("run", "sup_apps:app", "-b", "127.0.0.1:%d" % free_port(), "--certfile", cert,
                                "--keyfile", str(tmp_path / "nope.pem"), cwd=tmp_path)
    assert code == 2 and "--certfile %s --keyfile %s" % (cert, tmp_path / "nope.pem") in err, err
