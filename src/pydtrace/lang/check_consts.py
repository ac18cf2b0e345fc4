"""Integer constant expressions: their values (folded as dtrace folds them,
in the expression's type) and the type C gives an integer literal.

A part of checker.Checker; see there for the whole.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.errors import DError
from pydtrace.lang.types import CType


class Constants:
    """Constant folding (a part of checker.Checker)."""

    macro_reads: list[str]
    folded_macros: set[str]

    def _const(self, e: ast.Expr) -> int | None:
        """The value of an integer constant expression, or None. A macro
        variable's value folded into another value is noted (folded_macros)."""
        if isinstance(e, ast.IntLit | ast.CharLit):
            macro = getattr(e, "macro", None)
            if macro is not None:
                self.macro_reads.append(macro)
            return e.value
        reads = len(self.macro_reads)
        v = self._fold_const(e)
        if v is not None and len(self.macro_reads) > reads:
            self.folded_macros.update(self.macro_reads[reads:])
        return v

    def _fold_const(self, e: ast.Expr) -> int | None:
        if isinstance(e, ast.Ident):
            if e.name in self.enumerators:
                return self.enumerators[e.name][0]
            if e.name in self.inlines:
                return self._const(self.inlines[e.name][1])
            return None
        if isinstance(e, ast.Sizeof | ast.Offsetof):
            return getattr(e, "value", None)
        if isinstance(e, ast.Cast):
            v = self._const(e.operand)
            t = getattr(e, "ctype", None)
            return T.wrap(v, t) if v is not None and t is not None and t.is_int() else v
        if isinstance(e, ast.Unary) and e.op in "-+~!":
            v = self._const(e.operand)
            if v is None:
                return None
            t = getattr(e, "ctype", T.LONG)
            r = {"-": -v, "+": v, "~": ~v, "!": int(not v)}[e.op]
            return T.wrap(r, t) if t.is_int() else r
        if isinstance(e, ast.Binary):
            a, b = self._const(e.left), self._const(e.right)
            if a is None or b is None:
                return None
            t = getattr(e, "ctype", T.LONG)
            r = _fold(e.op, a, b, t)
            return None if r is None else (T.wrap(r, t) if t.is_int() else r)
        if isinstance(e, ast.Cond):
            c = self._const(e.cond)
            if c is None:
                return None
            return self._const(e.then if c else e.other)
        return None

    def _is_null(self, x: ast.Expr, t: CType) -> bool:
        """A null-pointer constant: an integer constant expression equal to 0 (e.g. NULL)."""
        return t.is_int() and self._const(x) == 0


def _fold(op: str, a: int, b: int, t: CType) -> int | None:
    if op in ("/", "%"):
        if b == 0:
            return None
        if not t.is_signed():
            a, b = T.wrap(a, t), T.wrap(b, t)
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "/" else a - q * b
    if op == ">>" and not t.is_signed():
        a = T.wrap(a, t)
    ops = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "<<": lambda: a << (b & 63),
        ">>": lambda: a >> (b & 63), "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b,
        "<": lambda: int(a < b), "<=": lambda: int(a <= b), ">": lambda: int(a > b),
        ">=": lambda: int(a >= b), "==": lambda: int(a == b), "!=": lambda: int(a != b),
        "&&": lambda: int(bool(a) and bool(b)), "||": lambda: int(bool(a) or bool(b)),
        "^^": lambda: int(bool(a) != bool(b)), ",": lambda: b,
    }  # fmt: skip
    f = ops.get(op)
    return f() if f else None


_INT_TYPES = [T.INT, T.UINT, T.LONG, T.ULONG, T.LLONG, T.ULLONG]


_LIMITS = [
    0x7FFFFFFF,
    0xFFFFFFFF,
    0x7FFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
    0x7FFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
]


def int_literal_type(e: ast.IntLit) -> CType:
    """C's (dtrace's) choice of type for an integer constant, by value, base and suffix."""
    text = e.text.lower()
    suffix = text[len(text.rstrip("ul")) :]
    decimal = not (text.startswith("0x") or (text.startswith("0") and len(text.rstrip("ul")) > 1))
    step = 2 if decimal or suffix.startswith("u") else 1
    i = suffix.count("u") + 2 * suffix.count("l")
    while i < len(_INT_TYPES):
        if e.value <= _LIMITS[i]:
            return _INT_TYPES[i]
        i += step
    raise DError(
        "D_INT_OFLOW",
        f"integer constant 0x{e.value:x} cannot be represented in any built-in integral type",
        e.line,
    )
