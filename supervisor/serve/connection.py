"""One client connection: httptools' callbacks in, WSGI calls, responses out.

The whole request (head and body) is read before the app is called, so a slow client
costs a registered fd, not a worker. Responses produced by one read (pipelining, or one
request) go out in one send. Hazards handled here: request smuggling (ambiguous framing
closes the connection after the error), a body cut short (never reaches the app), an app
that raises (500, traceback to the error log, `close()` still called).

A Connection knows no Worker: it reads a frozen Context (limits, app, hooks, log, clock)
and on_readable returns how many requests it answered, for the worker to count. A test can
drive it bytes in, bytes out through a stand-in socket (tests/serve/test_connection.py).

This is the hot path: per request it does dict lookups in caches that wsgi.py fills
(header keys, targets, whole validated response heads), builds the environ directly in
the header callback, and keeps the response state on the connection, not in a new object.
"""
import dataclasses
import enum
import io
import os
import select
import socket
import tempfile
import time

from httptools import (HttpParserCallbackError, HttpParserError, HttpParserUpgrade,
                       HttpRequestParser)

from .. import hooks
from ..hooks import Request, Response
from .meter import Meter
from .wsgi import (ENV_KEYS, FRAMING, LAST_CHUNK, NO_BODY, TARGETS, FileWrapper, StartResponseError,
                   chunk, environ_key, error_response, head_for, target)

MSG_DONTWAIT = socket.MSG_DONTWAIT
SPOOL_BYTES = 1 << 20          # request bodies above this go to a temporary file
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
END_CLOSE = b"Connection: close\r\n\r\n"
END_KEEP_ALIVE = b"Connection: keep-alive\r\n\r\n"
END = b"\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_methods = {}


class Framing(enum.Enum):
    """How a streamed response's body ends."""
    LENGTH = "length"      # Content-Length, or no body at all: the connection may stay open
    CHUNKED = "chunked"    # HTTP/1.1 without a length: the last chunk ends it
    CLOSE = "close"        # HTTP/1.0 without a length: the end of the connection ends it


class Clock:
    """What the loop refreshes for its connections, shared by reference: `now` (monotonic,
    at the last wake-up), `date` (the Date and Server header lines, once a second) and
    `shed`: the worker is saturated, so responses say "Connection: close" and their clients
    go back to the shared listen queue, where any free worker takes them (fair order)."""
    __slots__ = ("now", "date", "shed")

    def __init__(self, now=0.0, date=b""):
        self.now = now
        self.date = date
        self.shed = False


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """All a connection reads that is not its own. Fixed for the worker's life, but for the
    clock's values; a graceful stop hands every connection a replaced one (keepalive off)."""
    app: object
    log: object
    clock: Clock
    view: memoryview          # the loop's read buffer: only the loop reads sockets
    limit_line: int
    limit_fields: int
    limit_field_size: int
    limit_body: int
    send_timeout: float
    hooks: dict = dataclasses.field(default_factory=dict)   # name -> function (pre/post_request used here)
    hook_worker: object = None    # what Gunicorn's hooks get as `worker`
    access: object = None         # access(env, code, headers, sent, seconds), or None: no access log
    keepalive: bool = True        # False: every response says "Connection: close" (--keep-alive 0, stopping)
    wrapped: bool = False         # run() surrounds the app call (hooks, access log, no keep-alive)
    head_limit: int = 0           # bytes a request head may take before 431 (line + fields + CRLFs)
    meter: Meter = dataclasses.field(default_factory=Meter)   # the heartbeat cell's request writes

    def __post_init__(self):
        object.__setattr__(self, "wrapped", bool(
            "pre_request" in self.hooks or "post_request" in self.hooks or self.access or not self.keepalive))
        object.__setattr__(self, "head_limit",
                           self.limit_line + self.limit_fields * (self.limit_field_size + 2) + 4)


