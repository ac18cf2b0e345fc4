"""The checked program: what the checker hands to an engine and the consumer.

The checker annotates the AST in place (every expression gets `.ctype`;
identifiers get `.ref`, calls `.builtin`, aggregation statements `.agg`) and
collects the program-wide facts here. Engines read the annotated clauses; the
consumer reads the aggregation specs and options; each clause's actions are
described once (lang.records) for the engines and the consumer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydtrace.lang import ast
from pydtrace.lang.records import Action
from pydtrace.lang.types import CType


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
