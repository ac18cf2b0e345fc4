"""The state of one tracing session in the user-space engine: variables,
aggregations, speculations, memory."""

from __future__ import annotations

from pydtrace.consume.aggregation import Aggregation, AggSpec
from pydtrace.consume.records import Record
from pydtrace.engines.dvars import dvar_capacity
from pydtrace.engines.user.firing import Firing
from pydtrace.engines.user.memory import DEFAULT_SCRATCHSIZE, Memory, in_memory, type_size
from pydtrace.lang.program import CheckedProgram
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class State:
    """Variables, aggregations and speculations of one tracing session."""

    def __init__(
        self,
        prog: CheckedProgram,
        strsize: int,
        nspec: int = 1,
        scratchsize: int = DEFAULT_SCRATCHSIZE,
        dynvarsize: int = 1 << 20,
    ) -> None:
        self.mem = Memory(scratchsize)
        self.xlargs: list[Any] = []  # operands of the translations being evaluated
        self._zeros: dict[int, int] = {}
        self.globals: dict[str, Any] = {}
        for name, v in prog.globals.items():
            if v.keys is not None:
                self.globals[name] = {}
            elif in_memory(v.type):
                # arrays, structs and unions live in memory; the variable holds their address
                self.globals[name] = self.mem.alloc(type_size(v.type))
            else:
                self.globals[name] = zero_of(v.type)
        # the global associative arrays: each keeps its dict for the session
        self._assocs = [v for v in self.globals.values() if isinstance(v, dict)]
        self.tlocals: dict[tuple[int, str], Any] = {}
        self.tassoc: dict[str, dict[tuple, Any]] = {}
        self.aggs: dict[str, Aggregation] = {}
        for a in prog.aggs.values():
            spec = AggSpec(a.id, a.name, a.func, a.params, list(a.keys), a.valtype)
            self.aggs[a.name] = Aggregation(spec)
        self.strsize = strsize
        self.nspec = nspec
        self.spec_busy: dict[int, list[Record]] = {}
        self.spec_drops = 0  # speculation() found no free buffer
        self.spec_size_drops = 0  # a speculative record would have passed specsize
        capacity = dvar_capacity(prog, strsize, dynvarsize)
        self.dvar_capacity = 1 << 62 if capacity is None else capacity
        self.dvar_drops = 0
        self.strtok: dict[int, tuple[str, int]] = {}
        self.draining = False

    def dvar_count(self) -> int:
        n = len(self.tlocals) + sum(map(len, self.tassoc.values()))
        return n + sum(map(len, self._assocs))

    def new_dvar(self, f: Firing) -> bool:
        """Is there room for one more dynamic variable? If not, the clause goes on
        without the store, as DTrace's DIF does; a clause counts one drop however
        many of its stores fail, as dtrace-utils reports."""
        if self.dvar_count() >= self.dvar_capacity:
            if not f.dvar_dropped:
                f.dvar_dropped = True
                self.dvar_drops += 1
            return False
        return True

    def zero_block(self, size: int) -> int:
        """Where an unassigned dynamic struct variable reads from: zeroes."""
        addr = self._zeros.get(size)
        if addr is None:
            addr = self._zeros[size] = self.mem.alloc(size)
        return addr


def zero_of(t: CType | None) -> Any:
    """The value of a variable never assigned."""
    return "" if t is not None and t.is_string() else 0
