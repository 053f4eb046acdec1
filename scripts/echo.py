"""An app that answers with what it saw: the WSGI reading of a request, as JSON.

scripts/corpus.py and scripts/fuzz.py serve it from pyfork, Gunicorn and waitress and
compare the readings. The body is read whole, whatever the framing; header fields are the
environ's HTTP_* keys plus CONTENT_TYPE and CONTENT_LENGTH, as the server put them there.
"""
import json

FIELDS = ("CONTENT_TYPE", "CONTENT_LENGTH")


def app(environ, start_response):
    # a server that reads the body only when the app does (Gunicorn) refuses a bad one
    # here: its exception goes up to the server, which answers it
    body = environ["wsgi.input"].read()
    seen = {
        "method": environ.get("REQUEST_METHOD"),
        "path": environ.get("PATH_INFO"),
        "query": environ.get("QUERY_STRING"),
        "uri": environ.get("RAW_URI", environ.get("REQUEST_URI")),
        "protocol": environ.get("SERVER_PROTOCOL"),
        "scheme": environ.get("wsgi.url_scheme"),
        "headers": {k: v for k, v in environ.items()
                    if k.startswith("HTTP_") or k in FIELDS},
        "body": body.decode("latin-1"),
    }
    out = json.dumps(seen, sort_keys=True).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(out)))])
    return [out]


application = app
