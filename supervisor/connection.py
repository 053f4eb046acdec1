"""One client connection: httptools' callbacks in, WSGI calls, responses out.

The whole request (head and body) is read before the app is called, so a slow client
costs a registered fd, not a worker. Responses produced by one read (pipelining, or one
request) go out in one send. Hazards handled here: request smuggling (ambiguous framing
closes the connection after the error), a body cut short (never reaches the app), an app
that raises (500, traceback to the error log, `close()` still called).
"""
import io
import os
import socket
import tempfile
import time

from httptools import (HttpParserCallbackError, HttpParserError, HttpParserUpgrade,
                       HttpRequestParser)

from .wsgi import (LAST_CHUNK, NO_BODY, FileWrapper, Response, StartResponseError, chunk,
                   environ_key, error_response, split_target)

MSG_DONTWAIT = socket.MSG_DONTWAIT
SPOOL_BYTES = 1 << 20          # request bodies above this go to a temporary file
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CLOSE = b"Connection: close\r\n"
KEEP_ALIVE = b"Connection: keep-alive\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"
_methods = {}


class HTTPError(Exception):
    """Raised from a parser callback: answer with `status` and close the connection."""

    def __init__(self, status, why):
        super().__init__(why)
        self.status = status


class Connection:
    __slots__ = ("w", "sock", "fd", "parser", "base", "last", "out", "keep", "closed",
                 "url", "headers", "env", "body", "body_len", "in_head", "head_bytes",
                 "resp", "cur", "__weakref__")

    def __init__(self, worker, sock, base):
        self.w = worker
        self.sock = sock
        self.fd = sock.fileno()
        self.base = base
        self.parser = HttpRequestParser(self)
        self.last = worker.now
        self.out = []
        self.keep = True
        self.closed = False
        self.in_head = False
        self.env = None

    # -- reading ----------------------------------------------------------------------

    def on_readable(self):
        """Read what the socket has, parse it, answer complete requests. False: closed."""
        w = self.w
        try:
            n = self.sock.recv_into(w.buf, 0, MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            self.close()
            return False
        if n == 0:
            # EOF: a request in progress is incomplete and never reaches the app.
            self.close()
            return False
        self.last = w.now
        if self.in_head:
            self.head_bytes += n
            if self.head_bytes > w.head_limit:
                return self.fail(431, "request head larger than %d bytes" % w.head_limit)
        try:
            self.parser.feed_data(w.view[:n])
        except HttpParserCallbackError as exc:
            err = exc.__context__
            if isinstance(err, HTTPError):
                return self.fail(err.status, str(err))
            raise
        except HttpParserUpgrade:
            self.keep = False      # no protocol switch in WSGI: answer, then close
        except HttpParserError as exc:
            why = str(exc)
            return self.fail(505 if "version" in why else 400, why)
        if self.out:
            self.flush()
        if not self.keep and not self.closed:
            self.close()
        return not self.closed

    def fail(self, status, why):
        """Bad input: answer `status`, close, so nothing can be smuggled behind it."""
        self.w.log.debug("bad request from fd %d: %d %s", self.fd, status, why)
        if not self.closed:
            self.out.append(error_response(status))
            self.flush()
            self.close()
        return False

    # -- httptools callbacks ------------------------------------------------------------

    def on_message_begin(self):
        self.url = b""
        self.headers = []
        self.body = None
        self.body_len = 0
        self.in_head = True
        self.head_bytes = 0

    def on_url(self, url):
        self.url += url
        if len(self.url) > self.w.limit_line:
            raise HTTPError(414, "request target longer than %d bytes" % self.w.limit_line)

    def on_header(self, name, value):
        headers = self.headers
        headers.append((name, value))
        w = self.w
        if len(headers) > w.limit_fields:
            raise HTTPError(431, "more than %d header fields" % w.limit_fields)
        if len(name) + len(value) + 2 > w.limit_field_size:
            raise HTTPError(431, "header field %r longer than %d bytes" % (name[:40], w.limit_field_size))

    def on_headers_complete(self):
        self.in_head = False
        parser = self.parser
        version = parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise HTTPError(505, "HTTP/%s is not supported" % version)
        method = parser.get_method()
        m = _methods.get(method)
        if m is None:
            m = _methods[method] = method.decode("latin-1")
        env = self.base.copy()
        env["REQUEST_METHOD"] = m
        env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"] = split_target(self.url)
        env["SERVER_PROTOCOL"] = "HTTP/" + version
        for name, value in self.headers:
            key = environ_key(name)
            value = value.decode("latin-1")
            if key in env:
                env[key] += "," + value
            else:
                env[key] = value
        self.headers = None
        te = env.get("HTTP_TRANSFER_ENCODING")
        if te is not None:
            codings = [c.strip().lower() for c in te.split(",")]
            if any(c != "chunked" for c in codings):
                raise HTTPError(501, "transfer coding %r is not supported" % te)
        length = env.get("CONTENT_LENGTH")
        w = self.w
        if length is not None and w.limit_body and int(length) > w.limit_body:
            raise HTTPError(413, "body of %s bytes is over the limit of %d" % (length, w.limit_body))
        if self.base["wsgi.url_scheme"] is None:
            proto = env.get("HTTP_X_FORWARDED_PROTO", "http").lower()
            env["wsgi.url_scheme"] = "https" if proto == "https" else "http"
        expect = env.get("HTTP_EXPECT")
        if expect is not None and (length not in (None, "0") or te is not None):
            if expect.lower() != "100-continue":
                raise HTTPError(417, "expectation %r is not supported" % expect)
            if version == "1.1" and not self.out:
                self._send(CONTINUE)
        self.env = env

    def on_body(self, data):
        self.body_len += len(data)
        w = self.w
        if w.limit_body and self.body_len > w.limit_body:
            raise HTTPError(413, "body over the limit of %d bytes" % w.limit_body)
        body = self.body
        if body is None:
            self.body = body = bytearray(data)
        elif type(body) is bytearray:
            if self.body_len > SPOOL_BYTES:
                spool = tempfile.TemporaryFile()
                spool.write(body)
                spool.write(data)
                self.body = spool
            else:
                body += data
        else:
            body.write(data)

    def on_message_complete(self):
        env = self.env
        self.env = None
        if not self.keep or env is None:
            return            # closing: requests pipelined behind the last one are dropped
        body = self.body
        if body is None:
            env["wsgi.input"] = io.BytesIO()
        elif type(body) is bytearray:
            env["wsgi.input"] = io.BytesIO(body)
        else:
            body.seek(0)
            env["wsgi.input"] = body
        if "CONTENT_LENGTH" not in env and self.body_len:
            env["CONTENT_LENGTH"] = str(self.body_len)   # chunked, now fully read
        self.body = None
        self.keep = self.parser.should_keep_alive()
        self.run(env)

    # -- the application -----------------------------------------------------------------

    def run(self, env):
        w = self.w
        resp = self.resp = Response()
        resp.write = self.write
        self.cur = env
        result = None
        t0 = time.perf_counter() if w.access_log else 0.0
        sent = 0
        try:
            result = w.app(env, resp.start)
            if type(result) is list and resp.status is not None:
                sent = self.respond_list(env, resp, result)
                result = None
            else:
                sent = self.respond_iter(env, resp, result)
        except _Gone:
            self.keep = False
        except Exception:
            self.keep = False
            w.log.exception("error handling %s %s", env.get("REQUEST_METHOD"), env.get("RAW_URI"))
            if not resp.sent and not self.closed:
                self.out.append(error_response(500))
                resp.code = 500
            elif not self.closed:
                self.flush()
                self.close()   # the head went out: cutting the connection is the only signal left
        finally:
            if result is not None:
                close = getattr(result, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:
                        w.log.exception("error closing the app's response iterable")
            w.requests += 1
            if w.access_log:
                w.access(env, resp, sent, time.perf_counter() - t0)
            if w.no_keepalive:
                self.keep = False

    def head(self, env, resp, extra):
        """Finish the response head; decide keep-alive."""
        head = resp.head
        head.append(self.w.date_server)
        if extra:
            head.append(extra)
        if resp.close or not self.keep or self.w.no_keepalive:
            self.keep = False
            head.append(CLOSE)
        elif env["SERVER_PROTOCOL"] == "HTTP/1.0":
            head.append(KEEP_ALIVE)
        head.append(b"\r\n")
        resp.sent = True
        return b"".join(head)

    def respond_list(self, env, resp, result):
        body = result[0] if len(result) == 1 else b"".join(result)
        if type(body) is not bytes:
            body = bytes(body) if isinstance(body, (bytearray, memoryview)) else _not_bytes(body)
        length = resp.length
        if length is None:
            extra = b"Content-Length: %d\r\n" % len(body) if resp.code not in NO_BODY else b""
        else:
            extra = b""
            if len(body) != length:
                body = body[:length]
                if len(body) < length:
                    self.keep = False   # the client expects more than the app gave
        out = self.out
        out.append(self.head(env, resp, extra))
        if env["REQUEST_METHOD"] != "HEAD" and resp.code not in NO_BODY:
            out.append(body)
            return len(body)
        return 0

    def respond_iter(self, env, resp, result):
        """Stream any other iterable: sendfile for a file wrapper, chunks otherwise."""
        if isinstance(result, FileWrapper) and resp.status is not None:
            fileno = _fileno(result.filelike)
            if fileno is not None:
                return self.send_file(env, resp, result, fileno)
        nobody = env["REQUEST_METHOD"] == "HEAD" or None
        sent = 0
        framing = None
        for data in result:
            if type(data) is not bytes:
                data = _not_bytes(data) if not isinstance(data, (bytearray, memoryview)) else bytes(data)
            if not data:
                continue
            if not resp.sent:
                if resp.status is None:
                    raise StartResponseError("the app gave a body before calling start_response")
                framing = self.framing(env, resp)
                if nobody is None and resp.code in NO_BODY:
                    nobody = True
                if nobody:
                    break
            if framing == "chunked":
                if data:
                    self.out.append(chunk(data))
            else:
                if resp.length is not None and sent + len(data) > resp.length:
                    data = data[:resp.length - sent]
                self.out.append(data)
            sent += len(data)
            self.flush()
        if not resp.sent:
            if resp.status is None:
                raise StartResponseError("the app returned without calling start_response")
            # empty body: we know the length after all
            extra = b"Content-Length: 0\r\n" if resp.length is None and resp.code not in NO_BODY else b""
            self.out.append(self.head(env, resp, extra))
        elif framing == "chunked" and not nobody:
            self.out.append(LAST_CHUNK)
        elif resp.length is not None and sent < resp.length and not nobody:
            self.keep = False
        return sent

    def framing(self, env, resp):
        """Send the head of a streamed response; return 'chunked', 'length' or 'close'."""
        if resp.length is not None or resp.code in NO_BODY or env["REQUEST_METHOD"] == "HEAD":
            self.out.append(self.head(env, resp, b""))
            return "length"
        if env["SERVER_PROTOCOL"] == "HTTP/1.1":
            self.out.append(self.head(env, resp, CHUNKED))
            return "chunked"
        self.keep = False   # HTTP/1.0: the end of the body is the end of the connection
        self.out.append(self.head(env, resp, b""))
        return "close"

    def send_file(self, env, resp, wrapper, fileno):
        try:
            offset = os.lseek(fileno, 0, os.SEEK_CUR)
            size = os.fstat(fileno).st_size - offset
        except OSError:
            offset, size = 0, None
        length = resp.length if resp.length is not None else size
        if length is None:
            return self.respond_iter(env, resp, iter(wrapper))
        extra = b"Content-Length: %d\r\n" % length if resp.length is None else b""
        self.out.append(self.head(env, resp, extra))
        self.flush()
        if env["REQUEST_METHOD"] == "HEAD" or resp.code in NO_BODY:
            return 0
        sent = 0
        self.sock.settimeout(self.w.send_timeout)
        try:
            while sent < length:
                n = os.sendfile(self.fd, fileno, offset + sent, length - sent)
                if n == 0:
                    self.keep = False   # the file shrank under us
                    break
                sent += n
        except OSError:
            self.close()
            raise _Gone() from None
        finally:
            if not self.closed:
                self.sock.settimeout(None)
        return sent

    def write(self, data):
        """The legacy write() callable that start_response returns (PEP 3333)."""
        resp = self.resp
        if not resp.sent:
            self.framing(self.cur, resp)
        self.out.append(data)
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
            sock.settimeout(self.w.send_timeout)
            try:
                sock.sendall(memoryview(data)[n:])
            except OSError:
                self.close()
                raise _Gone() from None
            finally:
                if not self.closed:
                    sock.settimeout(None)

    def close(self):
        if not self.closed:
            self.closed = True
            self.keep = False
            self.w.forget(self)
            try:
                self.sock.close()
            except OSError:
                pass
            # break the parser <-> connection cycle so the connection dies by refcount
            self.parser = None


class _Gone(Exception):
    """The client went away mid-response."""


def _not_bytes(data):
    raise TypeError("the app yielded %s; WSGI bodies are bytes (PEP 3333)" % type(data).__name__)


def _fileno(filelike):
    try:
        return filelike.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None

