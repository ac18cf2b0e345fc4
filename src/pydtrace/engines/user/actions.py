"""The user-space engine's actions: records built by the clause's action
descriptions (lang.records), and the actions with side effects only
(speculate, commit/discard, chill, stop/raise, tracemem)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from pydtrace.consume.records import BADADDR, ILLOP, Item
from pydtrace.engines.user.faults import ProbeFault
from pydtrace.engines.user.firing import Firing, Fn, Skip, send_signal, ustack
from pydtrace.engines.user.state import State
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.records import Action, Datum
from pydtrace.lang.types import CType

Run = Callable[[Firing], None]


def recorded(a: Fn, t: CType) -> Fn:
    """A value as a record holds it: an integer cut to its type's size."""
    if t.is_int():
        w = T.wrapper(t)
        return lambda f: w(a(f))
    return a


class ActionsMixin:
    """The actions part of the interpreter's Compiler (which gives expr,
    strval, frame_count, st)."""

    st: State
    expr: Callable[[ast.Expr], Fn]
    strval: Callable[[ast.Expr], Fn]
    frame_count: Callable[[ast.Call], int]

    def action(self, e: ast.Call, act: Action | None) -> Run:
        """Run one action: record what its description lists, or do its side effect."""
        if act is None:
            return self.side_effect(e)
        kind = act.kind
        if kind == "trace":
            return self.trace(act, act.data[0])
        if kind == "print":
            return self.print_action(act)
        if kind == "stack":
            return self.stack_action(act, e)
        if kind == "sym":
            a0 = self.expr(e.args[0])
            return lambda f: f.items.append(Item(act, (a0(f), f.pid)))
        vals = [self.datum(d) for d in act.data]
        record = _recorder(act, vals)
        if kind == "exit":
            st = self.st

            def do_exit(f: Firing) -> None:
                record(f)
                st.draining = True

            return do_exit
        return record

    def datum(self, d: Datum) -> Fn:
        """A recorded value of an expression: a char array's characters as a
        string, an integer cut to the datum's type."""
        assert d.expr is not None
        if d.ctype.is_string() and d.expr.ctype.is_char_array():  # type: ignore[attr-defined]
            return self.strval(d.expr)
        return recorded(self.expr(d.expr), d.ctype)

    def trace(self, act: Action, d: Datum) -> Run:
        """trace(): strings and scalars as values, other in-memory objects as their bytes."""
        assert d.expr is not None
        if d.by_ref:
            obj, mem, size = self.expr(d.expr), self.st.mem, d.size
            return lambda f: f.items.append(Item(act, (mem.read(obj(f), size),)))
        if d.ctype.is_string():
            return self.trace_string(act, self.datum(d), getattr(d.expr, "pc", 0) or 1)
        value = self.expr(d.expr)
        return lambda f: f.items.append(Item(act, (value(f),)))

    def trace_string(self, act: Action, value: Fn, pc: int) -> Run:
        from pydtrace.engines.user.subroutines import NullString

        def do_trace(f: Firing) -> None:
            v = value(f)
            if isinstance(v, NullString):  # tracing a NULL string reads address 0
                raise ProbeFault(BADADDR, 0, pc)
            f.items.append(Item(act, (v,)))

        return do_trace

    def print_action(self, act: Action) -> Run:
        """print(ptr): the pointer and the bytes of the object it points to."""
        ptr, obj = act.data
        assert ptr.expr is not None
        a0, mem, size = self.expr(ptr.expr), self.st.mem, obj.size

        def do_print(f: Firing) -> None:
            addr = a0(f)
            f.items.append(Item(act, (addr, mem.read(addr, size))))

        return do_print

    def stack_action(self, act: Action, e: ast.Call) -> Run:
        if act.name == "stack":  # the session refuses it: no kernel frames here
            return lambda f: f.items.append(Item(act, (None,)))
        frames = self.frame_count(e)
        return lambda f: f.items.append(Item(act, (ustack(f, frames),)))

    def side_effect(self, e: ast.Call) -> Run:
        name = e.name
        st = self.st
        a0 = self.expr(e.args[0]) if e.args else None
        pc = getattr(e, "pc", 0)
        if name == "speculate":
            assert a0 is not None

            def do_speculate(f: Firing) -> None:
                sid = a0(f)
                if sid not in st.spec_busy:
                    # not an active speculation (0, never handed out, or
                    # already committed/discarded): dtrace ends the clause
                    raise Skip
                f.spec = sid

            return do_speculate
        if name in ("commit", "discard"):
            assert a0 is not None
            committing = name == "commit"

            def do_commit(f: Firing) -> None:
                sid = a0(f)
                if not 0 <= sid <= st.nspec:
                    raise ProbeFault(ILLOP, 0, pc)
                recs = st.spec_busy.pop(sid, None)
                if recs is not None and committing:
                    f.commits.extend(recs)

            return do_commit
        if name == "chill":
            assert a0 is not None
            return lambda f: time.sleep(max(0, a0(f)) / 1e9)
        if name == "tracemem":
            assert a0 is not None

            def do_tracemem(f: Firing) -> None:
                raise ProbeFault(BADADDR, a0(f), pc)

            return do_tracemem
        if name == "stop":
            return lambda f: send_signal(f, signal.SIGSTOP, thread=False)
        if name == "raise":
            assert a0 is not None

            def do_raise(f: Firing) -> None:
                sig = a0(f)
                if not 0 < sig < signal.NSIG:
                    raise ProbeFault(ILLOP, 0, pc)
                send_signal(f, sig, thread=True)

            return do_raise
        # breakpoint, panic, ftruncate, pcap: accepted, but with no kernel
        # under this engine they do nothing
        return lambda f: None


def _recorder(act: Action, vals: list[Fn]) -> Run:
    """Append the action's item, its values evaluated in the description's order."""
    if not vals:
        item = Item(act, ())
        return lambda f: f.items.append(item)
    if len(vals) == 1:
        (v0,) = vals
        return lambda f: f.items.append(Item(act, (v0(f),)))
    return lambda f: f.items.append(Item(act, tuple([v(f) for v in vals])))
