"""statsd and DogStatsD metrics under Gunicorn's names (--statsd-host, --statsd-prefix,
--dogstatsd-tags), so the dashboards built on Gunicorn's keep working:

    gunicorn.requests             counter, every request
    gunicorn.request.status.NNN   counter, per status
    gunicorn.request.duration     timer (ms), every request
    gunicorn.workers              gauge, at each metrics sample (--metrics-interval)
    gunicorn.log.LEVEL            counter, each warning, error, critical and exception line
    pyfork.worker.N.memory_pss    gauges per worker slot at each sample: memory_rss, memory_pss,
                                  memory_uss, memory_swap (bytes), threads, fds, requests, busy_share

Sending never blocks and never fails a request: the socket is non-blocking, a send that
fails (no server, a full buffer) drops the datagram and is counted, never logged per event.
A worker queues its requests' metrics and sends them once per loop turn, counters summed
and lines packed into datagrams of at most MTU bytes (statsd and DogStatsD both read
several lines per datagram), so a busy turn costs one send, not three per request.
"""
import collections
import re
import socket

MTU = 1432            # bytes per datagram: one Ethernet frame with IP and UDP headers (DogStatsD's default)
MEMORY = (("memory_rss", "rss"), ("memory_pss", "pss"), ("memory_uss", "uss"), ("memory_swap", "swap"),
          ("threads", "threads"), ("fds", "fds"), ("requests", "requests"), ("busy_share", "busy_share"))


def prefix_of(prefix):
    """Gunicorn's prefix rule: 'web' and 'web.' are both 'web.'; '' stays ''."""
    return re.sub(r"^(.+[^.]+)\.*$", r"\g<1>.", prefix or "")


def line(prefix, name, value, kind, tags=""):
    """One metric in statsd's text: prefix+name:value|kind, Gunicorn's @1.0 on counters, |#tags."""
    rate = "|@1.0" if kind == "c" else ""
    return ("%s%s:%s|%s%s%s" % (prefix, name, value, kind, rate, "|#" + tags if tags else "")).encode("ascii",
                                                                                                   "replace")


def packed(lines, mtu=MTU):
    """Lines -> datagrams of at most `mtu` bytes, lines joined by newlines (a longer line alone)."""
    whole = b"\n".join(lines)
    if len(whole) <= mtu:
        return [whole] if whole else []
    out, cur = [], b""
    for one in lines:
        if cur and len(cur) + 1 + len(one) > mtu:
            out.append(cur)
            cur = b""
        cur = cur + b"\n" + one if cur else one
    if cur:
        out.append(cur)
    return out


def request_lines(prefix, tags, done):
    """[(status code, seconds)] of a loop turn -> its lines: counters summed, one timer per request."""
    timer = line(prefix.replace("%", "%%"), "gunicorn.request.duration", "%.3f", "ms", tags.replace("%", "%%"))
    out = [timer % (seconds * 1000) for _, seconds in done]
    out.append(line(prefix, "gunicorn.requests", len(done), "c", tags))
    statuses = collections.Counter([code for code, _ in done])
    out.extend(line(prefix, "gunicorn.request.status.%d" % code, n, "c", tags) for code, n in sorted(statuses.items()))
    return out


def sample_lines(prefix, tags, samples):
    """The metrics sample's processes -> gunicorn.workers and the per-worker gauges."""
    out = [line(prefix, "gunicorn.workers", len(samples), "g", tags)]
    for s in samples:
        for name, attr in MEMORY:
            value = getattr(s, attr, None)
            if value is not None:
                out.append(line(prefix, "pyfork.worker.%d.%s" % (s.slot, name),
                                ("%.2f" % value) if isinstance(value, float) else value, "g", tags))
    return out


class Statsd:
    """The client: one non-blocking datagram socket, made in the master before any fork and
    shared by the workers (a datagram is sent whole, so processes never interleave)."""

    def __init__(self, address, prefix="", tags=""):
        self.prefix, self.tags = prefix_of(prefix), tags or ""
        self.dropped = 0
        self.done = []            # a worker's (code, seconds) this loop turn
        self.to = None
        if address[0] == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.to = address[1]  # sendto each time: a statsd agent that restarts is found again
        else:
            family, kind, proto, _, where = socket.getaddrinfo(address[0], address[1], 0, socket.SOCK_DGRAM)[0]
            self.sock = socket.socket(family, kind, proto)
            self.sock.setblocking(False)
            self.sock.connect(where)     # UDP: no packet, only the destination fixed
        self.sock.setblocking(False)

    def send(self, lines):
        for data in packed(lines):
            try:
                if self.to is None:
                    self.sock.send(data)
                else:
                    self.sock.sendto(data, self.to)
            except OSError:            # no server (ECONNREFUSED, ENOENT), a full buffer (EAGAIN): dropped
                self.dropped += 1

    def request(self, env, code, headers, sent, seconds):
        """A request ended (the Context's access callable): queued until the loop turn ends."""
        self.done.append((code, seconds))

    def flush(self):
        """The loop turn ended: send its requests' metrics. App threads append meanwhile: only
        what was there is taken (each list operation is atomic under the GIL)."""
        done = self.done
        n = len(done)
        if n:
            batch = done[:n]
            del done[:n]
            self.send(request_lines(self.prefix, self.tags, batch))

    def count(self, name):
        self.send([line(self.prefix, name, 1, "c", self.tags)])

    def sampled(self, samples):
        self.send(sample_lines(self.prefix, self.tags, samples))

    def close(self):
        self.sock.close()
