"""File bodies for app threads: sendfile, done by the loop (threads.py).

With --threads the loop is the only writer of sockets, so a thread cannot call
os.sendfile itself. It hands the loop a FilePart instead: a duplicate of the file's
descriptor (the app's file may be closed as soon as the thread returns, by the iterable's
close()), the offset and the length. The loop sends it with os.sendfile as the socket has
room, in order with the bytes around it, and closes the duplicate when done or when the
connection closes. The thread does not wait: a slow reader costs an fd, not a thread, and
no 64 KiB block is read into Python.
"""
import collections
import os


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
