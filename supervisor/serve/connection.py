"""One client connection: bytes in, httptools' callbacks, whole requests to the app.

The whole request (head and body) is read before the app is called, so a slow client
costs a registered fd, not a worker. Responses produced by one read (pipelining, or one
request) go out in one send. Hazards handled here: request smuggling (ambiguous framing
closes the connection after the error), a body cut short (never reaches the app).
Calling the app and writing its response is respond.py's part (Responder).

A Connection knows no Worker: it reads a frozen Context (context.py: limits, app, hooks,
log, clock) and counts the requests it answers in the Context's meter, for the worker.
A test drives it bytes in, bytes out through a stand-in socket
(tests/serve/test_connection.py).

This is the hot path: per request it does dict lookups in caches that wsgi.py fills
(header keys, targets, whole validated response heads), builds the environ directly in
the header callback, and keeps the response state on the connection, not in a new object.
"""
import io
import tempfile
import time

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from . import strict
from .respond import MSG_DONTWAIT, Responder, _Gone, refusal
from .strict import HOSTS, TRAILERS, check_host
from .strict import Refused as HTTPError     # raised from a parser callback: answer, close
from .upgrade import NoSwitch
from .wsgi import ENV_KEYS, FRAMING, REQUESTS, environ_key, error_response, request_line, targets_of

SPOOL_BYTES = 1 << 20          # request bodies above this go to a temporary file
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_monotonic = time.monotonic
_UNSEEN = object()             # equal to no Host value, not even a missing one (None)


