"""The checked program: what the checker hands to an engine and the consumer.

The checker annotates the AST in place (every expression gets `.ctype`;
identifiers get `.ref`, calls `.builtin`, aggregation statements `.agg`) and
collects the program-wide facts here. Engines read the annotated clauses; the
consumer reads the aggregation specs and options; each clause's actions are
described once (lang.records) for the engines and the consumer.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.records import Action
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol


@dataclass
class Variable:
    name: str
    scope: str  # 'global', 'self' (thread-local), 'this' (clause-local)
    type: CType
    keys: list[CType] | None = None  # associative array key signature
    array: bool = False  # a scalar array (int a[5])
    id: int = 0


@dataclass
class AggInfo:
    """An aggregation as the program uses it; the consumer builds AggSpec from it."""

    id: int
    name: str
    func: str
    params: tuple[int, ...]
    keys: list[CType]
    valtype: CType | None


@dataclass
class ClauseInfo:
    index: int  # the statement index: dtrace names the clause dt_clause_<index>
    node: ast.Clause
    probes: list[Any]  # probes.catalogue.Probe
    predicate: ast.Expr | None
    body: list[ast.Stmt]
    records: bool  # has a data-recording action, or the default action
    line: int
    actions: list[Action] = field(default_factory=list)  # what its actions record, in order

    def action(self, call: ast.Call) -> Action | None:
        """The description of one of this clause's action calls (None: no data)."""
        for a in self.actions:
            if a.call is call:
                return a
        return None


@dataclass
class CheckedProgram:
    clauses: list[ClauseInfo] = field(default_factory=list)
    globals: dict[str, Variable] = field(default_factory=dict)
    tlocals: dict[str, Variable] = field(default_factory=dict)
    clocals: dict[str, Variable] = field(default_factory=dict)
    aggs: dict[str, AggInfo] = field(default_factory=dict)
    options: list[tuple[str, str | None, int]] = field(default_factory=list)  # (name, value, line)
    destructive: bool = False  # uses an action that needs -w
    # reads of kernel memory through kernel types or symbols: (what, line),
    # e.g. ("curthread->comm", 3); only an engine in the kernel can do them
    kernel_reads: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class KernelSymbol:
    """A kernel variable or function a program names with a backquote
    (`max_pfn, vmlinux`schedule)."""

    module: str
    name: str
    address: int  # for a per-CPU variable: its offset in every CPU's area
    type: CType
    percpu: bool = False  # the variable has a copy per CPU: D reads this CPU's


if TYPE_CHECKING:  # for type checkers: typing is not imported at run time

    class KernelNames(Protocol):
        """What the checker asks of the running kernel (symbols.kernel_types
        builds it from BTF and kallsyms; the session hands it to the checker)."""

        def type_named(self, name: str) -> CType | None:
            """The kernel's "struct x", "union x", "enum x" or typedef x, or None."""
            ...

        def is_typedef(self, name: str) -> bool:
            """Does the kernel define a typedef called name (for the parser)?"""
            ...

        def symbol(self, module: str, name: str) -> KernelSymbol:
            """The kernel symbol `name (module "" for any); LookupError(reason,
            tag) when there is none, or when its type is unknown."""
            ...
