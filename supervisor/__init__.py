"""pyfork: a pre-fork WSGI server and worker supervisor."""
__version__ = "0.1.0"
