"""A simulated address space for the user-space engine.

D programs take addresses, dereference pointers and copy bytes; the
interpreter gives them a flat, little-endian (x86_64) address space made of
bytearray regions. Pointers are plain ints. Regions are spaced apart by
unmapped gaps, so running off the end of one faults instead of landing in the
next, and address 0 is never mapped, as in the kernel.

Scratch memory (alloca) is one region whose usable part grows with each
allocation and is reset for every clause, as dtrace resets scratch space.
"""

from __future__ import annotations

import bisect
import struct

from pydtrace.consume.records import BADADDR, BADSIZE
from pydtrace.lang import types as T
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def string_bytes(s: str) -> bytes:
    """The bytes a string value stands for in memory: memory's strings are
    read back one character a byte (latin-1), and a byte the program escaped
    above 0x7f (\\xc0) is a lone surrogate (lang.lexer.unescape); any other
    character is "?"."""
    try:
        return s.encode("latin-1", "surrogateescape")
    except UnicodeEncodeError:
        return bytes(
            c if c < 0x100 else c - 0xDC00 if 0xDC80 <= c <= 0xDCFF else 0x3F for c in map(ord, s)
        )


_BASE = 0x10000000
# dtrace's scratch pointers are small offsets: the first alloca() gives 8.
_SCRATCH_BASE = 8
_GAP = 0x1000  # unmapped space between regions
# dtrace's default scratch space: 256 bytes for alloca() after 8 reserved ones
DEFAULT_SCRATCHSIZE = 8 + 256


class MemoryFault(Exception):
    """A bad access; the interpreter turns it into a ProbeFault with its pc."""

    def __init__(self, code: int, value: int) -> None:
        super().__init__(code)
        self.code = code
        self.value = value


