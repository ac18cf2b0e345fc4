"""Reading an event's fields out of its raw record, by its `format` file
(probes/tracefs.py parses it): integers by size and signedness, `char x[N]`
up to its NUL, `__data_loc` / `__rel_loc` data by their offset|length word."""

from __future__ import annotations

import struct
from collections.abc import Callable

from pydtrace.probes.tracefs import EventFormat, Field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_INT = {(1, False): "<B", (1, True): "<b", (2, False): "<H", (2, True): "<h",
        (4, False): "<I", (4, True): "<i", (8, False): "<Q", (8, True): "<q"}  # fmt: skip


def reader(f: Field) -> Callable[[bytes], Any]:
    """A function from a record to the field's value: an int, or the bytes
    of a string (to its NUL) or other array."""
    off, size = f.offset, f.size
    if f.data_loc:
        rel = f.rel_loc

        def loc(data: bytes) -> bytes:
            (word,) = struct.unpack_from("<I", data, off)
            start, length = word & 0xFFFF, word >> 16
            if rel:  # relative to the end of the field
                start += off + size
            raw = data[start : start + length]
            nul = raw.find(b"\0")
            return raw if nul < 0 else raw[:nul]

        return loc
    if f.array_len is not None:
        if f.type == "char":

            def chars(data: bytes) -> bytes:
                raw = data[off : off + size]
                nul = raw.find(b"\0")
                return raw if nul < 0 else raw[:nul]

            return chars
        return lambda data: data[off : off + size]
    fmt = _INT.get((size, f.signed))
    if fmt is None:
        return lambda data: data[off : off + size]
    unpack = struct.Struct(fmt).unpack_from
    return lambda data: unpack(data, off)[0]


def readers(fmt: EventFormat, *names: str) -> tuple[Callable[[bytes], Any], ...]:
    return tuple(reader(fmt.field(n)) for n in names)


def data_loc(data: bytes, rec_off: int, size: int, rel: bool) -> bytes:
    """The bytes a __data_loc word at rec_off locates (to the first NUL)."""
    (word,) = struct.unpack_from("<I", data, rec_off)
    start, length = word & 0xFFFF, word >> 16
    if rel:
        start += rec_off + size
    raw = data[start : start + length]
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]
