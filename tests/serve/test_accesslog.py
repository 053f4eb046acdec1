"""supervisor/serve/accesslog.py: Gunicorn's access-log atoms, one table row per atom."""
import base64
import calendar
import time

import pytest

from supervisor.serve.accesslog import atoms, compile_format, format_line
from supervisor.config import BY_NAME

GUNICORN_DEFAULT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
NOW = calendar.timegm((2026, 11, 27, 6, 0, 0, 0, 0, 0))      # 2026-11-27 06:00:00 UTC
PID = 4242

ENV = {
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "51234",
    "REQUEST_METHOD": "GET",
    "RAW_URI": "/p?q=1",
    "PATH_INFO": "/p",
    "QUERY_STRING": "q=1",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "HTTP_USER_AGENT": "curl/8",
    "HTTP_X_REQ": "abc-123",
}
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "13")]


def line(fmt, env=None, status=200, headers=HEADERS, sent=13, seconds=0.25):
    return format_line(fmt, dict(ENV, **(env or {})), status, headers, sent, seconds, NOW, PID)


def basic(credentials):
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


@pytest.fixture
def tz(monkeypatch):
    """Run under a given TZ, then put the process's zone back."""
    def use(zone):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
    yield use
    monkeypatch.undo()
    time.tzset()


def test_default_format_is_gunicorns():
    assert BY_NAME["access_logformat"].default == GUNICORN_DEFAULT


def test_default_line_matches_gunicorn():
    stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(NOW))
    assert line(GUNICORN_DEFAULT) == '127.0.0.1 - - %s "GET /p?q=1 HTTP/1.1" 200 13 "-" "curl/8"' % stamp


# (TZ, the [time] atom) — the same instant in two zones, as Gunicorn's time.strftime prints it
ZONES = [
    ("UTC0", "[27/Nov/2026:06:00:00 +0000]"),
    ("EST5", "[27/Nov/2026:01:00:00 -0500]"),
    ("IST-5:30", "[27/Nov/2026:11:30:00 +0530]"),
]


@pytest.mark.parametrize("zone, stamp", ZONES)
def test_default_line_literal(tz, zone, stamp):
    tz(zone)
    assert line(GUNICORN_DEFAULT) == '127.0.0.1 - - %s "GET /p?q=1 HTTP/1.1" 200 13 "-" "curl/8"' % stamp


# (format, environ changes, status, response headers, bytes sent, seconds, expected line)
ATOMS = [
    ("%(h)s", {}, 200, HEADERS, 13, 0.25, "127.0.0.1"),
    ("%(h)s", {"REMOTE_ADDR": ""}, 200, HEADERS, 13, 0.25, "-"),
    ("%(h)s", {"REMOTE_ADDR": "::1"}, 200, HEADERS, 13, 0.25, "::1"),
    ("%(l)s", {}, 200, HEADERS, 13, 0.25, "-"),
    ("%(u)s", {}, 200, HEADERS, 13, 0.25, "-"),
    ("%(u)s", {"HTTP_AUTHORIZATION": basic("alice:s3cret")}, 200, HEADERS, 13, 0.25, "alice"),
    ("%(u)s", {"HTTP_AUTHORIZATION": "basic " + basic("bob:pw")[6:]}, 200, HEADERS, 13, 0.25, "bob"),
    ("%(u)s", {"HTTP_AUTHORIZATION": basic("carol:pa:ss")}, 200, HEADERS, 13, 0.25, "carol"),
    ("%(u)s", {"HTTP_AUTHORIZATION": basic(":pw")}, 200, HEADERS, 13, 0.25, "-"),
    ("%(u)s", {"HTTP_AUTHORIZATION": "Basic !!!notbase64"}, 200, HEADERS, 13, 0.25, "-"),
    ("%(u)s", {"HTTP_AUTHORIZATION": "Bearer abc.def"}, 200, HEADERS, 13, 0.25, "-"),
    ("%(r)s", {}, 200, HEADERS, 13, 0.25, "GET /p?q=1 HTTP/1.1"),
    ("%(r)s", {"REQUEST_METHOD": "OPTIONS", "RAW_URI": "*", "SERVER_PROTOCOL": "HTTP/1.0"}, 200, HEADERS, 13,
     0.25, "OPTIONS * HTTP/1.0"),
    ("%(m)s %(U)s %(q)s %(H)s", {}, 200, HEADERS, 13, 0.25, "GET /p q=1 HTTP/1.1"),
    ("%(s)s", {}, 404, HEADERS, 13, 0.25, "404"),
    ("%(s)s", {}, 500, None, 0, 0.25, "500"),
    ("%(B)s %(b)s", {}, 200, HEADERS, 13, 0.25, "13 13"),
    ("%(B)s %(b)s", {}, 204, [], 0, 0.25, "0 -"),
    ("%(f)s", {}, 200, HEADERS, 13, 0.25, "-"),
    ("%(f)s", {"HTTP_REFERER": "https://example.com/"}, 200, HEADERS, 13, 0.25, "https://example.com/"),
    ("%(a)s", {}, 200, HEADERS, 13, 0.25, "curl/8"),
    ("%(a)s", {"HTTP_USER_AGENT": ""}, 200, HEADERS, 13, 0.25, ""),
    ("%(T)s %(M)s %(D)s %(L)s", {}, 200, HEADERS, 13, 2.5, "2 2500 2500000 2.500000"),
    ("%(T)s %(M)s %(D)s %(L)s", {}, 200, HEADERS, 13, 0.25, "0 250 250000 0.250000"),
    ("%(T)s %(M)s %(D)s %(L)s", {}, 200, HEADERS, 13, 0.000123, "0 0 123 0.000123"),
    ("%(T)s %(M)s %(D)s %(L)s", {}, 200, HEADERS, 13, 61.0, "61 61000 61000000 61.000000"),
    ("%(p)s", {}, 200, HEADERS, 13, 0.25, "<4242>"),
    ("%({x-req}i)s", {}, 200, HEADERS, 13, 0.25, "abc-123"),
    ("%({X-Req}i)s", {}, 200, HEADERS, 13, 0.25, "abc-123"),
    ("%({x-missing}i)s", {}, 200, HEADERS, 13, 0.25, "-"),
    ("%({content-type}o)s", {}, 200, HEADERS, 13, 0.25, "text/plain"),
    ("%({Content-Type}o)s", {}, 200, [("content-type", "text/html")], 13, 0.25, "text/html"),
    ("%({content-type}o)s", {}, 500, None, 0, 0.25, "-"),
    ("%({x-missing}o)s", {}, 200, HEADERS, 13, 0.25, "-"),
    ("%({REMOTE_PORT}e)s", {}, 200, HEADERS, 13, 0.25, "51234"),
    ("%({REMOTE_PORT}e)s", {"REMOTE_PORT": 51234}, 200, HEADERS, 13, 0.25, "51234"),
    ("%({NOT_THERE}e)s", {}, 200, HEADERS, 13, 0.25, "-"),
    ("%(zz)s|%({x}z)s|%({}i)s", {}, 200, HEADERS, 13, 0.25, "-|-|-"),
    ("%(h)s:%({REMOTE_PORT}e)s %(s)s %(L)s", {}, 201, HEADERS, 7, 1.5, "127.0.0.1:51234 201 1.500000"),
]


