"""The ftrace ring buffer's page format, as per_cpu/cpuN/trace_pipe_raw hands
it out: one sub-buffer per read(2), a page header (events/header_page: u64
timestamp, a local_t commit word, then the data), then compressed event
headers (events/header_event: 5 bits type_len, 27 bits time_delta, a u32
array). Pure functions over bytes, so they are tested without a kernel.

type_len 1..28: the payload is type_len * 4 bytes from array[0];
type_len 0: array[0] is the payload's length, which follows it;
29 padding (time_delta 0: the rest of the page is empty), 30 a time
extension (array[0] << 27 | time_delta is the delta), 31 an absolute
timestamp (the low 59 bits of the clock).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from pydtrace.lang.dataclass import dataclass

PADDING, TIME_EXTEND, TIME_STAMP = 29, 30, 31
DATA_MAX_TYPE_LEN = 28
TS_SHIFT = 27
TS_MASK = (1 << TS_SHIFT) - 1
ABS_TS_BITS = 59  # an absolute timestamp keeps the clock's low 59 bits
# flags in the page header's commit word: events were lost before this page,
# and their count is stored after the page's data
MISSED_EVENTS = 1 << 31
MISSED_STORED = 1 << 30
COMMIT_MASK = (1 << 27) - 1  # the bytes of data (the flags live above)


@dataclass(frozen=True)
class PageLayout:
    """Where the page header keeps its fields (from events/header_page)."""

    ts_off: int = 0
    commit_off: int = 8
    commit_size: int = 8
    data_off: int = 16
    data_size: int = 4080

    @property
    def page_size(self) -> int:
        return self.data_off + self.data_size


_HDR = re.compile(r"field:\s*(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);")


def parse_header_page(text: str) -> PageLayout:
    """events/header_page -> PageLayout (the kernel's own description of it)."""
    fields: dict[str, tuple[int, int]] = {}
    for m in _HDR.finditer(text):
        name = m.group("decl").split()[-1]
        fields.setdefault(name, (int(m.group("off")), int(m.group("size"))))
    try:
        ts, commit, data = fields["timestamp"], fields["commit"], fields["data"]
    except KeyError as e:
        raise ValueError(f"events/header_page has no {e.args[0]} field") from None
    return PageLayout(ts[0], commit[0], commit[1], data[0], data[1])


@dataclass
class Page:
    timestamp: int
    commit: int  # bytes of event data
    missed: int  # events lost before this page (-1: some, count unknown)
    events: list[tuple[int, bytes]]  # (timestamp, payload)


_DEFAULT_LAYOUT = PageLayout()  # the usual header_page (x86_64, arm64)


def parse_page(buf: bytes, layout: PageLayout = _DEFAULT_LAYOUT) -> Page:
    """Decode one sub-buffer read from trace_pipe_raw."""
    (ts,) = struct.unpack_from("<Q", buf, layout.ts_off)
    word = int.from_bytes(buf[layout.commit_off : layout.commit_off + layout.commit_size], "little")
    commit = word & COMMIT_MASK
    start = layout.data_off
    end = min(start + commit, len(buf))
    missed = 0
    if word & MISSED_EVENTS:
        missed = -1
        if word & MISSED_STORED and end + 8 <= len(buf):
            (missed,) = struct.unpack_from("<Q", buf, end)
    return Page(ts, commit, missed, list(events(buf, start, end, ts)))


def events(buf: bytes, pos: int, end: int, ts: int) -> Iterator[tuple[int, bytes]]:
    """(timestamp, payload) of each data event between pos and end."""
    unpack = struct.unpack_from
    while pos + 4 <= end:
        (hdr,) = unpack("<I", buf, pos)
        type_len = hdr & 0x1F
        delta = hdr >> 5
        if type_len == 0:
            (length,) = unpack("<I", buf, pos + 4)
            ts += delta
            # the stored length counts itself (the kernel's array[0])
            yield ts, buf[pos + 8 : pos + 4 + length]
            pos += 4 + length
        elif type_len <= DATA_MAX_TYPE_LEN:
            ts += delta
            n = type_len * 4
            yield ts, buf[pos + 4 : pos + 4 + n]
            pos += 4 + n
        elif type_len == PADDING:
            if delta == 0:
                return  # the rest of the page is empty
            (length,) = unpack("<I", buf, pos + 4)
            pos += 4 + length
        elif type_len == TIME_EXTEND:
            (high,) = unpack("<I", buf, pos + 4)
            ts += (high << TS_SHIFT) | delta
            pos += 8
        else:  # TIME_STAMP: absolute, the clock's low bits
            (high,) = unpack("<I", buf, pos + 4)
            low = (high << TS_SHIFT) | delta
            ts = (ts & ~((1 << ABS_TS_BITS) - 1)) | low
            pos += 8
