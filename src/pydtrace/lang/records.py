"""What each action of a clause records: the one description that both
engines build their records by and the consumer reads them by (dtrace's
per-clause data description, EPID -> record layout).

The checker describes each clause's data-recording actions in program order
(ClauseInfo.actions). An engine evaluates the expressions an action's data
names and hands the consumer consume.records.Item(action, values), values in
the order of action.data; the consumer does what action.kind says. Actions
with side effects only (speculate, commit, chill, raise...) have no
description: the engines carry them out.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.dataclass import dataclass
from pydtrace.lang.errors import DError
from pydtrace.lang.formats import Format, parse_format
from pydtrace.lang.types import CType

SYM_ACTIONS = frozenset(("sym", "usym", "func", "ufunc", "mod", "umod", "uaddr"))
STACK_ACTIONS = frozenset(("stack", "ustack", "jstack"))
AGG_ACTIONS = frozenset(("printa", "clear", "trunc", "normalize", "denormalize"))
# the kinds whose record sizes follow their data (others take one 8-byte word)
_SIZED = frozenset(("trace", "print", "printf", "system", "freopen", "exit"))


@dataclass(frozen=True, eq=False)
class Datum:
    """One value an action records."""

    ctype: CType  # its type as recorded: a char array is recorded as a string
    size: int  # bytes in dtrace's record; a string's is strsize + 1 (see layout)
    align: int
    by_ref: bool = False  # a struct, union or array: the object's bytes
    # the expression whose value is recorded; None for what the engine supplies
    # (a stack, sym()'s process, the object print() shows)
    expr: ast.Expr | None = None

    def layout(self, strsize: int) -> tuple[int, int]:
        """(size, alignment) in dtrace's output buffer."""
        return (strsize + 1, 1) if self.ctype.is_string() else (self.size, self.align)


@dataclass(frozen=True, eq=False)
class Action:
    """One data-recording action of a clause."""

    kind: str  # trace print printf system freopen printa exit setopt clear trunc
    #            normalize denormalize stack sym
    data: tuple[Datum, ...] = ()  # what it records, in order
    format: Format | None = None  # printf, system, freopen; printa's (None: the default)
    aggs: tuple[str, ...] = ()  # the aggregations printa, clear, trunc... act on
    name: str = ""  # the D function called (ustack, usym...)
    call: ast.Call | None = None  # the call in the clause (None: built without a program)

    @property
    def types(self) -> tuple[CType, ...]:
        return tuple(d.ctype for d in self.data)

    def layout(self, strsize: int) -> list[tuple[int, int]]:
        """The (size, alignment) of each record dtrace's code stores (dt_cg.c);
        actions whose layout is not modelled take one 8-byte word."""
        if self.kind not in _SIZED:
            return [(8, 8)]
        return [d.layout(strsize) for d in self.data] or [(0, 1)]


def datum(e: ast.Expr | None, t: CType) -> Datum:
    """The datum recording a value of type t (of expression e)."""
    r = t.r
    if t.is_char_array():
        return Datum(T.STRING, 0, 1, expr=e)
    if r.kind in ("struct", "union", "array"):
        return Datum(t, object_size(t), 2, by_ref=True, expr=e)
    if t.is_string():
        return Datum(t, 0, 1, expr=e)
    size = 8
    if r.kind in ("int", "enum", "float", "ptr"):
        size = t.int_size() if t.is_int() else r.size
    if size not in (1, 2, 4, 8):
        size = 8
    return Datum(t, size, size, expr=e)


def object_size(t: CType) -> int:
    """The bytes of an object of type t in memory."""
    r = t.r
    return 4 if r.kind == "enum" else 8 if r.kind == "ptr" else max(r.size, 0)


def describe(body: list[ast.Stmt]) -> list[Action]:
    """The descriptions of a checked clause body's data-recording actions."""
    out: list[Action] = []
    for s in body:
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            b = getattr(e, "builtin", None)
            if isinstance(e, ast.Call) and b is not None and b.kind == "action":
                a = describe_action(e)
                if a is not None:
                    out.append(a)
        elif isinstance(s, ast.If):
            out += describe(s.then) + describe(s.other or [])
        elif isinstance(s, ast.Block):
            out += describe(s.body)
    return out


def describe_action(e: ast.Call) -> Action | None:
    """One action call's description; None for an action with side effects only."""
    name, args = e.name, e.args
    types: list[CType] = [getattr(a, "ctype", T.VOID) for a in args]
    if name == "trace":
        return Action("trace", (datum(args[0], types[0]),), name=name, call=e)
    if name == "print" and not types[0].is_pointer():  # an array: traced as its address
        return Action("trace", (Datum(types[0], 8, 8, expr=args[0]),), name=name, call=e)
    if name == "print":
        target = types[0].r.target
        assert target is not None
        obj = Datum(target, object_size(target), 8, by_ref=True)
        return Action("print", (datum(args[0], types[0]), obj), name=name, call=e)
    if name in ("printf", "system", "freopen"):
        fmt = e.format if name == "printf" else None  # type: ignore[attr-defined]
        if name != "printf" and isinstance(args[0], ast.StrLit):
            try:  # printf's was parsed and checked already
                fmt = parse_format(args[0].value)
            except DError as err:
                err.line = err.line or e.line
                raise
        data = tuple(datum(x, t) for x, t in zip(args[1:], types[1:]))
        return Action(name, data, fmt, name=name, call=e)
    if name == "printa":
        aggs = tuple(a.name for a in e.aggs)  # type: ignore[attr-defined]
        return Action("printa", (), e.format, aggs, name, e)  # type: ignore[attr-defined]
    if name == "exit":
        return Action("exit", (Datum(T.INT, 4, 4, expr=args[0]),), name=name, call=e)
    if name == "setopt":
        return Action("setopt", tuple(datum(x, t) for x, t in zip(args, types)), name=name, call=e)
    if name in ("clear", "denormalize", "trunc", "normalize"):
        agg = (args[0].name,)  # type: ignore[attr-defined]
        data = tuple(datum(x, t) for x, t in zip(args[1:], types[1:]))
        return Action(name, data, aggs=agg, name=name, call=e)
    if name in STACK_ACTIONS:
        t = T.STACK if name == "stack" else T.USTACK
        return Action("stack", (Datum(t, 8, 8),), name=name, call=e)
    if name in SYM_ACTIONS:
        data = (datum(args[0], types[0]), Datum(T.INT, 4, 4))
        return Action("sym", data, name=name, call=e)
    return None
