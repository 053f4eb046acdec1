"""Serving HTTP: the worker's loop, the connection's protocol core, WSGI, the access log."""
