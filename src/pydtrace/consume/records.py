"""What an engine hands the consumer: one Record per clause firing that
recorded data, and Fault records for runtime errors.

A record's items are Item(action, values): action is the lang.records.Action
describing what the action recorded (its kind, the type and size of each
datum, its format, the aggregations it names), values the data in the order
of action.data:

    trace      (value,)                     printf, system, freopen  (arg, ...)
    exit       (status,)                    setopt   (name[, value])
    printa, clear, denormalize  ()          trunc, normalize  ([n])
    print      (address, the object's bytes)
    stack      (StackKey,) or (None,) from an engine that records no frames
    sym        (address, pid)

Values are Python ints (already wrapped to their C type) and strs; a traced
struct, union or array is the object's bytes (printed as a hex dump); an empty
freopen() path restores stdout.
Drops are not records: engines call Consumer.drop(DTRACEDROP_* name, n).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.records import Action

TYPE_CHECKING = False
if TYPE_CHECKING:
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


class Item:
    """One action's data in a record (see the module's docstring)."""

    __slots__ = ("action", "values")

    def __init__(self, action: Action, values: Sequence[Any]) -> None:
        self.action = action
        self.values = values

    @property
    def kind(self) -> str:
        return self.action.kind

    def __repr__(self) -> str:
        return f"Item({self.action.kind!r}, {list(self.values)!r})"


@dataclass
class Record:
    probe: Any  # probes.catalogue.Probe
    cpu: int
    clause: int  # statement index
    items: list[Item] = field(default_factory=list)


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
