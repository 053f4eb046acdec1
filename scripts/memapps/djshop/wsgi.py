"""WSGI entry point of the Django measurement shop: `djshop.wsgi:application`, wrapped in
memapps/probe.py so memory.py sees which worker answered."""
import os

from django.core.wsgi import get_wsgi_application

from probe import Probe

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djshop.settings")
application = Probe(get_wsgi_application())