class Memory:
    def __init__(self, scratchsize: int = DEFAULT_SCRATCHSIZE) -> None:
        # scratchsize counts dtrace's 8 reserved bytes: the default leaves 256 for alloca()
        self._bases: list[int] = []
        self._regions: dict[int, bytearray] = {}
        self._next = _BASE
        self.scratch_size = max(scratchsize - _SCRATCH_BASE, 0)
        self.scratch = _SCRATCH_BASE
        # grown as alloca() reaches further: -x scratchsize=1t costs nothing until used
        self._regions[self.scratch] = bytearray()
        self._bases.append(self.scratch)
        self.scratch_top = self.scratch  # end of the allocated part of scratch

    # --- regions -------------------------------------------------------------
    def alloc(self, size: int) -> int:
        base = self._next
        self._next += (max(size, 1) + 2 * _GAP - 1) // _GAP * _GAP
        self._regions[base] = bytearray(size)
        self._bases.append(base)  # bases only grow, so the list stays sorted
        return base

    def free(self, base: int) -> None:
        if self._regions.pop(base, None) is not None:
            i = bisect.bisect_left(self._bases, base)
            del self._bases[i]

    def _find(self, addr: int, n: int) -> tuple[bytearray, int]:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            base = self._bases[i]
            buf = self._regions[base]
            off = addr - base
            limit = self.scratch_top - base if base == self.scratch else len(buf)
            if off + n <= limit:
                return buf, off
        raise MemoryFault(BADADDR, addr & 0xFFFFFFFFFFFFFFFF)

    def valid(self, addr: int, n: int) -> bool:
        try:
            self._find(addr, n)
        except MemoryFault:
            return False
        return True

    # --- scratch -------------------------------------------------------------
    def reset_scratch(self) -> None:
        self.scratch_top = self.scratch

    def alloca(self, size: int) -> int:
        size &= 0xFFFFFFFFFFFFFFFF
        addr = self.scratch_top
        if size > self.scratch + self.scratch_size - addr:
            from pydtrace.consume.records import NOSCRATCH

            raise MemoryFault(NOSCRATCH, 0)
        start = addr - self.scratch
        top = start + (size + 7) // 8 * 8
        buf = self._regions[self.scratch]
        try:
            reused = min(len(buf), top)
            if reused > start:
                buf[start:reused] = bytes(reused - start)
            if top > len(buf):
                buf.extend(bytes(top - len(buf)))
        except MemoryError:  # a scratchsize larger than this machine's memory
            from pydtrace.consume.records import NOSCRATCH

            raise MemoryFault(NOSCRATCH, 0) from None
        self.scratch_top = self.scratch + top
        return addr

    def in_scratch(self, addr: int) -> bool:
        return self.scratch <= addr < self.scratch + self.scratch_size

    def check_copy(self, addr: int, n: int) -> None:
        """bcopy's check: a bad start is a bad address, a bad end a bad size."""
        if n < 0 or n > 0x7FFFFFFF:
            raise MemoryFault(BADSIZE, n & 0xFFFFFFFFFFFFFFFF)
        self._find(addr, 0 if n == 0 else 1)
        try:
            self._find(addr, n)
        except MemoryFault:
            raise MemoryFault(BADSIZE, n) from None

    # --- bytes ---------------------------------------------------------------
    def read(self, addr: int, n: int) -> bytes:
        buf, off = self._find(addr, n)
        return bytes(buf[off : off + n])

    def write(self, addr: int, data: bytes) -> None:
        buf, off = self._find(addr, len(data))
        buf[off : off + len(data)] = data

    def read_string(self, addr: int, limit: int) -> str:
        """A NUL-terminated string of at most limit - 1 bytes."""
        if addr == 0:
            raise MemoryFault(BADADDR, 0)
        buf, off = self._find(addr, 1)
        i = bisect.bisect_right(self._bases, addr) - 1
        base = self._bases[i]
        end = self.scratch_top - base if base == self.scratch else len(buf)
        end = min(end, off + max(limit - 1, 0))
        chunk = bytes(buf[off:end])
        nul = chunk.find(b"\0")
        if nul >= 0:
            chunk = chunk[:nul]
        return chunk.decode("latin-1")

    # --- typed access --------------------------------------------------------
    def load(self, addr: int, t: CType) -> Any:
        r = t.r
        if r.kind == "float":
            return struct.unpack("<d" if r.size == 8 else "<f", self.read(addr, r.size))[0]
        size = 4 if r.kind == "enum" else (8 if r.kind in ("ptr", "string") else r.size)
        v = int.from_bytes(self.read(addr, size), "little")
        return T.wrap(v, t)

    def store(self, addr: int, t: CType, value: Any) -> None:
        r = t.r
        if r.kind == "float":
            self.write(addr, struct.pack("<d" if r.size == 8 else "<f", value))
            return
        size = 4 if r.kind == "enum" else (8 if r.kind == "ptr" else r.size)
        if not isinstance(value, int):
            value = 0
        self.write(addr, (value & ((1 << (size * 8)) - 1)).to_bytes(size, "little"))

    def load_bits(self, addr: int, t: CType, shift: int, bits: int) -> int:
        size = t.int_size()
        v = int.from_bytes(self.read(addr, size), "little")
        v = (v >> shift) & ((1 << bits) - 1)
        if t.is_signed() and bits and v >> (bits - 1):
            v -= 1 << bits
        return v

    def store_bits(self, addr: int, t: CType, shift: int, bits: int, value: int) -> None:
        size = t.int_size()
        old = int.from_bytes(self.read(addr, size), "little")
        mask = ((1 << bits) - 1) << shift
        new = (old & ~mask) | ((value << shift) & mask)
        self.write(addr, new.to_bytes(size, "little"))


def type_size(t: CType) -> int:
    r = t.r
    if r.kind == "enum":
        return 4
    if r.kind == "ptr":
        return 8
    return max(r.size, 0)


def in_memory(t: CType) -> bool:
    """Values of these types live in memory; expressions of them yield addresses."""
    return t.r.kind in ("struct", "union", "array")
