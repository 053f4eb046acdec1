"""supervisor/loader.py: parse_spec (pure) and load, on tiny modules made under tmp_path."""
import importlib
import os
import sys

import pytest

from supervisor.loader import AppNotFound, load, parse_spec

# (spec, (module, name, args, kwargs, called))
SPECS = [
    ("myapp", ("myapp", None, (), {}, False)),
    ("myapp:", ("myapp", None, (), {}, False)),
    ("myapp:app", ("myapp", "app", (), {}, False)),
    ("myapp:app ", ("myapp", "app", (), {}, False)),
    ("pkg.mod:application", ("pkg.mod", "application", (), {}, False)),
    ("_private._mod:_app", ("_private._mod", "_app", (), {}, False)),
    ("myapp:create()", ("myapp", "create", (), {}, True)),
    ("pkg.mod:make_app(debug=True)", ("pkg.mod", "make_app", (), {"debug": True}, True)),
    ('m:f(1, "x", None, [1, 2], n=-3.5)', ("m", "f", (1, "x", None, [1, 2]), {"n": -3.5}, True)),
    ('m:f("redis://h:6379/0")', ("m", "f", ("redis://h:6379/0",), {}, True)),
    ("m:f({'a': (1, 2)})", ("m", "f", ({"a": (1, 2)},), {}, True)),
]


@pytest.mark.parametrize("spec, parsed", SPECS)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed


NOT_A_MODULE = "app %r: %r is not a module name; write MODULE:NAME, like myapp:app"
NEITHER = "app %r: %r is neither a name nor a call like factory()"
LITERALS = "app %r: factory arguments must be literals"

BAD_SPECS = [
    ("", NOT_A_MODULE % ("", "")),
    (":app", NOT_A_MODULE % (":app", "")),
    ("my-app:app", NOT_A_MODULE % ("my-app:app", "my-app")),
    ("pkg..mod:app", NOT_A_MODULE % ("pkg..mod:app", "pkg..mod")),
    ("pkg.:app", NOT_A_MODULE % ("pkg.:app", "pkg.")),
    ("1app:app", NOT_A_MODULE % ("1app:app", "1app")),
    ("pkg/mod:app", NOT_A_MODULE % ("pkg/mod:app", "pkg/mod")),
    ("m:a.b", NEITHER % ("m:a.b", "a.b")),
    ("m:obj.factory()", NEITHER % ("m:obj.factory()", "obj.factory()")),
    ("m:f()()", NEITHER % ("m:f()()", "f()()")),
    ("m:1", NEITHER % ("m:1", "1")),
    ("m:f(", NEITHER % ("m:f(", "f(")),
    ("m:a b", NEITHER % ("m:a b", "a b")),
    ("m:app:x", NEITHER % ("m:app:x", "app:x")),
    ("m:f(x)", LITERALS % "m:f(x)"),
    ("m:f(a=b)", LITERALS % "m:f(a=b)"),
    ("m:f(*args)", LITERALS % "m:f(*args)"),
    ("m:f(__import__('os'))", LITERALS % "m:f(__import__('os'))"),
]


@pytest.mark.parametrize("spec, message", BAD_SPECS)
def test_parse_spec_rejects(spec, message):
    with pytest.raises(AppNotFound) as info:
        parse_spec(spec)
    assert str(info.value) == message


# -- load ------------------------------------------------------------------------------------------

MODULES = {
    "pft_app.py": (
        "def app(environ, start_response):\n"
        "    return [b'app']\n"
        "\n"
        "def application(environ, start_response):\n"
        "    return [b'application']\n"
        "\n"
        "def make(greeting='hi', n=1):\n"
        "    def wsgi(environ, start_response):\n"
        "        return [(greeting * n).encode()]\n"
        "    return wsgi\n"
        "\n"
        "def make_bad():\n"
        "    return 42\n"
        "\n"
        "value = 3\n"
        "nothing = None\n"
    ),
    "pft_onlyapp.py": "def app(environ, start_response):\n    return [b'only app']\n",
    "pft_empty.py": "x = 1\n",
    "pft_obj.py": "from os.path import join\nclass Api:\n    def __call__(self, environ, start_response):\n"
                  "        return [b'api']\napi = Api()\n",
    "pft_zero.py": "application = 0\n",
    "pft_boom.py": "raise RuntimeError('boom at import')\n",
    "pft_dep.py": "import pft_not_installed_dep\napp = None\n",
    "pft_pkg/__init__.py": "",
    "pft_pkg/web.py": "def app(environ, start_response):\n    return [b'pkg']\n",
}


@pytest.fixture
def apps(tmp_path, monkeypatch):
    """A directory of tiny app modules as the working directory; sys.path and sys.modules restored."""
    for rel, text in MODULES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))     # load() puts the cwd on sys.path
    importlib.invalidate_caches()
    before = set(sys.modules)
    yield str(tmp_path)
    for name in set(sys.modules) - before:
        if name.startswith("pft_"):
            del sys.modules[name]


# (spec, what the loaded app returns)
LOADS = [
    ("pft_app:app", [b"app"]),
    ("pft_app", [b"application"]),            # MODULE alone: application first ...
    ("pft_onlyapp", [b"only app"]),           # ... then app
    ("pft_app:make()", [b"hi"]),
    ("pft_app:make('yo', n=2)", [b"yoyo"]),
    ("pft_pkg.web:app", [b"pkg"]),
]


