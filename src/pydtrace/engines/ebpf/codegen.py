"""Code generation: a checked D program becomes BPF programs, one per probe.

Each program looks up its per-CPU frame (a one-entry PERCPU_ARRAY holding the
probe arguments, key buffers, string temporaries and the record being built),
copies the probe's arguments into it, then runs the clauses of that probe in
program order. A clause evaluates its predicate, runs its statements, and
writes its record to the ring buffer with ringbuf_output. Faults jump to the
clause's fault block, which writes a fault record and goes on with the next
clause.

Register use: r9 = the frame, r6-r8 = expression temporaries (they survive
helper calls), r0-r5 = scratch within one operation.

The semantics follow engines/user/interpreter.py: integers are computed in
64-bit registers and cut to their C type when stored or recorded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydtrace.consume.aggregation import AggSpec
from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R5, R9, R10, Assembler, Insn
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.program import CheckedProgram, ClauseInfo
from pydtrace.lang.types import CType

# program types and map types (kernel uapi numbers)
PROG_TRACEPOINT, PROG_PERF_EVENT, PROG_RAW_TRACEPOINT = 5, 7, 17
MAP_HASH, MAP_ARRAY, MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_RINGBUF = 1, 2, 5, 6, 27

DIVZERO = 4
MAX_ARGS = 10

# drop counters (u64 words of the `drops` per-CPU array)
DROP_RING, DROP_AGG, DROP_DYN = 0, 1, 2

TEMPS = (6, 7, 8)


@dataclass
class MapSpec:
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0


@dataclass
class ProgSpec:
    """One BPF program: what it serves and how it attaches."""

    name: str
    prog_type: int
    probe: Any  # probes.catalogue.Probe
    attach: tuple  # ('run', 'BEGIN'|'END') | ('tracepoint', group, event) | ('timer', period_ns, all cpus)
    insns: list[Insn]


@dataclass
class Compiled:
    maps: list[MapSpec] = field(default_factory=list)
    progs: list[ProgSpec] = field(default_factory=list)
    records: dict[int, L.RecordLayout] = field(default_factory=dict)  # clause index -> layout
    aggs: dict[str, L.AggLayout] = field(default_factory=dict)
    probes: dict[int, Any] = field(default_factory=dict)
    global_offsets: dict[str, int] = field(default_factory=dict)
    strsize: int = 256
    frame_size: int = 0


class Frame:
    """Offsets inside the per-CPU frame value."""

    def __init__(self) -> None:
        self.size = 0

    def take(self, n: int) -> int:
        off = self.size
        self.size += L.align8(n)
        return off


def _line(e: Any) -> int:
    return getattr(e, "line", 0) or 0


def _wide(t: CType) -> bool:
    """Is t signed (computed as a signed 64-bit value)?"""
    return t.is_signed()


class Value:
    """An expression's result: a temporary register; strings are a pointer to
    a zero-padded strsize+1 byte buffer inside a map value."""

    def __init__(self, reg: int, ctype: CType) -> None:
        self.reg = reg
        self.ctype = ctype


class Compiler:
    def __init__(self, prog: CheckedProgram, options: dict[str, Any]) -> None:
        self.prog = prog
        self.options = options
        self.strsize = int(options.get("strsize", 256) or 256)
        self.ssize = self.strsize + 1  # bytes of a string buffer
        self.out = Compiled(strsize=self.strsize)
        self.frame = Frame()
        # the frame's fixed areas
        self.f_args = self.frame.take(8 * MAX_ARGS)
        self.f_errno = self.frame.take(8)
        self.f_keysize = 8
        self.globals_size = 8  # offset 0: the draining flag set by exit()
        self.global_off: dict[str, int] = {}
        self.this_off: dict[str, int] = {}
        self.nstrings = 0
        self.boot_offset = time.time_ns() - time.monotonic_ns()

    # --- whole program ---------------------------------------------------------------
    def compile(self) -> Compiled:
        prog = self.prog
        for name, v in prog.globals.items():
            if (
                v.keys is not None
                or v.array
                or not (v.type.is_int() or v.type.is_string() or v.type.is_pointer())
            ):
                raise LoweringError(
                    f"the eBPF engine cannot compile global variable {name} of type {v.type} yet"
                )
            size = self.ssize if v.type.is_string() else 8
            self.global_off[name] = self.globals_size
            self.globals_size += L.align8(size)
        for name, v in prog.clocals.items():
            if not (v.type.is_int() or v.type.is_pointer()):
                raise LoweringError(
                    f"the eBPF engine cannot compile this->{name} of type {v.type} yet"
                )
            self.this_off[name] = -1  # placed in the frame below
        for name in self.this_off:
            self.this_off[name] = self.frame.take(8)
        for name, v in prog.tlocals.items():
            if not (v.type.is_int() or v.type.is_pointer()):
                raise LoweringError(
                    f"the eBPF engine cannot compile self->{name} of type {v.type} yet"
                )
        self.tls_id = {name: i + 1 for i, name in enumerate(prog.tlocals)}
        if self.tls_id:
            self.f_tkey = self.frame.take(16)  # thread-local key: tid, variable id
            self.f_tval = self.frame.take(8)
        maxkey = 8
        maxval = 8
        for a in prog.aggs.values():
            if a.func in ("stddev", "llquantize"):
                raise LoweringError(f"the eBPF engine cannot compile {a.func}() yet")
            spec = AggSpec(a.id, a.name, a.func, a.params, list(a.keys), a.valtype)
            lay = L.agg_layout(spec, f"agg{a.id}", self.strsize)
            self.out.aggs[a.name] = lay
            maxkey = max(maxkey, lay.key_size)
            maxval = max(maxval, lay.value_size)
        self.f_key = self.frame.take(maxkey)
        self.f_zero = self.frame.take(maxval)  # never written: initial aggregation values
        self.f_rec = self.frame.take(0)  # sized after the clauses are compiled
        self.out.global_offsets = dict(self.global_off)

        # one program per probe, its clauses in program order
        by_probe: dict[int, list[ClauseInfo]] = {}
        for c in prog.clauses:
            for p in c.probes:
                by_probe.setdefault(p.id, []).append(c)
                self.out.probes[p.id] = p
        self.rec_max = L.FAULT_SIZE
        progs = []
        for pid, clauses in sorted(by_probe.items()):
            probe = self.out.probes[pid]
            if probe.provider == "dtrace" and probe.name == "ERROR":
                raise LoweringError("the eBPF engine cannot compile ERROR clauses yet")
            progs.append((probe, clauses))
        # the record area goes last so that string temporaries have fixed offsets
        generated = [self.program(probe, clauses) for probe, clauses in progs]
        self.f_rec = self.frame.take(self.rec_max)
        self.f_str = self.frame.take(self.ssize * max(self.nstrings, 1))
        # offsets of the record and string areas were symbolic until now
        self.out.progs.extend(generated)
        self._patch_areas()
        self.out.frame_size = self.frame.size
        bufsize = _bufsize(self.options.get("bufsize"))
        o = self.out
        o.maps = [
            MapSpec("frame", MAP_PERCPU_ARRAY, 4, self.frame.size, 1),
            MapSpec("globals", MAP_ARRAY, 4, self.globals_size, 1),
            MapSpec("drops", MAP_PERCPU_ARRAY, 4, 8 * 4, 1),
            MapSpec("records", MAP_RINGBUF, 0, 0, bufsize),
        ]
        if self.tls_id:
            o.maps.append(MapSpec("tls", MAP_HASH, 16, 8, _dvar_entries(self.options)))
        for lay in o.aggs.values():
            o.maps.append(MapSpec(lay.map_name, MAP_PERCPU_HASH, lay.key_size, lay.value_size,
                                  _aggentries(self.options)))  # fmt: skip
        return o

    # Record and string areas are placed after every clause is compiled (their
    # sizes are only known then); instructions address them with these markers
    # in `off` and are patched once.
    REC_MARK = 0x4000
    STR_MARK = 0x6000

    def _patch_areas(self) -> None:
        for spec in self.out.progs:
            for i in spec.insns:
                mark = getattr(i, "_area", None)
                if mark is None:
                    continue
                area, rel = mark
                base = self.f_rec if area == "rec" else self.f_str
                if i.code == 0x07:  # r += imm
                    i.imm = base + rel
                else:
                    i.off = base + rel
                if not -(1 << 15) <= i.off < (1 << 15):
                    raise LoweringError("the eBPF engine's frame is too large (lower strsize)")

    # --- one probe ---------------------------------------------------------------------
    def program(self, probe: Any, clauses: list[ClauseInfo]) -> ProgSpec:
        a = Assembler()
        self.a = a
        self.probe = probe
        prov, name = probe.provider, probe.name
        if prov == "dtrace" and name in ("BEGIN", "END"):
            ptype, attach = PROG_RAW_TRACEPOINT, ("run", name)
        elif prov == "profile":
            from pydtrace.probes.profile import profile_period_ns

            kp = profile_period_ns(name)
            if kp is None:
                raise LoweringError(f"the eBPF engine cannot attach {probe.fqn}")
            ptype, attach = PROG_PERF_EVENT, ("timer", kp[1], kp[0] == "profile")
        elif prov == "syscall":
            if name not in ("entry", "return"):
                raise LoweringError(f"the eBPF engine cannot attach {probe.fqn}")
            event = ("sys_enter_" if name == "entry" else "sys_exit_") + probe.function
            ptype, attach = PROG_TRACEPOINT, ("tracepoint", "syscalls", event)
        else:
            raise LoweringError(f"the eBPF engine cannot attach {probe.provider} probes yet")
        a.origin = ("prologue", 0, 0)
        a.mov(6, R1)
        # frame = lookup(frame, &0)
        a.st(4, R10, -4, 0)
        a.mov(R2, R10)
        a.alu("+", R2, imm=-4)
        a.ld_map(R1, "frame")
        a.call("map_lookup_elem")
        done = a.new_label("out")
        a.jmp("==", R0, done, imm=0)
        a.mov(R9, R0)
        self.prologue_args(ptype, probe)
        for off in self.this_off.values():
            a.st(8, R9, off, 0)
        is_end = prov == "dtrace" and name == "END"
        for c in clauses:
            self.clause(c, done, is_end)
        a.origin = ("epilogue", 0, 0)
        a.place(done)
        a.movi(R0, 0)
        a.exit()
        insns = a.resolve()
        pname = f"dt_{probe.id}"
        return ProgSpec(pname, ptype, probe, attach, insns)

    def prologue_args(self, ptype: int, probe: Any) -> None:
        a = self.a
        fa = self.f_args
        for i in range(MAX_ARGS):
            a.st(8, R9, fa + 8 * i, 0)
        a.st(8, R9, self.f_errno, 0)
        if ptype == PROG_TRACEPOINT:
            if probe.name == "entry":
                sc = probe.data
                n = min(len(getattr(sc, "args", ()) or ()), 6)
                for i in range(n):
                    a.ldx(8, R1, 6, 16 + 8 * i)
                    a.stx(8, R9, fa + 8 * i, R1)
            else:
                # return: arg0 = arg1 = the return value; errno = -ret for -4095 <= ret < 0
                a.ldx(8, R1, 6, 16)
                a.stx(8, R9, fa, R1)
                a.stx(8, R9, fa + 8, R1)
                skip = a.new_label("noerr")
                a.jmp("s>=", R1, skip, imm=0)
                a.jmp("s<", R1, skip, imm=-4095)
                a.neg(R1)
                a.stx(8, R9, self.f_errno, R1)
                a.place(skip)
        elif ptype == PROG_PERF_EVENT:
            # bpf_perf_event_data: pt_regs first (ip @128, cs @136); user mode iff cs & 3
            a.ldx(8, R1, 6, 128)
            a.ldx(8, R2, 6, 136)
            user = a.new_label("user")
            stored = a.new_label("pc")
            a.jmp("&", R2, user, imm=3)
            a.stx(8, R9, fa, R1)
            a.ja(stored)
            a.place(user)
            a.stx(8, R9, fa + 8, R1)
            a.place(stored)

    # --- clauses -----------------------------------------------------------------------
    def clause(self, c: ClauseInfo, done: str, is_end: bool) -> None:
        a = self.a
        self.c = c
        self.temps = list(TEMPS)
        self.strings_used = 0
        self.layout = L.RecordLayout(c.index)
        self.actions = 0
        self.cond_depth = 0
        self.static_mask = 0
        self.next_clause = a.new_label("next")
        self.fault_label = a.new_label("fault")
        self.faults_used = False
        a.origin = ("clause", c.index, c.line)
        if not is_end:
            a.ld_map(R1, "globals", 0)
            a.ldx(8, R1, R1, 0)
            a.jmp("!=", R1, done, imm=0)
        if c.predicate is not None:
            a.origin = ("clause", c.index, _line(c.predicate) or c.line)
            v = self.expr(c.predicate)
            self.truth(v)
            self.free(v)
            a.jmp("==", v.reg, self.next_clause, imm=0)
        # the record header: kind, probe, clause, cpu, then the action mask
        mask_insn = None
        if c.records:
            a.st(4, R9, 0, L.REC_DATA)
            self._mark(a.insns[-1], "rec", 0)
            a.st(4, R9, 4, self.probe.id)
            self._mark(a.insns[-1], "rec", 4)
            a.st(4, R9, 8, c.index)
            self._mark(a.insns[-1], "rec", 8)
            a.call("get_smp_processor_id")
            a.stx(4, R9, 12, R0)
            self._mark(a.insns[-1], "rec", 12)
            mask_insn = a.emit(Insn(0x62, R9, 0, 16, 0))  # *(u32 *)(r9 + rec+16) = mask
            self._mark(mask_insn, "rec", 16)
            a.st(4, R9, 20, 0)
            self._mark(a.insns[-1], "rec", 20)
        for s in c.body:
            self.stmt(s)
        if c.records:
            a.origin = ("clause", c.index, c.line)
            if self.actions > 32:
                raise LoweringError(
                    f"the eBPF engine cannot record more than 32 actions in one clause (line {c.line})"
                )
            assert mask_insn is not None
            mask_insn.imm = self.static_mask
            self.rec_max = max(self.rec_max, self.layout.size)
            self.emit_output(self.layout.size)
        self.out.records[c.index] = self.layout
        if self.faults_used:
            # fault: r1 = code, r2 = value, r3 = pc
            a.ja(self.next_clause)
            a.place(self.fault_label)
            self.emit_fault()
        a.place(self.next_clause)

    def _mark(self, insn: Insn, area: str, rel: int) -> None:
        insn._area = (area, rel)  # type: ignore[attr-defined]

    def rec_ptr(self, reg: int, rel: int) -> None:
        """reg = pointer to the record area + rel."""
        a = self.a
        a.mov(reg, R9)
        a.alu("+", reg, imm=0)
        self._mark(a.insns[-1], "rec", rel)

    def emit_output(self, size: int) -> None:
        a = self.a
        a.ld_map(R1, "records")
        self.rec_ptr(R2, 0)
        a.movi(R3, size)
        a.movi(R4, 0)
        a.call("ringbuf_output")
        ok = a.new_label("sent")
        a.jmp("s>=", R0, ok, imm=0)
        self.count_drop(DROP_RING)
        a.place(ok)

    def count_drop(self, which: int) -> None:
        a = self.a
        a.st(4, R10, -4, 0)
        a.mov(R2, R10)
        a.alu("+", R2, imm=-4)
        a.ld_map(R1, "drops")
        a.call("map_lookup_elem")
        skip = a.new_label("nodrop")
        a.jmp("==", R0, skip, imm=0)
        a.movi(R1, 1)
        a.atomic_add(8, R0, 8 * which, R1)
        a.place(skip)

    def emit_fault(self) -> None:
        a = self.a
        c = self.c
        a.st(4, R9, 0, L.REC_FAULT)
        self._mark(a.insns[-1], "rec", 0)
        a.st(4, R9, 4, self.probe.id)
        self._mark(a.insns[-1], "rec", 4)
        a.st(4, R9, 8, c.index)
        self._mark(a.insns[-1], "rec", 8)
        a.stx(8, R9, 16, R3)
        self._mark(a.insns[-1], "rec", 16)
        a.stx(8, R9, 24, R1)
        self._mark(a.insns[-1], "rec", 24)
        a.stx(8, R9, 32, R2)
        self._mark(a.insns[-1], "rec", 32)
        a.call("get_smp_processor_id")
        a.stx(4, R9, 12, R0)
        self._mark(a.insns[-1], "rec", 12)
        self.emit_output(L.FAULT_SIZE)

    def fault(self, code: int, value_reg: int | None = None) -> None:
        """Jump to the clause's fault block with code, value and this pc."""
        a = self.a
        self.faults_used = True
        if value_reg is not None:
            a.mov(R2, value_reg)
        else:
            a.movi(R2, 0)
        a.movi(R1, code)
        a.movi(R3, a.pc + 2)
        a.ja(self.fault_label)

    # --- temporaries ------------------------------------------------------------------
    def alloc(self, ctype: CType) -> Value:
        if not self.temps:
            raise LoweringError(
                f"the eBPF engine cannot compile an expression this deep yet (line {self._cur_line()})"
            )
        return Value(self.temps.pop(0), ctype)

    def free(self, v: Value | None) -> None:
        if v is not None and v.reg not in self.temps:
            self.temps.insert(0, v.reg)

    def _cur_line(self) -> int:
        o = self.a.origin
        return o[2] if isinstance(o, tuple) else 0

    def string_buf(self) -> int:
        """A fresh string buffer's offset relative to the string area (one per use site)."""
        off = self.strings_used * self.ssize
        self.strings_used += 1
        self.nstrings = max(self.nstrings, self.strings_used)
        return off

    def truth(self, v: Value) -> None:
        pass  # any non-zero 64-bit value is true

    def unsupported(self, what: str, e: Any) -> LoweringError:
        return LoweringError(
            f"the eBPF engine cannot compile {what} yet (line {_line(e) or self._cur_line()})"
        )

    # --- statements ----------------------------------------------------------------------
    def stmt(self, s: ast.Stmt) -> None:
        a = self.a
        a.origin = ("clause", self.c.index, _line(s) or self.c.line)
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Assign) and hasattr(e, "agg"):
                self.aggregate(e)
                return
            b = getattr(e, "builtin", None) if isinstance(e, ast.Call) else None
            if b is not None and b.kind == "action":
                self.action(e)
                return
            self.free(self.expr(e))
            return
        if isinstance(s, ast.If):
            v = self.expr(s.cond)
            self.free(v)
            other = a.new_label("else")
            end = a.new_label("endif")
            a.jmp("==", v.reg, other, imm=0)
            self.cond_depth += 1
            for x in s.then:
                self.stmt(x)
            a.ja(end)
            a.place(other)
            for x in s.other or []:
                self.stmt(x)
            self.cond_depth -= 1
            a.place(end)
            return
        if isinstance(s, ast.Block):
            for x in s.body:
                self.stmt(x)
            return
        raise self.unsupported(type(s).__name__, s)

    # --- actions ---------------------------------------------------------------------
    def new_action(self, build: Any) -> None:
        """Register an item of the record; inside `if` its bit is set when it runs."""
        bit = self.actions
        self.actions += 1
        self.layout.items.append((bit, build))
        if self.cond_depth == 0:
            self.static_mask |= 1 << bit
        else:
            a = self.a
            a.ldx(4, R1, R9, 16)
            self._mark(a.insns[-1], "rec", 16)
            a.alu("|", R1, imm=1 << bit)
            a.stx(4, R9, 16, R1)
            self._mark(a.insns[-1], "rec", 16)

    def record_value(self, e: ast.Expr) -> L.Slot:
        """Evaluate e into a new slot of the record."""
        t: CType = e.ctype  # type: ignore[attr-defined]
        if t.is_char_array():
            raise self.unsupported("char arrays", e)
        v = self.expr(e)
        if t.is_string():
            slot = self.layout.slot(T.STRING, self.ssize)
            self.copy_string_to(R9, slot.off, v.reg, area="rec")
        elif t.is_int() or t.is_pointer():
            self.wrap(v.reg, t)
            slot = self.layout.slot(t, 8)
            self.a.stx(8, R9, slot.off, v.reg)
            self._mark(self.a.insns[-1], "rec", slot.off)
        else:
            raise self.unsupported(f"recording a value of type {t}", e)
        self.free(v)
        return slot

    def action(self, e: ast.Call) -> None:
        name = e.name
        if name == "trace":
            slot = self.record_value(e.args[0])
            self.new_action(lambda buf, s=slot: ("trace", s.read(buf), s.ctype))
            return
        if name == "printf":
            fmt = e.format  # type: ignore[attr-defined]
            slots = [self.record_value(x) for x in e.args[1:]]
            self.new_action(
                lambda buf, f=fmt, ss=slots: ("printf", f, [(s.read(buf), s.ctype) for s in ss])
            )
            return
        if name == "printa":
            fmt = e.format  # type: ignore[attr-defined]
            names = [x.name for x in e.aggs]  # type: ignore[attr-defined]
            self.new_action(lambda buf, f=fmt, n=names: ("printa", f, n))
            return
        if name == "exit":
            slot = self.record_value(e.args[0])
            slot.ctype = T.INT
            a = self.a
            a.ld_map(R1, "globals", 0)
            a.movi(R2, 1)
            a.stx(8, R1, 0, R2)
            self.new_action(lambda buf, s=slot: ("exit", s.read(buf)))
            return
        if name in ("clear", "denormalize"):
            aname = e.args[0].name  # type: ignore[attr-defined]
            self.new_action(lambda buf, n=name, g=aname: (n, g))
            return
        if name in ("trunc", "normalize"):
            aname = e.args[0].name  # type: ignore[attr-defined]
            slot = self.record_value(e.args[1]) if len(e.args) > 1 else None
            self.new_action(lambda buf, n=name, g=aname, s=slot: (n, g, s.read(buf) if s else None))
            return
        raise self.unsupported(f"{name}()", e)

    # --- aggregations -------------------------------------------------------------------
    def aggregate(self, e: ast.Assign) -> None:
        a = self.a
        info = e.agg  # type: ignore[attr-defined]
        lay = self.out.aggs[info.name]
        target = e.target
        keys = target.args if isinstance(target, ast.Index) else []
        if not keys:
            a.st(8, R9, self.f_key, 0)
        for k, slot in zip(keys, lay.keys):
            t: CType = k.ctype  # type: ignore[attr-defined]
            v = self.expr(k)
            if t.is_string():
                self.copy_string_to(R9, self.f_key + slot.off, v.reg)
            elif t.is_int() or t.is_pointer():
                self.wrap(v.reg, slot.ctype if slot.ctype.is_int() else t)
                a.stx(8, R9, self.f_key + slot.off, v.reg)
            else:
                raise self.unsupported(f"aggregation keys of type {t}", k)
            self.free(v)
        call = e.value
        assert isinstance(call, ast.Call)
        func = call.name
        val = self.expr(call.args[0]) if call.args and func != "count" else None
        incr_pos = {"quantize": 1, "lquantize": 4}.get(func)
        incr = (
            self.expr(call.args[incr_pos])
            if incr_pos is not None and len(call.args) > incr_pos
            else None
        )
        # r0 = the entry, created zeroed when missing
        found = a.new_label("agg")
        skip = a.new_label("aggdrop")
        for attempt in range(2):
            a.ld_map(R1, lay.map_name)
            a.mov(R2, R9)
            a.alu("+", R2, imm=self.f_key)
            a.call("map_lookup_elem")
            a.jmp("!=", R0, found, imm=0)
            if attempt == 0:
                a.ld_map(R1, lay.map_name)
                a.mov(R2, R9)
                a.alu("+", R2, imm=self.f_key)
                a.mov(R3, R9)
                a.alu("+", R3, imm=self.f_zero)
                a.movi(R4, 1)  # BPF_NOEXIST
                a.call("map_update_elem")
        self.count_drop(DROP_AGG)
        a.ja(skip)
        a.place(found)
        a.ldx(8, R1, R0, 0)
        a.alu("+", R1, imm=1)
        a.stx(8, R0, 0, R1)  # updates on this CPU (the first says "no value yet" for min/max)
        vr = val.reg if val is not None else None
        if func == "count":
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
        elif func == "sum":
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, vr)
            a.stx(8, R0, 8, R2)
        elif func in ("min", "max"):
            store = a.new_label("set")
            keep = a.new_label("keep")
            a.jmp("==", R1, store, imm=1)  # first value on this CPU
            a.ldx(8, R2, R0, 8)
            a.jmp("s<=" if func == "min" else "s>=", R2, keep, src=vr)
            a.place(store)
            a.stx(8, R0, 8, vr)
            a.place(keep)
        elif func == "avg":
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
            a.ldx(8, R2, R0, 16)
            a.alu("+", R2, vr)
            a.stx(8, R0, 16, R2)
        elif func in ("quantize", "lquantize"):
            assert vr is not None
            if func == "quantize":
                self.quantize_bucket(vr)
            else:
                self.lquantize_bucket(vr, *info.params)
            # r1 = bucket index, bounded for the verifier
            a.alu("&", R1, imm=0x7FFF)
            a.jmp(">=", R1, skip, imm=lay.words)
            a.alu("<<", R1, imm=3)
            a.alu("+", R0, R1)
            a.ldx(8, R2, R0, 8)
            if incr is not None:
                a.alu("+", R2, incr.reg)
            else:
                a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
        else:
            raise self.unsupported(f"{func}()", e)
        a.place(skip)
        self.free(incr)
        self.free(val)

    def quantize_bucket(self, vr: int) -> None:
        """r1 = the power-of-two bucket of the value in vr (63 holds 0)."""
        a = self.a
        done = a.new_label("qdone")
        a.movi(R1, 63)
        a.jmp("==", vr, done, imm=0)
        a.mov(R2, vr)
        neg = a.new_label("qneg")
        a.jmp("s<", R2, neg, imm=0)
        self.bit_length(R2, R3)
        a.mov(R1, R3)
        a.alu("+", R1, imm=63)
        a.ja(done)
        a.place(neg)
        a.neg(R2)  # INT64_MIN stays 2**63: 64 bits, bucket 0
        self.bit_length(R2, R3)
        a.movi(R1, 63)
        a.alu("-", R1, R3)
        a.place(done)

    def bit_length(self, src: int, out: int) -> None:
        """out = the bit length of the unsigned value in src (src is clobbered)."""
        a = self.a
        a.movi(out, 0)
        for shift in (32, 16, 8, 4, 2, 1):
            small = a.new_label("bl")
            a.mov(R4, src)
            a.alu(">>", R4, imm=shift)
            a.jmp("==", R4, small, imm=0)
            a.mov(src, R4)
            a.alu("+", out, imm=shift)
            a.place(small)
        none = a.new_label("bl0")
        a.jmp("==", src, none, imm=0)
        a.alu("+", out, imm=1)
        a.place(none)

    def lquantize_bucket(self, vr: int, low: int, high: int, step: int, *_: int) -> None:
        """r1 = 0 below low, 1 + (v - low) / step, capped at levels + 1."""
        a = self.a
        levels = (high - low) // step
        done = a.new_label("ldone")
        a.movi(R1, 0)
        a.movi(R2, low)
        a.jmp("s<", vr, done, src=R2)
        a.mov(R1, vr)
        a.alu("-", R1, R2)
        a.movi(R2, step)
        a.alu("/", R1, R2)
        a.movi(R2, levels)
        capped = a.new_label("lcap")
        a.jmp("<=", R1, capped, src=R2)
        a.mov(R1, R2)
        a.place(capped)
        a.alu("+", R1, imm=1)
        a.place(done)

    # --- strings ------------------------------------------------------------------------
    def copy_string_to(self, dst: int, off: int, src: int, area: str | None = None) -> None:
        """Copy a whole string buffer (strsize+1 bytes, zero padded) to dst+off."""
        a = self.a
        n = self.ssize
        pos = 0
        while pos < n:
            size = 8 if n - pos >= 8 else 4 if n - pos >= 4 else 2 if n - pos >= 2 else 1
            a.ldx(size, R5, src, pos)
            a.stx(size, dst, off + pos, R5)
            if area is not None:
                self._mark(a.insns[-1], area, off + pos)
            pos += size

    def new_string(self) -> tuple[Value, int]:
        """A zeroed string buffer in the frame; returns (pointer value, area offset)."""
        a = self.a
        rel = self.string_buf()
        v = self.alloc(T.STRING)
        a.mov(v.reg, R9)
        a.alu("+", v.reg, imm=0)
        self._mark(a.insns[-1], "str", rel)
        pos = 0
        while pos < self.ssize:
            size = 8 if self.ssize - pos >= 8 else 1
            a.st(size, v.reg, pos, 0)
            pos += size
        return v, rel

    def const_string(self, s: str) -> Value:
        a = self.a
        v, _ = self.new_string()
        data = s.encode("utf-8", "surrogateescape")[: self.strsize]
        for i in range(0, len(data), 4):
            chunk = data[i : i + 4]
            if len(chunk) == 4:
                a.st(4, v.reg, i, int.from_bytes(chunk, "little"))
            else:
                for j, ch in enumerate(chunk):
                    a.st(1, v.reg, i + j, ch)
        return v

    def string_compare(self, x: Value, y: Value, op: str) -> None:
        """x.reg = 1 if (x op y) else 0, comparing bytes as unsigned chars."""
        a = self.a
        loop, diff, equal, end = (a.new_label(h) for h in ("sloop", "sdiff", "seq", "send"))
        a.mov(R1, x.reg)
        a.mov(R2, y.reg)
        a.movi(R3, 0)
        a.place(loop)
        a.ldx(1, R4, R1, 0)
        a.ldx(1, R5, R2, 0)
        a.jmp("!=", R4, diff, src=R5)
        a.jmp("==", R4, equal, imm=0)
        a.alu("+", R1, imm=1)
        a.alu("+", R2, imm=1)
        a.alu("+", R3, imm=1)
        a.jmp("<", R3, loop, imm=self.strsize)
        a.place(equal)
        a.movi(R0, 0)
        a.ja(end)
        a.place(diff)
        a.movi(R0, 1)
        lt = a.new_label("slt")
        a.jmp(">", R4, end, src=R5)
        a.place(lt)
        a.movi(R0, -1)
        a.place(end)
        # r0 = -1, 0, 1
        yes = a.new_label("scmp")
        a.movi(x.reg, 1)
        a.jmp(
            {"==": "==", "!=": "!=", "<": "s<", "<=": "s<=", ">": "s>", ">=": "s>="}[op],
            R0,
            yes,
            imm=0,
        )
        a.movi(x.reg, 0)
        a.place(yes)

    # --- expressions --------------------------------------------------------------------
    def expr(self, e: ast.Expr) -> Value:
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

    def _x_StrLit(self, e: ast.StrLit) -> Value:
        return self.const_string(e.value)

    def _x_Sizeof(self, e: ast.Sizeof) -> Value:
        return self.const(e.value, e.ctype)  # type: ignore[attr-defined]

    _x_Offsetof = _x_Sizeof

    def _x_Ident(self, e: ast.Ident) -> Value:
        kind, what = e.ref  # type: ignore[attr-defined]
        t: CType = e.ctype  # type: ignore[attr-defined]
        a = self.a
        if kind == "global":
            off = self.global_off[what.name]
            v = self.alloc(t)
            if t.is_string():
                a.ld_map(v.reg, "globals", off)
            else:
                a.ld_map(v.reg, "globals", 0)
                a.ldx(8, v.reg, v.reg, off)
            return v
        if kind == "const":
            return self.const(what, t)
        if kind == "inline":
            inner = self.expr(what)
            if t.is_int():
                self.wrap(inner.reg, t)
            return inner
        if kind == "builtin":
            return self.builtin(what, e)
        raise self.unsupported(f"identifier {e.name}", e)

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
        if name in strings:
            return self.const_string(strings[name])
        if name in ("id", "epid"):
            return self.const(p.id, t)
        if name == "execname":
            v, _ = self.new_string()
            a.mov(R1, v.reg)
            a.movi(R2, 16)
            a.call("get_current_comm")
            return v
        v = self.alloc(t)
        if name in ("pid", "tid"):
            a.call("get_current_pid_tgid")
            a.mov(v.reg, R0)
            if name == "pid":
                a.alu(">>", v.reg, imm=32)
            else:
                a.alu("=", v.reg, v.reg, wide=False)
        elif name in ("uid", "gid"):
            a.call("get_current_uid_gid")
            a.mov(v.reg, R0)
            if name == "gid":
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
            a.ld_imm64(R1, self.boot_offset)
            a.alu("+", v.reg, R1)
        elif name == "errno":
            a.ldx(8, v.reg, R9, self.f_errno)
        elif name in ("ipl", "stackdepth", "ustackdepth"):
            a.movi(v.reg, 0)
        else:
            self.free(v)
            raise self.unsupported(f"the built-in variable {name}", e)
        return v

    def _x_ThisVar(self, e: ast.ThisVar) -> Value:
        v = self.alloc(e.ctype)  # type: ignore[attr-defined]
        self.a.ldx(8, v.reg, R9, self.this_off[e.name])
        return v

    def tls_key(self, name: str) -> None:
        """The frame's thread-local key = (this thread's id, the variable's id)."""
        a = self.a
        a.call("get_current_pid_tgid")
        a.alu("=", R0, R0, wide=False)
        a.stx(8, R9, self.f_tkey, R0)
        a.st(8, R9, self.f_tkey + 8, self.tls_id[name])

    def _x_SelfVar(self, e: ast.SelfVar) -> Value:
        a = self.a
        self.tls_key(e.name)
        v = self.alloc(e.ctype)  # type: ignore[attr-defined]
        a.ld_map(R1, "tls")
        a.mov(R2, R9)
        a.alu("+", R2, imm=self.f_tkey)
        a.call("map_lookup_elem")
        a.movi(v.reg, 0)
        unset = a.new_label("unset")
        a.jmp("==", R0, unset, imm=0)
        a.ldx(8, v.reg, R0, 0)
        a.place(unset)
        return v

    def store_self(self, name: str, v: Value) -> None:
        """self->x = v; assigning 0 deletes the variable, as dtrace does."""
        a = self.a
        self.tls_key(name)
        a.ld_map(R1, "tls")
        a.mov(R2, R9)
        a.alu("+", R2, imm=self.f_tkey)
        delete = a.new_label("tdel")
        done = a.new_label("tdone")
        a.jmp("==", v.reg, delete, imm=0)
        a.stx(8, R9, self.f_tval, v.reg)
        a.mov(R3, R9)
        a.alu("+", R3, imm=self.f_tval)
        a.movi(R4, 0)
        a.call("map_update_elem")
        a.jmp("s>=", R0, done, imm=0)
        self.count_drop(DROP_DYN)
        a.ja(done)
        a.place(delete)
        a.call("map_delete_elem")
        a.place(done)

    def _x_Index(self, e: ast.Index) -> Value:
        kind, what = e.ref  # type: ignore[attr-defined]
        if kind == "args" and what is not None:
            t: CType = e.ctype  # type: ignore[attr-defined]
            v = self.alloc(t)
            if what < MAX_ARGS:
                self.a.ldx(8, v.reg, R9, self.f_args + 8 * what)
                if t.is_int():
                    self.wrap(v.reg, t)
            else:
                self.a.movi(v.reg, 0)
            return v
        raise self.unsupported("this kind of subscript", e)

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
        if op in ("*", "&"):
            raise self.unsupported(f"unary {op}", e)
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
            y = self.expr(e.right)
            self.normalize(y.reg)
            if op == "^^":
                a.alu("^", x.reg, y.reg)
            else:
                a.mov(x.reg, y.reg)
            self.free(y)
            a.place(out)
            x.ctype = t
            return x
        if op == ",":
            self.free(self.expr(e.left))
            return self.expr(e.right)
        x = self.expr(e.left)
        y = self.expr(e.right)
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
        a = self.a
        t: CType = e.ctype  # type: ignore[attr-defined]
        if t.is_string():
            raise self.unsupported("?: on strings", e)
        c = self.expr(e.cond)
        other = a.new_label("else")
        end = a.new_label("fi")
        a.jmp("==", c.reg, other, imm=0)
        x = self.expr(e.then)
        a.mov(c.reg, x.reg)
        self.free(x)
        a.ja(end)
        a.place(other)
        y = self.expr(e.other)
        a.mov(c.reg, y.reg)
        self.free(y)
        a.place(end)
        if t.is_int():
            self.wrap(c.reg, t)
        c.ctype = t
        return c

    def _x_Cast(self, e: ast.Cast) -> Value:
        t: CType = e.ctype  # type: ignore[attr-defined]
        ot: CType = e.operand.ctype  # type: ignore[attr-defined]
        if t.is_string() or ot.is_string() and not t.is_string():
            if t.is_string() and ot.is_string():
                return self.expr(e.operand)
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
            if t.is_string() and not vt.is_string():
                raise self.unsupported(f"assigning {vt} to a string", e)
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

    def store(self, target: ast.Expr, v: Value) -> None:
        a = self.a
        t: CType = target.ctype  # type: ignore[attr-defined]
        if isinstance(target, ast.Ident) and target.ref[0] == "global":  # type: ignore[attr-defined]
            off = self.global_off[target.name]
            a.ld_map(R2, "globals", 0)
            if t.is_string():
                self.copy_string_to(R2, off, v.reg)
            else:
                a.stx(8, R2, off, v.reg)
            return
        if isinstance(target, ast.ThisVar):
            a.stx(8, R9, self.this_off[target.name], v.reg)
            return
        if isinstance(target, ast.SelfVar):
            self.store_self(target.name, v)
            return
        raise self.unsupported(f"assignment to {type(target).__name__}", target)

    def _x_Call(self, e: ast.Call) -> Value:
        a = self.a
        if e.name == "copyinstr" and len(e.args) == 1:
            addr = self.expr(e.args[0])
            v, _ = self.new_string()
            a.mov(R1, v.reg)
            a.movi(R2, self.ssize)
            a.mov(R3, addr.reg)
            a.call("probe_read_user_str")
            self.free(addr)
            return v
        raise self.unsupported(f"{e.name}()", e)


