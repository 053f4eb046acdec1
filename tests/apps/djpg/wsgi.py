"""The WSGI module, with a query at import (`Note.objects.count()`), as the incident's app
had. With DJPG_CLOSE=1 it closes the connection again after the query, the fix README gives."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djpg.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from djpg.models import Note  # noqa: E402

NOTES_AT_IMPORT = Note.objects.count()

if os.environ.get("DJPG_CLOSE") == "1":
    from django.db import connections
    connections.close_all()
