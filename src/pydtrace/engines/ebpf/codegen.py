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

import struct
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
DROP_RING, DROP_AGG, DROP_DYN, DROP_DBLERROR = 0, 1, 2, 3

TEMPS = (6, 7, 8)
DKEY_LEVELS = 2  # dynamic-variable key buffers: a subscript may itself read one (a[b[1]])

# A syscall probe name (entry/return) matching at least this many syscalls is
# served by one program on raw_syscalls (sys_enter/sys_exit) that maps the
# syscall number to its probe, instead of one tracepoint program per syscall.
RAW_SYSCALL_MIN = 16
RAW_MAX_CLAUSES = 64
# the dispatch map's value: u32 probe id (0 = not traced), u32 nargs, u64 clause mask, probefunc
SYS_NAME = 16


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
    # | ('raw_tp', 'sys_enter'|'sys_exit')
    insns: list[Insn]
    probes: list[Any] = field(
        default_factory=list
    )  # every probe served (raw syscall programs: many)


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
    fills: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)  # initial map contents


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
            if v.array or not _scalar(v.type):
                raise LoweringError(
                    f"the eBPF engine cannot compile global variable {name} of type {v.type} yet"
                )
            if v.keys is not None:
                continue  # an associative array: a dynamic variable
            size = self.ssize if v.type.is_string() else 8
            self.global_off[name] = self.globals_size
            self.globals_size += L.align8(size)
        for name, v in prog.clocals.items():
            if not _scalar(v.type):
                raise LoweringError(
                    f"the eBPF engine cannot compile this->{name} of type {v.type} yet"
                )
            self.this_off[name] = -1  # placed in the frame below
        self.this_size = {
            n: self.ssize if v.type.is_string() else 8 for n, v in prog.clocals.items()
        }
        for name in self.this_off:
            self.this_off[name] = self.frame.take(self.this_size[name])
        # dynamic variables (self-> variables, associative arrays) share the `dvars`
        # hash map: key = u64 variable id, u64 tid (0 for globals), then the
        # subscripts (integers 8 bytes, strings strsize+1 bytes padded to 8)
        self.dvar_id: dict[tuple[str, str], int] = {}
        self.dkey_size, self.dval_size = 16, 8
        for scope, table in (("global", prog.globals), ("self", prog.tlocals)):
            for name, v in table.items():
                if scope == "global" and v.keys is None:
                    continue
                shown = name if scope == "global" else f"self->{name}"
                if v.array or not _scalar(v.type) or not all(_scalar(k) for k in v.keys or []):
                    raise LoweringError(
                        f"the eBPF engine cannot compile {shown} of type {v.type} yet"
                    )
                self.dvar_id[(scope, name)] = len(self.dvar_id) + 1
                ksize = 16 + sum(self.key_width(k) for k in v.keys or [])
                self.dkey_size = max(self.dkey_size, ksize)
                if v.type.is_string():
                    self.dval_size = max(self.dval_size, L.align8(self.ssize))
        self.dkey_depth = 0
        self.dvar_capacity = _dvar_capacity(prog, self.strsize, self.options)
        if self.dvar_id:
            self.f_dkey = self.frame.take(self.dkey_size * DKEY_LEVELS)
            self.f_dval = self.frame.take(self.dval_size)
        maxkey = 8
        maxval = 8
        # keys that are the same probe-constant string at every use: stored as the probe id
        self.probe_keys: dict[str, dict[int, tuple[str, dict[int, str]]]] = {}
        for aname, per_pos in _probe_constant_keys(prog).items():
            self.probe_keys[aname] = {pos: (b, {}) for pos, b in per_pos.items()}
        for a in prog.aggs.values():
            spec = AggSpec(a.id, a.name, a.func, a.params, list(a.keys), a.valtype)
            pk = {pos: names for pos, (_, names) in self.probe_keys.get(a.name, {}).items()}
            lay = L.agg_layout(spec, f"agg{a.id}", self.strsize, pk)
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
        for per_pos in self.probe_keys.values():
            for b, names in per_pos.values():
                for pid, p in self.out.probes.items():
                    names[pid] = _probe_string(p, b)
        self.rec_max = L.FAULT_SIZE
        progs = []
        # ERROR's clauses run inline in every fault block (with their own argument area)
        self.error_probe, self.error_clauses = None, []
        self.in_error = False
        for pid, clauses in by_probe.items():
            probe = self.out.probes[pid]
            if probe.provider == "dtrace" and probe.name == "ERROR":
                self.error_probe, self.error_clauses = probe, clauses
        if self.error_clauses:
            self.f_eargs = self.frame.take(8 * MAX_ARGS)
        groups = self.raw_syscall_groups(by_probe)
        grouped = {p.id for g in groups.values() for p in g[0]}
        for pid, clauses in sorted(by_probe.items()):
            probe = self.out.probes[pid]
            if probe is self.error_probe:
                continue
            if pid not in grouped:
                progs.append((probe, clauses, None))
        for name, (probes, clauses, masks) in groups.items():
            progs.append((probes[0], clauses, (name, probes, masks)))
        if groups:
            self.f_regs = self.frame.take(168)  # a copy of the syscall's pt_regs
            self.f_sys = self.frame.take(24)  # u32 nr (the dispatch key), probe id, clause mask
        # the record area goes last so that string temporaries have fixed offsets
        generated = [self.program(probe, clauses, group) for probe, clauses, group in progs]
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
        if self.dvar_id:
            o.maps.append(MapSpec("dvars", MAP_HASH, self.dkey_size, self.dval_size,
                                  max(self.dvar_capacity, 1)))  # fmt: skip
        for lay in o.aggs.values():
            o.maps.append(MapSpec(lay.map_name, MAP_PERCPU_HASH, lay.key_size, lay.value_size,
                                  _aggentries(self.options)))  # fmt: skip
        for name, (probes, _, masks) in groups.items():
            mname = "sys_" + name
            o.maps.append(MapSpec(mname, MAP_ARRAY, 4, SYS_NAME + L.align8(self.ssize),
                                  self.sys_entries))  # fmt: skip
            fill = []
            for p in probes:
                nargs = min(len(getattr(p.data, "args", ()) or ()), 6)
                head = struct.pack("<IIQ", p.id, nargs, masks[p.id])
                fill.append((p.data.nr, head + p.function.encode()[: self.strsize]))
            o.fills[mname] = fill
        return o

    def raw_syscall_groups(self, by_probe: dict[int, list[ClauseInfo]]) -> dict[str, Any]:
        """entry/return -> (probes, merged clauses, {probe id: clause mask}) for the
        syscall probe names matching RAW_SYSCALL_MIN syscalls or more."""
        out: dict[str, Any] = {}
        regs = _syscall_regs()
        if regs is None:
            return out
        self.sys_regs = regs
        for which in ("entry", "return"):
            probes = [
                self.out.probes[pid]
                for pid in sorted(by_probe)
                if self.out.probes[pid].provider == "syscall"
                and self.out.probes[pid].name == which
                and getattr(self.out.probes[pid].data, "nr", None) is not None
            ]
            if len(probes) < RAW_SYSCALL_MIN:
                continue
            merged = sorted({c.index: c for p in probes for c in by_probe[p.id]}.values(),
                            key=lambda c: c.index)  # fmt: skip
            if len(merged) > RAW_MAX_CLAUSES:
                continue
            pos = {c.index: k for k, c in enumerate(merged)}
            masks = {p.id: sum(1 << pos[c.index] for c in by_probe[p.id]) for p in probes}
            self.sys_entries = max(
                getattr(self, "sys_entries", 1), max(p.data.nr for p in probes) + 1
            )
            out[which] = (probes, merged, masks)
        return out

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
    def program(self, probe: Any, clauses: list[ClauseInfo], group: Any = None) -> ProgSpec:
        a = Assembler()
        self.a = a
        self.probe = probe
        self.group = group  # (entry|return, probes, masks) for a raw syscall program
        prov, name = probe.provider, probe.name
        if group is not None:
            ptype = PROG_RAW_TRACEPOINT
            attach = ("raw_tp", "sys_enter" if name == "entry" else "sys_exit")
        elif prov == "dtrace" and name in ("BEGIN", "END"):
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
        if group is not None:
            self.prologue_syscall(group, done)
        for name, off in self.this_off.items():
            for p in range(0, self.this_size[name], 8):
                a.st(min(8, self.this_size[name] - p), R9, off + p, 0)
        is_end = prov == "dtrace" and name == "END"
        for k, c in enumerate(clauses):
            self.clause(c, done, is_end, bit=k if group is not None else None)
        a.origin = ("epilogue", 0, 0)
        a.place(done)
        a.movi(R0, 0)
        a.exit()
        insns = a.resolve()
        if group is not None:
            return ProgSpec(f"dt_sys_{group[0]}", ptype, probe, attach, insns, list(group[1]))
        pname = f"dt_{probe.id}"
        return ProgSpec(pname, ptype, probe, attach, insns, [probe])

    def prologue_syscall(self, group: Any, done: str) -> None:
        """raw_syscalls: ctx = (struct pt_regs *, nr | return value). Find the
        syscall's probe in the dispatch map (untraced syscalls end here), then
        its arguments (entry) or return value and errno (return)."""
        a = self.a
        which = group[0]
        regs = self.sys_regs
        fa = self.f_args
        # a copy of pt_regs: the arguments, and the syscall number at return
        a.mov(R1, R9)
        a.alu("+", R1, imm=self.f_regs)
        a.movi(R2, regs["size"])
        a.ldx(8, R3, 6, 0)
        a.call("probe_read_kernel")
        a.jmp("!=", R0, done, imm=0)
        if which == "entry":
            a.ldx(8, R1, 6, 8)
        else:
            a.ldx(8, R1, R9, self.f_regs + regs["nr"])
        a.jmp(">=", R1, done, imm=self.sys_entries)  # also -1 (no syscall)
        a.stx(4, R9, self.f_sys, R1)
        a.mov(R2, R9)
        a.alu("+", R2, imm=self.f_sys)
        a.ld_map(R1, "sys_" + which)
        a.call("map_lookup_elem")
        a.jmp("==", R0, done, imm=0)
        a.ldx(4, R1, R0, 0)
        a.jmp("==", R1, done, imm=0)
        a.stx(8, R9, self.f_sys + 8, R1)
        a.ldx(8, R1, R0, 8)
        a.stx(8, R9, self.f_sys + 16, R1)
        if which == "entry":
            a.ldx(4, R4, R0, 4)  # nargs: the others stay 0, as with the syscall's tracepoint
            end = a.new_label("args")
            for i, off in enumerate(regs["args"]):
                a.jmp("<=", R4, end, imm=i)
                a.ldx(8, R1, R9, self.f_regs + off)
                a.stx(8, R9, fa + 8 * i, R1)
            a.place(end)
        else:
            a.ldx(8, R1, 6, 8)
            a.stx(8, R9, fa, R1)
            a.stx(8, R9, fa + 8, R1)
            skip = a.new_label("noerr")
            a.jmp("s>=", R1, skip, imm=0)
            a.jmp("s<", R1, skip, imm=-4095)
            a.neg(R1)
            a.stx(8, R9, self.f_errno, R1)
            a.place(skip)

    def store_probe_id(self, scratch: int) -> None:
        """The record header's probe id."""
        a = self.a
        if self.group is not None:
            a.ldx(8, scratch, R9, self.f_sys + 8)
            a.stx(4, R9, 4, scratch)
        else:
            a.st(4, R9, 4, self.probe.id)
        self._mark(a.insns[-1], "rec", 4)

    def probe_id_to(self, reg: int) -> None:
        """reg = the firing probe's id (known at run time in a raw syscall program)."""
        if self.group is not None:
            self.a.ldx(8, reg, R9, self.f_sys + 8)
        else:
            self.a.movi(reg, self.probe.id)

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
    def clause(self, c: ClauseInfo, done: str, is_end: bool, bit: int | None = None) -> None:
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
        if bit is not None:  # a raw syscall program: does this clause serve the firing probe?
            a.ldx(8, R1, R9, self.f_sys + 16)
            a.alu(">>", R1, imm=bit)
            a.alu("&", R1, imm=1)
            a.jmp("==", R1, self.next_clause, imm=0)
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
            self.store_probe_id(R1)
            a.st(4, R9, 8, c.index)
            self._mark(a.insns[-1], "rec", 8)
            a.call("get_smp_processor_id")
            a.stx(4, R9, 12, R0)
            self._mark(a.insns[-1], "rec", 12)
            mask_insn = a.emit(Insn(0x62, R9, 0, 16, 0))  # *(u32 *)(r9 + rec+16) = mask
            self._mark(mask_insn, "rec", 16)
            mask_hi = a.emit(Insn(0x62, R9, 0, 20, 0))  # actions 32..63

            self._mark(a.insns[-1], "rec", 20)
        for s in c.body:
            self.stmt(s)
        if c.records:
            a.origin = ("clause", c.index, c.line)
            if self.actions > 64:
                raise LoweringError(
                    f"the eBPF engine cannot record more than 64 actions in one clause (line {c.line})"
                )
            assert mask_insn is not None
            mask_insn.imm = _s32(self.static_mask & 0xFFFFFFFF)
            mask_hi.imm = _s32(self.static_mask >> 32)
            self.rec_max = max(self.rec_max, self.layout.size)
            self.emit_output(self.layout.size)
        self.out.records[c.index] = self.layout
        if self.faults_used:
            # fault: r1 = code, r2 = value, r3 = pc
            a.ja(self.next_clause)
            a.place(self.fault_label)
            if self.in_error:  # a fault in an ERROR clause is only counted
                self.count_drop(DROP_DBLERROR)
            else:
                self.emit_fault(done)
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

    def emit_fault(self, done: str) -> None:
        a = self.a
        c = self.c
        if self.error_clauses:
            # ERROR's arguments: 0, epid, clause, pc, fault code, address
            ea = self.f_eargs
            for i in range(MAX_ARGS):
                a.st(8, R9, ea + 8 * i, 0)
            self.probe_id_to(R4)
            a.stx(8, R9, ea + 8, R4)
            a.st(8, R9, ea + 16, c.index)
            a.stx(8, R9, ea + 24, R3)
            a.stx(8, R9, ea + 32, R1)
            a.stx(8, R9, ea + 40, R2)
        a.st(4, R9, 0, L.REC_FAULT)
        self._mark(a.insns[-1], "rec", 0)
        self.store_probe_id(R4)
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
        if self.error_clauses:
            self.run_error_clauses(done)

    def run_error_clauses(self, done: str) -> None:
        """Compile ERROR's clauses here, in the fault block, then go on with
        the faulting probe's next clause."""
        saved = dict(self.__dict__)
        self.probe, self.group, self.in_error = self.error_probe, None, True
        self.f_args = self.f_eargs
        for ec in self.error_clauses:
            self.clause(ec, done, False)
        keep = ("rec_max", "nstrings")
        for k in list(self.__dict__):
            if k not in saved:
                del self.__dict__[k]
        self.__dict__.update({k: v for k, v in saved.items() if k not in keep})

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
            word = 16 if bit < 32 else 20
            a.ldx(4, R1, R9, word)
            self._mark(a.insns[-1], "rec", word)
            a.alu("|", R1, imm=_s32(1 << (bit % 32)))
            a.stx(4, R9, word, R1)
            self._mark(a.insns[-1], "rec", word)

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
        if name == "setopt":
            # option names and values are literals in practice: kept in the builder
            lits = [x.value if isinstance(x, ast.StrLit) else None for x in e.args]
            slots = [
                None if lit is not None else self.record_value(x) for x, lit in zip(e.args, lits)
            ]
            vals = [(lit, s) for lit, s in zip(lits, slots)]
            vals += [(None, None)] * (2 - len(vals))
            self.new_action(lambda buf, v=vals: ("setopt", *[
                lit if s is None else s.read(buf) for lit, s in v]))  # fmt: skip
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
            if isinstance(slot, L.ProbeNameSlot):
                self.probe_id_to(R1)
                a.stx(8, R9, self.f_key + slot.off, R1)
                continue
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
        incr_pos = {"quantize": 1, "lquantize": 4, "llquantize": 5}.get(func)
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
        elif func == "stddev":
            assert vr is not None
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
            a.ldx(8, R2, R0, 16)
            a.alu("+", R2, vr)
            a.stx(8, R0, 16, R2)
            self.add_square_128(vr)
        elif func in ("quantize", "lquantize", "llquantize"):
            assert vr is not None
            if func == "quantize":
                self.quantize_bucket(vr)
            elif func == "lquantize":
                self.lquantize_bucket(vr, *info.params)
            else:
                self.llquantize_bucket(vr, *info.params)
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

    def add_square_128(self, vr: int) -> None:
        """The entry's 128-bit sum of squares (words at r0+24, r0+32) += vr * vr."""
        a = self.a
        a.mov(R1, vr)
        pos = a.new_label("sqabs")
        a.jmp("s>=", R1, pos, imm=0)
        a.neg(R1)
        a.place(pos)
        a.alu("=", R2, R1, wide=False)  # low half
        a.alu(">>", R1, imm=32)  # high half
        a.mov(R3, R2)
        a.alu("*", R3, R2)  # lo*lo
        a.mov(R4, R1)
        a.alu("*", R4, R2)  # hi*lo
        a.alu("*", R1, R1)  # hi*hi
        a.mov(R2, R4)
        a.alu("<<", R2, imm=33)  # 2*hi*lo << 32, low word
        a.alu(">>", R4, imm=31)  # ... its high word
        a.alu("+", R1, R4)
        a.alu("+", R2, R3)
        c1 = a.new_label("carry")
        a.jmp(">=", R2, c1, src=R3)
        a.alu("+", R1, imm=1)
        a.place(c1)
        # (r1:r2) = the square; add it to the stored words
        a.ldx(8, R3, R0, 24)
        a.alu("+", R3, R2)
        c2 = a.new_label("carry")
        a.jmp(">=", R3, c2, src=R2)
        a.alu("+", R1, imm=1)
        a.place(c2)
        a.stx(8, R0, 24, R3)
        a.ldx(8, R4, R0, 32)
        a.alu("+", R4, R1)
        a.stx(8, R0, 32, R4)

    def llquantize_bucket(self, vr: int, factor: int, low: int, high: int, steps: int) -> None:
        """r1 = the log-linear bin of vr (consume.aggregation.llquantize_bucket, unrolled
        over the magnitudes low..high)."""
        from pydtrace.consume.aggregation import llquantize_geometry

        a = self.a
        sf, bin0, _ = llquantize_geometry(factor, low, high, steps)
        done, sign = a.new_label("lldone"), a.new_label("llsign")
        a.movi(R1, bin0)
        a.mov(R2, vr)
        pos = a.new_label("llabs")
        a.jmp("s>=", R2, pos, imm=0)
        a.neg(R2)
        a.place(pos)
        top = factor**low
        if top < 1 << 64:
            a.ld_imm64(R3, _s64(top))
            a.jmp("<", R2, done, src=R3)
        else:
            a.ja(done)
        for mag in range(low, high + 1):
            top *= factor
            nxt = a.new_label("llmag")
            if top < 1 << 64:
                a.ld_imm64(R3, _s64(top))
                a.jmp(">=", R2, nxt, src=R3)
            a.mov(R4, R2)
            if mag != 0:
                a.ld_imm64(R3, _s64(max(1, top // steps)))
                a.alu("/", R4, R3)
            else:
                a.alu("*", R4, imm=steps)
                a.ld_imm64(R3, _s64(top))
                a.alu("/", R4, R3)
            a.alu("+", R4, imm=(mag - low) * (steps - sf) - sf + 1)
            a.ja(sign)
            a.place(nxt)
            if top >= 1 << 64:
                break
        else:
            a.movi(R4, (high + 1 - low) * (steps - sf) + 1)
        a.place(sign)
        a.mov(R1, R4)
        neg = a.new_label("llneg")
        a.jmp("s<", vr, neg, imm=0)
        a.alu("+", R1, imm=bin0)
        a.ja(done)
        a.place(neg)
        a.neg(R1)
        a.alu("+", R1, imm=bin0)
        a.place(done)

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

    def string_compare_literal(self, x: Value, lit: bytes, op: str) -> None:
        """x.reg = 1 if (x op lit) else 0: the literal's bytes (and its NUL) are
        compared unrolled, so no second buffer or register is needed."""
        a = self.a
        diff, end = a.new_label("ldiff"), a.new_label("lend")
        for i, ch in enumerate(lit + b"\0"):
            a.ldx(1, R4, x.reg, i)
            a.movi(R5, ch)
            a.jmp("!=", R4, diff, src=R5)
        a.movi(R0, 0)
        a.ja(end)
        a.place(diff)
        a.movi(R0, 1)
        a.jmp(">", R4, end, src=R5)
        a.movi(R0, -1)
        a.place(end)
        yes = a.new_label("lcmp")
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
        if name == "probefunc" and self.group is not None:
            v, _ = self.new_string()  # stays "" if the lookup could fail (it cannot)
            a.mov(R2, R9)
            a.alu("+", R2, imm=self.f_sys)
            a.ld_map(R1, "sys_" + self.group[0])
            a.call("map_lookup_elem")
            missing = a.new_label("nofunc")
            a.jmp("==", R0, missing, imm=0)
            a.mov(v.reg, R0)
            a.alu("+", v.reg, imm=SYS_NAME)
            a.place(missing)
            return v
        if name in strings:
            return self.const_string(strings[name])
        if name in ("id", "epid"):
            v = self.alloc(t)
            self.probe_id_to(v.reg)
            return v
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
        elif name == "curthread":
            a.call("get_current_task")
            a.mov(v.reg, R0)
        elif name == "ppid":
            parent, tgid = _task_path("real_parent", "tgid")
            a.call("get_current_task")
            a.mov(v.reg, R0)
            self.kernel_load(v.reg, v.reg, parent.offset, 8)
            self.kernel_load(v.reg, v.reg, tgid.offset, 4)
        else:
            self.free(v)
            raise self.unsupported(f"the built-in variable {name}", e)
        return v

    def kernel_load(self, out: int, addr: int, off: int, size: int) -> None:
        """out = the unsigned size-byte value at kernel address addr+off (0 if unreadable)."""
        a = self.a
        a.st(8, R10, -16, 0)
        a.mov(R3, addr)
        a.alu("+", R3, imm=off)
        a.mov(R1, R10)
        a.alu("+", R1, imm=-16)
        a.movi(R2, size)
        a.call("probe_read_kernel")
        a.ldx(size, out, R10, -16)

    def progenyof(self, e: ast.Call) -> Value:
        """1 if the current process is pid or one of its descendants: walk
        task->real_parent (at most 64 levels) comparing tgids."""
        a = self.a
        parent, tgid = _task_path("real_parent", "tgid")
        want = self.expr(e.args[0])
        self.wrap(want.reg, T.INT)
        loop, yes, no, end = (a.new_label(x) for x in ("ploop", "pyes", "pno", "pend"))
        a.call("get_current_task")
        a.stx(8, R10, -24, R0)
        a.st(8, R10, -32, 0)
        a.place(loop)
        a.ldx(8, R3, R10, -24)
        a.jmp("==", R3, no, imm=0)
        self.kernel_load(R0, R3, tgid.offset, 4)
        a.jmp("==", R0, no, imm=0)
        a.alu("<<", R0, imm=32)
        a.alu("s>>", R0, imm=32)
        a.jmp("==", R0, yes, src=want.reg)
        a.ldx(8, R3, R10, -24)
        self.kernel_load(R0, R3, parent.offset, 8)
        a.stx(8, R10, -24, R0)
        a.ldx(8, R1, R10, -32)
        a.alu("+", R1, imm=1)
        a.stx(8, R10, -32, R1)
        a.jmp("<", R1, loop, imm=64)
        a.place(no)
        a.movi(want.reg, 0)
        a.ja(end)
        a.place(yes)
        a.movi(want.reg, 1)
        a.place(end)
        want.ctype = T.INT
        return want

    def _x_ThisVar(self, e: ast.ThisVar) -> Value:
        v = self.alloc(e.ctype)  # type: ignore[attr-defined]
        if v.ctype.is_string():  # the frame's buffer itself
            self.a.mov(v.reg, R9)
            self.a.alu("+", v.reg, imm=self.this_off[e.name])
        else:
            self.a.ldx(8, v.reg, R9, self.this_off[e.name])
        return v

    # --- dynamic variables -----------------------------------------------------------
    def key_width(self, t: CType) -> int:
        return L.align8(self.ssize) if t.is_string() else 8

    def dvar_key(self, scope: str, name: str, keys: list[ast.Expr]) -> int:
        """Build a `dvars` key in the frame; returns its frame offset."""
        a = self.a
        depth = self.dkey_depth
        if depth >= DKEY_LEVELS:
            raise self.unsupported(
                "associative arrays subscripted this deep", keys[0] if keys else None
            )
        base = self.f_dkey + depth * self.dkey_size
        self.dkey_depth += 1
        pos = 16
        for k in keys:
            t: CType = k.ctype  # type: ignore[attr-defined]
            v = self.expr(k)
            if t.is_string():
                self.copy_string_to(R9, base + pos, v.reg)
                for pad in range(self.ssize, self.key_width(t)):
                    a.st(1, R9, base + pos + pad, 0)
            else:
                if t.is_int():
                    self.wrap(v.reg, t)
                a.stx(8, R9, base + pos, v.reg)
            pos += self.key_width(t)
            self.free(v)
        self.dkey_depth -= 1
        a.st(8, R9, base, self.dvar_id[(scope, name)])
        if scope == "self":
            a.call("get_current_pid_tgid")
            a.alu("=", R0, R0, wide=False)
            a.stx(8, R9, base + 8, R0)
        else:
            a.st(8, R9, base + 8, 0)
        for p in range(pos, self.dkey_size, 8):
            a.st(8, R9, base + p, 0)
        return base

    def dvar_load(self, scope: str, name: str, keys: list[ast.Expr], t: CType) -> Value:
        """The variable's value; 0 (or "") when it does not exist."""
        a = self.a
        base = self.dvar_key(scope, name, keys)
        if t.is_string():
            v, _ = self.new_string()
        else:
            v = self.alloc(t)
            a.movi(v.reg, 0)
        a.ld_map(R1, "dvars")
        a.mov(R2, R9)
        a.alu("+", R2, imm=base)
        a.call("map_lookup_elem")
        unset = a.new_label("unset")
        a.jmp("==", R0, unset, imm=0)
        if t.is_string():
            self.copy_string_to(v.reg, 0, R0)
        else:
            a.ldx(8, v.reg, R0, 0)
        a.place(unset)
        return v

    def dvar_store(self, scope: str, name: str, keys: list[ast.Expr], v: Value, t: CType) -> None:
        """Assign a dynamic variable; an integer 0 deletes it, as dtrace does."""
        a = self.a
        base = self.dvar_key(scope, name, keys)
        done = a.new_label("dvdone")
        delete = a.new_label("dvdel")
        if t.is_string():
            self.copy_string_to(R9, self.f_dval, v.reg)
        else:
            a.jmp("==", v.reg, delete, imm=0)
            a.stx(8, R9, self.f_dval, v.reg)
        a.ld_map(R1, "dvars")
        a.mov(R2, R9)
        a.alu("+", R2, imm=base)
        a.mov(R3, R9)
        a.alu("+", R3, imm=self.f_dval)
        a.movi(R4, 0)
        a.call("map_update_elem")
        if self.dvar_capacity > 0:
            a.jmp("s>=", R0, done, imm=0)
        # no room: a drop that ends the clause, as dtrace's store does
        self.count_drop(DROP_DYN)
        a.ja(self.next_clause)
        a.place(delete)
        if not t.is_string():
            a.ld_map(R1, "dvars")
            a.mov(R2, R9)
            a.alu("+", R2, imm=base)
            a.call("map_delete_elem")
        a.place(done)

    def _x_SelfVar(self, e: ast.SelfVar) -> Value:
        return self.dvar_load("self", e.name, [], e.ctype)  # type: ignore[attr-defined]

    def _x_Index(self, e: ast.Index) -> Value:
        kind, what = e.ref  # type: ignore[attr-defined]
        if kind == "assoc":
            return self.dvar_load(what.scope, what.name, e.args, what.type)
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
            if op != "^^":
                # x is dead on this path: the right side may use its register
                self.free(x)
            y = self.expr(e.right)
            self.normalize(y.reg)
            if op == "^^":
                a.alu("^", x.reg, y.reg)
            else:
                a.mov(x.reg, y.reg)
            self.free(y)
            if op != "^^":
                self.temps.remove(x.reg)
            a.place(out)
            x.ctype = t
            return x
        if op == ",":
            self.free(self.expr(e.left))
            return self.expr(e.right)
        if op in ("<", "<=", ">", ">=", "==", "!=") and getattr(e, "strcmp", False):
            lit = _short_literal(e.right, self.strsize) or _short_literal(e.left, self.strsize)
            if lit is not None and e.left.ctype.is_string() and e.right.ctype.is_string():  # type: ignore[attr-defined]
                flip = _short_literal(e.right, self.strsize) is None
                x = self.expr(e.left if not flip else e.right)
                self.string_compare_literal(x, lit, _FLIP[op] if flip else op)
                x.ctype = t
                return x
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
            if t.is_string():
                self.copy_string_to(R9, self.this_off[target.name], v.reg)
            else:
                a.stx(8, R9, self.this_off[target.name], v.reg)
            return
        if isinstance(target, ast.SelfVar):
            self.dvar_store("self", target.name, [], v, t)
            return
        if isinstance(target, ast.Index) and target.ref[0] == "assoc":  # type: ignore[attr-defined]
            var = target.ref[1]  # type: ignore[attr-defined]
            self.dvar_store(var.scope, var.name, target.args, v, var.type)
            return
        raise self.unsupported(f"assignment to {type(target).__name__}", target)

    def _x_Call(self, e: ast.Call) -> Value:
        a = self.a
        if e.name == "progenyof":
            return self.progenyof(e)
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


_PROBE_STRINGS = ("probeprov", "probemod", "probefunc", "probename")


def _probe_string(p: Any, which: str) -> str:
    return {"probeprov": p.provider, "probemod": p.module, "probefunc": p.function,
            "probename": p.name}[which]  # fmt: skip


def _probe_constant_keys(prog: CheckedProgram) -> dict[str, dict[int, str]]:
    """aggregation -> {key position: probefunc|probename|...} for the positions
    where every use of the aggregation names the same probe-constant string."""
    uses: dict[str, list[list[Any]]] = {}

    def walk(stmts: list[Any]) -> None:
        for st in stmts:
            if isinstance(st, ast.ExprStmt):
                e = st.expr
                if isinstance(e, ast.Assign) and hasattr(e, "agg"):
                    keys = e.target.args if isinstance(e.target, ast.Index) else []
                    uses.setdefault(e.agg.name, []).append(keys)  # type: ignore[attr-defined]
            elif isinstance(st, ast.If):
                walk(st.then)
                walk(st.other or [])
            elif isinstance(st, ast.Block):
                walk(st.body)

    for c in prog.clauses:
        walk(c.body)
    out: dict[str, dict[int, str]] = {}
    for name, sites in uses.items():
        per: dict[int, str] = {}
        for pos in range(len(sites[0])):
            kinds = set()
            for keys in sites:
                k = keys[pos] if pos < len(keys) else None
                ref = getattr(k, "ref", None)
                if (
                    isinstance(k, ast.Ident)
                    and ref is not None
                    and ref[0] == "builtin"
                    and ref[1] in _PROBE_STRINGS
                ):
                    kinds.add(ref[1])
                else:
                    kinds.add(None)
            if len(kinds) == 1 and None not in kinds:
                per[pos] = kinds.pop()
        if per:
            out[name] = per
    return out


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def _s64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >> 63 else v


def _task_path(*path: str) -> Any:
    """The Accesses reading current->path (BTF); LoweringError without BTF."""
    try:
        from pydtrace.engines.ebpf.btf import BTFError, vmlinux

        return vmlinux().resolve_path("task_struct", *path)
    except (ImportError, OSError, BTFError) as e:
        raise LoweringError(
            f"the eBPF engine needs kernel BTF for {'->'.join(path)}: {e}"
        ) from None


_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _short_literal(e: Any, strsize: int) -> bytes | None:
    """The bytes of a string literal short enough to compare unrolled."""
    if isinstance(e, ast.StrLit):
        data = e.value.encode("utf-8", "surrogateescape")[:strsize]
        if len(data) <= 64:
            return data
    return None


def _syscall_regs() -> dict[str, Any] | None:
    """Where pt_regs keeps the syscall arguments and number on this machine
    (from BTF); None when unknown: each syscall then gets its own tracepoint."""
    import platform

    try:
        from pydtrace.engines.ebpf.btf import BTFError, vmlinux

        b = vmlinux()
        m = platform.machine()
        if m == "x86_64":
            args = [b.member_offset("pt_regs", r) for r in ("di", "si", "dx", "r10", "r8", "r9")]
            nr = b.member_offset("pt_regs", "orig_ax")
        elif m == "aarch64":
            base = b.member_offset("pt_regs", "regs")
            args = [b.member_offset("pt_regs", "orig_x0")] + [base + 8 * i for i in range(1, 6)]
            nr = b.member_offset("pt_regs", "syscallno")
        else:
            return None
    except (ImportError, OSError, BTFError):
        return None
    size = max(args + [nr]) + 8
    return {"args": args, "nr": nr, "size": size} if size <= 168 else None


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


def _scalar(t: CType) -> bool:
    return t.is_int() or t.is_pointer() or t.is_string()


def _dvar_capacity(prog: CheckedProgram, strsize: int, options: dict[str, Any]) -> int:
    """How many dynamic variables fit, as dtrace sizes them: dynvarsize over
    (largest key tuple + largest value); the user engine uses the same rule."""
    from pydtrace.consume.aggregation import tuple_size
    from pydtrace.options import XoptError, parse_size

    value = options.get("dynvarsize") or (1 << 20)
    try:
        n = value if isinstance(value, int) else parse_size(str(value))
    except XoptError:
        n = 1 << 20
    dyn = [v for v in prog.globals.values() if v.keys is not None] + list(prog.tlocals.values())
    if not dyn:
        return 0
    size = max(strsize if v.type.is_string() else max(v.type.r.size, 1) for v in dyn)
    keyed = [tuple_size(v.keys, strsize) for v in dyn if v.keys is not None]
    return min(n // (max(keyed, default=0) + size), 1 << 20)


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
