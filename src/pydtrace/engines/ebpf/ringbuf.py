"""Consumer of a BPF ring buffer map (BPF_MAP_TYPE_RINGBUF, v5.8) over mmap.

Layout (kernel/bpf/ringbuf.c; libbpf's ringbuf.c reads it the same way): page 0 of the map holds
the consumer position (we write it), page 1 the producer position (read-only), and from page 2
the data area, mapped twice back to back so that a record wrapping past the end reads as one
contiguous slice. Each record starts with an 8-byte header: u32 length whose bit 31 says "still
being written" (BUSY) and bit 30 "discarded", then a u32 the kernel keeps for itself; the
payload follows and the next record starts at the next multiple of 8.

The consumer position is written through a memoryview cast to u64, one 8-byte store: never
with struct.pack_into, which zero-fills its target before it packs. A BPF program reserving
on another CPU in that instant read a consumer position of 0, so a ring far past its first
lap looked full and the record was dropped (one in a few thousand at 35,000 records a second).
"""

from __future__ import annotations

import mmap
import select
import struct
from collections.abc import Callable

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_SIZE = 8

_u32 = struct.Struct("<I")


class RingBuffer:
    """Read records from a RINGBUF map fd (which stays owned by the caller).

    drain() passes each record to the callback as a memoryview into the ring: it is valid only
    during the call (the slot is handed back to the kernel right after), so copy what you keep.
    """

    def __init__(self, map_fd: int, size: int | None = None):
        if size is None:
            from pydtrace.engines.ebpf.bpf import map_info

            size = map_info(map_fd).max_entries
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        self.map_fd = map_fd
        self.size = size
        self._mask = size - 1
        page = mmap.PAGESIZE
        self._cons = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        try:
            self._prod = mmap.mmap(
                map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
            )
        except BaseException:
            self._cons.close()
            raise
        self._view = memoryview(self._prod)
        self._cons_pos = memoryview(self._cons).cast("Q")  # [0]: the consumer position
        self._prod_pos = self._view[:8].cast("Q")  # [0]: the producer position
        self._data_off = page
        self._poller: select.poll | None = None

    def fileno(self) -> int:
        """The map fd: readable (EPOLLIN) when records are waiting."""
        return self.map_fd

    def position(self) -> int:
        """The consumer position: bytes consumed since the ring was made."""
        return self._cons_pos[0]

    def pending(self) -> int:
        """Bytes between the consumer and producer positions."""
        return self._prod_pos[0] - self._cons_pos[0]

    def poll(self, timeout_s: float | None) -> bool:
        """Wait up to timeout_s (None = forever) for data; True when some is there."""
        if self.pending():
            return True
        if self._poller is None:
            self._poller = select.poll()
            self._poller.register(self.map_fd, select.POLLIN)
        ms = None if timeout_s is None else max(0, int(timeout_s * 1000))
        try:
            ready = self._poller.poll(ms)
        except InterruptedError:
            ready = []
        return bool(ready) or self.pending() > 0

    def drain(self, callback: Callable[[memoryview], object], limit: int | None = None) -> int:
        """Hand every committed record to callback; returns how many were handed.

        Discarded records are skipped; a record still being written (BUSY) ends the drain.
        The consumer position advances after each record, freeing its space at once.
        """
        prod_map, cons_pos, prod_pos, view = self._prod, self._cons_pos, self._prod_pos, self._view
        base, mask = self._data_off, self._mask
        cons = cons_pos[0]
        count = 0
        while True:
            prod = prod_pos[0]
            if cons >= prod:
                return count
            progressed = False
            while cons < prod:
                off = base + (cons & mask)
                length = _u32.unpack_from(prod_map, off)[0]
                if length & BUSY_BIT:
                    return count
                progressed = True
                n = length & ~(BUSY_BIT | DISCARD_BIT)
                next_cons = cons + ((n + HEADER_SIZE + 7) & ~7)
                if not length & DISCARD_BIT:
                    sample = view[off + HEADER_SIZE : off + HEADER_SIZE + n]
                    try:
                        callback(sample)
                    finally:
                        try:
                            sample.release()
                        except BufferError:
                            pass
                        cons = cons_pos[0] = next_cons
                    count += 1
                    if limit is not None and count >= limit:
                        return count
                else:
                    cons = cons_pos[0] = next_cons
            if not progressed:
                return count

    def copy_into(self, buf: bytearray, most: int = 1 << 20) -> int:
        """Append the committed records' payloads to buf, at most about `most`
        bytes; returns how many bytes.  For a consumer whose records are
        already the bytes it keeps (ktrace's are whole trace-file records): one
        pass without a callback per record, and the consumer position written
        once per pass, half drain()'s cost per record."""
        prod_map, view = self._prod, self._view
        base, mask = self._data_off, self._mask
        unpack = _u32.unpack_from
        cons = self._cons_pos[0]
        prod = self._prod_pos[0]
        start = len(buf)
        stop_at = start + most
        while cons < prod and len(buf) < stop_at:
            off = base + (cons & mask)
            length = unpack(prod_map, off)[0]
            if length & BUSY_BIT:
                break
            n = length & ~(BUSY_BIT | DISCARD_BIT)
            if not length & DISCARD_BIT:
                buf += view[off + HEADER_SIZE : off + HEADER_SIZE + n]
            cons += (n + HEADER_SIZE + 7) & ~7
        self._cons_pos[0] = cons
        return len(buf) - start

    def close(self) -> None:
        """Unmap (idempotent). The map fd itself is the caller's to close."""
        if self._view is not None:
            for v in (self._cons_pos, self._prod_pos, self._view):
                try:
                    v.release()
                except BufferError:
                    pass
            self._view = None  # type: ignore[assignment]
        for m in (self._prod, self._cons):
            try:
                m.close()
            except (BufferError, ValueError):
                pass

    def __enter__(self) -> RingBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
