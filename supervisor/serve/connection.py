"""One client connection: bytes in, httptools' callbacks, whole requests to the app.

The whole request (head and body) is read before the app is called, so a slow client
costs a registered fd, not a worker. Responses produced by one read (pipelining, or one
request) go out in one send. Hazards handled here: request smuggling (ambiguous framing
closes the connection after the error), a body cut short (never reaches the app).
Calling the app and writing its response is respond.py's part (Responder).

A Connection knows no Worker: it reads a frozen Context (context.py: limits, app, hooks,
log, clock) and on_readable returns how many requests it answered, for the worker to
count. A test drives it bytes in, bytes out through a stand-in socket
(tests/serve/test_connection.py).

This is the hot path: per request it does dict lookups in caches that wsgi.py fills
(header keys, targets, whole validated response heads), builds the environ directly in
the header callback, and keeps the response state on the connection, not in a new object.
"""
import io
import tempfile

from httptools import (HttpParserCallbackError, HttpParserError, HttpParserUpgrade,
                       HttpRequestParser)

from .respond import MSG_DONTWAIT, Responder, _Gone
from .wsgi import ENV_KEYS, FRAMING, TARGETS, environ_key, error_response, target

SPOOL_BYTES = 1 << 20          # request bodies above this go to a temporary file
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_methods = {}