@pytest.mark.parametrize("spec, body", LOADS)
def test_load(apps, spec, body):
    app = load(spec)
    assert app({}, None) == body


def test_load_puts_cwd_on_sys_path(apps):
    load("pft_app:app")
    assert sys.path[0] == apps


# (spec, exception type, its message; {cwd} is the working directory)
LOAD_ERRORS = [
    ("pft_missing:app", AppNotFound,
     "app 'pft_missing:app': no module named 'pft_missing' in {cwd} (check the name, --chdir or PYTHONPATH)"),
    ("pft_pkg.nope:app", AppNotFound,
     "app 'pft_pkg.nope:app': no module named 'pft_pkg.nope' in {cwd} (check the name, --chdir or PYTHONPATH)"),
    ("pft_nopkg.web:app", AppNotFound,
     "app 'pft_nopkg.web:app': no module named 'pft_nopkg' in {cwd} (check the name, --chdir or PYTHONPATH)"),
    ("pft_app:nothere", AppNotFound, "app 'pft_app:nothere': module 'pft_app' has no 'nothere'; "
     "its callables are app, application, make, make_bad"),
    ("pft_app:nothing", AppNotFound, "app 'pft_app:nothing': module 'pft_app' has no 'nothing'; "
     "its callables are app, application, make, make_bad"),
    # a wrong callable name: the nearest of the module's own callables (an app object counts,
    # a function it imported does not)
    ("pft_onlyapp:application", AppNotFound,
     "app 'pft_onlyapp:application': module 'pft_onlyapp' has no 'application'; did you mean 'app'?"),
    ("pft_obj:ap", AppNotFound, "app 'pft_obj:ap': module 'pft_obj' has no 'ap'; did you mean 'api'?"),
    ("pft_obj:wsgi", AppNotFound, "app 'pft_obj:wsgi': module 'pft_obj' has no 'wsgi'; its callables are api"),
    ("pft_empty", AppNotFound, "app 'pft_empty': module 'pft_empty' has no 'application' or 'app'"),
    ("pft_app:value", AppNotFound, "app 'pft_app:value': 'value' is a int, not a WSGI callable"),
    ("pft_app:make_bad()", AppNotFound, "app 'pft_app:make_bad()': 'make_bad' is a int, not a WSGI callable"),
    ("pft_app:x(", AppNotFound, "app 'pft_app:x(': 'x(' is neither a name nor a call like factory()"),
    # the app's own errors propagate untouched, with their traceback
    ("pft_boom:app", RuntimeError, "boom at import"),
    ("pft_dep:app", ModuleNotFoundError, "No module named 'pft_not_installed_dep'"),
    ("pft_app:make(nope=1)", TypeError, "make() got an unexpected keyword argument 'nope'"),
]


@pytest.mark.parametrize("spec, exc_type, message", LOAD_ERRORS)
def test_load_errors(apps, spec, exc_type, message):
    with pytest.raises(exc_type) as info:
        load(spec)
    assert type(info.value) is exc_type
    assert str(info.value) == message.format(cwd=apps)


def test_load_not_callable_default_name(apps):
    with pytest.raises(AppNotFound) as info:
        load("pft_zero")
    assert str(info.value) == "app 'pft_zero': 'application' is a int, not a WSGI callable"


# A worker imports the app after --user: a folder or file that user cannot read is said so,
# with the user's name, not taken for a typo. {base}: a folder only root may open.
UNREADABLE = [
    ("closed folder", 0o700, 0o644, "app 'pft_secret:app': no module named 'pft_secret' that user nobody "
     "(uid {uid}) can read: {base} is mode 0700, owner root, and {base}/app (the current directory) is under it; "
     "the workers import the app as this user (after --user)"),
    ("closed file", 0o755, 0o600, "app 'pft_secret:app': user nobody (uid {uid}) cannot read "
     "{base}/app/pft_secret.py (mode 0600, owner root); the workers import the app as this user (after --user)"),
    ("missing", 0o755, None, "app 'pft_secret:app': no module named 'pft_secret' in {base}/app "
     "(check the name, --chdir or PYTHONPATH)"),
]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
@pytest.mark.parametrize("case, folder_mode, file_mode, message", UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_a_worker_tells_not_readable_from_not_found(case, folder_mode, file_mode, message):
    import pwd
    import shutil
    import tempfile
    from conftest import Server
    base = tempfile.mkdtemp(prefix="pyfork-closed-", dir="/tmp")
    try:
        os.chmod(base, folder_mode)
        os.mkdir(os.path.join(base, "app"), 0o755)
        if file_mode is not None:
            path = os.path.join(base, "app", "pft_secret.py")
            with open(path, "w") as f:
                f.write("def app(environ, start_response):\n    return []\n")
            os.chmod(path, file_mode)
        # PYTHONPATH as the test's own: tests/apps may sit in a folder nobody cannot open
        with Server("pft_secret:app", "--user", "nobody", cwd=os.path.join(base, "app"), wait=False,
                    env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")}) as s:
            assert s.proc.wait(30) == 2, s.log()
            log = s.log()
        assert message.format(base=base, uid=pwd.getpwnam("nobody").pw_uid) in log, log
    finally:
        shutil.rmtree(base)
