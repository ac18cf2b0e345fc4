"""What an engine hands the consumer: one Record per clause firing that
recorded data, and Fault records for runtime errors.

A record item is a tuple whose first element names the action:

    ('trace', value, ctype)          ('printf', Format, [(value, ctype), ...])
    ('printa', Format | None, [agg name, ...])
    ('exit', status)                 ('setopt', name, value | None)
    ('clear', agg name)              ('trunc', agg name, n | None)
    ('normalize', agg name, n)       ('denormalize', agg name)
    ('tracemem', bytes, ctype)       ('system', Format, [(value, ctype), ...])
    ('freopen', Format, [(value, ctype), ...])   (an empty path restores stdout)
    ('print', address, bytes | int, pointee ctype)  (print(ptr): the object's memory)

Values are Python ints (already wrapped to their C type) and strs; a traced
struct, union or array is the object's bytes (printed as a hex dump).
Drops are not records: engines call Consumer.drop(DTRACEDROP_* name, n).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# DTRACEFLT_* codes and their texts (dtrace's dt_error.c order).
FAULTS = {
    0: "unknown fault",
    1: "invalid address",
    2: "invalid alignment",
    3: "illegal operation",
    4: "divide-by-zero",
    5: "out of scratch space",
    6: "invalid kernel access",
    7: "invalid user access",
    8: "tuple stack overflow",
    9: "bad stack",
    10: "invalid size",
    11: "index out of bounds",
    1000: "library-level fault",
}
(
    BADADDR,
    BADALIGN,
    ILLOP,
    DIVZERO,
    NOSCRATCH,
    KPRIV,
    UPRIV,
    TUPOFLOW,
    BADSTACK,
    BADSIZE,
    BADINDEX,
) = range(1, 12)


@dataclass
class Record:
    probe: Any  # probes.catalogue.Probe
    cpu: int
    clause: int  # statement index
    items: list[tuple] = field(default_factory=list)


@dataclass
class Fault:
    probe: Any
    cpu: int
    clause: int
    pc: int
    code: int
    value: int  # the faulting address or index

    def message(self, pname: str, with_pc: bool = True) -> str:
        detail = ""
        if self.code in (BADADDR, BADALIGN, BADSTACK, BADSIZE):
            detail = f" (0x{self.value & 0xFFFFFFFFFFFFFFFF:x})"
        elif self.code == BADINDEX:
            detail = f" ({self.value})"
        p = self.probe
        where = f" at BPF pc {self.pc}" if with_pc and self.pc else ""
        return (
            f"{pname}: error in dt_clause_{self.clause} for probe ID {p.id} "
            f"({p.provider}:{p.module}:{p.function}:{p.name}): {FAULTS.get(self.code, 'unknown fault')}"
            f"{detail}{where}"
        )
