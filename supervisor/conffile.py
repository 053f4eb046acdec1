"""Read a Python config file (like gunicorn.conf.py): settings as module-level names,
hooks as functions. Returns plain values for config.resolve and every mistake found,
each naming the file, the line and, for a misspelling, the nearest name. Gunicorn-only
names are judged by gunicorn.py's table (ignored with a note, or refused)."""
import ast
import difflib
import os
import traceback
import types

from . import gunicorn
from .config import BY_NAME, ConfigError
from .hooks import HOOKS, check

# read from the working directory when no -c is given: ours first, then Gunicorn's (which
# Gunicorn itself reads by default), so a project's gunicorn.conf.py still applies
DEFAULTS = ("pyfork.conf.py", "gunicorn.conf.py")


def find(path, exists):
    """-c's value (or None) -> (the file to read or None, a note). 'python:pkg.mod' names a
    module, as in Gunicorn; `exists` is os.path.exists (passed in: this module reads no disk here)."""
    if path and path.startswith("python:"):
        import importlib.util
        try:
            spec = importlib.util.find_spec(path[len("python:"):])
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            raise ConfigError("config file %s: no such module (check the name and PYTHONPATH)" % path)
        return spec.origin, None
    if path:
        return path, None
    found = [p for p in DEFAULTS if exists(p)]
    note = ("./%s not read: ./%s is (give -c %s to read it instead)" % (found[1], found[0], found[1])
            if len(found) > 1 else None)
    return (found[0] if found else None), note

# Gunicorn's names for settings pyfork has under another name.
ALIASES = dict(gunicorn.ALIASES, wsgi_app="wsgi_app")
# Gunicorn's names pyfork only judges: ignored with a note or refused (gunicorn.py's table)
GUNICORN_ONLY = frozenset(r.name for r in gunicorn.TABLE if r.kind is not gunicorn.Kind.SAME)


def _lines(source):
    """name -> the line where the file assigns or defines it last."""
    out = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            targets = [node.name]
        for t in targets:
            out[t] = node.lineno
    return out


def _nearest(name, known):
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return match[0] if match else None


def load(path):
    """-> (settings {name: raw value}, hooks {name: function}, notes [sentences to log],
    {setting name: line}, errors [sentences]): every mistake in the file at once, each
    with its line. A file that does not run at all raises ConfigError."""
    where = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as exc:
        raise ConfigError("config file %s: %s" % (path, exc.strerror)) from None
    namespace = {"__file__": os.path.abspath(path), "__name__": "__config__"}
    try:
        exec(compile(source, path, "exec"), namespace)
    except SyntaxError as exc:
        raise ConfigError("%s line %s: syntax error: %s" % (where, exc.lineno, exc.msg)) from None
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)
        line = next((fr.lineno for fr in reversed(tb) if fr.filename == path), "?")
        raise ConfigError("%s line %s: %s: %s" % (where, line, type(exc).__name__, exc)) from None
    lines = _lines(source)
    settings, hooks, notes, errors = {}, {}, [], []
    names = [n for n in namespace if not n.startswith("_") and not isinstance(namespace[n], types.ModuleType)]
    for name in sorted(names, key=lambda n: (lines.get(n, 0), n)):
        at = "%s line %s" % (where, lines.get(name, "?"))
        kind, text = _one(name, namespace[name], at)
        if kind == "setting":
            settings[ALIASES.get(name, name)] = namespace[name]
        elif kind == "hook":
            hooks[name] = namespace[name]
        elif text:
            (errors if kind == "error" else notes).append(text)
    setting_lines = {ALIASES.get(n, n): lines.get(n, "?") for n in namespace if ALIASES.get(n, n) in settings}
    return settings, hooks, notes, setting_lines, errors


def _one(name, value, at):
    """One module-level name of the file -> ('setting' | 'hook' | 'note' | 'error', text)."""
    if name in HOOKS:
        if not callable(value):
            return "error", "%s: hook %s must be a function, not %s" % (at, name, type(value).__name__)
        problem = check(name, value)
        return ("error", "%s: %s" % (at, problem)) if problem else ("hook", None)
    if name in BY_NAME or name in ALIASES:
        return "setting", None
    if name in GUNICORN_ONLY:
        return gunicorn.judge(gunicorn.BY_NAME[name], value, "setting %r in %s" % (name, at))
    if callable(value) and not isinstance(value, (str, bytes)):
        near = _nearest(name, list(HOOKS))
        if near:
            return "error", "unknown hook %r in %s; did you mean %r?" % (name, at, near)
        return "note", None     # a helper function or class of the file's own
    near = _nearest(name, sorted(set(BY_NAME) | set(ALIASES)))
    if near:
        return "error", "unknown setting %r in %s; did you mean %r?" % (name, at, near)
    return "note", "%s: %r is not a pyfork setting; ignored (name helpers with a leading _)" % (at, name)
