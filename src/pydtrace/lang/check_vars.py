"""Checking variables: identifiers (globals, enumerators, inlines, builtin
variables), self-> and this-> variables, assignment (which creates an
undeclared variable with the value's type), associative-array keys and
subscripts, args[] and uregs[].

A part of checker.Checker; see there for the whole.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS, VARIABLES
from pydtrace.lang.check_actions import VALUE_ACTIONS
from pydtrace.lang.check_aggs import is_agg_target
from pydtrace.lang.check_compat import assignable, check_keys
from pydtrace.lang.check_exprs import INT_OPS
from pydtrace.lang.errors import DError
from pydtrace.lang.program import Variable
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

UREGS_COUNT = 26  # uregs[0..20]: pt_regs words; 21..25: ds, es, fsbase, gsbase, trap_nr


class Variables:
    """Identifiers, variables, assignment and subscripts (a part of checker.Checker)."""

    def _x_Ident(self, e: ast.Ident) -> CType:
        name = e.name
        if name in self._inline_params:
            # checked only for its type here: every use substitutes the argument
            e.ref = ("const", 0)  # type: ignore[attr-defined]
            return self._inline_params[name]
        if self._xlate_param is not None and name == self._xlate_param[0]:
            e.ref = ("xlarg", None)  # type: ignore[attr-defined]
            return self._xlate_param[1]
        if name in self.prog.globals:
            v = self.prog.globals[name]
            if v.keys is not None:
                raise DError(
                    "D_IDENT_BADREF",
                    f"associative array '{name}' may not be referenced as scalar",
                    e.line,
                )
            e.ref = ("global", v)  # type: ignore[attr-defined]
            return v.type
        if name in self.enumerators:
            value, et = self.enumerators[name]
            e.ref = ("const", value)  # type: ignore[attr-defined]
            return et
        if name in self.inlines:
            t, x = self.inlines[name]
            e.ref = ("inline", x)  # type: ignore[attr-defined]
            depth, nodes = self._inline_costs.get(name, (1, 1))
            self._expand(depth, nodes, e.line)  # the engines expand it here
            return t
        if name in VARIABLES:
            e.ref = ("builtin", name)  # type: ignore[attr-defined]
            if name == "curthread":
                return self._curthread_type()
            return self._proto_type(VARIABLES[name])
        if name in FUNCTIONS:
            raise DError(
                "D_IDENT_BADREF",
                f"function '{name}' may not be referenced as scalar",
                e.line,
            )
        if name == "args" and getattr(self, "_probe_argstruct", None) is not None:
            e.ref = ("builtin", "args")  # type: ignore[attr-defined]
            return self._probe_argstruct
        if "`" in name:
            return self._kernel_symbol(e)
        raise DError("D_IDENT_UNDEF", f"failed to resolve {name}: Unknown variable name", e.line)

    def _curthread_type(self) -> CType:
        """struct task_struct * when the kernel's BTF describes it (dtrace's
        vmlinux`struct task_struct *), else an opaque void *."""
        t = getattr(self, "_curthread", None)
        if t is None:
            task = self._kernel_type("struct task_struct")
            t = self._curthread = T.pointer(task) if task is not None else T.VOIDP
        return t

    def _kernel_symbol(self, e: ast.Ident) -> CType:
        """`name, vmlinux`name: a kernel variable or function, typed from BTF."""
        scope, _, name = e.name.rpartition("`")
        if self.kernel is None or scope.endswith("`"):  # ``name: a user symbol
            raise DError(
                "D_SYM_NOKERNEL",
                f"failed to resolve {e.name}: kernel symbols are not available on this engine",
                e.line,
            )
        try:
            sym = self.kernel.symbol(scope, name)
        except DError as err:
            err.line = e.line
            raise
        e.ref = ("ksym", sym)  # type: ignore[attr-defined]
        if sym.type.r.kind != "func":
            self.prog.kernel_reads.append((e.name, e.line))
        return sym.type

    def _x_SelfVar(self, e: ast.SelfVar) -> CType:
        v = self.prog.tlocals.get(e.name)
        if v is None:
            raise DError("D_VAR_UNDEF", f"{e.name} has not yet been declared or assigned", e.line)
        if v.keys is not None:
            raise DError(
                "D_IDENT_BADREF",
                f"associative array 'self->{e.name}' may not be referenced as scalar",
                e.line,
            )
        e.ref = ("self", v)  # type: ignore[attr-defined]
        return v.type

    def _x_ThisVar(self, e: ast.ThisVar) -> CType:
        v = self.prog.clocals.get(e.name)
        if v is None:
            raise DError("D_VAR_UNDEF", f"{e.name} has not yet been declared or assigned", e.line)
        e.ref = ("this", v)  # type: ignore[attr-defined]
        return v.type

    def _x_AggVar(self, e: ast.AggVar) -> CType:
        if e.name not in self.prog.aggs:
            raise DError("D_AGG_NOTDEF", f"aggregation {e.name} is not defined", e.line)
        return T.AGG

    def _lvalue(self, x: ast.Expr, op: str) -> CType:
        # ++ and -- create an undeclared variable, as an int64_t (dtrace's rule)
        if isinstance(x, ast.Ident) and self._undeclared(x.name):
            self.prog.globals[x.name] = Variable(
                x.name, "global", T.BUILTIN_TYPEDEFS["int64_t"], id=len(self.prog.globals)
            )
        elif isinstance(x, ast.SelfVar | ast.ThisVar):
            table = self.prog.tlocals if isinstance(x, ast.SelfVar) else self.prog.clocals
            if x.name not in table:
                scope = "self" if isinstance(x, ast.SelfVar) else "this"
                table[x.name] = Variable(
                    x.name, scope, T.BUILTIN_TYPEDEFS["int64_t"], id=len(table)
                )
        elif isinstance(x, ast.Index) and isinstance(x.base, ast.Ident | ast.SelfVar):
            # and an undeclared associative array, keyed by its subscripts' types
            base = x.base
            table = self.prog.globals if isinstance(base, ast.Ident) else self.prog.tlocals
            if base.name not in table and (
                isinstance(base, ast.SelfVar) or self._undeclared(base.name)
            ):
                keys = [self._key(k, i) for i, k in enumerate(x.args)]
                scope = "global" if isinstance(base, ast.Ident) else "self"
                table[base.name] = Variable(
                    base.name, scope, T.BUILTIN_TYPEDEFS["int64_t"], keys, id=len(table)
                )
        if not isinstance(
            x, ast.Ident | ast.SelfVar | ast.ThisVar | ast.Index | ast.Member | ast.Unary
        ):
            self._expr(x)
            raise DError(
                "D_OP_LVAL", f"operator {op} requires modifiable lvalue as an operand", x.line
            )
        t = self._expr(x)
        if isinstance(x, ast.Ident) and x.ref[0] != "global":  # type: ignore[attr-defined]
            raise DError(
                "D_OP_LVAL", f"operator {op} requires modifiable lvalue as an operand", x.line
            )
        if not (t.is_arith() or t.is_pointer()):
            raise DError("D_OP_SCALAR", f"operator {op} requires operand of scalar type", x.line)
        return t

    def _x_Assign(self, e: ast.Assign) -> CType:
        if is_agg_target(e.target):
            raise DError(
                "D_AGG_SCALAR", "aggregations may only be assigned at statement level", e.line
            )
        vt = self._expr(e.value)
        target = e.target
        if (
            vt.is_void()
            and e.op != "="
            and isinstance(target, ast.Ident)
            and self._undeclared(target.name)
        ):
            raise DError(
                "D_VAR_UNDEF", f"{target.name} has not yet been declared or assigned", e.line
            )
        if vt.is_void() and isinstance(e.value, ast.Call):
            raise DError(
                "D_OP_INCOMPAT", f'operands have incompatible types: "void" {e.op} "void"', e.line
            )
        t = self._define_target(target, vt, e)
        if e.op != "=":
            bop = e.op[:-1]
            if t.is_string() or vt.is_string():
                raise DError(
                    "D_OP_INCOMPAT",
                    f'operands have incompatible types: "{t.name}" {e.op} "{vt.name}"',
                    e.line,
                )
            if bop in INT_OPS and not (t.is_int() and vt.is_int()):
                raise DError(
                    "D_OP_INT", f"operator {e.op} requires operands of integral type", e.line
                )
            if (
                not (t.is_arith() or (t.is_pointer() and bop in ("+", "-") and vt.is_int()))
                or vt.is_pointer()
            ):
                raise DError(
                    "D_OP_VFPTR",
                    f"operator {e.op} requires left-hand scalar operand of known size",
                    e.line,
                )
            if bop in ("/", "%") and self._const(e.value) == 0:
                raise DError("D_DIV_ZERO", "expression contains division by zero", e.line)
        else:
            if t.is_array() and not t.is_char_array():
                raise DError(
                    "D_OP_ARRFUN",
                    f'operator = may not be applied to operand of type "{t.name}"',
                    e.line,
                )
            # an integer becomes a pointer only as the constant 0 (dtrace's
            # dt_node_is_ptrcompat): `x = curthread; x = pid;` is refused
            int_to_ptr = t.is_pointer() and vt.is_int() and not self._is_null(e.value, vt)
            if int_to_ptr or not (
                assignable(t, vt)
                or ((t.is_string() or _is_dynamic(target)) and self._is_null(e.value, vt))
            ):
                raise DError(
                    "D_OP_INCOMPAT",
                    f'operands have incompatible types: "{t.name}" = "{vt.name}"',
                    e.line,
                )
        return t

    def _undeclared(self, name: str) -> bool:
        return not (
            name in self.prog.globals
            or name in self.enumerators
            or name in self.inlines
            or name in VARIABLES
            or name in FUNCTIONS
            or "`" in name
        )

    def _define_target(self, target: ast.Expr, vt: CType, e: ast.Assign) -> CType:
        """Type an assignment target, creating an undeclared variable from the value's type."""
        newtype = T.STRING if vt.is_char_array() else vt
        if isinstance(target, ast.Ident):
            name = target.name
            if self._undeclared(name):
                self.prog.globals[name] = Variable(
                    name, "global", newtype, id=len(self.prog.globals)
                )
            t = self._expr(target)
            if target.ref[0] != "global":  # type: ignore[attr-defined]
                raise DError(
                    "D_OP_WRITE",
                    f"operator {e.op} can only be applied to a writable variable",
                    e.line,
                )
            return t
        if isinstance(target, ast.SelfVar | ast.ThisVar):
            table = self.prog.tlocals if isinstance(target, ast.SelfVar) else self.prog.clocals
            if target.name not in table:
                scope = "self" if isinstance(target, ast.SelfVar) else "this"
                table[target.name] = Variable(target.name, scope, newtype, id=len(table))
            return self._expr(target)
        if isinstance(target, ast.Index):
            base = target.base
            if isinstance(base, ast.ThisVar) and base.name not in self.prog.clocals:
                raise DError(
                    "D_ARR_LOCAL",
                    f"local variables may not be used as associative arrays: {base.name}",
                    e.line,
                )
            if isinstance(base, ast.Ident | ast.SelfVar):
                table = self.prog.globals if isinstance(base, ast.Ident) else self.prog.tlocals
                name = base.name
                known = name in table or (
                    isinstance(base, ast.Ident) and (name in VARIABLES or name in self.inlines)
                )
                if not known:
                    keys = [self._key(k, i) for i, k in enumerate(target.args)]
                    scope = "global" if isinstance(base, ast.Ident) else "self"
                    table[name] = Variable(name, scope, newtype, keys, id=len(table))
            return self._expr(target)
        if isinstance(target, ast.Member | ast.Unary):
            t = self._expr(target)
            if isinstance(target, ast.Unary) and target.op != "*":
                raise DError(
                    "D_OP_LVAL", f"operator {e.op} requires modifiable lvalue as an operand", e.line
                )
            return t
        self._expr(target)
        raise DError(
            "D_OP_LVAL", f"operator {e.op} requires modifiable lvalue as an operand", e.line
        )

    # --- keys and subscripts --------------------------------------------------
    def _key(self, k: ast.Expr, i: int = 0, kind: str = "associative array") -> CType:
        what = None
        if isinstance(k, ast.AggVar):
            what = "aggregation"  # dynamic: an aggregation has no value to key by
        elif (
            isinstance(k, ast.Call)
            and k.name in FUNCTIONS
            and FUNCTIONS[k.name].kind != "func"
            and k.name not in VALUE_ACTIONS
        ):
            what = "void"
        if what is not None:
            raise DError(
                "D_KEY_TYPE",
                f"{what} expression may not be used as {kind} index: key #{i + 1}",
                k.line,
            )
        t = self._expr(k)
        if t.is_void():
            raise DError(
                "D_KEY_TYPE",
                f"void expression may not be used as {kind} index: key #{i + 1}",
                k.line,
            )
        if t.is_char_array():
            return T.STRING
        return t

    def _x_Index(self, e: ast.Index) -> CType:
        base = e.base
        if isinstance(base, ast.ThisVar) and base.name not in self.prog.clocals:
            raise DError(
                "D_ARR_LOCAL",
                f"local variables may not be used as associative arrays: {base.name}",
                e.line,
            )
        if isinstance(base, ast.AggVar):
            raise DError(
                "D_AGG_SCALAR", "aggregations may not be referenced in expressions", e.line
            )
        if isinstance(base, ast.Ident) and base.name == "args":
            return self._args(e)
        if isinstance(base, ast.Ident) and base.name == "uregs":
            return self._uregs(e)
        if (
            isinstance(base, ast.Ident)
            and base.name == "fds"
            and "fds" not in self.prog.globals
            and "fds" not in self.inline_arrays
        ):
            return self._fds(e)
        if isinstance(base, ast.Ident) and base.name in self.inline_arrays:
            return self._inline_call(e, base.name)
        if isinstance(base, ast.Ident | ast.SelfVar) and not (
            isinstance(base, ast.Ident) and (base.name in VARIABLES or base.name in self.inlines)
        ):
            table = self.prog.globals if isinstance(base, ast.Ident) else self.prog.tlocals
            v = table.get(base.name)
            if v is None:
                for k in e.args:
                    self._expr(k)  # dtrace resolves the keys before the array
                if isinstance(base, ast.Ident):
                    raise DError(
                        "D_IDENT_UNDEF",
                        f"failed to resolve {base.name}: Unknown variable name",
                        e.line,
                    )
                raise DError(
                    "D_VAR_UNDEF", f"{base.name} has not yet been declared or assigned", e.line
                )
            if v.keys is not None:
                keytypes = [self._key(k, i) for i, k in enumerate(e.args)]
                shown = base.name if isinstance(base, ast.Ident) else f"self->{base.name}"
                check_keys(shown, list(v.keys), keytypes, e.line)
                e.ref = ("assoc", v)  # type: ignore[attr-defined]
                base.ctype = v.type  # type: ignore[attr-defined]
                return v.type
            if len(e.args) != 1 or not (v.array or v.type.is_pointer() or v.type.is_string()):
                raise DError(
                    "D_ARR_BADREF",
                    f"cannot access scalar {base.name} as an associative array",
                    e.line,
                )
        bt = self._expr(base)
        if len(e.args) != 1:
            raise DError("D_ARR_BADREF", "scalar arrays take one subscript", e.line)
        it = self._expr(e.args[0])
        if not it.is_int():
            raise DError("D_ARR_BADREF", "array subscript must be of integral type", e.line)
        if bt.is_array():
            c = self._const(e.args[0])
            # a kernel struct's flexible array member (`struct upid numbers[]`)
            # has no count: its size is the object's business, as in C
            if c is not None and bt.r.count and (c < 0 or c >= bt.r.count):
                raise DError(
                    "D_ARR_BOUNDS", f"index outside array bounds: {c}, max is {bt.r.count}", e.line
                )
            e.ref = ("element", None)  # type: ignore[attr-defined]
            return bt.r.target  # type: ignore[return-value]
        if bt.is_pointer():
            e.ref = ("element", None)  # type: ignore[attr-defined]
            return bt.r.target  # type: ignore[return-value]
        if bt.is_string():
            e.ref = ("strchar", None)  # type: ignore[attr-defined]
            return T.CHAR
        raise DError(
            "D_ARR_BADREF", "operator [ ] may not be applied to operand of this type", e.line
        )

    def _uregs(self, e: ast.Index) -> CType:
        """uregs[R_xxx]: a saved user register, by a constant index (the
        R_ names of the D library: x86_64 pt_regs order, then 21-25 the
        segment and trap words dtrace-utils reads from task->thread)."""
        e.base.ref = ("builtin", "uregs")  # type: ignore[attr-defined]
        e.base.ctype = T.VOID  # type: ignore[attr-defined]
        it = self._expr(e.args[0])
        c = self._const(e.args[0])
        if not it.is_int() or c is None:
            raise DError("D_UREGS_IDX", "uregs[ ] index must be an integer constant", e.line)
        if not 0 <= c < UREGS_COUNT:
            raise DError("D_UREGS_IDX", f"uregs[]: index out of bounds ({c})", e.line)
        e.ref = ("uregs", c)  # type: ignore[attr-defined]
        return T.ULONG

    def _fds(self, e: ast.Index) -> CType:
        """fds[fd]: io.d's fileinfo_t for the current process's descriptor fd
        (dtrace's inline array over the task's file table); each engine fills
        it from where it sees files (the kernel's struct file, or /proc)."""
        e.base.ref = ("builtin", "fds")  # type: ignore[attr-defined]
        e.base.ctype = T.VOID  # type: ignore[attr-defined]
        keys = [self._key(k, i) for i, k in enumerate(e.args)]
        check_keys("fds", [T.INT], keys, e.line)
        self._library_types("fileinfo_t")
        e.ref = ("fds", None)  # type: ignore[attr-defined]
        return self.typedefs["fileinfo_t"]

    def _args(self, e: ast.Index) -> CType:
        e.base.ref = ("builtin", "args")  # type: ignore[attr-defined]
        e.base.ctype = T.VOID  # type: ignore[attr-defined]
        it = self._expr(e.args[0])
        c = self._const(e.args[0])
        if not it.is_int():
            raise DError("D_ARGS_IDX", "args[ ] index must be an integer", e.line)
        argtypes = self._probe_args or []
        if c is None:
            e.ref = ("args", None)  # type: ignore[attr-defined]
            return T.LONG
        if c < 0 or c >= len(argtypes):
            probes = self._clause.probes if self._clause is not None else None
            if probes and (
                c < 0
                # providers whose probes' argument counts are all known here
                or (not argtypes and all(p.provider in ("dtrace", "profile") for p in probes))
                or (argtypes and all(p.provider == "syscall" and p.name == "entry" for p in probes))
            ):
                raise DError(
                    "D_ARGS_IDX",
                    f"index {c} is out of range for {_probe_name(self._clause.probes[0])} args[ ]",
                    e.line,
                )
            e.ref = ("args", c)  # type: ignore[attr-defined]
            return T.LONG
        e.ref = ("args", c)  # type: ignore[attr-defined]
        return argtypes[c]


def _is_dynamic(x: ast.Expr) -> bool:
    """A thread-local or associative-array element: storing 0 there deletes it."""
    return isinstance(x, ast.SelfVar) or (
        isinstance(x, ast.Index) and getattr(x, "ref", ("",))[0] == "assoc"
    )


def _probe_name(p: Any) -> str:
    return f"{p.provider}:{p.module}:{p.function}:{p.name}"