@pytest.mark.parametrize("fmt, env, status, headers, sent, seconds, expected", ATOMS)
def test_atom(fmt, env, status, headers, sent, seconds, expected):
    assert line(fmt, env, status, headers, sent, seconds) == expected


def test_atoms_dict():
    got = atoms(dict(ENV), 200, HEADERS, 13, 0.25, NOW, PID)
    assert {k: got[k] for k in "hlursBbfaTMDLp"} == {
        "h": "127.0.0.1", "l": "-", "u": "-", "r": "GET /p?q=1 HTTP/1.1", "s": "200", "B": "13", "b": "13",
        "f": "-", "a": "curl/8", "T": "0", "M": "250", "D": "250000", "L": "0.250000", "p": "<4242>"}


def test_quotes_are_escaped_like_gunicorn():
    got = line(GUNICORN_DEFAULT + " %({x-req}i)s", {"HTTP_USER_AGENT": 'evil" 500 "x', "HTTP_X_REQ": 'a"b'})
    assert got.endswith('"-" "evil\\" 500 \\"x" a\\"b')


def test_basic_auth_user_is_utf8():
    assert line("%(u)s", {"HTTP_AUTHORIZATION": basic("jos\u00e9:pw")}) == "jos\u00e9"


def test_environ_atom_is_case_insensitive_like_gunicorn():
    assert line("%({remote_port}e)s") == "51234"


def test_millis_and_micros_agree_with_decimal_seconds():
    assert line("%(T)s %(M)s %(D)s %(L)s", seconds=1.001) == "1 1001 1001000 1.001000"


@pytest.mark.parametrize("fmt, env, status, headers, sent, seconds, expected", ATOMS)
def test_compiled_format_agrees_with_the_mapping(fmt, env, status, headers, sent, seconds, expected):
    """compile_format is an optimisation of `fmt % atoms(...)`: the same line, always."""
    args = (dict(ENV, **env), status, headers, sent, seconds, NOW, PID)
    assert compile_format(fmt)(*args) == fmt % atoms(*args) == expected


# (format, line): '%%' is a literal '%', also right before what looks like an atom
LITERALS = [
    ("100%% %(s)s", "100% 200"),
    ("%%(s)s %(s)s", "%(s)s 200"),
    ("%%%(s)s", "%200"),
    ("no atoms", "no atoms"),
    ("", ""),
]


@pytest.mark.parametrize("fmt, expected", LITERALS)
def test_literal_percent(fmt, expected):
    assert line(fmt) == expected == fmt % atoms(dict(ENV), 200, HEADERS, 13, 0.25, NOW, PID)


@pytest.mark.parametrize("fmt", ["%(h)s 50%", "%(s)d", "%s", "%(h)s %", "%(h"])
def test_format_python_cannot_apply_is_refused_up_front(fmt):
    with pytest.raises(ValueError) as info:
        compile_format(fmt)
    assert repr(fmt) in str(info.value)
