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
            raise AppNotFound("app %r: no module named %r in %s (check the name, --chdir or PYTHONPATH)"
                              % (spec, exc.name, cwd)) from None
        raise
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
