"""The standard library's modules that web apps import, imported once in the master.

A module imported after fork is built in each worker: its code objects, dicts and the C
library it loads are private to that worker. Imported in the master before the first
fork, they are shared by every worker. Gunicorn's master happens to import a good part of
this list for its own use (logging, email, ssl, http), so its workers share it; measured
here, pyfork's workers held 3.5-4.5 MB more private memory than Gunicorn's on a Django
and a Flask app until the master imported the same (scripts/memory.py; README "Refork").

Not with --preload (the app's import brings them in the master anyway) nor with
--refork-after: workers forked from a template share the template's copy, and the
master's own would be a second one (4 MB more in all on tests/apps/http_flask.py).

Only the standard library, which starts no thread and opens nothing at import. The list
is what Django 5 and Flask 3 import from it that pyfork does not already (found with
sys.modules before and after `import django.core.wsgi` and `import flask`).
"""
import importlib

MODULES = (
    "asyncio", "calendar", "concurrent.futures", "contextvars", "csv", "decimal", "email.feedparser",
    "email.generator", "email.headerregistry", "email.message", "email.mime.multipart", "email.mime.text",
    "email.parser", "email.policy", "email.utils", "graphlib", "gzip", "hashlib", "hmac", "html.parser",
    "http.client", "http.cookies", "http.server", "importlib.metadata", "importlib.resources",
    "json", "logging.config", "logging.handlers", "mimetypes", "numbers", "pickle", "pkgutil", "platform",
    "pprint", "quopri", "secrets", "socketserver", "ssl", "unicodedata", "uuid", "zipfile",
)


def warm(modules=MODULES):
    """Import each; -> the names that could not be (a Python built without them)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing
