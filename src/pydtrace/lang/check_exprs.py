"""Typing expressions: the walk (`_expr` gives every node its C type and
program counter, dispatching to `_x_<Node>`), literals, operators,
conditionals, casts, sizeof, offsetof, stringof, translations (xlate),
function calls and member access.

The `_x_` methods for identifiers, variables, assignment and subscripts are in
check_vars. A part of checker.Checker; see there for the whole.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS
from pydtrace.lang.check_actions import VALUE_ACTIONS
from pydtrace.lang.check_compat import stringish
from pydtrace.lang.check_consts import int_literal_type
from pydtrace.lang.errors import DError
from pydtrace.lang.limits import EXPANDED, NESTING
from pydtrace.lang.procfs import UNTRANSLATED
from pydtrace.lang.types import CType

INT_OPS = {"<<", ">>", "&", "^", "|"}
REL_OPS = {"<", "<=", ">", ">=", "==", "!="}
LOGIC_OPS = {"&&", "||", "^^"}


class Expressions:
    """The expression walk and the operators (a part of checker.Checker)."""

    def _expr(self, e: ast.Expr) -> CType:
        self._expand(1, 1, e.line)
        self._depth += 1
        try:
            t = self._expr_inner(e)
        finally:
            self._depth -= 1
        e.ctype = t  # type: ignore[attr-defined]
        self._pc += 1
        e.pc = self._pc  # type: ignore[attr-defined]
        return t

    def _expand(self, depth: int, nodes: int, line: int) -> None:
        """Count `nodes` more expression nodes, reaching `depth` levels below the
        current one: a node itself (1, 1), or an inline or translation expanded
        at its use (its definition's depth and size). Past the limits.py bounds,
        which keep the engines' recursion and time bounded, an error."""
        deepest = self._depth + depth
        self._nodes += nodes
        if deepest > NESTING + 1:  # + 1: the parser's levels do not count the leaves
            raise DError(
                "D_EXPR_DEPTH",
                f"expression nested too deeply (more than {NESTING} levels"
                " with inlines and translators expanded)",
                line,
            )
        if self._nodes > EXPANDED:
            raise DError(
                "D_EXPR_SIZE",
                f"expression too large (more than {EXPANDED} nodes"
                " with inlines and translators expanded)",
                line,
            )
        self._deepest = max(self._deepest, deepest)

    def _expr_inner(self, e: ast.Expr) -> CType:
        m = getattr(self, "_x_" + type(e).__name__)
        return m(e)

    def _x_IntLit(self, e: ast.IntLit) -> CType:
        return int_literal_type(e)

    def _x_CharLit(self, e: ast.CharLit) -> CType:
        # as in C, a character constant is an int (sizeof('c') is 4); dtrace
        # types a longer multi-character one by its value, as an integer constant
        v = e.value
        if v <= 0x7FFFFFFF:
            return T.INT
        if v <= 0xFFFFFFFF:
            return T.UINT
        return T.LONG if v <= 0x7FFFFFFFFFFFFFFF else T.ULONG

    def _x_StrLit(self, e: ast.StrLit) -> CType:
        return T.STRING

    def _x_Unary(self, e: ast.Unary) -> CType:
        op = e.op
        if op in ("++", "--"):
            t = self._lvalue(e.operand, op)
            return t
        if op == "&":
            o = e.operand
            if isinstance(o, ast.AggVar):
                raise DError("D_ADDROF_VAR", "cannot take address of dynamic variable", e.line)
            t = self._expr(o)
            # every D variable lives in dtrace's own storage, which has no address
            if isinstance(o, ast.SelfVar | ast.ThisVar) or (
                isinstance(o, ast.Ident) and o.ref[0] in ("global", "builtin")
            ):  # type: ignore[attr-defined]
                raise DError("D_ADDROF_VAR", "cannot take address of dynamic variable", e.line)
            if isinstance(o, ast.Index) and getattr(o, "ref", None) and o.ref[0] == "assoc":  # type: ignore[attr-defined]
                raise DError("D_ADDROF_VAR", "cannot take address of dynamic variable", e.line)
            if isinstance(o, ast.Member) and getattr(o, "member", None) and o.member.bits:  # type: ignore[attr-defined]
                raise DError("D_ADDROF_BITFIELD", "cannot take address of bit-field", e.line)
            if not isinstance(o, ast.Ident | ast.Index | ast.Member | ast.Unary):
                raise DError("D_ADDROF_LVAL", "unacceptable operand for unary & operator", e.line)
            return T.pointer(t)
        t = self._expr(e.operand)
        if op == "*":
            if t.is_array():
                return t.r.target  # type: ignore[return-value]
            if not t.is_pointer():
                raise DError("D_DEREF_NONPTR", "cannot dereference non-pointer type", e.line)
            assert t.r.target is not None
            if t.r.target.is_void():
                raise DError("D_DEREF_VOID", "cannot dereference pointer to void", e.line)
            if t.r.target.r.kernel:
                self.prog.kernel_reads.append((f"*{_spelled(e.operand)}", e.line))
            return t.r.target
        if op in ("-", "+"):
            if not t.is_arith():
                raise DError(
                    "D_OP_ARITH", f"operator {op} requires an operand of arithmetic type", e.line
                )
            return t  # D keeps the operand's type (no promotion to int)
        if op == "~":
            if not t.is_int():
                raise DError("D_OP_INT", "operator ~ requires an operand of integral type", e.line)
            return t
        if op == "!":
            if not t.is_scalar():
                raise DError("D_OP_SCALAR", "operator ! requires an operand of scalar type", e.line)
            return T.INT
        raise DError("D_SYNTAX", f"unknown operator {op}", e.line)

    def _x_Postfix(self, e: ast.Postfix) -> CType:
        return self._lvalue(e.operand, e.op)

    def _x_Binary(self, e: ast.Binary) -> CType:
        op = e.op
        lt = self._expr(e.left)
        rt = self._expr(e.right)
        if op == ",":
            if getattr(e.left, "actfunc", False) or getattr(e.right, "actfunc", False):
                raise DError("D_OP_ACT", "operator , operands cannot be actions", e.line)
            return rt
        if op in LOGIC_OPS:
            if not lt.is_scalar() or not rt.is_scalar():
                raise DError(
                    "D_OP_SCALAR", f"operator {op} requires operands of scalar type", e.line
                )
            return T.INT
        if op in REL_OPS:
            if lt.is_string() or rt.is_string() or lt.is_char_array() or rt.is_char_array():
                ok = all(
                    stringish(t) or self._is_null(x, t) for x, t in ((e.left, lt), (e.right, rt))
                )
                if not ok:
                    raise DError(
                        "D_OP_INCOMPAT",
                        f'operands have incompatible types: "{lt.name}" {op} "{rt.name}"',
                        e.line,
                    )
                e.strcmp = True  # type: ignore[attr-defined]
                return T.INT
            if not (lt.is_scalar() and rt.is_scalar()):
                raise DError(
                    "D_OP_SCALAR", f"operator {op} requires operands of scalar type", e.line
                )
            if lt.is_arith() and rt.is_arith():
                e.optype = T.d_arith_conv(lt, rt)  # type: ignore[attr-defined]
            else:
                e.optype = T.ULONG  # type: ignore[attr-defined]
            return T.INT
        if op in INT_OPS:
            if not lt.is_int() or not rt.is_int():
                raise DError(
                    "D_OP_INT", f"operator {op} requires operands of integral type", e.line
                )
            if op in ("<<", ">>"):
                return lt  # the left operand's type, unpromoted (dt_cook_op2)
            return T.d_arith_conv(lt, rt)
        # arithmetic
        if lt.is_arith() and rt.is_arith():
            if op in ("/", "%"):
                c = self._const(e.right)
                if c == 0:
                    raise DError("D_DIV_ZERO", "expression contains division by zero", e.line)
            return T.d_arith_conv(lt, rt)
        if op in ("+", "-") and (lt.is_pointer() or lt.is_array()) and rt.is_int():
            pt = lt if lt.is_pointer() else T.pointer(lt.r.target)  # type: ignore[arg-type]
            if pt.r.target is not None and pt.r.target.is_void():
                raise DError(
                    "D_OP_INCOMPAT",
                    f'operands have incompatible types: "{lt.name}" {op} "{rt.name}"',
                    e.line,
                )
            return pt
        if op == "+" and lt.is_int() and (rt.is_pointer() or rt.is_array()):
            return rt if rt.is_pointer() else T.pointer(rt.r.target)  # type: ignore[arg-type]
        if op == "-" and lt.is_pointer() and rt.is_pointer():
            return T.LONG
        raise DError(
            "D_OP_INCOMPAT",
            f'operands have incompatible types: "{lt.name}" {op} "{rt.name}"',
            e.line,
        )

    def _x_Cond(self, e: ast.Cond) -> CType:
        ct = self._expr(e.cond)
        if not ct.is_scalar():
            raise DError("D_OP_SCALAR", "operator ?: expression must be of scalar type", e.line)
        a = self._expr(e.then)
        b = self._expr(e.other)
        if getattr(e.then, "actfunc", False) or getattr(e.other, "actfunc", False):
            raise DError("D_OP_ACT", "action cannot be used in a conditional context", e.line)
        if a.is_arith() and b.is_arith():
            return T.d_arith_conv(a, b)
        if (a.is_string() or a.is_char_array()) and (b.is_string() or b.is_char_array()):
            return T.STRING
        if a.same(b):
            return a
        if a.is_pointer() and b.is_int() and self._const(e.other) == 0:
            return a
        if b.is_pointer() and a.is_int() and self._const(e.then) == 0:
            return b
        if a.is_pointer() and b.is_pointer():
            return a
        raise DError(
            "D_OP_INCOMPAT",
            f'operator ?: operands must have compatible types: "{a.name}" and "{b.name}"',
            e.line,
        )

    def _x_Cast(self, e: ast.Cast) -> CType:
        t = self.typename(e.type)
        ot = self._expr(e.operand)
        if isinstance(e.operand, ast.Xlate) and ot.is_pointer():
            # a translated object exists only as its members; it has no address
            raise DError(
                "D_CAST_INVAL",
                f'invalid cast expression: "pointer to translated data" to "{t.name}"',
                e.line,
            )
        if t.is_void() or t.same(ot):
            return t
        if t.is_string():
            if not (ot.is_string() or ot.is_char_array() or ot.is_pointer() or ot.is_int()):
                raise DError(
                    "D_CAST_INVAL", f'invalid cast expression: "{ot.name}" to "{t.name}"', e.line
                )
            return t
        if (t.is_arith() or t.is_pointer()) and (ot.is_arith() or ot.is_pointer() or ot.is_array()):
            return t
        if ot.is_string() and (t.is_pointer() or t.is_int()):
            return t
        raise DError("D_CAST_INVAL", f'invalid cast expression: "{ot.name}" to "{t.name}"', e.line)

    def _x_Sizeof(self, e: ast.Sizeof) -> CType:
        if e.type is not None:
            t = self.typename(e.type)
        else:
            assert e.operand is not None
            t = self._expr(e.operand)
            ref = getattr(e.operand, "ref", None)
            if isinstance(e.operand, ast.Ident) and ref is not None and ref[0] == "inline":
                t = ref[1].ctype  # dtrace sizes an inline by its value's type: sizeof(NULL) is 4
            if (
                isinstance(e.operand, ast.Member)
                and getattr(e.operand, "member", None)
                and e.operand.member.bits
            ):  # type: ignore[attr-defined]
                raise DError("D_SIZEOF_BITFIELD", "cannot apply sizeof to a bit-field", e.line)
        size = self.strsize if t.is_string() else t.r.size if t.r.kind != "enum" else 4
        if isinstance(e.operand, ast.StrLit):
            size = (
                len(e.operand.value.encode("utf-8", "surrogateescape")) + 1
            )  # a literal's own size, with its NUL
        if t.is_void() or t.r.kind == "func" or (t.is_struct() and t.r.members is None):
            raise DError(
                "D_SIZEOF_TYPE", "cannot apply sizeof to an operand of unknown size", e.line
            )
        e.value = size  # type: ignore[attr-defined]
        return T.typedef("size_t", T.ULONG)

    def _x_Offsetof(self, e: ast.Offsetof) -> CType:
        t = self.typename(e.type)
        if not t.is_struct() or t.r.members is None:  # (only declared: no layout)
            raise DError(
                "D_OFFSETOF_TYPE", "offsetof operand must be a struct or union type", e.line
            )
        m = t.member(e.member)
        if m is None:
            raise DError(
                "D_UNKNOWN",
                f"failed to determine offset of {e.member}: Member name not found",
                e.line,
            )
        if m.bits:
            raise DError(
                "D_OFFSETOF_BITFIELD", f"cannot take offset of a bit-field: {e.member}", e.line
            )
        e.value = m.offset  # type: ignore[attr-defined]
        return T.typedef("size_t", T.ULONG)

    def _x_Stringof(self, e: ast.Stringof) -> CType:
        t = self._expr(e.operand)
        if t.is_void() or t.is_struct():
            raise DError(
                "D_STRINGOF_TYPE", f"cannot apply stringof to a value of type {t.name}", e.line
            )
        return T.STRING

    def _x_Xlate(self, e: ast.Xlate) -> CType:
        t = self.typename(e.type)
        at = self._expr(e.operand)
        out = t.r.target if t.is_pointer() and t.r.target is not None else t
        if not out.is_struct():
            raise DError("D_XLATE_SOU", "translator output type must be a struct or union", e.line)
        node = self._find_translator(out, at)
        if node is None:
            raise DError(
                "D_XLATE_NONE", f'cannot translate from "{at.name}" to "{out.name}"', e.line
            )
        e.translator = node  # type: ignore[attr-defined]
        if getattr(node, "library", False):  # a kernel task's members are read
            self.prog.kernel_reads.append((f"xlate<{t.name}>", e.line))
        depth, nodes = node.cost  # type: ignore[attr-defined]
        self._expand(depth, nodes, e.line)  # the engines evaluate its members here
        return t

    def _x_Call(self, e: ast.Call) -> CType:
        b = FUNCTIONS.get(e.name)
        if b is None:
            raise DError("D_FUNC_UNDEF", f"undefined function name: {e.name}", e.line)
        if b.kind == "agg":
            raise DError(
                "D_CG_EXPR",
                f"aggregating function {e.name}( ) may not be called from a D expression (D program context required)",
                e.line,
            )
        if b.kind == "action" and e.name not in VALUE_ACTIONS:
            # An action used as a value has type void; operators and callers reject it.
            self._proto(e, b)
            e.actfunc = True  # type: ignore[attr-defined]
            return T.VOID
        if b.destructive:
            self.prog.destructive = True
        e.builtin = b  # type: ignore[attr-defined]
        t = self._proto(e, b)
        if e.name in ("copyinto", "bcopy"):
            i = 2 if e.name == "copyinto" else 1
            if _not_alloca(e.args[i], self._const(e.args[i])):
                raise DError(
                    "D_PROTO_ARG",
                    f"{e.name}( ) argument #{i + 1} is incompatible with prototype:\n"
                    "\tprototype: alloca pointer\n\t argument: non-alloca pointer",
                    e.line,
                )
        if e.name in ("alloca", "copyin"):
            # copyin(a, n) allocates n bytes of scratch space as alloca(n) does
            c = self._const(e.args[-1])
            if c is not None and c > self.scratchsize:
                raise DError(
                    "D_ALLOCA_SIZE",
                    f"alloca({c}) size larger than scratchsize {self.scratchsize}",
                    e.line,
                )
        if e.name == "inet_ntoa6" and len(e.args) > 1:
            # the engines decide at compile time how to print IPv4 in IPv6
            strict = self._const(e.args[1])
            if strict is None:
                raise DError(
                    "D_PROTO_ARG", "inet_ntoa6( ) argument #2 must be an integer constant", e.line
                )
            e.strict = strict != 0  # type: ignore[attr-defined]
        return t

    def _x_Member(self, e: ast.Member) -> CType:
        bt = self._expr(e.base)
        if e.arrow:
            if not bt.is_pointer():
                raise DError("D_OP_PTR", "operator -> must be applied to a pointer", e.line)
            st = bt.r.target
            assert st is not None
            if not st.is_struct():
                raise DError(
                    "D_OP_SOU",
                    f'operator -> cannot be applied to pointer to type "{st.name}"; must be applied to a struct or union pointer',
                    e.line,
                )
        else:
            st = bt
            if not st.is_struct():
                raise DError(
                    "D_OP_SOU",
                    f'operator . cannot be applied to type "{bt.name}"; must be applied to a struct or union',
                    e.line,
                )
        if st.r.members is None:
            raise DError(
                "D_OP_INCOMPLETE",
                f"operator {'->' if e.arrow else '.'} cannot be applied to a forward declaration:"
                f" no {st.r.name} definition is available",
                e.line,
            )
        m = st.member(e.name)
        if m is None:
            raise DError("D_TYPE_MEMBER", f"{e.name} is not a member of {st.name}", e.line)
        if e.arrow and e.name in UNTRANSLATED.get(st.r.tag or "", ()) and _translated(e.base):
            raise DError(
                "D_XLATE_NOCONV",
                f"translator does not define conversion for member: {e.name}",
                e.line,
            )
        e.member = m  # type: ignore[attr-defined]
        if st.r.kernel and e.arrow:
            self.prog.kernel_reads.append((_spelled(e), e.line))
        return m.type


def _not_alloca(e: ast.Expr, value: int | None) -> bool:
    """Is e evidently no pointer into scratch space (where copyinto and bcopy
    must write): a constant, a string, or the address of a variable or symbol."""
    while isinstance(e, ast.Cast):
        e = e.operand
    if value is not None or isinstance(e, ast.StrLit):
        return True
    if getattr(e, "ctype", None) is not None and e.ctype.is_string():  # type: ignore[attr-defined]
        return True
    return isinstance(e, ast.Unary) and e.op == "&" and isinstance(e.operand, ast.Ident)


def _translated(e: ast.Expr) -> bool:
    """Is e a pointer dtrace makes by translation from the kernel's task:
    curpsinfo, curlwpsinfo or a provider's args[N]."""
    if isinstance(e, ast.Index):
        e = e.base
    return isinstance(e, ast.Ident) and e.name in ("curpsinfo", "curlwpsinfo", "args")


def _spelled(e: ast.Expr) -> str:
    """A short spelling of a member path for messages (curthread->mm->mmap_base)."""
    if isinstance(e, ast.Ident):
        return e.name
    if isinstance(e, ast.Member):
        return f"{_spelled(e.base)}{'->' if e.arrow else '.'}{e.name}"
    return "(...)"
