"""Recording actions: trace, printf, printa, exit, system, freopen, setopt,
clear/trunc/normalize... and the record slots they fill; speculations
(speculation() as a value is lower_speculation, in cg_subroutines' table)."""

from __future__ import annotations

from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.cg_context import (
    MAX_NSPEC,
    CompilerBase,
    Value,
)
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9, R10, Insn, s32
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.records import Action
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ActionsMixin(CompilerBase):
    def new_action(self, kind: str, build: Any) -> None:
        """Register an item of the record; inside `if` its bit is set when it runs.
        build(values) gets the record's decoded slot values (RecordLayout.values)."""
        bit = self.actions
        self.actions += 1
        self.layout.add(bit, kind, build)
        if self.cond_depth == 0:
            self.static_mask |= 1 << bit
        else:
            a = self.a
            word = 16 if bit < 32 else 20
            a.ldx(4, R1, R9, word)
            self._mark(a.insns[-1], "rec", word)
            a.alu("|", R1, imm=s32(1 << (bit % 32)))
            a.stx(4, R9, word, R1)
            self._mark(a.insns[-1], "rec", word)

    def record_value(self, e: ast.Expr, null_faults: bool = False) -> L.Slot:
        """Evaluate e into a new slot of the record; with null_faults, a NULL
        string (strtok's or strstr's "no result") faults, as trace() does."""
        t: CType = e.ctype  # type: ignore[attr-defined]
        v = self.expr(e)
        if t.is_char_array():  # printf("%s", comm): its characters, as a string
            v = self.string_at(v)
            t = T.STRING
        if t.is_string() and null_faults:
            self.check_null_string(v.reg)
        if t.is_string():
            slot = self.layout.slot(T.STRING, self.ssize)
            self.copy_string_to(R9, slot.off, v.reg, area="rec")
        elif t.is_int() or t.is_pointer():
            self.wrap(v.reg, t)
            slot = self.layout.slot(t, 8)
            self.a.stx(8, R9, slot.off, v.reg)
            self._mark(self.a.insns[-1], "rec", slot.off)
        elif t.r.kind == "float":  # its bits (layout reads them as a float/double)
            slot = self.layout.slot(t, 8)
            self.a.stx(8, R9, slot.off, v.reg)
            self._mark(self.a.insns[-1], "rec", slot.off)
        else:
            raise self.unsupported(f"recording a value of type {t}", e)
        self.free(v)
        return slot

    def record_block(self, addr: Value, size: int) -> list[int]:
        """Copy size bytes at the D address in addr into new record slots (8-byte
        words in a row); returns their value indexes (see layout.block_bytes)."""
        slots = [self.layout.slot(T.ULONG, 8) for _ in range(max(1, (size + 7) // 8))]
        first = slots[0].off
        self.read_block(lambda reg: self.rec_ptr(reg, first), addr, size)
        return [sl.idx for sl in slots]

    def action(self, e: ast.Call) -> None:
        """Record what the clause's description of this action lists, or lower
        an action with side effects only."""
        act = self.c.action(e)
        if act is None:
            self.side_effect(e)
            return
        kind = act.kind
        if kind == "trace":
            self.trace(act, e)
            return
        if kind == "print":
            self.print_action(act)
            return
        if kind == "stack":
            self.stack_action(e, act)  # cg_stack
            return
        if kind == "sym":
            self.sym_action(e, act)
            return
        if kind in ("system", "freopen") and act.format is None:
            raise self.unsupported(f"{e.name}() with a format that is not a string literal", e)
        if kind == "setopt":
            # option names and values are literals in practice: kept in the builder
            parts = [
                (d.expr.value, None)
                if isinstance(d.expr, ast.StrLit)
                else (None, self.record_value(d.expr).idx)  # type: ignore[arg-type]
                for d in act.data
            ]
            self.new_action("setopt", L.SetoptItem(act, parts))
            return
        slots = [self.record_value(d.expr) for d in act.data]  # type: ignore[arg-type]
        if kind == "exit":
            slots[0].ctype = T.INT
            a = self.a
            a.ld_map(R1, "globals", 0)
            a.movi(R2, 1)
            a.stx(8, R1, 0, R2)
        if kind == "printf":  # kept apart: the engine may format it without an Item
            self.new_action("printf", L.PrintfItem(act, [(s.idx, s.ctype) for s in slots]))
            return
        self.new_action(kind, L.PickItem(act, [s.idx for s in slots]))

    def trace(self, act: Action, e: ast.Call) -> None:
        """trace() (and print() of an array): one value, a struct's bytes."""
        d = act.data[0]
        x = d.expr
        assert x is not None
        if d.by_ref:  # a struct/union/array: its bytes, as the user engine records them
            v = self.expr(x)
            idxs = self.record_block(v, d.size)
            self.free(v)
            self.new_action("trace", L.BlockItem(act, None, idxs, d.size))
            return
        if act.name == "trace" and d.ctype.r.kind == "float":
            # the user engine holds an unassigned float as the integer 0 (traced "0")
            slot = self.record_value(x)
            self.new_action("trace", L.FloatItem(act, slot.idx))
            return
        slot = self.record_value(x, null_faults=act.name == "trace")
        self.new_action("trace", L.PickItem(act, [slot.idx]))

    def print_action(self, act: Action) -> None:
        """print(ptr): the pointer, then the bytes of the object it points to."""
        ptr, obj = act.data
        assert ptr.expr is not None
        v = self.expr(ptr.expr)
        aslot = self.layout.slot(ptr.ctype, 8)
        self.a.stx(8, R9, aslot.off, v.reg)
        self._mark(self.a.insns[-1], "rec", aslot.off)
        idxs = self.record_block(v, obj.size) if obj.size > 0 else []
        self.free(v)
        self.new_action("print", L.BlockItem(act, aslot.idx, idxs, obj.size))

    def side_effect(self, e: ast.Call) -> None:
        name = e.name
        if name in ("raise", "stop"):
            self.signal_action(e)
        elif name == "speculate":
            self.speculate(e)
        elif name in ("commit", "discard"):
            self.commit(e, name == "commit")
        else:
            raise self.unsupported(f"{name}()", e)

    # --- speculations ----------------------------------------------------------------------
    # The buffering is done in Python (engine.py): a kernel word per buffer says
    # whether speculation() handed it out; a speculative clause's record carries
    # its id in the kind word; commit()/discard() write a record that the engine
    # applies in ring order, then free the buffer.
    def spec_area(self) -> int:
        """Offset in the globals of the nspec busy words (taken on first use),
        after a u64 counting speculation() finding none free (read by the
        engine at Compiled.spec_unavail_off)."""
        off = getattr(self, "spec_off", None)
        if off is None:
            nspec = int(self.options.get("nspec", 1) or 0)
            if nspec > MAX_NSPEC:
                raise LoweringError(f"the eBPF engine handles at most {MAX_NSPEC} speculations "
                                    f"(nspec={nspec})")  # fmt: skip
            self.nspec = max(nspec, 0)
            self.out.spec_unavail_off = self.globals_size  # type: ignore[attr-defined]
            off = self.spec_off = self.globals_size + 8
            self.globals_size += 8 + 8 * max(self.nspec, 1)
        return off

    def spec_word(self, index: int) -> None:
        """r1 = &busy word of speculation index+1; register `index` (not r1)
        holds id - 1, bounded by a check the verifier saw. Clobbers r2."""
        a = self.a
        a.mov(R2, index)
        a.alu("<<", R2, imm=3)
        a.ld_map(R1, "globals", self.spec_off)
        a.alu("+", R1, src=R2)

    def lower_speculation(self, e: ast.Call) -> Value:
        """The first free buffer (atomically claimed), or 0 and a SPECUNAVAIL drop."""
        a = self.a
        off = self.spec_area()
        out = self.alloc(T.INT)
        done = a.new_label("spec_done")
        for k in range(1, self.nspec + 1):
            a.ld_map(R1, "globals", off + 8 * (k - 1))
            a.movi(R0, 0)
            a.movi(R2, 1)
            a.emit(Insn(0xDB, R1, R2, 0, 0xF1))  # r0 = cmpxchg(*(u64 *)r1, r0, r2)
            a.movi(out.reg, k)
            a.jmp("==", R0, done, imm=0)
        a.ld_map(R1, "globals", off - 8)
        a.movi(R2, 1)
        a.atomic_add(8, R1, 0, R2)
        a.movi(out.reg, 0)
        a.place(done)
        return out

    def speculate(self, e: ast.Call) -> None:
        """An id that is not an active speculation ends the clause (as dtrace);
        else the record's kind word carries it."""
        a = self.a
        self.spec_area()
        v = self.expr(e.args[0])
        a.mov(R3, v.reg)
        a.alu("-", R3, imm=1)
        a.jmp(">=", R3, self.next_clause, imm=self.nspec)  # 0, negative or > nspec
        self.spec_word(R3)
        a.ldx(8, R1, R1, 0)
        a.jmp("==", R1, self.next_clause, imm=0)
        a.mov(R1, v.reg)
        a.alu("<<", R1, imm=L.SPEC_SHIFT)
        a.alu("|", R1, imm=L.REC_DATA)
        a.stx(4, R9, 0, R1)
        self._mark(a.insns[-1], "rec", 0)
        self.free(v)

    def signal_action(self, e: ast.Call) -> None:
        """raise(sig): the signal to the firing thread, sent by the kernel when the
        probe returns (bpf_send_signal_thread); a number outside 1..64 is an
        illegal operation, as on the user engine. stop(): SIGSTOP to its process."""
        from pydtrace.consume.records import ILLOP

        a = self.a
        if e.name == "stop":
            a.movi(R1, 19)  # SIGSTOP
            a.call("send_signal")
            return
        v = self.expr(e.args[0])
        bad, ok = a.new_label("sig_bad"), a.new_label("sig_ok")
        a.jmp("s<=", v.reg, bad, imm=0)
        a.jmp("s<", v.reg, ok, imm=65)  # _NSIG
        a.place(bad)
        self.fault(ILLOP, v.reg)
        a.place(ok)
        a.mov(R1, v.reg)
        self.free(v)
        a.call("send_signal_thread")

    def commit(self, e: ast.Call, committing: bool) -> None:
        """An id above nspec (or negative) is an illegal operation; 0 and
        inactive ids do nothing; else a commit/discard record, then the
        buffer is free again."""
        from pydtrace.consume.records import ILLOP

        a = self.a
        self.ring_unbounded = True  # a record of its own, not a clause's (ring_size)
        self.spec_area()
        v = self.expr(e.args[0])
        ok = a.new_label("spec_ok")
        a.jmp("<=", v.reg, ok, imm=self.nspec)
        self.fault(ILLOP)
        a.place(ok)
        skip = a.new_label("spec_none")
        a.jmp("==", v.reg, skip, imm=0)
        a.st(4, R10, -32, L.REC_COMMIT if committing else L.REC_DISCARD)
        a.st(4, R10, -28, 0)
        a.st(8, R10, -24, 0)
        a.stx(8, R10, -16, v.reg)
        a.ld_map(R1, "records")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-32)
        a.movi(R3, L.SPEC_SIZE)
        a.movi(R4, 0)
        a.call("ringbuf_output")
        a.mov(R3, v.reg)
        a.alu("-", R3, imm=1)
        self.spec_word(R3)
        a.st(8, R1, 0, 0)
        a.place(skip)
        self.free(v)
