"""What a trusted proxy may tell the app, as Gunicorn takes it: secure_scheme_headers (any
mapping) and forwarder_headers (SCRIPT_NAME mounts the app), bytes in, bytes out through
test_connection's stand-in socket; an untrusted peer's headers change nothing."""
import pytest

from supervisor.config import resolve
from supervisor.serve import wsgi
from supervisor.serve.connection import Connection
from test_connection import StandInSocket, context, parse_responses


def where(environ, start_response):
    body = " ".join([environ["wsgi.url_scheme"], environ["SCRIPT_NAME"] or "-", environ["PATH_INFO"],
                     environ.get("HTTP_REMOTE_USER", "-")]).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


def answer(head, trusted=True, **settings):
    cfg = resolve("m:app", {k: v for k, v in settings.items()}, {})
    wsgi.framing(key for key, _ in cfg.secure_scheme_headers)
    ctx = context(where, forwarders=frozenset(cfg.forwarder_headers),
                  scheme_headers={k: v.lower() for k, v in cfg.secure_scheme_headers})
    sock = StandInSocket([b"GET /app/x HTTP/1.1\r\nHost: t\r\n" + head + b"\r\n"])
    conn = Connection(ctx, sock, wsgi.listener_environ(wsgi.base_environ("pyfork"), ("127.0.0.1", 80)), trusted)
    conn.on_readable()
    [(status, _, body)] = parse_responses(sock.sent)
    return status, body.decode()


# (what the proxy sends, settings, trusted peer?, status, body: scheme SCRIPT_NAME PATH_INFO REMOTE_USER)
CASES = [
    (b"", {}, True, 200, "http - /app/x -"),
    (b"X-Forwarded-Proto: https\r\n", {}, True, 200, "https - /app/x -"),
    (b"X-Forwarded-Proto: https\r\n", {}, False, 200, "http - /app/x -"),
    # a mapping of the proxy's own
    (b"X-Scheme: https\r\n", {"secure_scheme_headers": {"X-Scheme": "https"}}, True, 200, "https - /app/x -"),
    (b"X-Scheme: https\r\n", {"secure_scheme_headers": "X-SCHEME=https"}, False, 200, "http - /app/x -"),
    (b"X-Forwarded-Proto: https\r\n", {"secure_scheme_headers": {"X-Scheme": "https"}}, True, 200,
     "http - /app/x -"),
    (b"Front-End-Https: on\r\nX-Scheme: http\r\n", {"secure_scheme_headers": {"FRONT-END-HTTPS": "on",
                                                                                "X-SCHEME": "https"}},
     True, 400, "400 Bad Request\n"),
    # SCRIPT_NAME from a trusted proxy mounts the app (forwarder_headers' default)
    (b"SCRIPT_NAME: /app\r\n", {}, True, 200, "http /app /x -"),
    (b"SCRIPT_NAME: /app\r\n", {}, False, 200, "http - /app/x -"),
    (b"SCRIPT_NAME: /other\r\n", {}, True, 500, "500 Internal Server Error\n"),
    (b"SCRIPT_NAME: /app\r\n", {"forwarder_headers": "PATH_INFO"}, True, 200, "http - /app/x -"),
    (b"REMOTE_USER: ann\r\n", {}, True, 200, "http - /app/x -"),
    (b"REMOTE_USER: ann\r\n", {"forwarder_headers": "SCRIPT_NAME,REMOTE_USER"}, True, 200, "http - /app/x ann"),
    (b"REMOTE_USER: ann\r\n", {"forwarder_headers": "*"}, False, 200, "http - /app/x -"),
    (b"remote_user: ann\r\nSCRIPT_NAME: /app\r\n", {"forwarder_headers": "*"}, True, 200, "http /app /x ann"),
]


@pytest.mark.parametrize("head, settings, trusted, status, body", CASES)
def test_trusted_proxy_headers(head, settings, trusted, status, body):
    assert answer(head, trusted, **settings) == (status, body)


@pytest.mark.parametrize("value, error", [
    ({"X-Forwarded-Proto": "https"}, None), ("X-Forwarded-Proto=https,X-Forwarded-Ssl=on", None),
    ("X-Forwarded-Proto", "write NAME=VALUE"), ({"X_Scheme": "https"}, "not a header name"), (["x"], "not a mapping"),
])
def test_scheme_headers_setting(value, error):
    from supervisor.convert_gunicorn import ConfigError, _scheme_headers
    if error is None:
        assert _scheme_headers(value, "s")[0] == ("HTTP_X_FORWARDED_PROTO", "https")
    else:
        with pytest.raises(ConfigError, match=error):
            _scheme_headers(value, "s")


@pytest.mark.parametrize("name, forwarders, key", [
    (b"SCRIPT_NAME", ("SCRIPT_NAME", "PATH_INFO"), "HTTP_SCRIPT_NAME"), (b"script_name", ("SCRIPT_NAME",), "HTTP_SCRIPT_NAME"),
    (b"REMOTE_USER", ("SCRIPT_NAME", "PATH_INFO"), None), (b"X_Any", ("*",), "HTTP_X_ANY"), (b"X_Any", (), None),
])
def test_forwarded_key(name, forwarders, key):
    from supervisor.serve.strict import forwarded_key
    assert forwarded_key(name, forwarders) == key
