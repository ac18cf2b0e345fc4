"""The user-space engine's interpreter: a checked program compiled once into
Python closures, run for each probe firing.

Each expression node becomes a function of the firing context. Faults
(division by zero, bad address) raise ProbeFault; the clause is abandoned
and its record discarded, and the engine fires ERROR, as dtrace does.
"""

from __future__ import annotations

import os
import random
import struct
import threading
import time
from collections.abc import Callable

from pydtrace.consume.records import BADADDR, BADINDEX, DIVZERO, ILLOP
from pydtrace.engines.user.actions import ActionsMixin, recorded
from pydtrace.engines.user.faults import ProbeFault
from pydtrace.engines.user.firing import Firing, Fn, Skip, uregs, ustack
from pydtrace.engines.user.memory import (
    MemoryFault,
    in_memory,
    string_bytes,
    type_size,
)
from pydtrace.engines.user.state import State, zero_of
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.program import CheckedProgram, ClauseInfo
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MASK64 = 0xFFFFFFFFFFFFFFFF


def absent(t: CType) -> Any:
    """What a dynamic variable that does not exist reads as: 0, or for a string a
    NULL string (as in dtrace: "" to printf and comparisons, a fault when traced)."""
    from pydtrace.engines.user.subroutines import NULL_STRING

    return NULL_STRING if t.is_string() else 0


