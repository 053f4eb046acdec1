"""Calling the app and writing its response: the Responder half of a Connection.

Hazards handled here: an app that raises (500, traceback to the error log, `close()`
still called), a body that disagrees with its Content-Length (never more than promised;
less closes the connection), a slow reader (a send waits at most send_timeout). Framing
and keep-alive for a response are decided in one place, end(); what a request the parser
refused gets, in refusal().
"""
import enum
import io
import os
import select
import socket
import time

from httptools import HttpParserCallbackError, HttpParserInvalidMethodError

from .. import hooks
from ..hooks import Request, Response
from .strict import Refused, unknown_method_status
from .wsgi import LAST_CHUNK, NO_BODY, FileWrapper, StartResponseError, chunk, error_response, head_for

MSG_DONTWAIT = socket.MSG_DONTWAIT
END_CLOSE = b"Connection: close\r\n\r\n"
END_KEEP_ALIVE = b"Connection: keep-alive\r\n\r\n"
END = b"\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


class Framing(enum.Enum):
    """How a streamed response's body ends."""
    LENGTH = "length"      # Content-Length, or no body at all: the connection may stay open
    CHUNKED = "chunked"    # HTTP/1.1 without a length: the last chunk ends it
    CLOSE = "close"        # HTTP/1.0 without a length: the end of the connection ends it


class Responder:
    """The response methods of Connection (which holds the state, in its __slots__)."""
    __slots__ = ()

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
                    # (`sent` stays False: nothing reads it before the next request resets it)
                    clock = self.ctx.clock
                    self.out.append(b"".join((self.head, clock.date,
                                              END if self.plain and not clock.shed else self.end(env), body)))
                    return len(body)
                return self.respond_bytes(env, body)
            return self.respond_iter(env, result)
        except _Gone:
            self.keep = False
        except RequestTimeout:
            self.keep = False
            self.ctx.log.exception("timeout: %s %s ran past --timeout; answered 504; it was here:",
                                   env.get("REQUEST_METHOD"), env.get("RAW_URI"))
            if not self.closed:
                if not self.sent:
                    self.out.append(error_response(504))
                    self.code = 504
                else:
                    self.cut()
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


def refusal(exc, line=b""):
    """A parser exception -> (status, why) to answer with, or (None, None) when the client
    is gone; anything else (a bug in a callback) raises again. `line`: the start of the
    refused request when known, to tell a method llhttp does not know (501) from garbage."""
    if isinstance(exc, HttpParserCallbackError):
        err = exc.__context__
        if isinstance(err, Refused):
            return err.status, str(err)
        if isinstance(err, RequestTimeout):     # raised where serve() could not catch it (its own finally)
            return 504, str(err)
        if isinstance(err, _Gone):
            return None, None
        raise exc
    why = str(exc)
    if why == "Invalid HTTP version":
        return 505, why
    if isinstance(exc, HttpParserInvalidMethodError) and line:
        return unknown_method_status(line), why
    return 400, why


class _Gone(Exception):
    """The client went away mid-response."""


class RequestTimeout(BaseException):
    """Raised inside the app by a worker without threads when the master says its request
    passed --timeout (serve/worker.py): it surfaces from time.sleep, a socket wait or any
    Python code. A BaseException, as KeyboardInterrupt is: an app's `except Exception`
    must not swallow it. serve() catches it, logs where the request was and answers 504."""


def _bytes(data):
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError("the app gave %s; WSGI bodies are bytes (PEP 3333)" % type(data).__name__)


def _fileno(filelike):
    try:
        return filelike.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
