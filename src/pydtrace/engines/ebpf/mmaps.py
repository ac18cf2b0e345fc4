"""The kernel's account of every process's executable mappings, for user
stacks and addresses of processes that are gone before they are printed.

One perf event per CPU of the software type DUMMY counts nothing; its
`mmap2`, `comm_exec` and `task` bits make the kernel write a record for
each executable mmap (pid, address, length, file offset, path), each exec
and each fork in the system into the event's ring (as `perf record` learns
the mappings of processes it never saw alive). The engine reads the rings
before its own records, and symbols/process.py keeps the mappings per pid.
A process's own records are written after its mmaps, so whatever a record
names is in a ring by the time the record is read (process.py reads the
rings again when an address misses).
"""

from __future__ import annotations

import mmap
import os
import struct

from pydtrace.engines.ebpf import perf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PERF_COUNT_SW_DUMMY = 9
# perf_event_attr flag bits
ATTR_MMAP = 1 << 8
ATTR_COMM = 1 << 9
ATTR_TASK = 1 << 13
ATTR_SAMPLE_ID_ALL = 1 << 18
ATTR_MMAP2 = 1 << 23
ATTR_COMM_EXEC = 1 << 24
# sample_type: each record ends with (pid, tid) and the time
PERF_SAMPLE_TID = 1 << 1
PERF_SAMPLE_TIME = 1 << 2
# record types, and the COMM record's mark of an exec
PERF_RECORD_COMM, PERF_RECORD_FORK, PERF_RECORD_MMAP2 = 3, 7, 10
PERF_RECORD_MISC_COMM_EXEC = 1 << 13

PAGES = 16  # ring pages per CPU (64 KiB): mmaps are rare next to what is traced
_HEAD = 1024  # struct perf_event_mmap_page: data_head, data_tail
_MMAP2_FIXED = 64  # the MMAP2 record's body before its file name


class MappingEvents:
    """The per-CPU rings; read() applies their records in time order."""

    def __init__(self, cpus: list[int]) -> None:
        self.rings: list[tuple[int, mmap.mmap]] = []
        page = mmap.PAGESIZE
        flags = ATTR_MMAP | ATTR_MMAP2 | ATTR_COMM | ATTR_COMM_EXEC | ATTR_TASK
        attr = perf.make_attr(perf.PERF_TYPE_SOFTWARE, PERF_COUNT_SW_DUMMY,
                              sample_type=PERF_SAMPLE_TID | PERF_SAMPLE_TIME,
                              flags=flags | ATTR_SAMPLE_ID_ALL)  # fmt: skip
        try:
            for cpu in cpus:
                fd = perf.perf_event_open(attr, -1, cpu, what="the mmap event stream")
                try:
                    ring = mmap.mmap(fd, (1 + PAGES) * page)
                except OSError:
                    os.close(fd)
                    raise
                self.rings.append((fd, ring))
        except OSError:
            self.close()
            raise
        self.data_size = PAGES * page

    def read(self) -> bool:
        """Apply every waiting record; True if there was one."""
        records: list[tuple[int, int, int, bytes]] = []
        for _, ring in self.rings:
            records.extend(self._take(ring))
        if not records:
            return False
        from pydtrace.symbols import process

        records.sort(key=lambda r: r[0])
        for _, kind, misc, body in records:
            if kind == PERF_RECORD_MMAP2:
                pid, _tid, addr, length, pgoff = struct.unpack_from("<IIQQQ", body)
                name = body[_MMAP2_FIXED:].split(b"\0", 1)[0]
                process.note_mmap(pid, addr, length, pgoff, os.fsdecode(name))
            elif kind == PERF_RECORD_COMM and misc & PERF_RECORD_MISC_COMM_EXEC:
                pid, tid = struct.unpack_from("<II", body)
                if pid == tid:
                    process.note_exec(pid)
            elif kind == PERF_RECORD_FORK:
                pid, ppid, tid, _ptid = struct.unpack_from("<IIII", body)
                if pid == tid and pid != ppid:  # a process, not a thread
                    process.note_fork(ppid, pid)
        return True

    def _take(self, ring: mmap.mmap) -> list[tuple[int, int, int, bytes]]:
        """(time, type, misc, body) of each record between tail and head."""
        head, tail = struct.unpack_from("<QQ", ring, _HEAD)
        if head == tail:
            return []
        size, base = self.data_size, mmap.PAGESIZE
        out = []
        while tail < head:
            at = base + tail % size
            if tail % size + 8 <= size:
                kind, misc, length = struct.unpack_from("<IHH", ring, at)
            else:
                kind, misc, length = struct.unpack("<IHH", self._copy(ring, tail, 8))
            if length < 8:
                break  # a torn header: never expected; stop rather than spin
            data = self._copy(ring, tail, length)
            # sample_id_all: the record ends with pid, tid and the time
            out.append((struct.unpack_from("<Q", data, length - 8)[0], kind, misc, data[8:]))
            tail += length
        # data_tail in one 8-byte store: pack_into zero-fills first, and a kernel
        # writing on another CPU that read a tail of 0 would drop what it had to write
        with memoryview(ring) as mv, mv[_HEAD + 8 : _HEAD + 16] as part, part.cast("Q") as word:
            word[0] = tail
        return out

    def _copy(self, ring: mmap.mmap, pos: int, n: int) -> bytes:
        size, base = self.data_size, mmap.PAGESIZE
        at = pos % size
        first = min(n, size - at)
        return ring[base + at : base + at + first] + ring[base : base + n - first]

    def close(self) -> None:
        for fd, ring in self.rings:
            ring.close()
            os.close(fd)
        self.rings = []


def start(cpus: list[int]) -> Any:
    """Open the stream and hand it to symbols/process.py (None if the kernel
    refuses it: the /proc snapshots still serve processes that live long)."""
    from pydtrace.symbols import process

    try:
        events = MappingEvents(cpus)
    except OSError:
        return None
    process.add_catch_up(events.read)
    return events


def stop(events: Any) -> None:
    from pydtrace.symbols import process

    if events is not None:
        process.remove_catch_up(events.read)
        events.close()
