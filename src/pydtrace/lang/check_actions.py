"""Checking actions and subroutine calls: the order rules of speculations
and data-recording actions, printf's and printa's formats against their
arguments, the aggregation actions (clear, trunc, normalize...), and every
call's arguments against its prototype (lang/builtins.py).

A part of checker.Checker; see there for the whole.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS, Builtin, prototype
from pydtrace.lang.check_aggs import AGG_FUNCS
from pydtrace.lang.check_compat import arg_ok, key_compatible
from pydtrace.lang.errors import DError
from pydtrace.lang.program import AggInfo
from pydtrace.lang.types import CType

# Actions that put data in the trace buffer (and so make the probe line print).
RECORDING = {
    "trace", "printf", "printa", "exit", "tracemem", "stack", "ustack", "jstack", "print",
    "sym", "usym", "func", "ufunc", "mod", "umod", "uaddr", "setopt", "clear", "trunc",
    "normalize", "denormalize", "system", "raise", "stop", "freopen", "ftruncate", "pcap",
    "breakpoint", "panic", "chill",
}  # fmt: skip
# Actions that also yield a value, usable inside expressions.
VALUE_ACTIONS = {
    "sym",
    "usym",
    "func",
    "ufunc",
    "mod",
    "umod",
    "uaddr",
    "stack",
    "ustack",
    "jstack",
}


class Actions:
    """Actions and subroutine calls (a part of checker.Checker)."""

    def _action(self, e: ast.Call) -> None:
        b = FUNCTIONS[e.name]
        name = e.name
        if b.destructive:
            self.prog.destructive = True
        if name in ("speculate",):
            if self._speculating:
                raise DError("D_SPEC_SPEC", "speculate( ) may not follow speculate( )", e.line)
            if self._committed:
                raise DError("D_SPEC_COMM", "speculate( ) may not follow commit( )", e.line)
            if self._recorded:
                raise DError(
                    "D_SPEC_DREC", "speculate( ) may not follow data-recording action(s)", e.line
                )
        elif name in ("commit", "discard"):
            if self._recorded and name == "commit":
                raise DError(
                    "D_COMM_DREC", "commit( ) may not follow data-recording action(s)", e.line
                )
            if self._speculating and name == "commit":
                raise DError("D_COMM_SPEC", "commit( ) may not follow speculate( )", e.line)
        else:
            if self._committed and name in RECORDING:
                raise DError(
                    "D_DREC_COMM", "data-recording actions may not follow commit( )", e.line
                )
            if self._speculating and b.destructive:
                raise DError(
                    "D_ACT_SPEC", "destructive actions may not follow speculate( )", e.line
                )
            if self._speculating and name == "exit":
                raise DError("D_EXIT_SPEC", "exit( ) may not follow speculate( )", e.line)
        if name == "printf":
            self._printf(e)
        elif name == "printa":
            self._printa(e)
        elif name in ("clear", "denormalize", "normalize", "trunc"):
            self._agg_action(e)
        elif name == "trace":
            self._proto(e, b)
            t = e.args[0].ctype  # type: ignore[attr-defined]
            if t.is_void():
                raise DError(
                    "D_TRACE_VOID", "trace( ) may not be applied to a void expression", e.line
                )
            if isinstance(e.args[0], ast.AggVar):
                raise DError(
                    "D_TRACE_DYN", "trace( ) may not be applied to a dynamic expression", e.line
                )
        elif name == "tracemem":
            self._proto(e, b)
            at = e.args[0].ctype  # type: ignore[attr-defined]
            if not (at.is_pointer() or at.is_int()):
                raise DError(
                    "D_TRACEMEM_ADDR",
                    "tracemem( ) argument #1 is incompatible with prototype:\n"
                    f"\tprototype: pointer or integer\n\t argument: {at.name}",
                    e.line,
                )
            c = self._const(e.args[1])
            if c is None or c <= 0:
                raise DError(
                    "D_TRACEMEM_SIZE",
                    "tracemem( ) argument #2 must be a non-zero positive integral constant expression",
                    e.line,
                )
        elif name == "setopt":
            self._proto(e, b)
        elif name == "print":
            self._proto(e, b)
            at = e.args[0].ctype  # type: ignore[attr-defined]
            target = at.r.target if at.is_pointer() else None
            if target is not None and target.is_struct() and target.r.size == 0:
                # (a kernel struct of only a flexible array, a forward declaration)
                raise DError(
                    "D_PRINT_SIZE",
                    f"print( ) argument #1 reference has type '{target.name}' with size 0;"
                    " cannot print( ) it.",
                    e.line,
                )
        else:
            self._proto(e, b)
        if name == "speculate":
            self._speculating = True
        elif name == "commit":
            self._committed = True
        elif name in RECORDING:
            self._recorded = True
        e.ctype = T.VOID  # type: ignore[attr-defined]
        e.builtin = b  # type: ignore[attr-defined]
        self._pc += 1
        e.pc = self._pc  # type: ignore[attr-defined]

    def _printf(self, e: ast.Call) -> None:
        from pydtrace.lang.formats import check_printf, parse_format

        if not e.args:
            raise DError(
                "D_PROTO_LEN",
                "printf( ) prototype mismatch: 0 args passed, at least 1 expected",
                e.line,
            )
        fmt_node = e.args[0]
        ft = self._expr(fmt_node)
        if not (ft.is_string() or ft.is_char_array()):
            raise DError(
                "D_PROTO_ARG",
                f"printf( ) argument #1 is incompatible with prototype:\n\tprototype: string\n\t argument: {ft.name}",
                e.line,
            )
        if not isinstance(fmt_node, ast.StrLit):
            raise DError(
                "D_PRINTF_ARG_FMT",
                f"printf( ) argument #1 is incompatible with prototype:\n\tprototype: string constant\n\t argument: {ft.name}",
                e.line,
            )
        argtypes = [self._expr(a) for a in e.args[1:]]
        try:
            fmt = parse_format(fmt_node.value, "printf")
            check_printf(fmt, argtypes, "printf", has_target=self.has_target)
        except DError as err:
            err.line = err.line or e.line
            raise
        e.format = fmt  # type: ignore[attr-defined]

    def _printa(self, e: ast.Call) -> None:
        from pydtrace.lang.formats import check_printf, parse_format

        args = e.args
        if not args:
            raise DError(
                "D_PROTO_LEN",
                "printa( ) prototype mismatch: 0 args passed, at least 1 expected",
                e.line,
            )
        fmt = None
        if isinstance(args[0], ast.StrLit):
            fmt = args[0].value
            args = args[1:]
            if not args:
                raise DError(
                    "D_PRINTA_PROTO",
                    "printa( ) prototype mismatch: 1 args passed, 2 expected",
                    e.line,
                )
        aggs: list[AggInfo] = []
        for i, a in enumerate(args):
            pos = i + (2 if fmt is not None else 1)
            if not isinstance(a, ast.AggVar):
                at = self._expr(a)
                raise DError(
                    "D_PRINTA_AGGARG",
                    f"printa( ) argument #{pos} is incompatible with prototype:\n\tprototype: aggregation\n\t argument: {at.name}",
                    e.line,
                )
            info = self.prog.aggs.get(a.name)
            if info is None:
                raise DError(
                    "D_PRINTA_AGGARG",
                    f"printa( ) argument #{pos} is incompatible with prototype:\n\tprototype: aggregation\n\t argument: undefined aggregation {a.name}",
                    e.line,
                )
            a.ctype = T.AGG  # type: ignore[attr-defined]
            aggs.append(info)
        first = aggs[0]
        for other in aggs[1:]:
            if len(other.keys) != len(first.keys):
                n1, n2 = len(first.keys), len(other.keys)
                raise DError(
                    "D_PRINTA_AGGKEY",
                    f"printa( ): {first.name} and {other.name} do not have matching key signatures: {first.name} has {n1} key{'s' if n1 != 1 else ''}, {other.name} has {n2} key{'s' if n2 != 1 else ''}",
                    e.line,
                )
            for i, (a, b) in enumerate(zip(first.keys, other.keys)):
                if not key_compatible(a, b):
                    raise DError(
                        "D_PRINTA_AGGPROTO",
                        f"printa( ): {other.name}[ ] key #{i + 1} is incompatible with {first.name}:\n{first.name[1:]:>9} key #{i + 1}: {a.name}\n{other.name[1:]:>9} key #{i + 1}: {b.name}",
                        e.line,
                    )
        parsed = None
        if fmt is not None:
            try:
                parsed = parse_format(fmt, "printa")
                check_printf(parsed, list(first.keys), "printa", has_target=self.has_target)
            except DError as err:
                err.line = err.line or e.line
                raise
        e.format = parsed  # type: ignore[attr-defined]
        e.aggs = aggs  # type: ignore[attr-defined]

    def _agg_action(self, e: ast.Call) -> None:
        b = FUNCTIONS[e.name]
        self._arity(e, b)
        a = e.args[0]
        if not isinstance(a, ast.AggVar) or a.name not in self.prog.aggs:
            tag = {"clear": "D_CLEAR_AGGARG", "trunc": "D_TRUNC_AGGARG"}.get(
                e.name, "D_NORMALIZE_AGGARG"
            )
            at = self._agg_arg_type(a)
            raise DError(
                tag,
                f"{e.name}( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: {at.name}",
                e.line,
            )
        a.ctype = T.AGG  # type: ignore[attr-defined]
        for x in e.args[1:]:
            t = self._expr(x)
            if not t.is_int():
                raise DError(
                    "D_PROTO_ARG",
                    f"{e.name}( ) argument #2 is incompatible with prototype:\n\tprototype: {prototype(b).params[1]}\n\t argument: {t.name}",
                    e.line,
                )
        e.aggs = [self.prog.aggs[a.name]]  # type: ignore[attr-defined]

    def _agg_arg_type(self, a: ast.Expr) -> CType:
        """The type of a non-aggregation given where an aggregation is required."""
        if isinstance(a, ast.AggVar):
            return T.VOID
        if isinstance(a, ast.Call) and a.name in AGG_FUNCS:
            return T.VOID  # an aggregating function's result is not a value
        return self._expr(a)

    # --- prototypes -----------------------------------------------------------
    def _arity(self, e: ast.Call, b: Builtin) -> None:
        p = prototype(b)
        n = len(e.args)
        maxn = None if p.varargs else len(p.params)
        if n < p.required or (maxn is not None and n > maxn):
            if maxn == p.required:
                exp = f"{p.required} expected"
            elif n < p.required:
                exp = f"at least {p.required} expected"
            else:
                exp = f"at most {maxn} expected"
            raise DError(
                "D_PROTO_LEN",
                f"{b.name}( ) prototype mismatch: {n} arg{'s' if n != 1 else ''} passed, {exp}",
                e.line,
            )

    def _proto(self, e: ast.Call, b: Builtin) -> CType:
        """Check a call against its prototype; return its result type."""
        self._arity(e, b)
        p = prototype(b)
        for i, a in enumerate(e.args):
            at = self._expr(a)
            want = p.params[i] if i < len(p.params) else "@"
            if want == "@":
                continue
            wt = self._proto_type(want)
            null = self._is_null(a, at) and isinstance(a, ast.IntLit | ast.Ident)
            if (
                not arg_ok(wt, at)
                or (wt.is_pointer() and at.is_int() and not null)
                or (at.is_void() and not wt.is_void())
            ):
                shown = want.replace("const ", "")  # dtrace's prototypes print without const
                raise DError(
                    "D_PROTO_ARG",
                    f"{b.name}( ) argument #{i + 1} is incompatible with prototype:\n\tprototype: {shown}\n\t argument: {at.name}",
                    e.line,
                )
        if b.name in ("stack", "ustack", "jstack") and e.args:
            self._stack_args(e, b.name)
        if p.ret in ("_symaddr", "_usymaddr"):
            return T.SYMADDR[b.name]
        if b.name in ("ustack", "jstack"):
            return T.USTACK
        return self._proto_type(p.ret)

    def _stack_args(self, e: ast.Call, name: str) -> None:
        """stack(n), ustack(n[, strsize]): constants, as dtrace requires."""
        n = self._const(e.args[0])
        if n is None or n <= 0:
            tag = "D_STACK_SIZE" if name == "stack" else "D_USTACK_FRAMES"
            raise DError(
                tag, f"{name}( ) argument #1 must be a non-zero positive integer constant", e.line
            )
        if len(e.args) > 1:
            size = self._const(e.args[1])
            if size is None or size < 0:
                raise DError(
                    "D_USTACK_STRSIZE",
                    f"{name}( ) argument #2 must be a positive integer constant",
                    e.line,
                )

    def _proto_type(self, name: str) -> CType:
        name = name.replace("const ", "")
        stars = name.count("*")
        base = name.replace("*", "").strip()
        if base not in self.typedefs:
            self._library_types(base)
        if base.startswith("struct "):
            # a kernel structure named by a prototype: opaque, known by its tag only
            t = (
                self.tags.get(base)
                or self._kernel_type(base)
                or CType("struct", base, 0, tag=base[7:])
            )
        else:
            t = (
                T.STACK
                if base == "stack"
                else self.typedefs.get(base) or T.from_specifiers(base.split())
            )
        assert t is not None, name
        for _ in range(stars):
            t = T.pointer(t)
        return t
