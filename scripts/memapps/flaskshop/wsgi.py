"""WSGI entry point of the Flask measurement shop: `flaskshop.wsgi:app`, wrapped in
memapps/probe.py so memory.py sees which worker answered."""
from flaskshop import create_app
from probe import Probe

app = Probe(create_app())