class Connection(Responder, NoSwitch):
    running = False        # a request of this connection is in an app thread (threads.py)
    __slots__ = ("ctx", "sock", "fd", "parser", "base", "trust", "last", "out", "keep", "closed",
                 "url", "env", "fields_left", "body", "body_len", "head_bytes", "plain",
                 "status", "code", "head", "length", "app_close", "fast_length", "sent", "headers",
                 "cur", "start", "write_cb", "framed", "answered", "upgrading", "pending",
                 "line", "host", "exact", "authority")

    def __init__(self, ctx, sock, base, trust):
        self.ctx = ctx
        self.sock = sock
        self.fd = sock.fileno()
        self.base = base
        self.trust = trust
        self.parser = HttpRequestParser(self)
        self.last = ctx.clock.now
        self.out = []
        self.keep = True
        self.closed = False
        self.answered = False      # a request was answered in this read
        self.head_bytes = None     # counts while a request head is being read, else None
        self.plain = False
        self.env = None
        self.body = None
        self.upgrading = False     # an Upgrade or CONNECT request is being read
        self.pending = None        # (its body's framing, its environ once the head is read)
        self.host = _UNSEEN        # the Host of this connection's last request, found valid
        self.authority = None      # an absolute-form target's, for HTTP_HOST (check_head puts it there)
        # one bound method per connection, not per request
        self.start = self.start_response
        self.write_cb = self.write

    # -- reading ----------------------------------------------------------------------

    def on_readable(self):
        """Read what the socket has, parse it, answer complete requests (counted in
        ctx.meter.requests); `closed` says whether the connection is gone."""
        ctx = self.ctx
        try:
            n = self.sock.recv_into(ctx.buf, 0, MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not n:       # EOF: a request in progress is incomplete and never reaches the app
            self.close()
            return
        self.last = ctx.clock.now
        if self.head_bytes is not None:     # a head that began in an earlier read
            self.head_bytes += n
            self.exact = True
            if self.head_bytes > ctx.head_limit:
                return self.fail(431, "request head larger than %d bytes" % ctx.head_limit)
        else:
            self.exact = n > ctx.short_read  # a short read holds no target or field too long
        try:
            self.parser.feed_data(ctx.view[:n])
        except HttpParserUpgrade as exc:
            if self.upgraded(ctx.view[int(exc.args[0]):n]):      # Upgrade, CONNECT: upgrade.py
                return
        except (HttpParserCallbackError, HttpParserError) as exc:
            if not self.after_close():
                return self.parse_failed(exc, ctx.view[:n])
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
        self.answered = False

    def after_close(self):
        """Whether a closing response was just queued: what feed_data raised after it
        (_Closing, or llhttp refusing the bytes that follow) is neither parsed further nor
        answered; on_readable flushes and closes."""
        return not self.keep and self.answered and self.pending is None

    def parse_failed(self, exc, data):
        """feed_data raised: answer the refusal and close."""
        status, why = refusal(exc, self.failing_line(data, self.answered))
        return self.fail(status, why) if status else self.counted()

    def failing_line(self, data, ended):
        """The start of the refused request when it began in `data` (no request ended in it
        and none was being read before it), else b""."""
        return bytes(data[:256]) if self.env is None and not ended else b""

    def counted(self):
        """on_readable's end on its less common ways out: the next read starts afresh."""
        self.answered = False

    def fail(self, status, why):
        """Bad input: answer `status`, close, so nothing can be smuggled behind it."""
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
            if not self.keep:
                self.closing()           # a request pipelined behind a closing response
            self.env = self.base.copy()
            self.fields_left = self.ctx.limit_fields
            self.head_bytes = 0
            self.plain = True
        else:
            url = self.url + url     # the target arrived in pieces
        self.url = url
        if self.exact and len(url) > self.ctx.limit_line:
            raise HTTPError(414, "request target longer than %d bytes" % self.ctx.limit_line)

    def on_header(self, name, value):
        self.fields_left -= 1
        if self.fields_left < 0 or self.exact and len(name) + len(value) > self.ctx.field_room:
            return self.unusual_field(name, value)
        key = ENV_KEYS.get(name)
        if not key:
            key = environ_key(name)
            if not key and self.trust:  # a name with '_' a trusted proxy may send (forwarder_headers)
                key = strict.forwarded_key(name, self.ctx.forwarders)
                if key == "HTTP_SCRIPT_NAME":
                    self.plain = False      # the checked way sets the environ's SCRIPT_NAME (check_head)
            if not key:                 # a name with '_': dropped, or refused (--header-map refuse)
                if self.ctx.refuse_underscores:
                    raise HTTPError(400, "header name %r has '_' (--header-map refuse)" % name[:40])
                return
            if key in FRAMING:
                self.plain = False
        value = value.rstrip(b" \t").decode("latin-1")    # trailing OWS is not part of the value
        env = self.env
        if key in env:
            self.repeated(key, value)
        else:
            env[key] = value

    def repeated(self, key, value):
        """A second field line of the same name: joined with ',' (RFC 9110 5.3), unless the
        field is one value only (strict.SINGLETONS)."""
        if key in strict.SINGLETONS:
            raise HTTPError(400, "more than one %s field" % key)
        self.env[key] += "," + value

    def unusual_field(self, name, value):
        """A field over a limit, or a field of a chunked body's trailer section: that one is
        checked (strict.check_trailer) and dropped, never put in the environ."""
        ctx = self.ctx
        left = self.fields_left
        if left < TRAILERS // 2:
            left -= TRAILERS
            if left >= 0 and len(name) + len(value) <= ctx.field_room:
                return strict.check_trailer(name)
        if left < 0:
            raise HTTPError(431, "more than %d header fields" % ctx.limit_fields)
        raise HTTPError(431, "header field %r longer than %d bytes" % (name[:40], ctx.limit_field_size))

    def on_headers_complete(self):
        self.head_bytes = None
        parser = self.parser
        env = self.env
        method = parser.get_method()
        self.line = line = ((REQUESTS.get(method) or self.new_method(method)).get(self.url)
                            or self.new_target(method, env))
        env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"] = line
        # should_keep_alive() with no Connection header means HTTP/1.1, the environ's
        # default (llhttp accepts only 0.9, 1.0, 1.1 and 2.0, and keeps only 1.x with
        # x > 0 alive by default), and it is 40 times cheaper than get_http_version().
        # The Host this connection sent last, found valid then, needs no look (a string
        # compare: no hash); any other, or none, is looked at there.
        if not (self.plain and env.get("HTTP_HOST") == self.host and parser.should_keep_alive()
                and "HTTP_CONNECTION" not in env):
            self.check_head(env)

    def new_method(self, method):
        """A method whose cache of request lines is empty or new (wsgi.targets_of).
        CONNECT takes the slow way, where its target form and the close after it are seen to."""
        if method == b"CONNECT":
            self.plain = False
        return targets_of(method)

    def new_target(self, method, env):
        """A request line not in its method's cache: only origin-form targets are
        remembered; the other forms are checked against the method every time. An
        absolute-form target's authority becomes HTTP_HOST in check_head (RFC 9112 3.2.2),
        after the Host field itself was checked, so such a request is not plain."""
        url = self.url
        if url[:1] != b"/":
            self.authority = strict.check_target(url.decode("latin-1"), method.decode("latin-1"))
            if self.authority is not None and self.plain:
                self.plain = None
        return request_line(method, url, targets_of(method), self.ctx.mount)

    def check_head(self, env):
        """The checks a request with a framing header, another version, a Connection field
        or a Host not seen before needs."""
        parser = self.parser
        protocol = PROTOCOLS.get(parser.get_http_version())
        if protocol is None:
            raise HTTPError(505, "HTTP/%s is not supported" % parser.get_http_version())
        env["SERVER_PROTOCOL"] = protocol
        host = env.get("HTTP_HOST")
        if host not in HOSTS:
            check_host(host, protocol)
        if host is not None:
            self.host = host
        if self.authority is not None:
            env["HTTP_HOST"], self.authority = self.authority, None     # RFC 9112 3.2.2
        if self.plain is not False:
            self.plain = None     # no framing header: nothing more to check
            return
        if self.trust:
            if strict.forwarded_scheme(env, self.ctx.scheme_headers) == "https":
                env["wsgi.url_scheme"] = "https"
            if "HTTP_SCRIPT_NAME" in env:
                strict.mount(env, env["HTTP_SCRIPT_NAME"])
        if parser.should_upgrade():
            self.no_switch(env)
        te = env.get("HTTP_TRANSFER_ENCODING")
        if te is not None:
            strict.check_transfer_coding(te, protocol)
            self.fields_left = TRAILERS + self.ctx.limit_fields    # a trailer section may follow
        length = env.get("CONTENT_LENGTH")
        limit = self.ctx.limit_body
        if length is not None and limit and int(length) > limit:
            raise HTTPError(413, "body of %s bytes is over the limit of %d" % (length, limit))
        expect = env.get("HTTP_EXPECT")
        if expect is not None and (te is not None or (length is not None and length != "0")):
            strict.check_expect(expect)
            if protocol == "HTTP/1.1":
                self.send_continue()

    def send_continue(self):
        """"100 Continue", after the responses to requests pipelined ahead (in `out` until
        this read's flush), else now: the client may wait for it before sending the body."""
        if self.out:
            self.out.append(CONTINUE)
        else:
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
        if not self.plain and not self.finish_request(env):
            return
        ctx = self.ctx
        meter = ctx.meter
        if self.line is not meter.line or self.answered:
            # the heartbeat cell names another request, or a request of this read ran
            # before this one (the loop's `since` is stale): meter.py
            meter.start(self.line, _monotonic() if self.answered else None)
        if ctx.wrapped:
            self.run(env)
        else:
            self.serve(env, ctx.app)
        meter.requests += 1
        self.answered = True

    def closing(self):
        """A request begins after a response that closes the connection (where llhttp would
        read on: a 1.0 "close, keep-alive", the app's or the worker's close): stop the
        parser, so nothing after that response is answered."""
        raise _Closing()

    def finish_request(self, env):
        """A request that is not plain, read whole: its keep-alive (close wins, in any
        version) and its body. False: an Upgrade or CONNECT whose body is still to come."""
        if self.upgrading:
            if self.pending is not None:
                self.pending = (self.pending[0], env)
                self.env = env       # mid-request, not idle
                return False
            self.upgrading = False
            self.keep = False
        elif self.keep:
            self.keep = self.parser.should_keep_alive() and not (
                "HTTP_CONNECTION" in env and strict.asks_close(env["HTTP_CONNECTION"]))
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
        return True

    def drop_body(self):
        body = self.body
        self.body = None
        if body is not None and type(body) is not bytearray:
            body.close()


    def between_requests(self):
        """Idle: no request being read or answered (the keep-alive timeout applies)."""
        return self.env is None

    def reclaimable(self):
        """May be closed to make room when the worker is out of descriptors (fdlimit.py):
        idle between requests, or still reading a request's head; never mid-body."""
        return self.env is None or self.head_bytes is not None

    def cut(self):
        """End the connection after what is already queued (the app failed mid-body)."""
        self.close()

    def close(self):
        if not self.closed:
            self.closed = True
            self.keep = False
            self.ctx.conns.pop(self.fd, None)     # before the fd number can be taken again
            try:
                self.sock.close()
            except OSError:
                pass
            # break the parser <-> connection and bound-method cycles: die by refcount
            self.parser = None
            self.start = self.write_cb = None
            self.env = None
            self.cur = None
            if self.body is not None:
                self.drop_body()      # a spooled body of a request cut short: its file closes now


class _Closing(Exception):
    """Raised where a request begins behind a response that closes the connection: read no further."""
