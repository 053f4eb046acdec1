"""Find the WSGI callable named by MODULE:NAME, MODULE:factory(args) or MODULE."""
import ast
import difflib
import importlib
import os
import sys
import types


class AppNotFound(Exception):
    """The app spec names nothing callable; the message says what to fix (exit 2)."""


def parse_spec(spec):
    """'pkg.mod:make_app(debug=True)' -> ('pkg.mod', 'make_app', args, kwargs, called)."""
    module, _, expr = spec.partition(":")
    if not module or not all(p.isidentifier() for p in module.split(".")):
        raise AppNotFound("app %r: %r is not a module name; write MODULE:NAME, like myapp:app" % (spec, module))
    if not expr:
        return module, None, (), {}, False
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise AppNotFound("app %r: %r is neither a name nor a call like factory()" % (spec, expr)) from None
    if isinstance(node, ast.Name):
        return module, node.id, (), {}, False
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        try:
            args = tuple(ast.literal_eval(a) for a in node.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except ValueError:
            raise AppNotFound("app %r: factory arguments must be literals" % spec) from None
        return module, node.func.id, args, kwargs, True
    raise AppNotFound("app %r: %r is neither a name nor a call like factory()" % (spec, expr))


def _offered(name, value, module):
    if name.startswith("_") or not callable(value) or isinstance(value, type):
        return False
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        return value.__module__ == module      # not a function imported from elsewhere
    return True                                # an app object: Flask(...), a WSGI class's instance


def _suggest(mod, name):
    """'; did you mean 'app'?' among the module's callables, else the list of them."""
    found = sorted(n for n, v in vars(mod).items() if _offered(n, v, mod.__name__))
    near = difflib.get_close_matches(name or "application", found, n=1, cutoff=0.4)
    if near:
        return "; did you mean %r?" % near[0]
    if found:
        return "; its callables are %s" % ", ".join(found[:8]) + (", ..." if len(found) > 8 else "")
    return ""


def load_logged(spec, log, who):
    """load(), with a failure logged once: -> (app, None) or (None, exit code)."""
    from . import exits
    try:
        return load(spec), None
    except AppNotFound as exc:
        log.error("%s", exc)
        return None, exits.USAGE
    except BaseException:
        log.exception("%s failed to load the app %s", who, spec)
        return None, exits.APP_LOAD


def _user():
    """'user nobody (uid 65534)': who this process is, after --user."""
    import pwd
    uid = os.geteuid()
    try:
        return "user %s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid


def _mode(path):
    """'mode 0700, owner root' of a path, as far as it can be seen."""
    import pwd
    try:
        st = os.stat(path)
    except OSError:
        return "permission denied"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    return "mode %04o, owner %s" % (st.st_mode & 0o7777, owner)


def _grant():
    return ("the workers import the app as this user (after --user): give it read and search access "
            "(chmod o+rx on each folder, o+r on the files), or move the app where it can read it")


def _closed(path):
    """The first folder from / down to `path` this process may not search, or `path` itself
    when it may not list it; None when it may do both."""
    current = os.sep
    for part in os.path.abspath(path).split(os.sep)[1:]:
        current = os.path.join(current, part)
        if not os.access(current, os.X_OK):
            return current
    return None if os.access(path, os.R_OK | os.X_OK) else path


def unreadable(name, cwd):
    """Why the module `name` was not found, when the reason is permissions: a sentence
    naming the folder the user cannot open ('user nobody (uid 65534) can read: /srv is
    mode 0700, owner root, and /srv/app (the current directory) is under it'), or None.
    Python's import skips a folder it cannot list without a word, so a permission reads as
    a typo. Only the folders the app is looked for in count (the current one, PYTHONPATH's,
    a package's own): the interpreter's, unreadable as another user, would mislead."""
    parent = name.rpartition(".")[0]
    if parent:
        pkg = sys.modules.get(parent)
        where = [(d, "the package %s" % parent) for d in getattr(pkg, "__path__", [])]
    else:
        where = [(cwd, "the current directory")] + [
            (d, "on PYTHONPATH") for d in os.environ.get("PYTHONPATH", "").split(os.pathsep) if d]
    for folder, what in where:
        closed = _closed(folder)
        if closed is None:
            leaf = os.path.join(folder, name.rpartition(".")[2])
            closed = next((p for p in (leaf + ".py", leaf) if os.path.exists(p) and not os.access(p, os.R_OK)), None)
        if closed == folder:
            return "%s can read: %s (%s) is %s" % (_user(), folder, what, _mode(closed))
        if closed is not None:
            return "%s can read: %s is %s%s" % (_user(), closed, _mode(closed), "" if closed.startswith(folder)
                                                 else ", and %s (%s) is under it" % (folder, what))
    return None


def load(spec):
    """Import the module and return the callable. An exception raised by the app's own
    import propagates with its traceback; a name that is not there is AppNotFound."""
    module, name, args, kwargs, called = parse_spec(spec)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            blocked = unreadable(exc.name, cwd)
            if blocked:
                raise AppNotFound("app %r: no module named %r that %s; %s" % (spec, exc.name, blocked, _grant())) from None
            raise AppNotFound("app %r: no module named %r in %s (check the name, --chdir or PYTHONPATH)"
                              % (spec, exc.name, cwd)) from None
        raise
    except PermissionError as exc:
        if not exc.filename:
            raise
        raise AppNotFound("app %r: %s cannot read %s (%s); %s" % (
            spec, _user(), exc.filename, _mode(exc.filename), _grant())) from None
    names = [name] if name else ["application", "app"]
    for n in names:
        obj = getattr(mod, n, None)
        if obj is not None:
            break
    else:
        raise AppNotFound("app %r: module %r has no %s%s" % (spec, module, " or ".join(repr(n) for n in names),
                                                             _suggest(mod, name)))
    if called:
        obj = obj(*args, **kwargs)
    if not callable(obj):
        raise AppNotFound("app %r: %r is a %s, not a WSGI callable" % (spec, n, type(obj).__name__))
    return obj
