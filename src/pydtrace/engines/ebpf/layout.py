"""Byte layouts shared by the generated BPF code and the Python side that
decodes it: ring-buffer records, aggregation keys and values.

A record in the ring buffer is a 24-byte header then the values of the
clause's actions at fixed offsets:

    u32 kind (REC_DATA / REC_FAULT), u32 probe id, u32 clause index, u32 cpu,
    u64 mask of the actions that ran (an action inside `if` may not run)

A fault record carries u64 pc, fault code and value after the first 16 bytes.
An aggregation value in its per-CPU hash map is u64 words: the number of
updates on that CPU (0 = never updated there), then the function's data.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydtrace.consume.aggregation import U128, AggSpec, nbuckets, s64
from pydtrace.lang import types as T
from pydtrace.lang.types import CType

REC_DATA = 1
REC_FAULT = 2
HEADER = 24  # kind, probe, clause, cpu, action mask
FAULT_SIZE = 40  # header (16) + pc, code, value

Builder = Callable[[bytes], tuple]


def align8(n: int) -> int:
    return (n + 7) & ~7


def string_at(buf: bytes, off: int, size: int) -> str:
    raw = buf[off : off + size]
    end = raw.find(b"\0")
    if end >= 0:
        raw = raw[:end]
    return raw.decode("utf-8", "surrogateescape")


def int_at(buf: bytes, off: int, t: CType) -> int:
    (v,) = struct.unpack_from("<q", buf, off)
    return T.wrap(v, t) if t.is_int() or t.is_pointer() else v


@dataclass
class Slot:
    """One recorded value: where it is and how to read it back."""

    off: int
    ctype: CType
    size: int  # 8 for scalars, strsize+1 for strings

    def read(self, buf: bytes) -> Any:
        if self.ctype.is_string():
            return string_at(buf, self.off, self.size)
        return int_at(buf, self.off, self.ctype)


@dataclass
class RecordLayout:
    """How one clause's record is laid out; builds the consumer's items back."""

    clause: int
    size: int = HEADER
    items: list[tuple[int, Builder]] = field(default_factory=list)  # (action bit, builder)

    def slot(self, ctype: CType, size: int) -> Slot:
        s = Slot(self.size, ctype, size)
        self.size += align8(size)
        return s

    def decode(self, buf: bytes) -> list[tuple]:
        (mask,) = struct.unpack_from("<Q", buf, 16)
        return [build(buf) for bit, build in self.items if mask >> bit & 1]


# --- aggregations ---------------------------------------------------------------------
VALUE_WORDS = {"count": 1, "sum": 1, "min": 1, "max": 1, "avg": 2, "stddev": 4}


@dataclass
class AggLayout:
    """An aggregation's per-CPU hash map: the key tuple's slots and the value words."""

    spec: AggSpec
    map_name: str
    keys: list[Slot]
    key_size: int
    words: int  # data words after the update counter

    @property
    def value_size(self) -> int:
        return 8 * (1 + self.words)

    def decode_key(self, raw: bytes) -> tuple:
        return tuple(s.read(raw) for s in self.keys)

    def decode_value(self, raw: bytes) -> tuple[int, Any]:
        """(number of updates, state in consume.aggregation's representation)."""
        w = struct.unpack_from(f"<{1 + self.words}Q", raw, 0)
        n, data = w[0], w[1:]
        f = self.spec.func
        if f in ("count", "sum", "min", "max"):
            return n, s64(data[0])
        if f == "avg":
            return n, [s64(data[0]), s64(data[1])]
        if f == "stddev":
            return n, [s64(data[0]), s64(data[1]), (data[2] | data[3] << 64) & U128]
        return n, [s64(x) for x in data]

    def merge(self, states: list[Any]) -> Any:
        """Fold the states of the CPUs that updated an entry into one."""
        f = self.spec.func
        out = states[0]
        for s in states[1:]:
            if f in ("count", "sum"):
                out = s64(out + s)
            elif f == "min":
                out = min(out, s)
            elif f == "max":
                out = max(out, s)
            elif f == "avg":
                out = [s64(out[0] + s[0]), s64(out[1] + s[1])]
            elif f == "stddev":
                out = [s64(out[0] + s[0]), s64(out[1] + s[1]), (out[2] + s[2]) & U128]
            else:
                out = [s64(a + b) for a, b in zip(out, s)]
        return out


@dataclass
class ProbeNameSlot(Slot):
    """A key that is constant per probe (probefunc, probename...): the BPF side
    stores the probe id (8 bytes, cheap to hash); it reads back as the name."""

    names: dict[int, str] = field(default_factory=dict)  # probe id -> the string

    def read(self, buf: bytes) -> Any:
        (pid,) = struct.unpack_from("<Q", buf, self.off)
        return self.names.get(pid, "")


def agg_layout(
    spec: AggSpec, map_name: str, strsize: int, probe_keys: dict[int, dict[int, str]] | None = None
) -> AggLayout:
    """probe_keys: key position -> {probe id: string} for keys stored as probe ids."""
    keys: list[Slot] = []
    off = 0
    for pos, t in enumerate(spec.keytypes):
        if probe_keys and pos in probe_keys:
            keys.append(ProbeNameSlot(off, t, 8, probe_keys[pos]))
            off += 8
            continue
        size = strsize + 1 if t.is_string() else 8
        keys.append(Slot(off, t, size))
        off += align8(size)
    words = VALUE_WORDS.get(spec.func) or nbuckets(spec)
    return AggLayout(spec, map_name, keys, max(off, 8), words)
