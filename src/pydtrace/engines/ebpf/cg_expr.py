"""Expressions: dispatch on the AST node (`_x_<Node>` methods: here, and
_x_Ident/_x_ThisVar/_x_SelfVar/_x_Index in cg_vars, _x_Member/_x_Stringof/
_x_Xlate in cg_memory, _x_StrLit in cg_strings), constants, builtin
variables, arithmetic, comparisons, casts, `*addr`, `?:`, assignment, and
subroutine calls (the lowering cg_subroutines.SUBROUTINES names)."""

from __future__ import annotations

from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.cg_context import (
    DIVZERO,
    MAX_ARGS,
    SELECT_SLOTS,
    SYS_NAME,
    CompilerBase,
    Value,
    task_path,
)
from pydtrace.engines.ebpf.cg_subroutines import SUBROUTINES
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9, R10
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# an operator with its operands swapped: x < y is y > x
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _short_literal(e: Any, strsize: int) -> bytes | None:
    """The bytes of a string literal short enough to compare unrolled."""
    if isinstance(e, ast.StrLit):
        data = e.value.encode("utf-8", "surrogateescape")[:strsize]
        if len(data) <= 64:
            return data
    return None


class ExprMixin(CompilerBase):
    def expr(self, e: ast.Expr) -> Value:
        self.clause_memory_reset()
        m = getattr(self, "_x_" + type(e).__name__, None)
        if m is None:
            raise self.unsupported(type(e).__name__.lower(), e)
        return m(e)

    def const(self, value: int, t: CType) -> Value:
        v = self.alloc(t)
        self.a.movi(v.reg, value)
        return v

    def _x_IntLit(self, e: ast.IntLit) -> Value:
        return self.const(T.wrap(e.value, e.ctype), e.ctype)  # type: ignore[attr-defined]

    _x_CharLit = _x_IntLit

    def _x_Sizeof(self, e: ast.Sizeof) -> Value:
        return self.const(e.value, e.ctype)  # type: ignore[attr-defined]

    _x_Offsetof = _x_Sizeof

    def builtin(self, name: str, e: ast.Expr) -> Value:
        a = self.a
        t: CType = e.ctype  # type: ignore[attr-defined]
        p = self.probe
        if name.startswith("arg") and name[3:].isdigit():
            i = int(name[3:])
            v = self.alloc(t)
            if i < MAX_ARGS:
                a.ldx(8, v.reg, R9, self.f_args + 8 * i)
            else:
                a.movi(v.reg, 0)
            return v
        strings = {
            "probeprov": p.provider,
            "probemod": p.module,
            "probefunc": p.function,
            "probename": p.name,
        }
        # a group's probefunc (and an instruction group's probename) are in its map
        dynamic = self.group is not None and (
            name == "probefunc" or (name == "probename" and self.group[0].startswith("i"))
        )
        if dynamic:
            v, _ = self.new_string()  # stays "" if the lookup could fail (it cannot)
            a.mov(R2, R9)
            a.alu("+", R2, imm=self.f_sys)
            a.ld_map(R1, "sys_" + self.group[0])
            a.call("map_lookup_elem")
            missing = a.new_label("nofunc")
            a.jmp("==", R0, missing, imm=0)
            a.mov(v.reg, R0)
            off = SYS_NAME + (L.align8(self.ssize) if name == "probename" else 0)
            a.alu("+", v.reg, imm=off)
            a.place(missing)
            return v
        if name in strings:
            return self.const_string(strings[name])
        if name in ("args", "curpsinfo", "curlwpsinfo", "curcpu"):  # the probe's provider's
            from pydtrace.engines.ebpf.providers import builtin

            return builtin(self, name, t)
        if name in ("id", "epid"):
            v = self.alloc(t)
            self.probe_id_to(v.reg)
            return v
        if name in ("cwd", "root"):  # d_path of the task's fs->pwd / fs->root
            return self.task_fs_path("pwd" if name == "cwd" else "root")  # cg_files
        if name in ("caller", "ucaller"):
            return self.load_caller(name == "ucaller")
        if name == "execname":
            v, _ = self.new_string(by_call=True)
            self.current_comm(v.reg)
            return v
        v = self.alloc(t)
        if name in ("pid", "tid", "uid", "gid"):
            # each helper returns two u32: pid (tgid) / gid above, tid / uid below
            self.current_ids("pid" if name in ("pid", "tid") else "uid")
            a.mov(v.reg, R0)
            if name in ("pid", "gid"):
                a.alu(">>", v.reg, imm=32)
            else:
                a.alu("=", v.reg, v.reg, wide=False)
        elif name == "cpu":
            a.call("get_smp_processor_id")
            a.mov(v.reg, R0)
        elif name == "timestamp":
            a.call("ktime_get_ns")
            a.mov(v.reg, R0)
        elif name == "walltimestamp":
            a.call("ktime_get_ns")
            a.mov(v.reg, R0)
            a.ld_wall_offset(R1, self.boot_offset)
            a.alu("+", v.reg, R1)
        elif name == "errno":
            a.ldx(8, v.reg, R9, self.f_errno)
        elif name in ("ipl", "stackdepth", "ustackdepth"):
            a.movi(v.reg, 0)
        elif name == "curthread":
            self.current_task(v.reg)
        elif name == "ppid":
            parent, tgid = task_path("real_parent", "tgid")
            self.current_task(v.reg)
            self.kernel_load(v.reg, v.reg, parent.offset, 8)
            self.kernel_load(v.reg, v.reg, tgid.offset, 4)
        else:
            self.free(v)
            raise self.unsupported(f"the built-in variable {name}", e)
        return v

    def kernel_load(self, out: int, addr: int, off: int, size: int) -> None:
        """out = the unsigned size-byte value at kernel address addr+off (0 if unreadable)."""
        a = self.a
        a.mov(R3, addr)
        a.alu("+", R3, imm=off)
        word = self.read_to_word("probe_read_kernel", size)
        a.ldx(size, out, R9, word)

    def wrap(self, reg: int, t: CType) -> None:
        """Cut a 64-bit value to integer type t (sign- or zero-extended back to 64 bits)."""
        a = self.a
        r = t.r
        if r.kind == "enum":
            size, signed = 4, True
        elif r.kind == "int":
            size, signed = r.size, r.signed
            if r is T.BOOL:
                skip = a.new_label("bool")
                a.jmp("==", reg, skip, imm=0)
                a.movi(reg, 1)
                a.place(skip)
                return
        else:
            return
        if size >= 8:
            return
        bits = 64 - 8 * size
        a.alu("<<", reg, imm=bits)
        a.alu("s>>" if signed else ">>", reg, imm=bits)

    def _x_Unary(self, e: ast.Unary) -> Value:
        op = e.op
        if op in ("++", "--"):
            return self.incdec(e.operand, 1 if op == "++" else -1, prefix=True)
        if op == "*":
            return self.deref(e)
        if op == "&":
            v = self.address(e.operand)
            v.ctype = e.ctype  # type: ignore[attr-defined]
            return v
        a = self.a
        v = self.expr(e.operand)
        if op == "-":
            a.neg(v.reg)
        elif op == "~":
            a.alu("^", v.reg, imm=-1)
        elif op == "!":
            yes = a.new_label("not")
            r = v.reg
            a.mov(R1, r)
            a.movi(r, 1)
            a.jmp("==", R1, yes, imm=0)
            a.movi(r, 0)
            a.place(yes)
        v.ctype = e.ctype  # type: ignore[attr-defined]
        return v

    def deref(self, e: ast.Unary) -> Value:
        """*addr: scratch memory or kernel memory (cg_memory); an unreadable
        address faults (invalid address, the address as value)."""
        peek = self.copyin_scalar(e)  # *(T *)copyin(addr, sizeof (T))
        if peek is not None:
            return self.user_scalar(*peek)
        return self.load_lvalue(e)

    def _x_Postfix(self, e: ast.Postfix) -> Value:
        return self.incdec(e.operand, 1 if e.op == "++" else -1, prefix=False)

    def incdec(self, target: ast.Expr, delta: int, prefix: bool) -> Value:
        t: CType = target.ctype  # type: ignore[attr-defined]
        if t.is_pointer():
            delta *= max(1, t.r.target.r.size)  # type: ignore[union-attr]
        a = self.a
        old = self.expr(target)
        new = self.alloc(t)
        a.mov(new.reg, old.reg)
        a.alu("+", new.reg, imm=delta)
        self.wrap(new.reg, t)
        self.store(target, new)
        if prefix:
            self.free(old)
            return new
        self.free(new)
        return old

    def _x_Binary(self, e: ast.Binary) -> Value:
        op = e.op
        a = self.a
        t: CType = e.ctype  # type: ignore[attr-defined]
        if op in ("&&", "||", "^^"):
            x = self.expr(e.left)
            out = a.new_label("logic")
            self.normalize(x.reg)
            if op == "&&":
                a.jmp("==", x.reg, out, imm=0)
            elif op == "||":
                a.jmp("!=", x.reg, out, imm=0)
            if op != "^^":
                # x is dead on this path: the right side may use its register
                self.free(x)
                self.spill_region()
                outer = self.branch()
            y = self.expr(e.right)
            self.normalize(y.reg)
            if op == "^^":
                self.reload(x, y)
                a.alu("^", x.reg, y.reg)
            else:
                a.mov(x.reg, y.reg)
            self.free(y)
            if op != "^^":
                self.end_branch(outer)
                self.claim(x)
            a.place(out)
            x.ctype = t
            return x
        if op == ",":
            self.free(self.expr(e.left))
            return self.expr(e.right)
        if op in ("<", "<=", ">", ">=", "==", "!=") and getattr(e, "strcmp", False):
            ls, rs = e.left.ctype.is_string(), e.right.ctype.is_string()  # type: ignore[attr-defined]
            if ls != rs:
                # a string against an integer (NULL): the integer reads as "" (user engine)
                x = self.expr(e.left)
                y = self.expr(e.right)
                self.reload(x, y)
                if rs:
                    x, y = y, x
                self.free(y)
                self.string_compare_literal(x, b"", op if ls else _FLIP[op])
                x.ctype = t
                return x
            lit = _short_literal(e.right, self.strsize) or _short_literal(e.left, self.strsize)
            if lit is not None and e.left.ctype.is_string() and e.right.ctype.is_string():  # type: ignore[attr-defined]
                flip = _short_literal(e.right, self.strsize) is None
                x = self.expr(e.left if not flip else e.right)
                self.string_compare_literal(x, lit, _FLIP[op] if flip else op)
                x.ctype = t
                return x
        if op in ("+", "-"):
            p = self.pointer_arith(e)
            if p is not None:
                return p
        x = self.expr(e.left)
        y = self.expr(e.right)
        self.reload(x, y)
        if op in ("<", "<=", ">", ">=", "==", "!="):
            if getattr(e, "strcmp", False):
                if not (e.left.ctype.is_string() and e.right.ctype.is_string()):  # type: ignore[attr-defined]
                    raise self.unsupported("comparing strings with pointers", e)
                self.string_compare(x, y, op)
            else:
                ot: CType = getattr(e, "optype", T.LONG)
                if not ot.is_signed():
                    self.wrap(x.reg, ot)
                    self.wrap(y.reg, ot)
                jop = op if not ot.is_signed() or op in ("==", "!=") else "s" + op
                r = x.reg
                a.mov(R1, r)
                yes = a.new_label("cmp")
                a.movi(r, 1)
                a.jmp(jop, R1, yes, src=y.reg)
                a.movi(r, 0)
                a.place(yes)
            self.free(y)
            x.ctype = t
            return x
        lt: CType = e.left.ctype  # type: ignore[attr-defined]
        rt: CType = e.right.ctype  # type: ignore[attr-defined]
        if t.is_pointer() or lt.is_pointer() or rt.is_pointer():
            self.free(x)
            self.free(y)
            raise self.unsupported("pointer arithmetic", e)
        if not t.is_int():
            raise self.unsupported(f"operator {op} on {t}", e)
        signed = t.is_signed()
        if op in ("/", "%"):
            ok = a.new_label("div")
            a.jmp("!=", y.reg, ok, imm=0)
            self.fault(DIVZERO)
            a.place(ok)
            if signed:
                # magnitudes, then the sign when the operands' signs differ (as dtrace)
                a.mov(R4, x.reg)
                a.alu("^", R4, y.reg)
                for r in (x.reg, y.reg):
                    pos = a.new_label("abs")
                    a.jmp("s>=", r, pos, imm=0)
                    a.neg(r)
                    a.place(pos)
                a.alu(op, x.reg, y.reg)
                pos = a.new_label("sign")
                a.jmp("s>=", R4, pos, imm=0)
                a.neg(x.reg)
                a.place(pos)
            else:
                a.alu(op, x.reg, y.reg)
        elif op in ("<<", ">>"):
            a.alu("&", y.reg, imm=63)
            a.alu("s>>" if op == ">>" and signed else op, x.reg, y.reg)
        elif op in ("+", "-", "*", "&", "|", "^"):
            a.alu(op, x.reg, y.reg)
        else:
            raise self.unsupported(f"operator {op}", e)
        self.free(y)
        x.ctype = t
        return x

    def normalize(self, reg: int) -> None:
        """reg = reg != 0."""
        a = self.a
        skip = a.new_label("bool")
        a.jmp("==", reg, skip, imm=0)
        a.movi(reg, 1)
        a.place(skip)

    def _x_Cond(self, e: ast.Cond) -> Value:
        """c ? x : y: the value of the arm taken, as select() leaves it (on
        strings the pointer of that arm's buffer: nothing is copied)."""
        return self.select(e)

    def spill_region(self) -> None:
        """Spill every live value of the current region (before code on one path
        only, so that it has all of r6-r8: values of the region cannot be spilled
        inside it)."""
        while any(v.region == self.region for v in self.live):
            self.spill_one(())

    def select(self, e: ast.Cond, fix: Any = None) -> Value:
        """c ? x : y: each arm stores its value in a slot (no register is held
        across the arms, so they may be as deep as the top level), read back
        after the join. An integer's slot is a frame word: the kernel's
        verifier tracks the liveness of every stack slot written, at a cost
        that grew execsnoop's verification from 2.5 to 7 ms a program. A
        pointer's is on the stack, where the verifier keeps its type."""
        a = self.a
        t: CType = e.ctype  # type: ignore[attr-defined]
        c = self.expr(e.cond)
        other, end = a.new_label("else"), a.new_label("fi")
        self.free(c)
        self.spill_region()
        framed = t.is_int() and self.select_depth < SELECT_SLOTS
        if framed:
            base, at = R9, self.select_slot(self.select_depth)
            self.select_depth += 1
        elif self.free_slots:
            base, at = R10, self.free_slots.pop(0)
        else:
            raise self.unsupported("an expression this deep", e)
        a.jmp("==", c.reg, other, imm=0)
        for arm, last in ((e.then, False), (e.other, True)):
            outer = self.branch()
            x = self.expr(arm)
            a.stx(8, base, at, x.reg)
            self.free(x)
            self.end_branch(outer)
            if not last:
                a.ja(end)
                a.place(other)
        a.place(end)
        v = self.alloc(t)
        a.ldx(8, v.reg, base, at)
        if framed:
            self.select_depth -= 1
        else:
            self.free_slots.insert(0, at)
        if fix is not None:
            fix(v)
        v.ctype = t
        return v

    def _x_Cast(self, e: ast.Cast) -> Value:
        t: CType = e.ctype  # type: ignore[attr-defined]
        ot: CType = e.operand.ctype  # type: ignore[attr-defined]
        if t.is_string() or ot.is_string() and not t.is_string():
            if t.is_string() and ot.is_string():
                return self.expr(e.operand)
            if t.is_string() and (ot.is_pointer() or ot.is_int() or ot.is_array()):
                return self.string_at(self.expr(e.operand))
            raise self.unsupported(f"casts between strings and {ot if t.is_string() else t}", e)
        v = self.expr(e.operand)
        if t.is_void():
            a = self.a
            a.movi(v.reg, 0)
        elif t.is_int() or t.is_pointer():
            self.wrap(v.reg, t)
        v.ctype = t
        return v

    def _x_Assign(self, e: ast.Assign) -> Value:
        t: CType = e.ctype  # type: ignore[attr-defined]
        vt: CType = e.value.ctype  # type: ignore[attr-defined]
        if e.op == "=":
            if t.is_string() and vt.is_int():  # NULL (the checker allows no other integer)
                return self.clear_string(e.target)
            if t.is_string() and not vt.is_string():
                # the string at that address, as the user engine (NULL faults)
                v = self.string_at(self.expr(e.value))
            else:
                v = self.expr(e.value)
            if t.is_int():
                self.wrap(v.reg, t)
            self.store(e.target, v)
            v.ctype = t
            return v
        bop = e.op[:-1]
        fake = ast.Binary(bop, e.target, e.value, line=e.line)
        fake.ctype = t  # type: ignore[attr-defined]
        fake.pc = getattr(e, "pc", 0)  # type: ignore[attr-defined]
        if t.is_arith():
            fake.ctype = T.arith_conv(t, vt) if bop not in ("<<", ">>") else T.promote(t)  # type: ignore[attr-defined]
        v = self._x_Binary(fake)
        self.wrap(v.reg, t)
        self.store(e.target, v)
        v.ctype = t
        return v

    def _x_Call(self, e: ast.Call) -> Value:
        """A subroutine: cg_subroutines.SUBROUTINES names its lowering."""
        lower = SUBROUTINES.get(e.name)
        if lower is None:
            raise self.unsupported(f"{e.name}()", e)
        return lower(self, e)  # type: ignore[arg-type]
