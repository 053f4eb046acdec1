"""supervisor/config.py: binds, precedence (default < environment < flag), error messages.

Table-driven in the style of h11's tests/test_io.py: each table row is one case.
"""
import ipaddress

import pytest

from supervisor.config import AUTO, BY_NAME, SETTINGS, Bind, ConfigError, env_name, parse_bind, resolve

LOCAL_8000 = Bind("tcp", host="127.0.0.1", port=8000)

# (text, Bind, str(Bind))
GOOD_BINDS = [
    ("127.0.0.1:8000", Bind("tcp", host="127.0.0.1", port=8000), "127.0.0.1:8000"),
    (":5000", Bind("tcp", host="0.0.0.0", port=5000), "0.0.0.0:5000"),
    ("[::1]:8000", Bind("tcp", host="::1", port=8000), "[::1]:8000"),
    ("[::1]", Bind("tcp", host="::1", port=8000), "[::1]:8000"),
    ("[2001:db8::1]:443", Bind("tcp", host="2001:db8::1", port=443), "[2001:db8::1]:443"),
    ("[::]:0", Bind("tcp", host="::", port=0), "[::]:0"),
    ("unix:/tmp/x.sock", Bind("unix", path="/tmp/x.sock"), "unix:/tmp/x.sock"),
    ("unix:relative.sock", Bind("unix", path="relative.sock"), "unix:relative.sock"),
    ("fd://3", Bind("fd", fd=3), "fd://3"),
    ("fd://0", Bind("fd", fd=0), "fd://0"),
    ("localhost", Bind("tcp", host="localhost", port=8000), "localhost:8000"),
    ("localhost:0", Bind("tcp", host="localhost", port=0), "localhost:0"),
    ("example.com:65535", Bind("tcp", host="example.com", port=65535), "example.com:65535"),
    ("0.0.0.0:080", Bind("tcp", host="0.0.0.0", port=80), "0.0.0.0:80"),
    ("  127.0.0.1:80 \n", Bind("tcp", host="127.0.0.1", port=80), "127.0.0.1:80"),
]

# (text, the whole ConfigError message)
BAD_BINDS = [
    ("127.0.0.1:99999", "bind '127.0.0.1:99999': the port must be a number from 0 to 65535"),
    ("127.0.0.1:65536", "bind '127.0.0.1:65536': the port must be a number from 0 to 65535"),
    ("127.0.0.1:-1", "bind '127.0.0.1:-1': the port must be a number from 0 to 65535"),
    ("127.0.0.1:http", "bind '127.0.0.1:http': the port must be a number from 0 to 65535"),
    ("::1:80", "bind '::1:80': write an IPv6 address in brackets, like [::1]:8000"),
    ("::1", "bind '::1': write an IPv6 address in brackets, like [::1]:8000"),
    ("unix:", "bind 'unix:': give a path after 'unix:'"),
    ("fd://x", "bind 'fd://x': give a file descriptor number, like fd://3"),
    ("fd://", "bind 'fd://': give a file descriptor number, like fd://3"),
    ("fd://-1", "bind 'fd://-1': give a file descriptor number, like fd://3"),
    ("host name:80", "bind 'host name:80': 'host name' is not a host name or address"),
    ("host_name:80", "bind 'host_name:80': 'host_name' is not a host name or address"),
    ("h\u00e9:80", "bind 'h\u00e9:80': 'h\u00e9' is not a host name or address"),
    ("[::1", "bind '[::1': write an IPv6 address as [::1]:8000"),
    ("[::1]8000", "bind '[::1]8000': write an IPv6 address as [::1]:8000"),
    ("[::1]:x", "bind '[::1]:x': the port must be a number from 0 to 65535"),
    ("[fe80::zz]:80", "bind '[fe80::zz]:80': 'fe80::zz' is not an IPv6 address"),
]


@pytest.mark.parametrize("text, bind, shown", GOOD_BINDS)
def test_parse_bind(text, bind, shown):
    assert parse_bind(text) == bind
    assert str(parse_bind(text)) == shown


@pytest.mark.parametrize("text, message", BAD_BINDS)
def test_parse_bind_rejects(text, message):
    with pytest.raises(ConfigError) as info:
        parse_bind(text)
    assert str(info.value) == message


