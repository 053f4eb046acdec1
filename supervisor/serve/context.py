"""What a connection reads that is not its own: the frozen Context and the loop's Clock.

Pure data: the worker builds one Context (limits, app, log, hooks, access log, keep-alive,
the heartbeat meter) and hands it to every connection; only the Clock's values change.
threaded_shed is the pure decision of when a threaded worker sets Clock.shed.
"""
import dataclasses

from .meter import Meter


class Clock:
    """What the loop refreshes for its connections, shared by reference: `now` (monotonic,
    at the last wake-up), `date` (the Date and Server header lines, once a second) and
    `shed`: the worker is saturated, so responses say "Connection: close" and their clients
    go back to the shared listen queue, which any free worker serves first come first (read
    when a response is made: with threads, a request in progress when shedding starts closes too)."""
    __slots__ = ("now", "date", "shed")

    def __init__(self, now=0.0, date=b""):
        self.now = now
        self.date = date
        self.shed = False


def threaded_shed(now, hold, slow_at, waited_at, full, waiting):
    """Fair order for a worker with app threads: -> (Clock.shed, the new waited_at).

    It sheds while requests take SLOW_WAIT or more (one did since `slow_at`, within `hold`
    seconds), for `hold` seconds after a request waited SLOW_WAIT for a thread
    (`waited_at`) or after clients were seen in the listen queue (`waiting()`, asked only
    when every thread is busy: `full`). Its responses then say "Connection: close", so
    their clients go back to that queue behind the ones already waiting. Without the
    listen-queue test, a worker whose held connections kept every thread busy left queued
    clients waiting: the waits load's p99 was 105-120 ms (87-90 with it). Requests that
    take microseconds never shed, not even when the CPU is saturated and they wait for a
    thread: reconnecting would only cost more CPU."""
    slow = now - slow_at < hold
    if slow and full and waiting():
        waited_at = now
    return slow and now - waited_at < hold, waited_at


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
    refuse_underscores: bool = False   # a header name with '_': 400 (--header-map refuse), else dropped
    scheme_headers: dict = None   # secure_scheme_headers: environ key -> lower-case value meaning https
    forwarders: frozenset = frozenset()   # forwarder_headers: names with '_' a trusted peer may send
    wrapped: bool = False         # run() surrounds the app call (hooks, access log, no keep-alive)
    head_limit: int = 0           # bytes a request head may take before 431 (line + fields + CRLFs)
    field_room: int = 0           # bytes of a field line's name, value and trailing OWS: the line counted
                                  # as Gunicorn counts it, with ": " and CRLF (llhttp does not say how
                                  # much OWS led the value)
    mount: bytes = b""            # SCRIPT_NAME as bytes: the prefix taken off PATH_INFO (wsgi.mount_point)
    short_read: int = 0           # a read of at most this many bytes holds no target or field over its limit
    buf: bytearray = None         # the buffer under `view` (recv_into takes it for less than a view)
    meter: Meter = dataclasses.field(default_factory=Meter)   # the heartbeat cell's request writes
    conns: dict = dataclasses.field(default_factory=dict)     # the worker's open connections by fd: one
                                                              # that closes leaves it (Connection.close)

    def __post_init__(self):
        object.__setattr__(self, "wrapped", bool(
            "pre_request" in self.hooks or "post_request" in self.hooks or self.access or not self.keepalive))
        object.__setattr__(self, "head_limit",
                           self.limit_line + self.limit_fields * (self.limit_field_size + 2) + 4)
        object.__setattr__(self, "buf", self.view.obj)
        if self.scheme_headers is None:
            from .strict import SCHEME_HEADERS
            object.__setattr__(self, "scheme_headers", SCHEME_HEADERS)
        object.__setattr__(self, "field_room", self.limit_field_size - 4)
        object.__setattr__(self, "short_read", min(self.limit_line, self.field_room))