def _bufsize(value: Any) -> int:
    """The ring buffer's size: bufsize rounded up to a power of two pages (at least 64 KiB)."""
    from pydtrace.options import XoptError, parse_size

    n = 4 << 20
    if isinstance(value, int):
        n = value
    elif value:
        try:
            n = parse_size(str(value))
        except XoptError:
            pass
    size = 1 << 16
    while size < n:
        size <<= 1
    return size


def _dvar_entries(options: dict[str, Any]) -> int:
    """Thread-local entries: dynvarsize over an entry's size (key 16 + value 8 + overhead)."""
    from pydtrace.options import XoptError, parse_size

    value = options.get("dynvarsize") or (1 << 20)
    try:
        n = value if isinstance(value, int) else parse_size(str(value))
    except XoptError:
        n = 1 << 20
    return max(n // 64, 16)


def _aggentries(options: dict[str, Any]) -> int:
    return 4096


def compile_program(prog: CheckedProgram, options: dict[str, Any]) -> Compiled:
    return Compiler(prog, options).compile()


def disassemble_program(compiled: Compiled) -> str:
    """The generated programs as `dtrace -S` shows them: one block per probe."""
    from pydtrace.engines.ebpf.insn import disassemble

    out = []
    for p in compiled.progs:
        out.append(f"\nDisassembly of {p.name} ({p.probe.fqn}):\n")
        out.append(disassemble(p.insns))
    return "".join(out)