@pytest.mark.parametrize("text", [":\u00b2", "fd://\u00b2"])
def test_parse_bind_unicode_digit_is_config_error(text):
    with pytest.raises(ConfigError):
        parse_bind(text)


# -- resolve: defaults ------------------------------------------------------------------

DEFAULTS = [
    ("bind", (LOCAL_8000,)),
    ("workers", 2),
    ("backlog", 2048),
    ("chdir", None),
    ("preload", False),
    ("keepalive", 5.0),
    ("limit_request_line", 4094),
    ("limit_request_fields", 100),
    ("limit_request_field_size", 8190),
    ("limit_request_body", 0),
    ("max_requests", 0),
    ("max_requests_jitter", 0),
    ("timeout", 30.0),
    ("boot_timeout", 60.0),
    ("graceful_timeout", 25.0),
    ("access_logfile", None),
    ("access_logformat", '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'),
    ("error_logfile", "-"),
    ("loglevel", "info"),
    ("forwarded_allow_ips", (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128"))),
    ("reuse_port", False),
    ("threads", 1),
    ("worker_class", "sync"),
]


@pytest.mark.parametrize("name, expected", DEFAULTS)
def test_default(name, expected):
    cfg = resolve("myapp:app", {}, {})
    assert getattr(cfg, name) == expected
    assert type(getattr(cfg, name)) is type(expected)


def test_app_is_kept():
    assert resolve("pkg.mod:make_app()", {}, {}).app == "pkg.mod:make_app()"


def test_env_names():
    assert [env_name(s) for s in SETTINGS if s.name in ("workers", "keepalive", "limit_request_field_size")] == [
        "PYFORK_WORKERS", "PYFORK_KEEPALIVE", "PYFORK_LIMIT_REQUEST_FIELD_SIZE"]
    assert BY_NAME["workers"].env == "WEB_CONCURRENCY"
    assert BY_NAME["forwarded_allow_ips"].env == "FORWARDED_ALLOW_IPS"


# -- resolve: the same setting from each source --------------------------------------------

# (setting, default, environment variable, its raw value, what it gives, flag raw value, what it gives)
PRECEDENCE = [
    ("workers", 2, "PYFORK_WORKERS", "5", 5, "7", 7),
    ("workers", 2, "WEB_CONCURRENCY", "4", 4, "1", 1),
    ("backlog", 2048, "PYFORK_BACKLOG", "64", 64, "128", 128),
    ("timeout", 30.0, "PYFORK_TIMEOUT", "12.5", 12.5, "3", 3.0),
    ("keepalive", 5.0, "PYFORK_KEEPALIVE", "0", 0.0, "2", 2.0),
    ("graceful_timeout", 25.0, "PYFORK_GRACEFUL_TIMEOUT", "1", 1.0, "0.5", 0.5),
    ("threads", 1, "PYFORK_THREADS", "8", 8, "4", 4),
    ("worker_class", "sync", "PYFORK_WORKER_CLASS", "gthread", "gthread", "sync", "sync"),
    ("max_requests", 0, "PYFORK_MAX_REQUESTS", "1000", 1000, "10", 10),
    ("limit_request_line", 4094, "PYFORK_LIMIT_REQUEST_LINE", "0", 8190, "100", 100),
    ("limit_request_fields", 100, "PYFORK_LIMIT_REQUEST_FIELDS", "20", 20, "0", 32768),
    ("limit_request_field_size", 8190, "PYFORK_LIMIT_REQUEST_FIELD_SIZE", "0", 8190, "10", 10),   # 0: Gunicorn's default, as its message.py reads it
    ("loglevel", "info", "PYFORK_LOGLEVEL", "DEBUG", "debug", "Error", "error"),
    ("error_logfile", "-", "PYFORK_ERROR_LOGFILE", "/tmp/e.log", "/tmp/e.log", "/tmp/f.log", "/tmp/f.log"),
    ("access_logfile", None, "PYFORK_ACCESS_LOGFILE", "/tmp/a.log", "/tmp/a.log", "-", "-"),
    ("chdir", None, "PYFORK_CHDIR", "/srv", "/srv", "/opt", "/opt"),
    ("bind", (LOCAL_8000,), "PYFORK_BIND", "unix:/tmp/a.sock, :9000",
     (Bind("unix", path="/tmp/a.sock"), Bind("tcp", host="0.0.0.0", port=9000)),
     ["[::1]:7000", "fd://3,localhost"],
     (Bind("tcp", host="::1", port=7000), Bind("fd", fd=3), Bind("tcp", host="localhost", port=8000))),
    ("forwarded_allow_ips", (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
     "FORWARDED_ALLOW_IPS", "*", ("*",), "10.0.0.0/8, 192.168.1.7",
     (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.7/32"))),
    ("forwarded_allow_ips", (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")),
     "PYFORK_FORWARDED_ALLOW_IPS", "10.1.2.3", (ipaddress.ip_network("10.1.2.3/32"),), "*", ("*",)),
]


@pytest.mark.parametrize("name, default, var, env_raw, env_value, flag_raw, flag_value", PRECEDENCE)
def test_precedence(name, default, var, env_raw, env_value, flag_raw, flag_value):
    app = "myapp:app"
    assert getattr(resolve(app, {}, {}), name) == default
    assert getattr(resolve(app, {}, {var: env_raw}), name) == env_value
    assert getattr(resolve(app, {name: flag_raw}, {}), name) == flag_value
    assert getattr(resolve(app, {name: flag_raw}, {var: env_raw}), name) == flag_value
    # an empty variable counts as unset; a flag of None means "not given"
    assert getattr(resolve(app, {name: None}, {var: ""}), name) == default


def test_flag_wins_over_a_bad_environment_value():
    # the environment value is never converted when a flag replaces it
    assert resolve("myapp:app", {"workers": "3"}, {"WEB_CONCURRENCY": "lots"}).workers == 3


# -- WEB_CONCURRENCY and PORT (platform variables) ---------------------------------------------

# (environ, flags, workers)
WORKERS = [
    ({}, {}, 2),
    ({"WEB_CONCURRENCY": "4"}, {}, 4),
    ({"WEB_CONCURRENCY": " 4 "}, {}, 4),
    ({"WEB_CONCURRENCY": ""}, {}, 2),
    ({"WEB_CONCURRENCY": "4", "PYFORK_WORKERS": "3"}, {}, 3),    # ours beats the platform's
    ({"WEB_CONCURRENCY": "6", "PYFORK_WORKERS": ""}, {}, 6),
    ({"WEB_CONCURRENCY": "4", "PYFORK_WORKERS": "3"}, {"workers": "9"}, 9),
    ({}, {"workers": "auto"}, AUTO),          # -w auto stays allowed (0 and negatives are refused)
    ({"WEB_CONCURRENCY": "Auto"}, {}, AUTO),
    ({"WEB_CONCURRENCY": "0"}, {"workers": "1"}, 1),    # a flag wins over a bad platform value
]


@pytest.mark.parametrize("environ, flags, workers", WORKERS)
def test_web_concurrency(environ, flags, workers):
    assert resolve("myapp:app", flags, environ).workers == workers


# (environ, flags, binds)
PORTS = [
    ({}, {}, (LOCAL_8000,)),
    ({"PORT": ""}, {}, (LOCAL_8000,)),
    ({"PORT": "5000"}, {}, (Bind("tcp", host="0.0.0.0", port=5000),)),
    ({"PORT": "0"}, {}, (Bind("tcp", host="0.0.0.0", port=0),)),
    ({"PORT": "5000", "PYFORK_BIND": "127.0.0.1:6000"}, {}, (Bind("tcp", host="127.0.0.1", port=6000),)),
    ({"PORT": "5000"}, {"bind": ["unix:/tmp/s"]}, (Bind("unix", path="/tmp/s"),)),
    # PORT is only read when no bind is given, so a platform's odd PORT cannot break -b
    ({"PORT": "web"}, {"bind": [":1"]}, (Bind("tcp", host="0.0.0.0", port=1),)),
]


@pytest.mark.parametrize("environ, flags, binds", PORTS)
def test_port(environ, flags, binds):
    assert resolve("myapp:app", flags, environ).bind == binds


# -- booleans from the environment ---------------------------------------------------------

BOOLS = [
    ("1", True), ("true", True), ("TRUE", True), ("yes", True), (" On ", True),
    ("0", False), ("false", False), ("no", False), ("OFF", False),
]


@pytest.mark.parametrize("raw, value", BOOLS)
def test_bool_from_environment(raw, value):
    cfg = resolve("myapp:app", {}, {"PYFORK_REUSE_PORT": raw, "PYFORK_PRELOAD": raw})
    assert (cfg.reuse_port, cfg.preload) == (value, value)


def test_store_true_flag():
    cfg = resolve("myapp:app", {"preload": True, "reuse_port": True}, {"PYFORK_PRELOAD": "no"})
    assert (cfg.preload, cfg.reuse_port) == (True, True)


def test_empty_path_flag_means_none():
    cfg = resolve("myapp:app", {"access_logfile": "", "pidfile": ""}, {})
    assert (cfg.access_logfile, cfg.pidfile) == (None, None)


# -- errors name what to fix ----------------------------------------------------------------

# (flags, environ, the whole ConfigError message)
BAD_VALUES = [
    ({"workers": "two"}, {}, "flag --workers: 'two' is not a whole number"),
    ({"workers": "1.5"}, {}, "flag --workers: '1.5' is not a whole number"),
    ({}, {"WEB_CONCURRENCY": "lots"}, "environment variable WEB_CONCURRENCY: 'lots' is not a whole number"),
    # 0 workers would listen and never answer; a negative count is the same mistake (issue 11)
    ({}, {"PYFORK_WORKERS": "-1"}, "environment variable PYFORK_WORKERS: -1 workers would never answer; "
     "give 1 or more, or auto"),
    ({}, {"WEB_CONCURRENCY": "0"}, "environment variable WEB_CONCURRENCY: 0 workers would never answer; "
     "give 1 or more, or auto"),
    ({"workers": "0"}, {}, "flag --workers: 0 workers would never answer; give 1 or more, or auto"),
    ({"workers": "-3"}, {"WEB_CONCURRENCY": "4"}, "flag --workers: -3 workers would never answer; "
     "give 1 or more, or auto"),
    ({"backlog": "0"}, {}, "flag --backlog: 0 is too small; the least allowed is 1"),
    ({"timeout": "soon"}, {}, "flag --timeout: 'soon' is not a number"),
    ({}, {"PYFORK_TIMEOUT": "-1"}, "environment variable PYFORK_TIMEOUT: -1 is too small; the least allowed is 0"),
    ({"keepalive": "nan"}, {}, "flag --keep-alive: nan is too small; the least allowed is 0"),
    ({"boot_timeout": "-0.5"}, {}, "flag --boot-timeout: -0.5 is too small; the least allowed is 0"),
    ({"limit_request_field_size": "x"}, {}, "flag --limit-request-field-size: 'x' is not a whole number"),
    ({"header_map": "dangerous"}, {}, "flag --header-map: 'dangerous' is not available: a client's "
     "X_Forwarded_For would pose as the proxy's X-Forwarded-For; use drop or refuse"),
    ({}, {"PYFORK_HEADER_MAP": "keep"}, "environment variable PYFORK_HEADER_MAP: 'keep' is not one of drop, refuse"),
    ({}, {"PYFORK_MAX_REQUESTS_JITTER": "some"},
     "environment variable PYFORK_MAX_REQUESTS_JITTER: 'some' is not a whole number"),
    ({}, {"PYFORK_PRELOAD": "maybe"}, "environment variable PYFORK_PRELOAD: 'maybe' is not true or false"),
    ({"loglevel": "verbose"}, {}, "flag --log-level: 'verbose' is not one of debug, info, warning, error, critical"),
    ({}, {"PYFORK_LOGLEVEL": "trace"},
     "environment variable PYFORK_LOGLEVEL: 'trace' is not one of debug, info, warning, error, critical"),
    ({}, {"FORWARDED_ALLOW_IPS": "10.0.0.1,bogus"},
     "environment variable FORWARDED_ALLOW_IPS: 'bogus' is not an IP address or network"),
    ({"forwarded_allow_ips": "300.1.1.1"}, {},
     "flag --forwarded-allow-ips: '300.1.1.1' is not an IP address or network"),
    ({}, {"PORT": "http"}, "environment variable PORT: 'http' is not a port number"),
    ({}, {"PORT": "-5000"}, "environment variable PORT: '-5000' is not a port number"),
    ({"bind": ["127.0.0.1:99999"]}, {}, "flag --bind: bind '127.0.0.1:99999': the port must be a number from 0 to 65535"),
    ({"bind": [":80", "unix:"]}, {}, "flag --bind: bind 'unix:': give a path after 'unix:'"),
    ({}, {"PYFORK_BIND": "::1:80"}, "environment variable PYFORK_BIND: bind '::1:80': write an IPv6 address in brackets, like [::1]:8000"),
    ({"access_logformat": "%(h)s 50%"}, {},
     "flag --access-logformat: access log format '%(h)s 50%': incomplete format "
     "(atoms are written %(h)s, a literal % as %%)"),
    ({}, {"PYFORK_ACCESS_LOGFORMAT": "%(s)d"},
     "environment variable PYFORK_ACCESS_LOGFORMAT: access log format '%(s)d': format requires a mapping "
     "(atoms are written %(h)s, a literal % as %%)"),
]


@pytest.mark.parametrize("flags, environ, message", BAD_VALUES)
def test_bad_value_names_its_source(flags, environ, message):
    with pytest.raises(ConfigError) as info:
        resolve("myapp:app", flags, environ)
    assert str(info.value) == message


def test_port_out_of_range_names_port():
    with pytest.raises(ConfigError) as info:
        resolve("myapp:app", {}, {"PORT": "99999"})
    assert str(info.value).startswith("environment variable PORT: ")


def test_port_unicode_digit_is_config_error():
    with pytest.raises(ConfigError):
        resolve("myapp:app", {}, {"PORT": "\u00b2"})


BAD_APPS = [
    ("", "no app given: pyfork run MODULE:NAME (try pyfork run supervisor.demo)"),
    (None, "no app given: pyfork run MODULE:NAME (try pyfork run supervisor.demo)"),
    ("a:b:c", "app 'a:b:c': give the app as MODULE:NAME, for example myapp:app"),
]


@pytest.mark.parametrize("app, message", BAD_APPS)
def test_bad_app(app, message):
    with pytest.raises(ConfigError) as info:
        resolve(app, {}, {})
    assert str(info.value) == message


@pytest.mark.parametrize("app", ["myapp", "myapp:app", "pkg.mod:create_app()", "m:make(debug=True)"])
def test_good_app(app):
    assert resolve(app, {}, {}).app == app


def test_factory_argument_with_colon():
    app = 'myapp:create_app("redis://localhost:6379/0")'
    assert resolve(app, {}, {}).app == app


def test_every_setting_has_a_flag_and_a_default_that_converts():
    # the table itself: defaults must survive their own converter (resolve({}, {}) did it)
    cfg = resolve("myapp:app", {}, {})
    for s in SETTINGS:
        assert s.flags and all(f.startswith("-") for f in s.flags), s.name
        assert hasattr(cfg, s.name), s.name


# -- threads and worker_class (Gunicorn's -k) -------------------------------------------------

# (worker_class raw, threads raw, the worker_class and threads they give, or the error's text)
WORKER_CLASSES = [
    ("sync", None, ("sync", 1)),
    ("gthread", None, ("gthread", 1)),           # Gunicorn's default for gthread is 1 thread too
    ("gthread", "8", ("gthread", 8)),
    ("sync", "4", ("sync", 4)),                  # as in Gunicorn: sync with threads > 1 is threaded
    ("GThread", None, ("gthread", 1)),
    ("egg:gunicorn#gthread", None, ("gthread", 1)),
    ("gunicorn.workers.sync.SyncWorker", None, ("sync", 1)),
    ("gevent", None, "--worker-class: 'gevent' is not available: pyfork runs sync or threaded workers; use --threads N"),
    ("eventlet", None, "'eventlet' is not available"),
    ("tornado", None, "'tornado' is not available"),
    ("uvicorn.workers.UvicornWorker", None, "use --threads N"),
    ("sync", "0", "--threads: 0 is too small; the least allowed is 1"),
    ("sync", "two", "--threads: 'two' is not a whole number"),
    ("sync", "1.5", "--threads: '1.5' is not a whole number"),
]


@pytest.mark.parametrize("kind, threads, expect", WORKER_CLASSES)
def test_worker_class_and_threads(kind, threads, expect):
    flags = {"worker_class": kind, "threads": threads}
    if isinstance(expect, tuple):
        cfg = resolve("myapp:app", flags, {})
        assert (cfg.worker_class, cfg.threads) == expect
    else:
        with pytest.raises(ConfigError) as info:
            resolve("myapp:app", flags, {})
        assert expect in str(info.value)
