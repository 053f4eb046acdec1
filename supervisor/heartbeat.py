"""One shared-memory cell per worker slot, made before the first fork.

A worker writes its state, its last beat (CLOCK_MONOTONIC, the same clock in every
process) and its request count; the master reads them. No file per beat, no syscall
per beat: a struct.pack_into on an anonymous shared mapping.
"""
import mmap
import struct

CELL = struct.Struct("=qqdq")   # pid, state, last beat, requests served
BOOTING, READY, STOPPING = 0, 1, 2


CELLS = 1024   # 32 KiB: enough for any worker count plus replacements during a reload


class Heartbeat:
    """Cells are handed out per forked worker (not per slot), so a slot's old and new
    worker can both beat while a reload overlaps them."""

    def __init__(self, cells=CELLS):
        self.mem = mmap.mmap(-1, cells * CELL.size, mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.free = list(range(cells - 1, -1, -1))

    def take(self):
        return self.free.pop()

    def give_back(self, cell):
        self.free.append(cell)

    def set(self, cell, pid, state, beat, requests=0):
        CELL.pack_into(self.mem, cell * CELL.size, pid, state, beat, requests)

    def get(self, cell):
        """-> (pid, state, last beat, requests). The worker may be writing the cell at
        this very moment (pack_into is a plain copy, not atomic): a torn read could show
        a beat of 0 and get a healthy worker killed, so read until two reads agree."""
        offset = cell * CELL.size
        first = CELL.unpack_from(self.mem, offset)
        while True:
            again = CELL.unpack_from(self.mem, offset)
            if again == first:
                return again
            first = again
