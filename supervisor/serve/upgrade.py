"""Upgrade and CONNECT requests: answered as ordinary ones, with their body, then closed.

pyfork switches no protocol (WSGI has no way to) and tunnels nothing. llhttp stops at the
end of such a request's head (httptools raises HttpParserUpgrade with where the body
starts), so the body, by its Content-Length or chunked framing, is read by a second
parser fed a head of ours with the same framing; its callbacks are _Body's. The request
is then answered like any other and the connection closes after it (finish_request).
NoSwitch is a part of Connection (its state lives in Connection's slots).
"""
from httptools import HttpParserCallbackError, HttpParserError, HttpRequestParser

from . import strict
from .strict import TRAILERS

# the head fed to the parser that reads the body: ours, so its fields are ignored
BODY_HEAD = b"POST / HTTP/1.1\r\nConnection: close\r\n%s\r\n"


class NoSwitch:
    __slots__ = ()

    def no_switch(self, env):
        """check_head met an Upgrade or CONNECT: note it, and the framing of a body to come."""
        self.upgrading = True
        if env["REQUEST_METHOD"] == "CONNECT":
            strict.check_target(env["RAW_URI"], "CONNECT")
        if "HTTP_TRANSFER_ENCODING" in env:
            self.pending = (b"Transfer-Encoding: chunked\r\n", None)
        elif env.get("CONTENT_LENGTH", "0").lstrip("0"):
            self.pending = (b"Content-Length: %s\r\n" % env["CONTENT_LENGTH"].encode(), None)

    def upgraded(self, rest):
        """llhttp stopped after an Upgrade or CONNECT head; `rest` follows it. The request is
        answered already when it has no body; else its body is read from here on. True
        when that refuses it (answered, closed)."""
        if self.pending is not None:
            err = self.read_pending(rest)
            if err is not None and not self.after_close():
                self.parse_failed(err, b"")
                return True
        return False

    def read_pending(self, rest):
        """The body of an Upgrade or CONNECT request, from here on (and in later reads): a
        parser of its own reads it, with _Body's callbacks. Returns a parser exception, if any.
        Hazard: this runs inside on_readable's `except HttpParserUpgrade`, where Python chains
        a new exception to the one being handled, replacing the __context__ httptools gives
        a callback error; _Body keeps the callback's own exception to put back."""
        body = _Body(self)
        self.parser = HttpRequestParser(body)
        try:
            self.parser.feed_data(BODY_HEAD % self.pending[0])
            self.parser.feed_data(rest)
        except (HttpParserCallbackError, HttpParserError) as exc:
            if body.error is not None:
                exc.__context__ = body.error
            return exc
        return None

    def pending_complete(self):
        """_Body's on_message_complete: the waiting request's body is all here."""
        self.env = self.pending[1]
        self.pending = None
        self.on_message_complete()


class _Body:
    """The callbacks of the parser that reads an Upgrade or CONNECT request's body: the head
    it is fed is ours (ignored); the body, trailer fields and the end go to the connection."""
    __slots__ = ("conn", "trailer", "error")

    def __init__(self, conn):
        self.conn = conn
        self.trailer = False
        self.error = None         # the exception a callback raised (see read_pending)

    def call(self, fn, *args):
        try:
            return fn(*args)
        except BaseException as exc:
            self.error = exc
            raise

    def on_headers_complete(self):
        self.trailer = True
        self.conn.fields_left = TRAILERS + self.conn.ctx.limit_fields

    def on_header(self, name, value):
        if self.trailer:
            self.conn.fields_left -= 1
            self.call(self.conn.unusual_field, name, value)

    def on_body(self, data):
        self.call(self.conn.on_body, data)

    def on_message_complete(self):
        self.call(self.conn.pending_complete)
