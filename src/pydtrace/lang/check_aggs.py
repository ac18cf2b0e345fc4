"""Checking aggregations: `@a[keys] = f(args)` statements, the quantizing
functions' parameters, and the rule that every use of an aggregation repeats
its first one's function, parameters and key signature.

A part of checker.Checker; see there for the whole.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS
from pydtrace.lang.check_compat import check_keys
from pydtrace.lang.errors import DError
from pydtrace.lang.program import AggInfo

AGG_FUNCS = {"count", "sum", "avg", "min", "max", "stddev", "quantize", "lquantize", "llquantize"}


class Aggregations:
    """Aggregating statements (a part of checker.Checker)."""

    def _agg_shape(self, e: ast.Expr) -> None:
        """Statement-level misuse of an aggregation: @a[x][y], or @a alone."""
        target = e.target if isinstance(e, ast.Assign) else e
        if (
            isinstance(target, ast.Index)
            and isinstance(target.base, ast.Index)
            and isinstance(target.base.base, ast.AggVar)
        ):
            raise DError(
                "D_AGG_MDIM",
                f"improper attempt to reference {target.base.base.name} as a multi-dimensional array",
                e.line,
            )
        agg = target.base if isinstance(target, ast.Index) else target
        if isinstance(agg, ast.AggVar) and not isinstance(e, ast.Assign):
            if agg.name not in self.prog.aggs and agg is target:  # @a[k] names one even if new
                raise DError(
                    "D_IDENT_UNDEF", f"failed to resolve {agg.name}: Unknown variable name", e.line
                )
            raise DError("D_AGG_NULL", f"expression has null effect: {agg.name}", e.line)

    def _aggregate(self, e: ast.Assign) -> None:
        target = e.target
        keys: list[ast.Expr] = []
        if isinstance(target, ast.Index):
            keys = target.args
            target = target.base
        assert isinstance(target, ast.AggVar)
        name = target.name
        if self._speculating:
            raise DError("D_AGG_SPEC", "aggregating actions may not follow speculate( )", e.line)
        if self._committed:
            raise DError("D_AGG_COMM", "aggregating actions may not follow commit( )", e.line)
        f = e.value
        if isinstance(f, ast.Call) and f.name not in FUNCTIONS:
            raise DError("D_FUNC_UNDEF", f"undefined function name: {f.name}", f.line)
        if e.op != "=" or not isinstance(f, ast.Call) or f.name not in AGG_FUNCS:
            raise DError(
                "D_AGG_FUNC",
                f"{name} must be assigned the result of an aggregating function",
                e.line,
            )
        keytypes = [self._key(k, i, "aggregation") for i, k in enumerate(keys)]
        args = f.args
        func = f.name
        nargs = len(args)
        arity = {
            "count": (0, 0),
            "quantize": (1, 2),
            "lquantize": (3, 5),
            "llquantize": (5, 6),
        }.get(func, (1, 1))
        if not arity[0] <= nargs <= arity[1]:
            lo, hi = arity
            if lo == hi:
                exp = f"{lo} expected"
            elif nargs < lo:
                exp = f"at least {lo} expected"
            else:
                exp = f"at most {hi} expected"
            raise DError(
                "D_PROTO_LEN",
                f"{func}( ) prototype mismatch: {nargs} arg{'s' if nargs != 1 else ''} passed, {exp}",
                f.line,
            )
        argtypes = [self._expr(a) for a in args]
        for i, (a, at) in enumerate(zip(args, argtypes)):
            if i == 0 and func != "count" and not at.is_arith() and not at.is_pointer():
                raise DError(
                    "D_AGG_SCALAR", f"{func}( ) argument #1 must be of scalar type", a.line
                )
        params: tuple[int, ...] = ()
        if func == "lquantize":
            params = self._lquantize_params(f)
        elif func == "llquantize":
            params = self._llquantize_params(f)
        if func in ("quantize", "lquantize", "llquantize"):
            incr_pos = {"quantize": 1, "lquantize": 4, "llquantize": 5}[func]
            if nargs > incr_pos and not argtypes[incr_pos].is_arith():
                raise DError(
                    "D_PROTO_ARG",
                    f"{func}( ) argument #{incr_pos + 1} is incompatible with prototype",
                    f.line,
                )
        valtype = argtypes[0] if argtypes else None
        old = self.prog.aggs.get(name)
        if old is None:
            info = AggInfo(len(self.prog.aggs), name, func, params, keytypes, valtype)
            self._agg_lines[name] = e.line
            self.prog.aggs[name] = info
        else:
            if old.func != func:
                aname = name.lstrip("@")
                raise DError(
                    "D_AGG_REDEF",
                    f"aggregation redefined: @{aname}\n\t current: @{aname} = {func}( )\n\tprevious: @{aname} = {old.func}( ) : line {self._agg_lines.get(name, 0)}",
                    e.line,
                )
            self._params_match(name, func, old.params, params, f.line)
            check_keys(name, list(old.keys), keytypes, e.line)
            info = old
        e.agg = info  # type: ignore[attr-defined]
        e.ctype = T.VOID  # type: ignore[attr-defined]

    def _int_arg(self, f: ast.Call, i: int, tag: str) -> int:
        """Argument #i (counted after the value) of a quantizing function: an integer constant."""
        a = f.args[i]
        c = self._const(a) if a.ctype.is_int() else None  # type: ignore[attr-defined]
        if c is None:
            raise DError(tag, f"{f.name}( ) argument #{i} must be an integer constant", a.line)
        return c

    def _posconst(self, f: ast.Call, i: int, tag: str) -> int:
        a = f.args[i]
        c = self._const(a) if a.ctype.is_int() else None  # type: ignore[attr-defined]
        if c is None or c <= 0:
            raise DError(
                tag,
                f"{f.name}( ) argument #{i} must be a non-zero positive integer constant",
                a.line,
            )
        return c

    def _lquantize_params(self, f: ast.Call) -> tuple[int, ...]:
        # Argument numbers in dtrace's messages count after the value being quantized.
        base = self._int_arg(f, 1, "D_LQUANT_BASETYPE")
        if not -(2**31) <= base < 2**31:
            raise DError(
                "D_LQUANT_BASEVAL",
                "lquantize( ) argument #1 must be a 32-bit quantity",
                f.args[1].line,
            )
        limit = self._int_arg(f, 2, "D_LQUANT_LIMTYPE")
        if not -(2**31) <= limit < 2**31:
            raise DError(
                "D_LQUANT_LIMVAL",
                "lquantize( ) argument #2 must be a 32-bit quantity",
                f.args[2].line,
            )
        if limit <= base:
            raise DError(
                "D_LQUANT_MISMATCH",
                "lquantize( ) base (argument #1) must be less than limit (argument #2)",
                f.line,
            )
        step = 1
        if len(f.args) > 3:
            step = self._posconst(f, 3, "D_LQUANT_STEPTYPE")
            if step > 0xFFFF:
                raise DError(
                    "D_LQUANT_STEPVAL",
                    "lquantize( ) argument #3 must be a 16-bit quantity",
                    f.args[3].line,
                )
        levels = (limit - base) // step
        if levels == 0:
            raise DError(
                "D_LQUANT_STEPLARGE",
                "lquantize( ) step (argument #3) too large: must have at least one quantization level",
                f.line,
            )
        if levels > 0xFFFF:
            raise DError(
                "D_LQUANT_STEPSMALL",
                "lquantize( ) step (argument #3) too small: number of quantization levels must be a 16-bit quantity",
                f.line,
            )
        return (base, limit, step)

    def _llquantize_params(self, f: ast.Call) -> tuple[int, ...]:
        u64 = 2**64
        factor = self._int_arg(f, 1, "D_LLQUANT_FACTORTYPE") % u64
        if not 2 <= factor <= 0xFFFF:
            raise DError(
                "D_LLQUANT_FACTORVAL",
                "llquantize( ) argument #1 must be an unsigned 16-bit quantity greater than or equal to 2",
                f.args[1].line,
            )
        low = self._int_arg(f, 2, "D_LLQUANT_LMAGTYPE") % u64
        if low > 0xFFFF:
            raise DError(
                "D_LLQUANT_LMAGVAL",
                "llquantize( ) argument #2 must be an unsigned 16-bit quantity",
                f.args[2].line,
            )
        high = self._int_arg(f, 3, "D_LLQUANT_HMAGTYPE") % u64
        hline = f.args[3].line
        if high > 0xFFFF:
            raise DError(
                "D_LLQUANT_HMAGVAL",
                "llquantize( ) argument #3 must be an unsigned 16-bit quantity",
                hline,
            )
        if high < low:
            raise DError(
                "D_LLQUANT_HMAGVAL",
                "llquantize( ) argument #3 (high magnitude) must be at least argument #2 (low magnitude)",
                hline,
            )
        if factor ** (high + 1) > u64 - 1:
            raise DError(
                "D_LLQUANT_HMAGVAL",
                "llquantize( ) argument #3 (high magnitude) will cause overflow of 64 bits",
                hline,
            )
        steps = self._posconst(f, 4, "D_LLQUANT_STEPTYPE")
        if steps > 0xFFFF:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize( ) argument #4 must be an unsigned 16-bit quantity",
                f.args[4].line,
            )
        self._llquantize_steps(f, factor, low, steps)
        return (factor, low, high, steps)

    def _llquantize_steps(self, f: ast.Call, factor: int, low: int, steps: int) -> None:
        line = f.args[1].line
        if steps < factor and factor % steps:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must evenly divide argument #1 (factor) when steps<factor",
                line,
            )
        if steps <= factor:
            return
        if steps % factor:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must be a multiple of argument #1 (factor) when steps>factor",
                line,
            )
        if low == 0 and (factor * factor) % steps:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must evenly divide the square of argument #1 (factor) when steps>factor and lmag==0",
                line,
            )
        if low > 0 and (factor ** (low + 1)) % (2**64) % steps:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must evenly divide pow(argument #1 (factor), lmag (argument #2) + 1) when steps>factor and lmag>0",
                line,
            )

    def _params_match(
        self, name: str, func: str, old: tuple[int, ...], new: tuple[int, ...], line: int
    ) -> None:
        """A quantizing aggregation's parameters must repeat its first use's exactly."""
        if old == new:
            return
        if func == "lquantize":
            (ob, ol, os_), (nb, nl, ns) = old, new
            if ob != nb:
                raise DError(
                    "D_LQUANT_MATCHBASE",
                    f"lquantize( ) base (argument #1) doesn't match previous declaration: expected {ob}, found {nb}",
                    line,
                )
            olim, nlim = ob + (ol - ob) // os_ * os_, nb + (nl - nb) // ns * ns
            if olim != nlim:
                raise DError(
                    "D_LQUANT_MATCHLIM",
                    f"lquantize( ) limit (argument #2) doesn't match previous declaration: expected {olim}, found {nlim}",
                    line,
                )
            if os_ != ns:
                raise DError(
                    "D_LQUANT_MATCHSTEP",
                    f"lquantize( ) step (argument #3) doesn't match previous declaration: expected {os_}, found {ns}",
                    line,
                )
            return
        what = [("D_LLQUANT_MATCHFACTOR", "factor (argument #1)"), ("D_LLQUANT_MATCHLMAG", "lmag (argument #2)"),
                ("D_LLQUANT_MATCHHMAG", "hmag (argument #3)"), ("D_LLQUANT_MATCHSTEPS", "steps (argument #4)")]  # fmt: skip
        for (tag, label), o, n in zip(what, old, new):
            if o != n:
                raise DError(
                    tag,
                    f"llquantize() {label} doesn't match previous declaration: expected {o}, found {n}",
                    line,
                )


def is_agg_target(x: ast.Expr) -> bool:
    return isinstance(x, ast.AggVar) or (
        isinstance(x, ast.Index) and isinstance(x.base, ast.AggVar)
    )
