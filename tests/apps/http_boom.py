"""An app module that raises while being imported: pyfork must exit non-zero and show the traceback."""
raise RuntimeError("http_boom refuses to import")