class Compiler(ActionsMixin):
    """Turns annotated AST into closures over a State."""

    def __init__(
        self, state: State, prog: CheckedProgram, options: dict[str, Any] | None = None
    ) -> None:
        self.st = state
        self.prog = prog
        self.options = options or {}
        self.current: ClauseInfo | None = None  # the clause being compiled

    # --- clauses ---------------------------------------------------------------
    def clause(self, c: ClauseInfo) -> Callable[[Firing], None]:
        self.current = c  # whose action descriptions stmt() reads
        pred = self.expr(c.predicate) if c.predicate is not None else None
        body = [self.stmt(s) for s in c.body]

        pc = 8 * (c.line or 1)  # a positive stand-in for a BPF pc where none is known

        def run(f: Firing) -> None:
            f.ts = f.at
            f.wts = 0
            try:
                if pred is not None and not _truth(pred(f)):
                    raise Skip
                for s in body:
                    s(f)
            except (Skip, ProbeFault):
                raise
            except MemoryFault as mf:
                raise ProbeFault(mf.code, mf.value, pc) from None
            except RecursionError:
                raise ProbeFault(ILLOP, 0, pc) from None
            except (
                TypeError,
                ValueError,
                AttributeError,
                IndexError,
                KeyError,
                OverflowError,
                ZeroDivisionError,
            ):
                # an operation this engine cannot perform on these values: fault, never a traceback
                raise ProbeFault(ILLOP, 0, pc) from None

        return run

    def stmt(self, s: ast.Stmt) -> Callable[[Firing], None]:
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Assign) and hasattr(e, "agg"):
                return self.aggregate(e)
            if (
                isinstance(e, ast.Call)
                and getattr(e, "builtin", None)
                and e.builtin.kind == "action"
            ):  # type: ignore[attr-defined]
                assert self.current is not None
                return self.action(e, self.current.action(e))
            fn = self.expr(e)
            return fn  # type: ignore[return-value]
        if isinstance(s, ast.If):
            cond = self.expr(s.cond)
            then = [self.stmt(x) for x in s.then]
            other = [self.stmt(x) for x in s.other or []]

            def run_if(f: Firing) -> None:
                for x in then if _truth(cond(f)) else other:
                    x(f)

            return run_if
        if isinstance(s, ast.Block):
            body = [self.stmt(x) for x in s.body]

            def run_block(f: Firing) -> None:
                for x in body:
                    x(f)

            return run_block
        return lambda f: None

    # --- aggregations ------------------------------------------------------------
    def aggregate(self, e: ast.Assign) -> Callable[[Firing], None]:
        agg = self.st.aggs[e.agg.name]  # type: ignore[attr-defined]
        target = e.target
        keys = [self.key(k) for k in target.args] if isinstance(target, ast.Index) else []
        call = e.value
        assert isinstance(call, ast.Call)
        func = call.name
        val = self.expr(call.args[0]) if call.args else None
        incr_pos = {"quantize": 1, "lquantize": 4, "llquantize": 5}.get(func)
        incr = (
            self.expr(call.args[incr_pos])
            if incr_pos is not None and len(call.args) > incr_pos
            else None
        )
        update = agg.update
        # each CPU's own value is kept only for -x aggpercpu (twice the work)
        percpu = self.options.get("aggpercpu") not in (None, False)

        if incr is None and not percpu:
            if not keys:
                return (lambda f: update((), val(f))) if val is not None else lambda f: update()
            if len(keys) == 1:
                (k0,) = keys
                if val is None:
                    return lambda f: update((k0(f),))
                return lambda f: update((k0(f),), val(f))

        def run(f: Firing) -> None:
            k = tuple(x(f) for x in keys)
            v = val(f) if val is not None else 0
            cpu = f.cpu if percpu else None
            if incr is not None:
                update(k, v, incr(f), cpu=cpu)
            else:
                update(k, v, cpu=cpu)

        return run

    def key(self, k: ast.Expr) -> Fn:
        t: CType = k.ctype  # type: ignore[attr-defined]
        fn = self.strval(k) if t.is_char_array() else self.expr(k)
        if in_memory(t) and not t.is_char_array():  # a struct key is its bytes
            mem = self.st.mem
            size = type_size(t)
            return lambda f: mem.read(fn(f), size)
        if t.is_string() or t.is_char_array():
            size = self.st.strsize
            return lambda f: fn(f)[:size]
        return recorded(fn, t)

    # --- expressions -----------------------------------------------------------------
    def expr(self, e: ast.Expr) -> Fn:
        m = getattr(self, "_x_" + type(e).__name__)
        return m(e)

    def _x_IntLit(self, e: ast.IntLit) -> Fn:
        v = T.wrap(e.value, e.ctype)  # type: ignore[attr-defined]
        return lambda f: v

    def _x_CharLit(self, e: ast.CharLit) -> Fn:
        v = T.wrap(e.value, e.ctype)  # type: ignore[attr-defined]
        return lambda f: v

    def _x_StrLit(self, e: ast.StrLit) -> Fn:
        # a D string holds up to strsize characters (dtrace keeps a NUL after them)
        v = e.value[: self.st.strsize]
        return lambda f: v

    def _x_Sizeof(self, e: ast.Sizeof) -> Fn:
        v = e.value  # type: ignore[attr-defined]
        return lambda f: v

    _x_Offsetof = _x_Sizeof

    def _x_Ident(self, e: ast.Ident) -> Fn:
        kind, what = e.ref  # type: ignore[attr-defined]
        if kind == "global":
            g = self.st.globals
            name = what.name
            return lambda f: g[name]
        if kind == "const":
            v = what
            return lambda f: v
        if kind == "xlarg":  # a translator's input parameter: the operand being translated
            args = self.st.xlargs
            return lambda f: args[-1]
        if kind == "inline":
            inner = self.expr(what)
            t = e.ctype  # type: ignore[attr-defined]
            if t.is_int():
                w = T.wrapper(t)
                return lambda f: w(inner(f))
            return inner
        return self.builtin(what, e)

    def builtin(self, name: str, e: ast.Expr) -> Fn:
        if name.startswith("arg") and name[3:].isdigit():
            i = int(name[3:])
            return lambda f: f.args[i] if i < len(f.args) else 0
        simple: dict[str, Fn] = {
            "pid": lambda f: f.pid,
            "tid": lambda f: f.tid,
            "ppid": lambda f: f.ppid,
            "uid": lambda f: f.uid,
            "gid": lambda f: f.gid,
            "execname": lambda f: f.execname,
            "cpu": lambda f: f.cpu,
            "errno": lambda f: f.errno,
            "id": lambda f: f.probe.id,
            "epid": lambda f: f.probe.id,
            "probeprov": lambda f: f.probe.provider,
            "probemod": lambda f: f.probe.module,
            "probefunc": lambda f: f.probe.function,
            "probename": lambda f: f.probe.name,
            "timestamp": _timestamp,
            "walltimestamp": _walltimestamp,
            "vtimestamp": _vtimestamp,
            "ipl": lambda f: 0,
            "stackdepth": lambda f: 0,
            "ustackdepth": lambda f: 0,
            "caller": lambda f: 0,
            "ucaller": lambda f: (ustack(f, 2).frames[1:] or (0,))[0],
            "curthread": lambda f: 0,
            "args": lambda f: f.argsp,
        }
        if name in ("curpsinfo", "curlwpsinfo"):
            return self.procinfo(name == "curpsinfo")
        if name == "curcpu":
            return self.cpuinfo()
        if name in ("cwd", "root"):  # the links the kernel keeps in /proc
            link = name

            def path(f: Firing) -> str:
                try:
                    return os.readlink(f"/proc/{f.pid}/{link}")
                except OSError:
                    return "/"

            return path
        return simple.get(name, lambda f: 0)

    def fds(self, e: ast.Index) -> Fn:
        """fds[fd]: a fileinfo_t of the firing process's descriptor, read from
        /proc into memory that lives for the firing."""
        from pydtrace.engines.user.fileinfo import fileinfo

        mem = self.st.mem
        fd = self.expr(e.args[0])

        def place(f: Firing) -> int:
            data = fileinfo(f.pid, T.wrap(fd(f), T.INT))
            addr = mem.alloc(len(data))
            mem.write(addr, data)
            f.owned.append(addr)
            return addr

        return place

    def cpuinfo(self) -> Fn:
        """curcpu: a cpuinfo_t of the firing's CPU (one node: pset, chip and
        lgrp 0, as the pset/chip/lgrp variables), for the firing's lifetime."""
        mem = self.st.mem

        def place(f: Firing) -> int:
            data = struct.pack("<iiiiQ", f.cpu, 0, 0, 0, 0)
            addr = mem.alloc(len(data))
            mem.write(addr, data)
            f.owned.append(addr)
            return addr

        return place

    def procinfo(self, process: bool) -> Fn:
        """curpsinfo/curlwpsinfo: a psinfo_t/lwpsinfo_t of the firing thread,
        read from /proc into memory that lives for the firing."""
        from pydtrace.engines.user import procinfo

        mem = self.st.mem

        def place(f: Firing) -> int:
            data = procinfo.psinfo(f.pid, f.tid) if process else procinfo.lwpsinfo(f.pid, f.tid)
            addr = mem.alloc(len(data))
            mem.write(addr, data)
            f.owned.append(addr)
            return addr

        return place

    def _x_SelfVar(self, e: ast.SelfVar) -> Fn:
        if in_memory(e.ctype):  # type: ignore[attr-defined]
            return self.address(e)
        tl = self.st.tlocals
        name = e.name
        zero = absent(e.ctype)  # type: ignore[attr-defined]
        return lambda f: tl.get((f.tid, name), zero)

    def _x_ThisVar(self, e: ast.ThisVar) -> Fn:
        if in_memory(e.ctype):  # type: ignore[attr-defined]
            return self.address(e)
        name = e.name
        zero = zero_of(e.ctype)  # type: ignore[attr-defined]
        return lambda f: f.this.get(name, zero)

    def _x_AggVar(self, e: ast.AggVar) -> Fn:
        return lambda f: 0

    def _x_Index(self, e: ast.Index) -> Fn:
        kind, v = e.ref  # type: ignore[attr-defined]
        if kind == "inline":  # an inline with parameters, its arguments put in
            inner = self.expr(v)
            t = e.ctype  # type: ignore[attr-defined]
            if t.is_int():
                w = T.wrapper(t)
                return lambda f: w(inner(f))
            return inner
        if kind == "assoc":
            if in_memory(v.type):
                return self.address(e)
            keys = [self.key(k) for k in e.args]
            zero = absent(v.type)
            if v.scope == "global":
                table = self.st.globals[v.name]
                return lambda f: table.get(tuple(k(f) for k in keys), zero)
            ta = self.st.tassoc.setdefault(v.name, {})
            return lambda f: ta.get((f.tid, *(k(f) for k in keys)), zero)
        if kind == "args":
            if v is None:
                idx = self.expr(e.args[0])
                return lambda f: f.args[idx(f)] if 0 <= idx(f) < len(f.args) else 0
            i = v
            t = e.ctype  # type: ignore[attr-defined]
            if t.is_int():
                w = T.wrapper(t)
                return lambda f: w(f.args[i]) if i < len(f.args) else 0
            return lambda f: f.args[i] if i < len(f.args) else 0
        if kind == "uregs":
            return lambda f, i=v: uregs(f, i)
        if kind == "strchar":
            from pydtrace.engines.user.subroutines import NullString

            base = self.expr(e.base)
            idx = self.expr(e.args[0])
            pc = e.pc  # type: ignore[attr-defined]

            def strchar(f: Firing) -> int:
                s, i = base(f), idx(f)
                if isinstance(s, NullString):  # NULL + i, as dtrace reads it
                    raise ProbeFault(BADADDR, i & 0xFFFFFFFFFFFFFFFF, pc)
                b = s.encode("utf-8", "surrogateescape")
                return T.wrap(b[i], T.CHAR) if 0 <= i < len(b) else 0

            return strchar
        return self.load(e)

    def _x_Member(self, e: ast.Member) -> Fn:
        return self.load(e)

    # --- memory ------------------------------------------------------------------------
    def load(self, e: ast.Expr) -> Fn:
        """The value at an lvalue in memory: an address for aggregates, else the loaded scalar."""
        t: CType = e.ctype  # type: ignore[attr-defined]
        addr = self.address(e)
        mem = self.st.mem
        if in_memory(t):
            return addr
        m = getattr(e, "member", None) if isinstance(e, ast.Member) else None
        if m is not None and m.bits:
            mt, shift, bits = m.type, m.bit_offset, m.bits
            return lambda f: mem.load_bits(addr(f), mt, shift, bits)
        if t.is_string():
            size = self.st.strsize + 1
            return lambda f: mem.read_string(addr(f), size)
        return lambda f: mem.load(addr(f), t)

    def address(self, e: ast.Expr, write: bool = False) -> Fn:
        """The address of an lvalue (for &, loads and stores)."""
        t: CType = e.ctype  # type: ignore[attr-defined]
        if isinstance(e, ast.Unary) and e.op == "*":
            return self.expr(e.operand)
        if isinstance(e, ast.Member):
            off = e.member.offset  # type: ignore[attr-defined]
            if e.arrow:  # a NULL pointer faults at 0, not at the member's offset
                ptr, pc = self.expr(e.base), getattr(e, "pc", 1) or 1

                def member_of(f: Firing) -> int:
                    p = ptr(f)
                    if not p:
                        raise ProbeFault(BADADDR, 0, pc)
                    return (p + off) & MASK64

                return member_of
            base = self.address(e.base, write)
            return lambda f: (base(f) + off) & MASK64
        if isinstance(e, ast.Index) and e.ref[0] == "element":  # type: ignore[attr-defined]
            return self.element_address(e, write)
        if isinstance(e, ast.Index) and e.ref[0] == "fds":  # type: ignore[attr-defined]
            return self.fds(e)
        if isinstance(e, ast.SelfVar | ast.ThisVar) or (
            isinstance(e, ast.Index) and e.ref[0] == "assoc"
        ):  # type: ignore[attr-defined]
            if in_memory(t):
                return self.dynamic_address(e, write)
        if isinstance(e, ast.Ident) and e.ref[0] == "global" and in_memory(t):  # type: ignore[attr-defined]
            addr = self.st.globals[e.name]
            return lambda f: addr
        if in_memory(t):
            return self.expr(e)
        pc = getattr(e, "pc", 1) or 1

        def no_address(f: Firing) -> int:
            raise ProbeFault(ILLOP, 0, pc)

        return no_address

    def element_address(self, e: ast.Index, write: bool) -> Fn:
        bt: CType = e.base.ctype  # type: ignore[attr-defined]
        size = type_size(e.ctype)  # type: ignore[attr-defined]
        idx = self.expr(e.args[0])
        pc = e.pc  # type: ignore[attr-defined]
        if not bt.is_array():
            ptr = self.expr(e.base)
            return lambda f: (ptr(f) + idx(f) * size) & MASK64
        base = self.address(e.base, write)
        n = bt.r.count
        if isinstance(e.base, ast.Ident):  # a declared scalar array: dtrace checks the index

            def checked(f: Firing) -> int:
                i = idx(f)
                if not 0 <= i < n:
                    raise ProbeFault(BADINDEX, i, pc)
                return base(f) + i * size

            return checked
        return lambda f: (base(f) + idx(f) * size) & MASK64

    def slot(self, e: ast.Expr) -> Callable[[Firing], tuple[dict, Any]]:
        """Where a dynamic variable lives: (table, key)."""
        if isinstance(e, ast.SelfVar):
            tl = self.st.tlocals
            name = e.name
            return lambda f: (tl, (f.tid, name))
        if isinstance(e, ast.ThisVar):
            tname = e.name
            return lambda f: (f.this, tname)
        assert isinstance(e, ast.Index)
        v = e.ref[1]  # type: ignore[attr-defined]
        keys = [self.key(k) for k in e.args]
        if v.scope == "global":
            table = self.st.globals[v.name]
            return lambda f: (table, tuple(k(f) for k in keys))
        ta = self.st.tassoc.setdefault(v.name, {})
        return lambda f: (ta, (f.tid, *(k(f) for k in keys)))

    def dynamic_address(self, e: ast.Expr, write: bool) -> Fn:
        size = type_size(e.ctype)  # type: ignore[attr-defined]
        where = self.slot(e)
        st = self.st
        mem = st.mem
        clause_local = isinstance(e, ast.ThisVar)

        def addr(f: Firing) -> int:
            table, key = where(f)
            a = table.get(key)
            if a is None:
                if not (write or clause_local):
                    return st.zero_block(size)
                if not clause_local and not st.new_dvar(f):
                    a = mem.alloc(size)  # a dropped store: written, then freed
                    f.owned.append(a)
                    return a
                a = table[key] = mem.alloc(size)
                if clause_local:
                    f.owned.append(a)
            return a

        return addr

    def store_block(self, target: ast.Expr) -> Callable[[Firing, Any], None]:
        """Assignment of a struct, union or array: copy its bytes; 0 deletes a dynamic one."""
        size = type_size(target.ctype)  # type: ignore[attr-defined]
        mem = self.st.mem
        dynamic = isinstance(target, ast.SelfVar) or (
            isinstance(target, ast.Index) and target.ref[0] == "assoc"
        )  # type: ignore[attr-defined]
        dst = self.address(target, write=True)
        where = self.slot(target) if dynamic else None

        def put(f: Firing, v: Any) -> None:
            if where is not None and v == 0:
                table, key = where(f)
                old = table.pop(key, None)
                if old is not None:
                    mem.free(old)
                return
            data = mem.read(v, size) if v else bytes(size)
            mem.write(dst(f), data)

        return put

    def strval(self, e: ast.Expr) -> Fn:
        """An expression used as a string: char arrays and char pointers are read from memory."""
        fn = self.expr(e)
        t: CType = e.ctype  # type: ignore[attr-defined]
        mem = self.st.mem
        if t.is_char_array():
            limit = min(t.r.count, self.st.strsize) + 1
            return lambda f: mem.read_string(fn(f), limit)
        if t.is_pointer() or t.is_int():
            size = self.st.strsize + 1
            return lambda f: mem.read_string(fn(f), size)
        return fn

    def _x_Unary(self, e: ast.Unary) -> Fn:
        op = e.op
        t: CType = e.ctype  # type: ignore[attr-defined]
        if op in ("++", "--"):
            return self.incdec(e.operand, 1 if op == "++" else -1, prefix=True)
        a = self.expr(e.operand)
        pc = e.pc  # type: ignore[attr-defined]
        wide = T.wrapper(_wide(t) if t.is_int() else t)
        if op == "-":
            return lambda f: wide(-a(f))
        if op == "+":
            return lambda f: wide(a(f))
        if op == "~":
            return lambda f: wide(~a(f))
        if op == "!":
            return lambda f: 0 if _truth(a(f)) else 1
        if op == "*":
            return self.load(e)
        if op == "&":
            return self.address(e.operand)
        raise ProbeFault(ILLOP, 0, pc)

    def _x_Postfix(self, e: ast.Postfix) -> Fn:
        return self.incdec(e.operand, 1 if e.op == "++" else -1, prefix=False)

    def incdec(self, target: ast.Expr, delta: int, prefix: bool) -> Fn:
        get = self.expr(target)
        put = self.store(target)
        t: CType = target.ctype  # type: ignore[attr-defined]
        if t.is_pointer():
            assert t.r.target is not None
            delta *= max(1, t.r.target.r.size)
        w = T.wrapper(t)

        def run(f: Firing) -> Any:
            old = get(f)
            new = w(old + delta)
            put(f, new)
            return new if prefix else old

        return run

    def _x_Binary(self, e: ast.Binary) -> Fn:
        op = e.op
        a = self.expr(e.left)
        b = self.expr(e.right)
        t: CType = e.ctype  # type: ignore[attr-defined]
        pc = e.pc  # type: ignore[attr-defined]
        if op == "&&":
            return lambda f: 1 if _truth(a(f)) and _truth(b(f)) else 0
        if op == "||":
            return lambda f: 1 if _truth(a(f)) or _truth(b(f)) else 0
        if op == "^^":
            return lambda f: 1 if _truth(a(f)) != _truth(b(f)) else 0
        if op == ",":
            return lambda f: (a(f), b(f))[1]
        if op in ("<", "<=", ">", ">=", "==", "!="):
            cmp = _COMPARE[op]
            if getattr(e, "strcmp", False):
                sa, sb = (
                    self.expr(x) if x.ctype.is_int() else self.strval(x) for x in (e.left, e.right)
                )  # type: ignore[attr-defined]
                return lambda f: 1 if cmp(_as_str(sa(f)), _as_str(sb(f))) else 0
            ot: CType = getattr(e, "optype", T.LONG)
            if ot.is_signed():
                return lambda f: 1 if cmp(a(f), b(f)) else 0
            ow = T.wrapper(ot)
            return lambda f: 1 if cmp(ow(a(f)), ow(b(f))) else 0
        lt: CType = e.left.ctype  # type: ignore[attr-defined]
        rt: CType = e.right.ctype  # type: ignore[attr-defined]
        if op in ("+", "-") and t.is_pointer():
            assert t.r.target is not None
            size = max(1, t.r.target.r.size)
            if lt.is_pointer() or lt.is_array():
                return (
                    (lambda f: (a(f) + b(f) * size) & MASK64)
                    if op == "+"
                    else (lambda f: (a(f) - b(f) * size) & MASK64)
                )
            return lambda f: (b(f) + a(f) * size) & MASK64
        if op == "-" and lt.is_pointer() and rt.is_pointer():
            assert lt.r.target is not None
            size = max(1, lt.r.target.r.size)
            as_long = T.wrapper(T.LONG)
            return lambda f: as_long(a(f) - b(f)) // size
        # dtrace computes in 64-bit registers: a result is cut to its C type only
        # when stored or recorded, so `(i * 3) * i` on an int does not wrap midway.
        signed = t.is_signed()
        ww = T.wrapper(_wide(t))
        if op in ("/", "%"):
            div = op == "/"

            def divide(f: Firing) -> int:
                x, y = a(f), b(f)
                if not signed:
                    x, y = ww(x), ww(y)
                if y == 0:
                    raise ProbeFault(DIVZERO, 0, pc)
                # dtrace divides the magnitudes and negates when the signs differ,
                # for the remainder too: 19 % -5 == -4
                r = abs(x) // abs(y) if div else abs(x) % abs(y)
                return ww(-r if (x < 0) != (y < 0) else r)

            return divide
        if op == ">>":
            if signed:
                return lambda f: ww(a(f) >> (b(f) & 63))
            return lambda f: ww(ww(a(f)) >> (b(f) & 63))
        if op == "<<":
            return lambda f: ww(a(f) << (b(f) & 63))
        arith = _ARITH[op]
        return lambda f: ww(arith(a(f), b(f)))

    def _x_Cond(self, e: ast.Cond) -> Fn:
        c = self.expr(e.cond)
        a = self.expr(e.then)
        b = self.expr(e.other)
        t: CType = e.ctype  # type: ignore[attr-defined]
        if t.is_int():
            w = T.wrapper(t)
            return lambda f: w(a(f) if _truth(c(f)) else b(f))
        return lambda f: a(f) if _truth(c(f)) else b(f)

    def _x_Cast(self, e: ast.Cast) -> Fn:
        a = self.expr(e.operand)
        t: CType = e.ctype  # type: ignore[attr-defined]
        ot: CType = e.operand.ctype  # type: ignore[attr-defined]
        if t.is_void():
            return lambda f: (a(f), 0)[1]
        if t.is_string():
            return self.strval(e.operand)
        if (t.is_int() or t.is_pointer()) and ot.is_string():
            return self.string_address(a)
        if t.is_int() or t.is_pointer():
            w = T.wrapper(t)
            return lambda f: w(a(f))
        return a

    def string_address(self, a: Fn) -> Fn:
        """A string given an address: a copy of it in memory that lives for the firing."""
        mem = self.st.mem
        size = self.st.strsize

        def place(f: Firing) -> int:
            data = string_bytes(a(f))[:size]
            addr = mem.alloc(size + 1)
            mem.write(addr, data)
            f.owned.append(addr)
            return addr

        return place

    def _x_Xlate(self, e: ast.Xlate) -> Fn:
        """xlate<T>(x): a fresh T filled by the translator's member expressions.

        The object lives for the firing (like a string given an address); the
        result is its address, which is also how D values of struct type are
        represented here, so `xlate<T *>(p)->m` and `xlate<T>(s).m` both work.
        """
        node = e.translator  # type: ignore[attr-defined]
        out: CType = node.out_type
        operand = self.expr(e.operand)
        mem = self.st.mem
        args = self.st.xlargs
        size = max(type_size(out), 1)
        members: list[tuple[T.Member, Fn]] = []
        compiled = False

        def compile_members() -> None:
            # compiled on first use: translators may refer to one another
            for name, expr in node.members:
                m = out.member(name)
                if m is not None:
                    members.append(
                        (m, self.strval(expr) if m.type.is_string() else self.expr(expr))
                    )

        def translate(f: Firing) -> int:
            nonlocal compiled
            if not compiled:
                compile_members()
                compiled = True
            base = mem.alloc(size)
            f.owned.append(base)
            args.append(operand(f))
            try:
                for m, fn in members:
                    v = fn(f)
                    addr = base + m.offset
                    if m.bits:
                        mem.store_bits(addr, m.type, m.bit_offset, m.bits, v)
                    elif m.type.is_string():
                        data = (
                            string_bytes(v)[: type_size(m.type) - 1] if isinstance(v, str) else b""
                        )
                        mem.write(addr, data)
                    elif in_memory(m.type):
                        mem.write(addr, mem.read(v, type_size(m.type)))
                    else:
                        mem.store(addr, m.type, v)
            finally:
                args.pop()
            return base

        return translate

    def _x_Stringof(self, e: ast.Stringof) -> Fn:
        t: CType = e.operand.ctype  # type: ignore[attr-defined]
        if t.is_string() or t.is_char_array() or t.is_pointer():
            return self.strval(e.operand)
        a = self.expr(e.operand)
        return lambda f: str(a(f))

    def _x_Assign(self, e: ast.Assign) -> Fn:
        put = self.store(e.target)
        val = self.expr(e.value)
        t: CType = e.ctype  # type: ignore[attr-defined]
        vt: CType = e.value.ctype  # type: ignore[attr-defined]
        if e.op == "=":
            if t.is_int():
                w = T.wrapper(t)

                def assign(f: Firing) -> Any:
                    v = w(val(f))
                    put(f, v)
                    return v
            elif t.is_string() and vt.is_int():
                # NULL (the checker allows no other integer): a dynamic variable is
                # deleted, as any dynamic variable assigned 0 is; another holds a
                # NULL string (reads as "", faults when traced or indexed)
                from pydtrace.engines.user.subroutines import NULL_STRING

                target = e.target
                dynamic = isinstance(target, ast.SelfVar) or (
                    isinstance(target, ast.Index) and target.ref[0] == "assoc"  # type: ignore[attr-defined]
                )
                cleared: Any = 0 if dynamic else NULL_STRING

                def assign(f: Firing) -> Any:
                    put(f, cleared)
                    return NULL_STRING
            elif t.is_string():
                size = self.st.strsize
                if not vt.is_string():
                    val = self.strval(e.value)

                def assign(f: Firing) -> Any:
                    v = val(f)
                    if len(v) > size:
                        v = v[:size]
                    put(f, v)
                    return v
            else:

                def assign(f: Firing) -> Any:
                    v = val(f)
                    put(f, v)
                    return v

            return assign
        bop = e.op[:-1]
        fake = ast.Binary(bop, e.target, e.value, line=e.line)
        fake.ctype = t  # type: ignore[attr-defined]
        fake.pc = e.pc  # type: ignore[attr-defined]
        if t.is_arith():
            fake.ctype = T.arith_conv(t, vt) if bop not in ("<<", ">>") else T.promote(t)  # type: ignore[attr-defined]
        compute = self._x_Binary(fake)
        w = T.wrapper(t)

        def update(f: Firing) -> Any:
            v = w(compute(f))
            put(f, v)
            return v

        return update

    def store(self, target: ast.Expr) -> Callable[[Firing, Any], None]:
        """A setter for an lvalue. Dynamic variables are deleted when set to 0."""
        if in_memory(target.ctype):  # type: ignore[attr-defined]
            return self.store_block(target)
        if isinstance(target, ast.Member | ast.Unary) or (
            isinstance(target, ast.Index) and target.ref[0] == "element"  # type: ignore[attr-defined]
        ):
            return self.store_memory(target)
        if isinstance(target, ast.Ident):
            g = self.st.globals
            name = target.name

            def set_global(f: Firing, v: Any) -> None:
                g[name] = v

            return set_global
        st = self.st
        if isinstance(target, ast.SelfVar):
            tl = self.st.tlocals
            name = target.name

            def set_self(f: Firing, v: Any) -> None:
                key = (f.tid, name)
                if v == 0 and not isinstance(v, str):
                    tl.pop(key, None)
                    return
                if key not in tl and not st.new_dvar(f):
                    return
                tl[key] = v

            return set_self
        if isinstance(target, ast.ThisVar):
            name = target.name

            def set_this(f: Firing, v: Any) -> None:
                f.this[name] = v

            return set_this
        if isinstance(target, ast.Index):
            kind, v = target.ref  # type: ignore[attr-defined]
            pc = target.pc  # type: ignore[attr-defined]
            if kind == "assoc":
                keys = [self.key(k) for k in target.args]
                if v.scope == "global":
                    table = self.st.globals[v.name]

                    def set_assoc(f: Firing, val: Any) -> None:
                        k = tuple(x(f) for x in keys)
                        if val == 0 and not isinstance(val, str):
                            table.pop(k, None)
                            return
                        if k not in table and not st.new_dvar(f):
                            return
                        table[k] = val

                    return set_assoc
                ta = self.st.tassoc.setdefault(v.name, {})

                def set_tassoc(f: Firing, val: Any) -> None:
                    k = (f.tid, *(x(f) for x in keys))
                    if val == 0 and not isinstance(val, str):
                        ta.pop(k, None)
                        return
                    if k not in ta and not st.new_dvar(f):
                        return
                    ta[k] = val

                return set_tassoc
        pc = getattr(target, "pc", 0) or 1

        def not_lvalue(f: Firing, val: Any) -> None:
            raise ProbeFault(ILLOP, 0, pc)

        return not_lvalue

    def store_memory(self, target: ast.Expr) -> Callable[[Firing, Any], None]:
        t: CType = target.ctype  # type: ignore[attr-defined]
        addr = self.address(target, write=True)
        mem = self.st.mem
        m = getattr(target, "member", None) if isinstance(target, ast.Member) else None
        if m is not None and m.bits:
            mt, shift, bits = m.type, m.bit_offset, m.bits
            return lambda f, v: mem.store_bits(addr(f), mt, shift, bits, v)
        if t.is_string():
            size = type_size(t)

            def put_string(f: Firing, v: Any) -> None:
                data = string_bytes(v)[: size - 1] if isinstance(v, str) else b""
                mem.write(addr(f), data + bytes(size - len(data)))

            return put_string
        return lambda f, v: mem.store(addr(f), t, v)

    def call_args(self, e: ast.Call) -> list[Fn]:
        """Argument evaluators; a char array or pointer passed as a string is read from memory."""
        from pydtrace.lang.builtins import prototype

        b = getattr(e, "builtin", None)
        params = prototype(b).params if b is not None else []
        out: list[Fn] = []
        for i, a in enumerate(e.args):
            t: CType = a.ctype  # type: ignore[attr-defined]
            wants_string = i < len(params) and params[i] in ("string", "const char *", "char *")
            if wants_string and (t.is_char_array() or t.is_pointer() or t.is_int()):
                if e.name == "strtok" and i == 0 and not t.is_char_array():
                    out.append(self.null_or_string(a))
                    continue
                out.append(self.strval(a))
            else:
                out.append(self.expr(a))
        return out

    def null_or_string(self, a: ast.Expr) -> Fn:
        """strtok's first argument: NULL means "go on with the saved string"."""
        fn = self.expr(a)
        mem = self.st.mem
        size = self.st.strsize + 1

        def get(f: Firing) -> Any:
            p = fn(f)
            return 0 if p == 0 else mem.read_string(p, size)

        return get

    def frame_count(self, e: ast.Call) -> int:
        """ustack(n)'s n, else the ustackframes option; at most maxframes."""
        from pydtrace.options import capped_frames

        n = getattr(e.args[0], "value", None) if e.args else None
        if isinstance(n, int) and n > 0:
            return capped_frames(self.options, n)
        return capped_frames(self.options, int(self.options.get("ustackframes") or 100))

    def _x_Call(self, e: ast.Call) -> Fn:
        from pydtrace.engines.user import subroutines

        if e.name in ("ustack", "jstack"):  # an aggregation key
            frames = self.frame_count(e)
            return lambda f: ustack(f, frames)

        args = self.call_args(e)
        impl = subroutines.lookup(e.name)
        t: CType = e.ctype  # type: ignore[attr-defined]
        pc = e.pc  # type: ignore[attr-defined]
        st = self.st
        if impl is None:

            def unsupported(f: Firing) -> Any:
                raise ProbeFault(ILLOP, 0, pc)

            return unsupported
        if t.is_int():
            w = T.wrapper(t)

            def call_int(f: Firing) -> Any:
                return w(impl(st, f, pc, *[a(f) for a in args]))

            return call_int

        def call(f: Firing) -> Any:
            r = impl(st, f, pc, *[a(f) for a in args])
            if isinstance(r, str) and len(r) > st.strsize:
                r = r[: st.strsize]
            return r

        return call


def _vtimestamp(f: Firing) -> int:
    """The firing thread's CPU time: a traced thread's from /proc (it is stopped),
    the tracer's own (BEGIN, END, tick) from the clock of this thread."""
    if f.tid == threading.get_native_id():
        return time.thread_time_ns()
    from pydtrace.engines.user.procinfo import cpu_time_ns

    return cpu_time_ns(f.tid)


def _timestamp(f: Firing) -> int:
    if not f.ts:
        f.ts = time.monotonic_ns()
    return f.ts


def _walltimestamp(f: Firing) -> int:
    if not f.wts:
        # a firing run after its thread resumed: the wall time of the stop
        f.wts = time.time_ns() - (time.monotonic_ns() - f.at if f.at else 0)
    return f.wts


def _wide(t: CType) -> CType:
    """The 64-bit register type an integer expression of type t is computed in."""
    return T.LONG if t.is_signed() else T.ULONG


def _truth(v: Any) -> bool:
    return bool(v)


def _as_str(v: Any) -> str:
    return v if isinstance(v, str) else ""


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
}
_ARITH: dict[str, Callable[[int, int], int]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "&": lambda x, y: x & y,
    "|": lambda x, y: x | y,
    "^": lambda x, y: x ^ y,
}

rand = random.Random()
