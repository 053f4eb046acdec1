"""File bodies for app threads: sendfile, done by the loop (threads.py).

With --threads the loop is the only writer of sockets, so a thread cannot call
os.sendfile itself. It hands the loop a FilePart instead: a duplicate of the file's
descriptor (the app's file may be closed as soon as the thread returns, by the iterable's
close()), the offset and the length. The loop sends it with os.sendfile as the socket has
room, in order with the bytes around it, and closes the duplicate when done or when the
connection closes. The thread does not wait: a slow reader costs an fd, not a thread, and
no 64 KiB block is read into Python.

FileOut is the part of ThreadedConnection that does it (its state is in that class's slots).
"""
import collections
import os

from .respond import MSG_DONTWAIT

BLOCK = 1 << 16          # bytes read from a file per hand-over, when no FilePart can be made


class FilePart:
    __slots__ = ("fd", "offset", "left")

    def __init__(self, fileno, offset, length):
        self.fd = os.dup(fileno)     # OSError (EMFILE): the caller reads the file instead
        self.offset = offset
        self.left = length

    def __len__(self):
        return 0    # not in a connection's backlog: no thread waits for it to be sent

    def send(self, sock_fd):
        """Send what the socket has room for. -> True once all is sent (the duplicate is
        closed then), False when the socket is full. EOFError when the file is shorter
        than promised (the response cannot end right: close the connection), OSError
        when the client is gone."""
        os.set_blocking(sock_fd, False)      # sendfile has no MSG_DONTWAIT
        while self.left:
            try:
                n = os.sendfile(sock_fd, self.fd, self.offset, self.left)
            except BlockingIOError:
                return False
            if n == 0:
                raise EOFError("the file shrank while it was sent")
            self.offset += n
            self.left -= n
        self.close()
        return True

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def in_order(unsent, later, out):
    """The items still to send, `unsent` first, then `later` (or None), then `out` (a thread's
    bytes and FileParts) -> (the first, a deque of the rest)."""
    items = collections.deque(() if unsent is None else (unsent,))
    if later:
        items.extend(later)
    items.extend(memoryview(x) if type(x) is bytes else x for x in out)
    return items.popleft(), items


def close_parts(items):
    for x in items:
        if type(x) is FilePart:
            x.close()


class FileOut:
    """ThreadedConnection's file bodies: the thread's side (send_file_body) and the loop's
    (write_in_order, for output with file parts: `unsent`, then `later`)."""
    __slots__ = ()

    def send_file_body(self, fileno, offset, length):
        """sendfile, by the loop (fileparts.py): the thread hands it the file and returns."""
        try:
            self.out.append(FilePart(fileno, offset, length))
        except OSError:
            return self.read_file_body(fileno, offset, length)    # no fd for a duplicate
        self.flush()
        return length

    def read_file_body(self, fileno, offset, length):
        """Without a FilePart: the file is read in blocks and handed to the loop like any
        streamed body."""
        sent = 0
        while sent < length:
            data = os.pread(fileno, min(BLOCK, length - sent), offset + sent)
            if not data:
                self.keep = False   # the file shrank under us
                break
            self.out.append(data)
            sent += len(data)
            self.flush()
        return sent

    def write_in_order(self):
        """on_writable with file parts queued: each item in turn, as far as the socket takes."""
        while self.unsent is not None:
            data = self.unsent
            try:
                if type(data) is FilePart:
                    if not data.send(self.fd):
                        break
                else:
                    n = self.sock.send(data, MSG_DONTWAIT)
                    self.pool.wrote(self, n)
                    if n < len(data):
                        self.unsent = data[n:]
                        break
            except BlockingIOError:
                break
            except (OSError, EOFError):
                self.close()
                return
            self.last = self.ctx.clock.now
            self.unsent = self.later.popleft() if self.later else None
        if self.unsent is None:
            self.later = None
            if not self.keep and not self.running and not self.queued:
                self.close()