class HTTPError(Exception):
    """Raised from a parser callback: answer with `status` and close the connection."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


class Connection(Responder):
    __slots__ = ("ctx", "sock", "fd", "parser", "base", "trust", "last", "out", "keep", "closed",
                 "url", "env", "fields_left", "field_room", "body", "body_len", "head_bytes", "plain",
                 "status", "code", "head", "length", "app_close", "fast_length", "sent", "headers",
                 "cur", "start", "write_cb", "framed", "answered", "running")

    def __init__(self, ctx, sock, base, trust):
        self.ctx = ctx
        self.sock = sock
        self.fd = sock.fileno()
        self.base = base
        self.trust = trust
        self.parser = HttpRequestParser(self)
        self.field_room = ctx.limit_field_size - 2    # name + value, without ": "
        self.last = ctx.clock.now
        self.out = []
        self.keep = True
        self.closed = False
        self.answered = 0          # requests answered since on_readable last returned
        self.running = False       # a request of this connection is in an app thread
        self.head_bytes = None     # counts while a request head is being read, else None
        self.plain = False
        self.env = None
        self.body = None
        # one bound method per connection, not per request
        self.start = self.start_response
        self.write_cb = self.write

    # -- reading ----------------------------------------------------------------------

    def on_readable(self):
        """Read what the socket has, parse it, answer complete requests. Returns how many
        requests were answered; `closed` says whether the connection is gone."""
        ctx = self.ctx
        try:
            n = self.sock.recv_into(ctx.view, 0, MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        except OSError:
            self.close()
            return 0
        if n == 0:
            # EOF: a request in progress is incomplete and never reaches the app.
            self.close()
            return 0
        self.last = ctx.clock.now
        if self.head_bytes is not None:
            self.head_bytes += n
            if self.head_bytes > ctx.head_limit:
                return self.fail(431, "request head larger than %d bytes" % ctx.head_limit)
        try:
            self.parser.feed_data(ctx.view[:n])
        except HttpParserUpgrade:
            self.keep = False      # no protocol switch in WSGI: answer, then close
        except (HttpParserCallbackError, HttpParserError) as exc:
            status, why = refusal(exc)
            return self.fail(status, why) if status else self.counted()
        out = self.out
        if out:
            # flush(), inlined: this is the common way out of every request
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            try:
                n = self.sock.send(data, MSG_DONTWAIT)
            except BlockingIOError:
                n = 0
            except OSError:
                self.close()
                return self.counted()
            if n < len(data):
                try:
                    self._send(memoryview(data)[n:])
                except _Gone:
                    return self.counted()
        if not self.keep and not self.closed:
            self.close()
        n = self.answered
        self.answered = 0
        return n

    def counted(self):
        """on_readable's result on its less common ways out: the requests answered."""
        n = self.answered
        self.answered = 0
        return n

    def fail(self, status, why):
        """Bad input: answer `status`, close, so nothing can be smuggled behind it.
        Returns the requests answered before it (pipelined ahead of the bad one)."""
        self.ctx.log.debug("bad request on fd %d: %d %s", self.fd, status, why)
        if not self.closed:
            self.out.append(error_response(status))
            try:
                self.flush()
            except _Gone:
                return self.counted()
            self.close()
        return self.counted()

    # -- httptools callbacks ------------------------------------------------------------
    #
    # The common request (HTTP/1.1, keep-alive, no body, no header that changes framing)
    # is "plain" (True): it skips every check below that cannot apply to it. A header that
    # could change how the request is read or answered (FRAMING in wsgi.py) is never in
    # the ENV_KEYS cache, so meeting one takes the slow way and clears `plain` (False).
    # In between (None): another version or a Connection header, nothing else; such a
    # request needs its version and keep-alive looked up, not the framing checks.
    #
    # No on_message_begin: one Python call less per request. A message always starts
    # with its target, so on_url starts the per-request state.

    def on_url(self, url):
        if self.env is None:
            self.env = self.base.copy()
            self.fields_left = self.ctx.limit_fields
            self.head_bytes = 0
            self.plain = True
        else:
            url = self.url + url     # the target arrived in pieces
        self.url = url
        if len(url) > self.ctx.limit_line:
            raise HTTPError(414, "request target longer than %d bytes" % self.ctx.limit_line)

    def on_header(self, name, value):
        self.fields_left -= 1
        if self.fields_left < 0 or len(name) + len(value) > self.field_room:
            raise self.too_large(name)
        key = ENV_KEYS.get(name)
        if not key:
            key = environ_key(name)
            if not key:
                return                  # a name with '_': dropped
            if key in FRAMING:
                self.plain = False
        value = value.rstrip(b" \t").decode("latin-1")    # trailing OWS is not part of the value
        old = self.env.setdefault(key, value)
        if old is not value:
            self.env[key] = old + "," + value

    def too_large(self, name):
        ctx = self.ctx
        if self.fields_left < 0:
            return HTTPError(431, "more than %d header fields" % ctx.limit_fields)
        return HTTPError(431, "header field %r longer than %d bytes" % (name[:40], ctx.limit_field_size))

    def on_headers_complete(self):
        self.head_bytes = None
        parser = self.parser
        env = self.env
        method = parser.get_method()
        env["REQUEST_METHOD"] = _methods.get(method) or _method(method)
        env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"] = TARGETS.get(self.url) or target(self.url)
        # should_keep_alive() with no Connection header means HTTP/1.1, the environ's
        # default (llhttp accepts only 0.9, 1.0, 1.1 and 2.0, and keeps only 1.x with
        # x > 0 alive by default), and it is 40 times cheaper than get_http_version()
        if not (self.plain and parser.should_keep_alive() and "HTTP_CONNECTION" not in env):
            self.check_head(env)

    def check_head(self, env):
        """The checks a request with a framing header or another version needs."""
        parser = self.parser
        protocol = PROTOCOLS.get(parser.get_http_version())
        if protocol is None:
            raise HTTPError(505, "HTTP/%s is not supported" % parser.get_http_version())
        env["SERVER_PROTOCOL"] = protocol
        if self.plain is not False:
            self.plain = None     # no framing header: nothing more to check
            return
        if self.trust:
            proto = env.get("HTTP_X_FORWARDED_PROTO")
            if proto is not None and proto.lower() == "https":
                env["wsgi.url_scheme"] = "https"
        te = env.get("HTTP_TRANSFER_ENCODING")
        if te is not None and te.lower() != "chunked":
            raise HTTPError(501, "transfer coding %r is not supported" % te)
        length = env.get("CONTENT_LENGTH")
        limit = self.ctx.limit_body
        if length is not None and limit and int(length) > limit:
            raise HTTPError(413, "body of %s bytes is over the limit of %d" % (length, limit))
        expect = env.get("HTTP_EXPECT")
        if expect is not None and (te is not None or (length is not None and length != "0")):
            if expect.lower() != "100-continue":
                raise HTTPError(417, "expectation %r is not supported" % expect)
            if protocol == "HTTP/1.1" and not self.out:
                self._send(CONTINUE)

    def on_body(self, data):
        body = self.body
        if body is None:
            self.body_len = len(data)
            self.body = bytearray(data)
        else:
            self.body_len += len(data)
            if type(body) is bytearray:
                if self.body_len > SPOOL_BYTES:
                    spool = tempfile.TemporaryFile()
                    spool.write(body)
                    spool.write(data)
                    self.body = spool
                else:
                    body += data
            else:
                body.write(data)
        limit = self.ctx.limit_body
        if limit and self.body_len > limit:
            raise HTTPError(413, "body over the limit of %d bytes" % limit)

    def on_message_complete(self):
        env = self.env
        self.env = None
        if not self.keep:
            self.drop_body()
            return            # closing: requests pipelined behind the last one are dropped
        if not self.plain:
            self.finish_request(env)
        ctx = self.ctx
        meter = ctx.meter
        t0 = meter.start(env)
        if ctx.wrapped:
            self.run(env)
        else:
            self.serve(env, ctx.app)
        meter.end(t0)
        self.answered += 1

    def finish_request(self, env):
        """A request that is not plain, read whole: its keep-alive and its body."""
        self.keep = self.parser.should_keep_alive()
        body = self.body
        if body is not None:
            self.body = None
            if type(body) is bytearray:
                env["wsgi.input"] = io.BytesIO(body)
            else:
                body.seek(0)
                env["wsgi.input"] = body
            if "CONTENT_LENGTH" not in env:
                env["CONTENT_LENGTH"] = str(self.body_len)   # was chunked, now fully read

    def drop_body(self):
        body = self.body
        self.body = None
        if body is not None and type(body) is not bytearray:
            body.close()


    def between_requests(self):
        """Idle: no request being read or answered (the keep-alive timeout applies)."""
        return self.env is None

    def cut(self):
        """End the connection after what is already queued (the app failed mid-body)."""
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.keep = False
            try:
                self.sock.close()
            except OSError:
                pass
            # break the parser <-> connection and bound-method cycles: die by refcount
            self.parser = None
            self.start = self.write_cb = None
            self.env = None
            self.cur = None
            self.drop_body()      # a spooled body of a request cut short: its file closes now


def refusal(exc):
    """A parser exception -> (status, why) to answer with, or (None, None) when the client
    is gone; anything else (a bug in a callback) raises again."""
    if isinstance(exc, HttpParserCallbackError):
        err = exc.__context__
        if isinstance(err, HTTPError):
            return err.status, str(err)
        if isinstance(err, _Gone):
            return None, None
        raise exc
    why = str(exc)
    return (505 if why == "Invalid HTTP version" else 400), why


def _method(raw):
    m = _methods[raw] = raw.decode("latin-1")
    return m