class HTTPError(Exception):
    """Raised from a parser callback: answer with `status` and close the connection."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


class Connection:
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

    # -- the application -----------------------------------------------------------------

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise StartResponseError("start_response called twice without exc_info")
        self.code, self.head, self.length, self.app_close, self.fast_length = head_for(status, headers)
        self.status = status
        self.headers = headers
        return self.write_cb

    def serve(self, env, app):
        """Call the app and queue its response. Returns the body bytes sent."""
        self.status = None
        self.sent = False
        self.cur = env
        result = None
        try:
            result = app(env, self.start)
            if type(result) is list and self.status is not None and not self.sent:
                # the common case, inline: a list body with a known head
                body = result[0] if len(result) == 1 else b"".join(result)
                result = None
                if type(body) is not bytes:
                    body = _bytes(body)
                if len(body) == self.fast_length and env["REQUEST_METHOD"] != "HEAD":
                    # the length as declared, a status with a body, no close from the app
                    self.sent = True
                    clock = self.ctx.clock
                    self.out.append(b"".join((self.head, clock.date,
                                              END if self.plain and not clock.shed else self.end(env), body)))
                    return len(body)
                return self.respond_bytes(env, body)
            return self.respond_iter(env, result)
        except _Gone:
            self.keep = False
        except Exception:
            self.keep = False
            self.ctx.log.exception("error handling %s %s", env.get("REQUEST_METHOD"), env.get("RAW_URI"))
            if not self.closed:
                if not self.sent:
                    self.out.append(error_response(500))
                    self.code = 500
                else:
                    self.cut()     # the head went out: cutting the connection is the only signal left
        finally:
            if result is not None:
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        self.ctx.log.exception("error closing the app's response iterable")
        return 0

    def run(self, env):
        """serve() with what may surround it: the pre/post_request hooks, the access log,
        keep-alive off (--keep-alive 0, or a worker stopping)."""
        ctx = self.ctx
        t0 = time.perf_counter() if ctx.access else 0.0
        req = None
        app = ctx.app
        if "pre_request" in ctx.hooks or "post_request" in ctx.hooks:
            req = Request(env)

            def hooked(env, start):
                if not hooks.call(ctx.hooks, ctx.log, "pre_request", ctx.hook_worker, req):
                    raise RuntimeError("the pre_request hook raised")   # -> 500, as Gunicorn does
                return ctx.app(env, start)
            app = hooked
        if not ctx.keepalive:
            self.keep = self.plain = False     # the response says "Connection: close"
        sent = self.serve(env, app)
        ok = self.status is not None
        if req is not None:
            hooks.call(ctx.hooks, ctx.log, "post_request", ctx.hook_worker, req, env,
                       Response(self.status if ok else "500 Internal Server Error",
                                self.headers if ok else None, sent))
        if ctx.access:
            ctx.access(env, self.code if ok else 500, self.headers if ok else None, sent,
                       time.perf_counter() - t0)

    def respond_bytes(self, env, body):
        """A whole body in hand, any request: frame it and queue it."""
        length = self.length
        if length is None:
            extra = b"Content-Length: %d\r\n" % len(body) if self.code not in NO_BODY else b""
        else:
            extra = b""
            if len(body) != length:
                body = self._fit(body, length)
        self.out.append(self.finish_head(env, Framing.LENGTH, extra))
        if self.code not in NO_BODY and env["REQUEST_METHOD"] != "HEAD":
            self.out.append(body)
            return len(body)
        return 0

    def finish_head(self, env, framing, extra=b""):
        """The whole response head, with Date, its framing header (`extra`) and whether we
        keep the connection."""
        self.sent = True
        self.framed = framing
        return b"".join((self.head, self.ctx.clock.date, extra, self.end(env, framing)))

    def end(self, env, framing=Framing.LENGTH):
        """The end of a response head. The one place keep-alive is decided for a response:
        it stays open unless the request, the app, the framing or the worker says close."""
        ctx = self.ctx
        if self.app_close or not self.keep or not ctx.keepalive or framing is Framing.CLOSE or ctx.clock.shed:
            self.keep = False
            return END_CLOSE
        if env["SERVER_PROTOCOL"] == "HTTP/1.0":
            return END_KEEP_ALIVE
        return END

    def _fit(self, body, length):
        """The app's body disagrees with its Content-Length: never send more than
        promised; if it gave less, the client would wait, so close after it."""
        if len(body) < length:
            self.keep = False
        return body[:length]

    def respond_iter(self, env, result):
        """Stream any other iterable: sendfile for a file wrapper, chunks otherwise."""
        if isinstance(result, FileWrapper) and self.status is not None:
            fileno = _fileno(result.filelike)
            if fileno is not None:
                return self.send_file(env, result, fileno)
        head_only = env["REQUEST_METHOD"] == "HEAD"
        sent = 0
        for data in result:
            if type(data) is not bytes:
                data = _bytes(data)
            if not data:
                continue
            if not self.sent:
                if self.status is None:
                    raise StartResponseError("the app gave a body before calling start_response")
                self.stream_head(env)
                if head_only or self.code in NO_BODY:
                    break
            if self.framed is Framing.CHUNKED:
                self.out.append(chunk(data))
            else:
                if self.length is not None and sent + len(data) > self.length:
                    data = data[:self.length - sent]
                self.out.append(data)
            sent += len(data)
            self.flush()
        if not self.sent:
            if self.status is None:
                raise StartResponseError("the app returned without calling start_response")
            # an empty body: now the length is known after all
            empty = self.length is None and self.code not in NO_BODY and not head_only
            self.out.append(self.finish_head(env, Framing.LENGTH, b"Content-Length: 0\r\n" if empty else b""))
        elif head_only or self.code in NO_BODY:
            pass
        elif self.framed is Framing.CHUNKED:
            self.out.append(LAST_CHUNK)
        elif self.length is not None and sent < self.length:
            self.keep = False
        return sent

    def stream_head(self, env):
        """Queue the head of a streamed response, choosing its Framing."""
        if self.length is not None or self.code in NO_BODY or env["REQUEST_METHOD"] == "HEAD":
            self.out.append(self.finish_head(env, Framing.LENGTH))
        elif env["SERVER_PROTOCOL"] == "HTTP/1.1":
            self.out.append(self.finish_head(env, Framing.CHUNKED, CHUNKED))
        else:
            # HTTP/1.0: the end of the body is the end of the connection
            self.out.append(self.finish_head(env, Framing.CLOSE))

    def send_file(self, env, wrapper, fileno):
        try:
            offset = os.lseek(fileno, 0, os.SEEK_CUR)
            size = os.fstat(fileno).st_size - offset
        except OSError:
            return self.respond_iter(env, iter(wrapper))
        length = self.length if self.length is not None else size
        self.out.append(self.finish_head(env, Framing.LENGTH,
                                         b"Content-Length: %d\r\n" % length if self.length is None else b""))
        self.flush()
        if env["REQUEST_METHOD"] == "HEAD" or self.code in NO_BODY:
            return 0
        return self.send_file_body(fileno, offset, length)

    def send_file_body(self, fileno, offset, length):
        """os.sendfile, waiting for a slow reader at most send_timeout at a time."""
        sent = 0
        os.set_blocking(self.fd, False)
        waiter = None
        try:
            while sent < length:
                try:
                    n = os.sendfile(self.fd, fileno, offset + sent, length - sent)
                except BlockingIOError:
                    # a slow reader: wait for room, but not forever
                    if waiter is None:
                        waiter = select.poll()
                        waiter.register(self.fd, select.POLLOUT)
                    if not waiter.poll(self.ctx.send_timeout * 1000):
                        raise _Gone() from None
                    continue
                if n == 0:
                    self.keep = False   # the file shrank under us
                    break
                sent += n
        except (OSError, _Gone):
            self.close()
            raise _Gone() from None
        if not self.closed:
            os.set_blocking(self.fd, True)
        return sent

    def write(self, data):
        """The legacy write() callable that start_response returns (PEP 3333)."""
        if not self.sent:
            self.stream_head(self.cur)
        if data:
            self.out.append(chunk(data) if self.framed is Framing.CHUNKED else data)
            self.flush()

    # -- writing -------------------------------------------------------------------------

    def flush(self):
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._send(data)

    def _send(self, data):
        if self.closed:
            raise _Gone()
        sock = self.sock
        try:
            n = sock.send(data, MSG_DONTWAIT)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            raise _Gone() from None
        if n < len(data):
            # A slow reader: block, but not forever (a stuck client must not hold a worker).
            sock.settimeout(self.ctx.send_timeout)
            try:
                sock.sendall(memoryview(data)[n:])
            except OSError:
                self.close()
                raise _Gone() from None
            finally:
                if not self.closed:
                    sock.settimeout(None)

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


class _Gone(Exception):
    """The client went away mid-response."""


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


def _bytes(data):
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("the app gave %s; WSGI bodies are bytes (PEP 3333)" % type(data).__name__)


def _fileno(filelike):
    try:
        return filelike.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
