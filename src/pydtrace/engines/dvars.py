"""How many dynamic variables fit: the rule both engines size their
dynamic variable space by."""

from __future__ import annotations

from pydtrace.consume.aggregation import tuple_size
from pydtrace.lang.program import CheckedProgram
from pydtrace.lang.records import object_size


def dvar_capacity(prog: CheckedProgram, strsize: int, dynvarsize: int) -> int | None:
    """dtrace sizes its dvars map as dynvarsize / (largest key tuple + largest
    dynamic variable); None when the program has no dynamic variables."""
    dyn = [v for v in prog.globals.values() if v.keys is not None]
    dyn += list(prog.tlocals.values())
    if not dyn:
        return None
    value = max(strsize if v.type.is_string() else object_size(v.type) for v in dyn)
    keyed = [tuple_size(v.keys, strsize) for v in dyn if v.keys is not None]
    return dynvarsize // (max(keyed, default=0) + max(value, 1))
