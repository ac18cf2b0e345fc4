"""The user-space engine's interpreter: a checked program compiled once into
Python closures, run for each probe firing.

Each expression node becomes a function of the firing context. Faults
(division by zero, bad address) raise ProbeFault; the clause is abandoned
and its record discarded, and the engine fires ERROR, as dtrace does.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from pydtrace.consume.aggregation import AggSpec, Aggregation
from pydtrace.consume.records import BADADDR, BADINDEX, DIVZERO, ILLOP, Record
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.program import CheckedProgram, ClauseInfo
from pydtrace.lang.types import CType

Fn = Callable[["Firing"], Any]
MASK64 = 0xFFFFFFFFFFFFFFFF


class ProbeFault(Exception):
    def __init__(self, code: int, value: int, pc: int) -> None:
        super().__init__(code)
        self.code = code
        self.value = value
        self.pc = pc


class Firing:
    """The context of one probe firing: who fired, its arguments, clause-local state."""

    __slots__ = ("probe", "args", "cpu", "tid", "pid", "ppid", "uid", "gid", "execname",
                 "errno", "this", "items", "ts", "wts", "spec", "clause", "process", "commits")  # fmt: skip

    def __init__(self, probe: Any, args: list[int], cpu: int = 0, process: Any = None) -> None:
        self.probe = probe
        self.args = args
        self.cpu = cpu
        self.process = process  # the traced process's facts, when an event source has one
        self.tid = threading.get_native_id()
        self.pid = os.getpid()
        self.ppid = os.getppid()
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.execname = _own_comm()
        self.errno = 0
        self.this: dict[str, Any] = {}
        self.items: list[tuple] = []
        self.ts = 0
        self.wts = 0
        self.spec = 0
        self.clause = 0
        self.commits: list[Record] = []  # committed speculations, emitted after the clause


_COMM: str | None = None


def _own_comm() -> str:
    global _COMM
    if _COMM is None:
        try:
            with open("/proc/self/comm") as f:
                _COMM = f.read().strip()
        except OSError:
            _COMM = "pydtrace"
    return _COMM


class State:
    """Variables, aggregations and speculations of one tracing session."""

    def __init__(self, prog: CheckedProgram, strsize: int, nspec: int = 1) -> None:
        self.globals: dict[str, Any] = {}
        for name, v in prog.globals.items():
            if v.keys is not None:
                self.globals[name] = {}
            elif v.array:
                self.globals[name] = [_zero(v.type.r.target)] * v.type.r.count  # type: ignore[arg-type]
            else:
                self.globals[name] = _zero(v.type)
        self.tlocals: dict[tuple[int, str], Any] = {}
        self.tassoc: dict[str, dict[tuple, Any]] = {}
        self.aggs: dict[str, Aggregation] = {}
        for a in prog.aggs.values():
            spec = AggSpec(a.id, a.name, a.func, a.params, list(a.keys), a.valtype)
            self.aggs[a.name] = Aggregation(spec)
        self.strsize = strsize
        self.nspec = nspec
        self.spec_busy: dict[int, list[Record]] = {}
        self.spec_drops = 0
        self.strtok: dict[int, tuple[str, int]] = {}
        self.draining = False


def _zero(t: CType | None) -> Any:
    return "" if t is not None and t.is_string() else 0


class Compiler:
    """Turns annotated AST into closures over a State."""

    def __init__(self, state: State, prog: CheckedProgram) -> None:
        self.st = state
        self.prog = prog

    # --- clauses ---------------------------------------------------------------
    def clause(self, c: ClauseInfo) -> Callable[[Firing], None]:
        pred = self.expr(c.predicate) if c.predicate is not None else None
        body = [self.stmt(s) for s in c.body]

        def run(f: Firing) -> None:
            f.ts = 0
            f.wts = 0
            if pred is not None and not _truth(pred(f)):
                raise _Skip
            for s in body:
                s(f)

        return run

    def stmt(self, s: ast.Stmt) -> Callable[[Firing], None]:
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Assign) and hasattr(e, "agg"):
                return self.aggregate(e)
            if isinstance(e, ast.Call) and getattr(e, "builtin", None) and e.builtin.kind == "action":  # type: ignore[attr-defined]
                return self.action(e)
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
        incr = self.expr(call.args[incr_pos]) if incr_pos is not None and len(call.args) > incr_pos else None
        update = agg.update

        def run(f: Firing) -> None:
            k = tuple(x(f) for x in keys)
            v = val(f) if val is not None else 0
            if incr is not None:
                update(k, v, incr(f))
            else:
                update(k, v)

        return run

    def key(self, k: ast.Expr) -> Fn:
        fn = self.expr(k)
        t: CType = k.ctype  # type: ignore[attr-defined]
        if t.is_string() or t.is_char_array():
            size = self.st.strsize
            return lambda f: fn(f)[: size - 1]
        return fn

    # --- actions ---------------------------------------------------------------------
    def action(self, e: ast.Call) -> Callable[[Firing], None]:
        name = e.name
        args = [self.expr(a) for a in e.args]
        types = [getattr(a, "ctype", T.VOID) for a in e.args]
        st = self.st
        if name == "trace":
            a0, t0 = args[0], types[0]
            if t0.is_char_array():
                t0 = T.STRING
            return lambda f: f.items.append(("trace", a0(f), t0))
        if name == "printf" or name == "system":
            fmt = e.format if name == "printf" else None  # type: ignore[attr-defined]
            if name == "system":
                from pydtrace.consume.printf import parse_format

                fmt = parse_format(e.args[0].value) if isinstance(e.args[0], ast.StrLit) else None  # type: ignore[attr-defined]
            rest = list(zip(args[1:], types[1:]))
            tag = name
            return lambda f: f.items.append((tag, fmt, [(a(f), t) for a, t in rest]))
        if name == "printa":
            fmt = e.format  # type: ignore[attr-defined]
            names = [a.name for a in e.aggs]  # type: ignore[attr-defined]
            return lambda f: f.items.append(("printa", fmt, names))
        if name == "exit":
            a0 = args[0]

            def do_exit(f: Firing) -> None:
                f.items.append(("exit", T.wrap(a0(f), T.INT)))
                st.draining = True

            return do_exit
        if name in ("clear", "denormalize"):
            aname = e.args[0].name  # type: ignore[attr-defined]
            return lambda f: f.items.append((name, aname))
        if name in ("trunc", "normalize"):
            aname = e.args[0].name  # type: ignore[attr-defined]
            n = args[1] if len(args) > 1 else None
            return lambda f: f.items.append((name, aname, n(f) if n is not None else None))
        if name == "setopt":
            a0 = args[0]
            a1 = args[1] if len(args) > 1 else None
            return lambda f: f.items.append(("setopt", a0(f), a1(f) if a1 is not None else None))
        if name == "speculate":
            a0 = args[0]

            def do_speculate(f: Firing) -> None:
                f.spec = a0(f)

            return do_speculate
        if name in ("commit", "discard"):
            a0 = args[0]
            committing = name == "commit"

            def do_commit(f: Firing) -> None:
                sid = a0(f)
                recs = st.spec_busy.pop(sid, None)
                if recs is not None and committing:
                    f.commits.extend(recs)

            return do_commit
        if name == "chill":
            a0 = args[0]
            return lambda f: time.sleep(max(0, a0(f)) / 1e9)
        if name in ("stack", "ustack", "jstack"):
            return lambda f: f.items.append(("stack", name, []))
        if name in ("sym", "usym", "func", "ufunc", "mod", "umod", "uaddr"):
            a0, t0 = args[0], types[0]
            return lambda f: f.items.append(("sym", name, a0(f), t0))
        if name == "tracemem":
            pc = e.pc  # type: ignore[attr-defined]
            a0 = args[0]

            def do_tracemem(f: Firing) -> None:
                raise ProbeFault(BADADDR, a0(f), pc)

            return do_tracemem
        # breakpoint, panic, stop, raise, freopen, ftruncate, pcap, print:
        # accepted, but with no process or kernel under this engine they do nothing yet
        return lambda f: None

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
        v = e.value[: self.st.strsize - 1] if len(e.value) >= self.st.strsize else e.value
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
        if kind == "inline":
            inner = self.expr(what)
            t = e.ctype  # type: ignore[attr-defined]
            if t.is_int():
                return lambda f: T.wrap(inner(f), t)
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
            "vtimestamp": lambda f: time.thread_time_ns(),
            "ipl": lambda f: 0,
            "stackdepth": lambda f: 0,
            "ustackdepth": lambda f: 0,
            "caller": lambda f: 0,
            "ucaller": lambda f: 0,
            "curthread": lambda f: 0,
        }
        return simple.get(name, lambda f: 0)

    def _x_SelfVar(self, e: ast.SelfVar) -> Fn:
        tl = self.st.tlocals
        name = e.name
        zero = _zero(e.ctype)  # type: ignore[attr-defined]
        return lambda f: tl.get((f.tid, name), zero)

    def _x_ThisVar(self, e: ast.ThisVar) -> Fn:
        name = e.name
        zero = _zero(e.ctype)  # type: ignore[attr-defined]
        return lambda f: f.this.get(name, zero)

    def _x_AggVar(self, e: ast.AggVar) -> Fn:
        return lambda f: 0

    def _x_Index(self, e: ast.Index) -> Fn:
        kind, v = e.ref  # type: ignore[attr-defined]
        pc = e.pc  # type: ignore[attr-defined]
        if kind == "assoc":
            keys = [self.key(k) for k in e.args]
            zero = _zero(v.type)
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
                return lambda f: T.wrap(f.args[i], t) if i < len(f.args) else 0
            return lambda f: f.args[i] if i < len(f.args) else 0
        if kind == "strchar":
            base = self.expr(e.base)
            idx = self.expr(e.args[0])

            def strchar(f: Firing) -> int:
                s, i = base(f), idx(f)
                b = s.encode()
                return T.wrap(b[i], T.CHAR) if 0 <= i < len(b) else 0

            return strchar
        # a scalar array element or pointer subscript
        base_node = e.base
        idx = self.expr(e.args[0])
        if isinstance(base_node, ast.Ident) and base_node.ref[0] == "global" and base_node.ref[1].array:  # type: ignore[attr-defined]
            arr = self.st.globals[base_node.name]
            n = len(arr)

            def element(f: Firing) -> Any:
                i = idx(f)
                if not 0 <= i < n:
                    raise ProbeFault(BADINDEX, i, pc)
                return arr[i]

            return element
        base = self.expr(base_node)

        def deref(f: Firing) -> Any:
            addr = base(f)
            raise ProbeFault(BADADDR, (addr + idx(f)) & MASK64, pc)

        return deref

    def _x_Member(self, e: ast.Member) -> Fn:
        base = self.expr(e.base)
        pc = e.pc  # type: ignore[attr-defined]
        offset = e.member.offset  # type: ignore[attr-defined]
        arrow = e.arrow

        def member(f: Firing) -> Any:
            b = base(f)
            raise ProbeFault(BADADDR, (b + offset) & MASK64 if arrow and isinstance(b, int) else 0, pc)

        return member

    def _x_Unary(self, e: ast.Unary) -> Fn:
        op = e.op
        t: CType = e.ctype  # type: ignore[attr-defined]
        if op in ("++", "--"):
            return self.incdec(e.operand, 1 if op == "++" else -1, prefix=True)
        a = self.expr(e.operand)
        pc = e.pc  # type: ignore[attr-defined]
        if op == "-":
            return lambda f: T.wrap(-a(f), t)
        if op == "+":
            return lambda f: T.wrap(a(f), t)
        if op == "~":
            return lambda f: T.wrap(~a(f), t)
        if op == "!":
            return lambda f: 0 if _truth(a(f)) else 1
        if op == "*":

            def deref(f: Firing) -> Any:
                raise ProbeFault(BADADDR, a(f) & MASK64, pc)

            return deref
        if op == "&":
            return lambda f: 0
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

        def run(f: Firing) -> Any:
            old = get(f)
            new = T.wrap(old + delta, t)
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
                return lambda f: 1 if cmp(_as_str(a(f)), _as_str(b(f))) else 0
            ot: CType = getattr(e, "optype", T.LONG)
            if ot.is_signed():
                return lambda f: 1 if cmp(a(f), b(f)) else 0
            return lambda f: 1 if cmp(T.wrap(a(f), ot), T.wrap(b(f), ot)) else 0
        lt: CType = e.left.ctype  # type: ignore[attr-defined]
        rt: CType = e.right.ctype  # type: ignore[attr-defined]
        if op in ("+", "-") and t.is_pointer():
            assert t.r.target is not None
            size = max(1, t.r.target.r.size)
            if lt.is_pointer() or lt.is_array():
                return (lambda f: (a(f) + b(f) * size) & MASK64) if op == "+" else (lambda f: (a(f) - b(f) * size) & MASK64)
            return lambda f: (b(f) + a(f) * size) & MASK64
        if op == "-" and lt.is_pointer() and rt.is_pointer():
            assert lt.r.target is not None
            size = max(1, lt.r.target.r.size)
            return lambda f: T.wrap(a(f) - b(f), T.LONG) // size
        signed = t.is_signed()
        if op in ("/", "%"):
            div = op == "/"

            def divide(f: Firing) -> int:
                x, y = a(f), b(f)
                if not signed:
                    x, y = T.wrap(x, t), T.wrap(y, t)
                if y == 0:
                    raise ProbeFault(DIVZERO, 0, pc)
                q = abs(x) // abs(y)
                if (x < 0) != (y < 0):
                    q = -q
                return T.wrap(q if div else x - q * y, t)

            return divide
        if op == ">>":
            if signed:
                return lambda f: T.wrap(a(f) >> (b(f) & 63), t)
            return lambda f: T.wrap(T.wrap(a(f), t) >> (b(f) & 63), t)
        if op == "<<":
            return lambda f: T.wrap(a(f) << (b(f) & 63), t)
        arith = _ARITH[op]
        return lambda f: T.wrap(arith(a(f), b(f)), t)

    def _x_Cond(self, e: ast.Cond) -> Fn:
        c = self.expr(e.cond)
        a = self.expr(e.then)
        b = self.expr(e.other)
        t: CType = e.ctype  # type: ignore[attr-defined]
        if t.is_int():
            return lambda f: T.wrap(a(f) if _truth(c(f)) else b(f), t)
        return lambda f: a(f) if _truth(c(f)) else b(f)

    def _x_Cast(self, e: ast.Cast) -> Fn:
        a = self.expr(e.operand)
        t: CType = e.ctype  # type: ignore[attr-defined]
        ot: CType = e.operand.ctype  # type: ignore[attr-defined]
        if t.is_void():
            return lambda f: (a(f), 0)[1]
        if t.is_string():
            return a
        if (t.is_int() or t.is_pointer()) and ot.is_string():
            return lambda f: 0  # a string has no address in this engine
        if t.is_int() or t.is_pointer():
            return lambda f: T.wrap(a(f), t)
        return a

    def _x_Stringof(self, e: ast.Stringof) -> Fn:
        a = self.expr(e.operand)
        t: CType = e.operand.ctype  # type: ignore[attr-defined]
        if t.is_string():
            return a
        return lambda f: str(a(f))

    def _x_Assign(self, e: ast.Assign) -> Fn:
        put = self.store(e.target)
        val = self.expr(e.value)
        t: CType = e.ctype  # type: ignore[attr-defined]
        vt: CType = e.value.ctype  # type: ignore[attr-defined]
        if e.op == "=":
            if t.is_int():
                def assign(f: Firing) -> Any:
                    v = T.wrap(val(f), t)
                    put(f, v)
                    return v
            elif t.is_string():
                size = self.st.strsize

                def assign(f: Firing) -> Any:
                    v = val(f)
                    if len(v) >= size:
                        v = v[: size - 1]
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

        def update(f: Firing) -> Any:
            v = T.wrap(compute(f), t)
            put(f, v)
            return v

        return update

    def store(self, target: ast.Expr) -> Callable[[Firing, Any], None]:
        """A setter for an lvalue. Dynamic variables are deleted when set to 0."""
        if isinstance(target, ast.Ident):
            g = self.st.globals
            name = target.name

            def set_global(f: Firing, v: Any) -> None:
                g[name] = v

            return set_global
        if isinstance(target, ast.SelfVar):
            tl = self.st.tlocals
            name = target.name

            def set_self(f: Firing, v: Any) -> None:
                if v == 0 and not isinstance(v, str):
                    tl.pop((f.tid, name), None)
                else:
                    tl[(f.tid, name)] = v

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
                        else:
                            table[k] = val

                    return set_assoc
                ta = self.st.tassoc.setdefault(v.name, {})

                def set_tassoc(f: Firing, val: Any) -> None:
                    k = (f.tid, *(x(f) for x in keys))
                    if val == 0 and not isinstance(val, str):
                        ta.pop(k, None)
                    else:
                        ta[k] = val

                return set_tassoc
            base_node = target.base
            idx = self.expr(target.args[0])
            if isinstance(base_node, ast.Ident) and base_node.ref[0] == "global" and base_node.ref[1].array:  # type: ignore[attr-defined]
                arr = self.st.globals[base_node.name]
                n = len(arr)

                def set_element(f: Firing, val: Any) -> None:
                    i = idx(f)
                    if not 0 <= i < n:
                        raise ProbeFault(BADINDEX, i, pc)
                    arr[i] = val

                return set_element
            base = self.expr(base_node)

            def set_deref(f: Firing, val: Any) -> None:
                raise ProbeFault(BADADDR, (base(f) + idx(f)) & MASK64, pc)

            return set_deref
        pc = getattr(target, "pc", 0)
        inner = self.expr(target)

        def set_memory(f: Firing, val: Any) -> None:
            inner(f)
            raise ProbeFault(BADADDR, 0, pc)

        return set_memory

    def _x_Call(self, e: ast.Call) -> Fn:
        from pydtrace.engines.user import subroutines

        args = [self.expr(a) for a in e.args]
        impl = subroutines.lookup(e.name)
        t: CType = e.ctype  # type: ignore[attr-defined]
        pc = e.pc  # type: ignore[attr-defined]
        st = self.st
        if impl is None:

            def unsupported(f: Firing) -> Any:
                raise ProbeFault(ILLOP, 0, pc)

            return unsupported
        if t.is_int():

            def call_int(f: Firing) -> Any:
                return T.wrap(impl(st, f, pc, *[a(f) for a in args]), t)

            return call_int

        def call(f: Firing) -> Any:
            r = impl(st, f, pc, *[a(f) for a in args])
            if isinstance(r, str) and len(r) >= st.strsize:
                r = r[: st.strsize - 1]
            return r

        return call


class _Skip(Exception):
    """The predicate was false."""


def _timestamp(f: Firing) -> int:
    if not f.ts:
        f.ts = time.monotonic_ns()
    return f.ts


def _walltimestamp(f: Firing) -> int:
    if not f.wts:
        f.wts = time.time_ns()
    return f.wts


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

SKIP = _Skip
rand = random.Random()
