"""Says what the server put in the environ about the client: KEY=VALUE lines (test_proxyproto)."""
KEYS = ("REMOTE_ADDR", "REMOTE_PORT", "PROXY_PROTOCOL", "PROXY_ADDR", "PROXY_PORT", "wsgi.url_scheme")


def app(environ, start_response):
    body = "".join("%s=%s\n" % (k, environ[k]) for k in KEYS if k in environ).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
