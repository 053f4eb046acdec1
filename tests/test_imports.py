"""The import graph, read with `ast` (nothing is imported to check it).

1. The pure modules touch no processes, sockets, signals, clocks or shared memory, so
   their unit tests need none and the master's decisions stay testable as plain tables.
2. Only the CLI reaches the master (lazily, so `pyfork --help` stays fast), and only
   `python -m supervisor` reaches the CLI: a worker must never drag the master in.
"""
import ast
import pathlib

import pytest

import supervisor

PACKAGE = pathlib.Path(supervisor.__file__).parent
ROOMS = ("supervise", "serve", "observe")
# modules by their dotted name below `supervisor`: "cli", "supervise.plan", ...
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                 for p in PACKAGE.rglob("*.py") if p.stem != "__init__")

PURE = ["serve.accesslog", "serve.strict", "serve.proxyproto", "convert_gunicorn", "supervise.backoff", "observe.cgroup", "config", "convert", "environ", "gunicorn",
        "observe.dynos", "exits", "hooks", "observe.metrics", "supervise.plan", "supervise.overdue", "supervise.deaths",
        "observe.procfs", "observe.prometheus", "supervise.recycle",
        "observe.sizing", "observe.fit", "serve.wsgi", "observe.ledger", "observe.oom", "observe.status", "observe.report",
        "observe.charts", "observe.ring", "fdlimit"]     # loader is not pure: it imports
IMPURE = {"os", "socket", "_socket", "select", "selectors", "signal", "time", "mmap", "psutil",
          "subprocess", "threading", "multiprocessing", "fcntl"}

# The only impure imports a pure module may make: (module, imported, the function it must stay inside)
ALLOWED = {
    ("exits", "signal", "_signal_name"),    # value-level: the names of signal numbers
    ("serve.wsgi", "time", "http_date"),              # value-level: gmtime of the instant it is given
}
# accesslog formats a timestamp it is given: `import time` is allowed there (not `from time import`),
# and test_accesslog_uses_time_only_to_format checks it never reads a clock with it
TIME_FORMATTING = {"localtime", "gmtime", "strftime", "timezone", "altzone"}   # the last two: constants


def imports(stem):
    """[(absolute module name, enclosing function or None, 'import' or 'from')] for one module."""
    path = PACKAGE.joinpath(*stem.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(), filename=str(path))
    package = "supervisor" + ("." + stem.rpartition(".")[0] if "." in stem else "")
    found = []

    def visit(node, func):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            func = node.name
        if isinstance(node, ast.Import):
            found.extend((alias.name, func, "import") for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                mod = base + ("." + node.module if node.module else "")
            else:
                mod = node.module
            found.append((mod, func, "from"))
            # `from . import master` / `from supervisor import cli` import submodules by name
            if mod == "supervisor" or mod in ["supervisor." + r for r in ROOMS]:
                found.extend((mod + "." + alias.name, func, "from") for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, None)
    return found


def root(name):
    return name.split(".")[0]


def test_the_reader_sees_imports():
    # guards the tests below against passing because the reader found nothing
    assert ("os", None, "import") in imports("supervise.master")
    assert ("signal", "_signal_name", "import") in imports("exits")
    assert ("supervisor.supervise.master", "run", "from") in imports("cli")
    assert ("supervisor.cli", None, "from") in imports("__main__")
    assert ("supervisor.supervise.backoff", None, "from") in imports("supervise.deaths")
    assert ("supervisor.exits", None, "from") in imports("supervise.deaths")
    assert ("supervisor.observe.dynos", "_derived", "from") in imports("config")
    assert ("time", None, "import") in imports("serve.accesslog")
    assert set(PURE) <= set(MODULES)


@pytest.mark.parametrize("stem", PURE)
def test_pure_module_imports_nothing_impure(stem):
    bad = [(mod, func, kind) for mod, func, kind in imports(stem)
           if root(mod) in IMPURE and (stem, root(mod), func) not in ALLOWED
           and (stem, mod, func, kind) != ("serve.accesslog", "time", None, "import")]
    assert bad == []


@pytest.mark.parametrize("stem", PURE)
def test_pure_module_imports_only_pure_siblings(stem):
    siblings = {mod[len("supervisor."):] for mod, _, _ in imports(stem) if mod.startswith("supervisor.")} - set(ROOMS)
    assert siblings <= set(PURE), siblings - set(PURE)


def test_accesslog_uses_time_only_to_format():
    tree = ast.parse((PACKAGE / "serve" / "accesslog.py").read_text())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "time"}
    assert used and used <= TIME_FORMATTING, used - TIME_FORMATTING


@pytest.mark.parametrize("stem", MODULES)
def test_only_cli_reaches_master_and_only_main_reaches_cli(stem):
    reached = {mod for mod, _, _ in imports(stem)} & {"supervisor.supervise.master", "supervisor.cli"}
    allowed = {"cli": {"supervisor.supervise.master"}, "__main__": {"supervisor.cli"}}.get(stem, set())
    assert reached <= allowed, reached - allowed


@pytest.mark.parametrize("stem", MODULES)
def test_rooms_import_one_way(stem):
    """serve never reaches the supervising room's master-side modules, observe never
    reaches serve, and shared top-level modules reach no room at import time except
    through functions (config's lazy lookups)."""
    reached = {mod for mod, func, _ in imports(stem) if mod.startswith("supervisor.") and func is None}
    if stem.startswith("serve."):
        assert not {m for m in reached if m.startswith("supervisor.observe.")}
    if stem.startswith("observe."):
        assert not {m for m in reached if m.startswith("supervisor.serve.")}


def test_every_module_says_what_it_owns():
    for stem in MODULES + ["supervise", "serve", "observe"]:
        path = PACKAGE.joinpath(*stem.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        assert ast.get_docstring(ast.parse(path.read_text())), stem
