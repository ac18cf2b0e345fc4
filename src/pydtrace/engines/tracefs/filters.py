"""Predicates in the kernel: the part of a D predicate that ftrace's filter
language can say over one event's own fields, as the text of the event's
`filter` file.

The kernel's filter only has to pass every event the D predicate might
accept: the whole predicate is still evaluated in Python on each event that
reaches us. So a conjunct that cannot be expressed is left out (the filter
says more, never less), `A && B` keeps whichever side can be said, and
`A || B` needs both. A comparison goes to the kernel only where ftrace
compares the same values D does: the D expression reads the whole field
(same size), the constant fits the field's type, and an ordering (<, <=, >,
>=) is made with the field's signedness.

What each D expression names in an event (a Leaf) is the provider's to say
(engines/tracefs/providers); `tid` is common_pid and `execname` the generic
`comm` field (the current task's name) in every event without a field of
that name.
"""

from __future__ import annotations

from collections.abc import Callable

from pydtrace.lang import ast
from pydtrace.lang.dataclass import dataclass

_ORDER = {"<", "<=", ">", ">="}
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_GLOB = set('*?[]\\"')


@dataclass(frozen=True)
class Leaf:
    """An event field a D expression reads: its name, size and signedness in
    the record; string for a char array or __data_loc string."""

    name: str
    size: int = 8
    signed: bool = False
    string: bool = False


Resolver = Callable[[ast.Expr], "Leaf | None"]


def common_leaf(e: ast.Expr, has_field: Callable[[str], bool]) -> Leaf | None:
    """tid and execname, in any event."""
    if isinstance(e, ast.Ident) and getattr(e, "ref", None) == ("builtin", "tid"):
        return Leaf("common_pid", 4, True)
    if isinstance(e, ast.Ident) and getattr(e, "ref", None) == ("builtin", "execname"):
        return None if has_field("comm") else Leaf("comm", 16, False, True)
    return None


def compile_predicate(pred: ast.Expr | None, resolve: Resolver) -> str | None:
    """The filter text for a predicate, or None when no part can be said."""
    if pred is None:
        return None
    return _expr(pred, resolve)


def _expr(e: ast.Expr, resolve: Resolver) -> str | None:
    if isinstance(e, ast.Binary) and e.op == "&&":
        a, b = _expr(e.left, resolve), _expr(e.right, resolve)
        if a is not None and b is not None:
            return f"{a} && {b}"
        return a if a is not None else b
    if isinstance(e, ast.Binary) and e.op == "||":
        a, b = _expr(e.left, resolve), _expr(e.right, resolve)
        return f"({a} || {b})" if a is not None and b is not None else None
    if isinstance(e, ast.Binary) and e.op in _FLIP:
        return _compare(e, resolve)
    return None


def _constant(e: ast.Expr) -> int | None:
    if isinstance(e, ast.IntLit | ast.CharLit):
        return e.value
    if isinstance(e, ast.Unary) and e.op == "-" and isinstance(e.operand, ast.IntLit):
        return -e.operand.value
    return None


def _compare(e: ast.Binary, resolve: Resolver) -> str | None:
    op = e.op
    leaf_e, const_e = e.left, e.right
    leaf = resolve(leaf_e)
    if leaf is None:
        leaf_e, const_e, op = e.right, e.left, _FLIP[op]
        leaf = resolve(leaf_e)
        if leaf is None:
            return None
    if leaf.string:
        if op not in ("==", "!=") or not isinstance(const_e, ast.StrLit):
            return None
        text = const_e.value
        if any(ch in _GLOB for ch in text) or not text.isprintable() or not text:
            return None  # ftrace would read these as a pattern, or cannot quote them
        return f'{leaf.name} {op} "{text}"'
    value = _constant(const_e)
    dtype = getattr(leaf_e, "ctype", None)
    if value is None or dtype is None or not dtype.is_int():
        return None
    d = dtype.r
    if d.size != leaf.size:  # D sees part of the field (or more): not the same value
        return None
    bits = 8 * leaf.size
    if d.signed != leaf.signed:
        # D reads the field with the other signedness: equal bit patterns only
        if op in _ORDER or leaf.size != 8:
            return None
        value &= (1 << bits) - 1
        if leaf.signed and value >= 1 << (bits - 1):
            value -= 1 << bits
    else:
        lo, hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if leaf.signed
                  else (0, (1 << bits) - 1))  # fmt: skip
        if not lo <= value <= hi:
            return None
        ctype = getattr(const_e, "ctype", None)
        if op in _ORDER and leaf.signed and ctype is not None and not ctype.r.signed:
            return None  # D compares unsigned, the kernel signed
    return f"{leaf.name} {op} {value}"


def any_of(terms: list[str | None]) -> str | None:
    """The filter of an event several probes or clauses share: the
    disjunction of their filters; None (no filter) when one has none."""
    if not terms or any(t is None for t in terms):
        return None
    uniq = list(dict.fromkeys(t for t in terms if t is not None))
    return uniq[0] if len(uniq) == 1 else " || ".join(f"({t})" for t in uniq)


def both(a: str | None, b: str | None) -> str | None:
    """a && b, either of which may be absent."""
    if a is None or b is None:
        return a if b is None else b
    return f"({a}) && ({b})"


def pid_conjuncts(pred: ast.Expr | None) -> set[int] | None:
    """The pids a predicate requires (a top-level `pid == N` conjunct), or None."""
    if pred is None:
        return None
    if isinstance(pred, ast.Binary) and pred.op == "&&":
        a, b = pid_conjuncts(pred.left), pid_conjuncts(pred.right)
        return a if b is None else b if a is None else a & b
    if isinstance(pred, ast.Binary) and pred.op == "==":
        for x, y in ((pred.left, pred.right), (pred.right, pred.left)):
            if isinstance(x, ast.Ident) and getattr(x, "ref", None) == ("builtin", "pid"):
                v = _constant(y)
                if v is not None and v > 0:
                    return {v}
    return None
