"""Whole-program and per-probe code (ProgramMixin.compile): the maps, one BPF
program per probe (frame lookup, argument prologues, raw_syscalls dispatch),
clauses (predicate, statements, record output, fault blocks, ERROR)."""

from __future__ import annotations

import struct

from pydtrace.consume.aggregation import AggSpec
from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf import psinfo
from pydtrace.engines.ebpf.cg_context import (
    AGG_ENTRIES,
    CTX_SLOT,
    DKEY_LEVELS,
    DROP_DBLERROR,
    DROP_RING,
    DROP_WORDS,
    MAP_ARRAY,
    MAP_HASH,
    MAP_PERCPU_ARRAY,
    MAP_PERCPU_HASH,
    MAP_RINGBUF,
    MAX_ARGS,
    PROG_RAW_TRACEPOINT,
    SYS_NAME,
    Compiled,
    CompilerBase,
    MapSpec,
    ProgSpec,
    dvar_capacity,
    is_scalar,
    line_of,
    probe_string,
)
from pydtrace.engines.ebpf.cg_queries import (
    CALLER_VARS,
    TIME_VARS,
    dkey_levels,
    mentions,
    probe_constant_keys,
    reads_args,
    stack_key_frames,
)
from pydtrace.engines.ebpf.cg_stack import calls_stack
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9, R10, AsmError, Assembler, Insn, s32
from pydtrace.engines.ebpf.providers import EbpfProvider, in_use, provider_of
from pydtrace.lang import ast
from pydtrace.lang.program import ClauseInfo
from pydtrace.options import capped_frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AGG_OWN_MAPS = 32  # aggregations with a map of their own; more share maps
ISLAND_EVERY = 6000  # instructions between jump islands in a long clause


# the most memory the frames may take (bytes: the frame's size times keys
# times possible CPUs) before programs of other kinds share the last key
FRAME_BUDGET = 64 << 20


def frame_keys(progs: list[ProgSpec], keys: list[Insn], size: int) -> int:
    """Give each program its frame (the per-CPU scratch map's key) and return
    how many there are. A program's frame is its own: a program that runs
    with interrupts enabled (a syscall's, exec's, a uprobe's) may be
    interrupted on its CPU by one that fires in the interrupt (a wakeup's,
    a block I/O completion's), and a shared frame then lost both firings'
    records and variables. Programs the kernel runs through its perf path
    (perf tracepoints, perf timer events) never run inside each other on a
    CPU (bpf_prog_active) and share key 0."""
    from pydtrace.engines.ebpf.maps import possible_cpus

    cap = max(FRAME_BUDGET // (max(size, 1) * len(possible_cpus())), 2)
    shared = [p.attach[0] in ("tracepoint", "timer") for p in progs]
    n = int(any(shared))  # the keys taken: key 0 is the shared programs', if any
    for is_shared, key in zip(shared, keys):
        if is_shared:
            key.imm = 0
        else:
            key.imm = min(n, cap - 1)
            n = min(n + 1, cap)
    return max(n, 1)


class _ExecProbe:
    """What exec_gate_program's ProgSpec names (it serves no D probe)."""

    fqn = "the exec gate of -c targets (sched_process_exec)"
    id = 0


def exec_gate_program(gates: dict[int, int]) -> ProgSpec:
    """On sched_process_exec: globals[off] = 1 when the process is the held -c
    child gates maps to off. Until then that child runs the forked pydtrace's
    code (and its libc) on the way to execve: its probes wait for the exec, as
    dtrace's created process starts stopped after it."""
    a = Assembler()
    a.call("get_current_pid_tgid")
    a.alu(">>", R0, imm=32)
    for pid, off in sorted(gates.items()):
        other = a.new_label("xgate")
        a.jmp("!=", R0, other, imm=pid)
        a.ld_map(R1, "globals", off)
        a.st(8, R1, 0, 1)
        a.place(other)
    a.movi(R0, 0)
    a.exit()
    return ProgSpec("dt_exec_gate", PROG_RAW_TRACEPOINT, _ExecProbe(),
                    ("raw_tp", "sched_process_exec"), a.resolve(), [])  # fmt: skip


class ProgramMixin(CompilerBase):
    def compile(self) -> Compiled:
        prog = self.prog
        if self.strsize >= 1 << 15:  # no frame offset reaches a string: say so before
            # lowering (string copies are unrolled: -x strsize=1g took minutes to fail)
            raise LoweringError("the eBPF engine's frame is too large (lower strsize)")
        for name, v in prog.globals.items():
            if v.keys is not None:
                continue  # an associative array: a dynamic variable (placed below)
            if v.array or not is_scalar(v.type):
                if self._memory_variable("global", name, v):
                    continue
                raise LoweringError(
                    f"the eBPF engine cannot compile global variable {name} of type {v.type} yet"
                )
            size = self.ssize if v.type.is_string() else 8
            self.global_off[name] = self.globals_size
            self.globals_size += L.align8(size)
        for name, v in prog.clocals.items():
            if not is_scalar(v.type):
                if self._memory_variable("this", name, v):
                    continue
                raise LoweringError(
                    f"the eBPF engine cannot compile this->{name} of type {v.type} yet"
                )
            self.this_off[name] = -1  # placed in the frame below
        self.this_size = {
            n: self.ssize if v.type.is_string() else 8
            for n, v in prog.clocals.items()
            if n in self.this_off
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
                if v.array or not is_scalar(v.type) or not all(is_scalar(k) for k in v.keys or []):
                    if self._memory_variable(scope, name, v):
                        continue
                    raise LoweringError(
                        f"the eBPF engine cannot compile {shown} of type {v.type} yet"
                    )
                self.dvar_id[(scope, name)] = len(self.dvar_id) + 1
                ksize = 16 + sum(self.key_width(k) for k in v.keys or [])
                self.dkey_size = max(self.dkey_size, ksize)
                if v.type.is_string():
                    self.dval_size = max(self.dval_size, L.align8(self.ssize))
        self.dkey_depth = 0
        self.dvar_capacity = dvar_capacity(prog, self.strsize, self.options)
        # key buffers: one per level of dynamic variables read inside subscripts
        self.dkey_levels = max(
            [DKEY_LEVELS] + [dkey_levels(x) for c in prog.clauses for x in [c.predicate, *c.body]]
        )
        if self.dvar_id:
            self.f_dkey = self.frame.take(self.dkey_size * self.dkey_levels)
            self.f_dval = self.frame.take(self.dval_size)
            self.f_dvdrop = self.frame.take(8)  # has this clause dropped a store yet?
        maxkey = 8
        maxval = 8
        # keys that are the same probe-constant string at every use: stored as the probe id
        self.probe_keys: dict[str, dict[int, tuple[str, dict[int, str]]]] = {}
        for aname, per_pos in probe_constant_keys(prog).items():
            self.probe_keys[aname] = {pos: (b, {}) for pos, b in per_pos.items()}
        stack_keys = stack_key_frames(prog)
        for a in prog.aggs.values():
            spec = AggSpec(a.id, a.name, a.func, a.params, list(a.keys), a.valtype)
            pk = {pos: names for pos, (_, names) in self.probe_keys.get(a.name, {}).items()}
            opts = self.options
            frames = (capped_frames(opts, int(opts.get("stackframes") or 20)),
                      capped_frames(opts, int(opts.get("ustackframes") or 100)))  # fmt: skip
            counts = {pos: capped_frames(opts, n) for pos, n in stack_keys.get(a.name, {}).items()}
            lay = L.agg_layout(spec, f"agg{a.id}", self.strsize, pk, frames, counts)
            self.out.aggs[a.name] = lay
        self.share_agg_maps()
        for lay in self.out.aggs.values():
            maxkey = max(maxkey, lay.key_size)
            maxval = max(maxval, lay.value_size)
        if any(mentions([c.predicate, *c.body], TIME_VARS) for c in prog.clauses):
            self.f_ts = self.frame.take(8)  # timestamp, read once per firing (0 = not yet)
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
                    names[pid] = probe_string(p, b)
        self.rec_max = L.FAULT_SIZE
        # what the ring must hold when bufsize is not set (ring_size): the most
        # one BEGIN or END firing writes, unless a probe that fires at its own
        # rate may write more than its exit() record (ring_unbounded)
        self.ring_unbounded = False
        self.once_bytes = 0
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
        # probes one program serves (raw syscalls, a file's uprobes: engines/ebpf/providers)
        groups: dict[str, Any] = {}
        used = in_use({p.kind for p in self.out.probes.values()})
        for impl in used:
            groups.update(impl.groups(self, by_probe))
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
        # a held -c child runs our code (and its libc) from fork to exec: no probe
        # fires in it before its exec, as dtrace's created process starts stopped
        # after it (a word of the globals each, set by exec_gate_program)
        self.exec_gates: dict[int, int] = {}
        for pid in self.held:
            self.exec_gates[pid] = self.globals_size
            self.globals_size += 8
        for impl in used:
            impl.prepare(self, progs)
        # the record area goes last so that string temporaries have fixed offsets
        generated = []
        keys: list[Insn] = []  # each program's frame key (its last try's: program_fit)
        for probe, clauses, group in progs:
            self.key_insns: list[Insn] = []
            generated.append(self.program_fit(probe, clauses, group))
            keys.append(self.key_insns[-1])
        self.f_rec = self.frame.take(self.rec_max)
        self.f_str = self.frame.take(self.ssize * max(self.nstrings, 1))
        # offsets of the record and string areas were symbolic until now
        self.out.progs.extend(generated)
        self._patch_areas()
        frames = frame_keys(generated, keys, self.frame.size)
        self.out.frame_size = self.frame.size
        need = None if self.ring_unbounded else self.once_bytes
        from pydtrace.engines.ebpf.maps import ring_size

        bufsize = ring_size(self.options.get("bufsize"), need)
        o = self.out
        o.maps = [
            MapSpec("frame", MAP_PERCPU_ARRAY, 4, self.frame.size, frames),
            MapSpec("globals", MAP_ARRAY, 4, self.globals_size, 1),
            MapSpec("drops", MAP_PERCPU_ARRAY, 4, 8 * DROP_WORDS, 1),
            MapSpec("records", MAP_RINGBUF, 0, 0, bufsize),
        ]
        if self.dvar_id:
            o.maps.append(MapSpec("dvars", MAP_HASH, self.dkey_size, self.dval_size,
                                  max(self.dvar_capacity, 1)))  # fmt: skip
        for lay in o.aggs.values():
            if any(m.name == lay.map_name for m in o.maps):
                continue  # a shared map
            o.maps.append(MapSpec(lay.map_name, MAP_PERCPU_HASH, lay.key_size, lay.value_size,
                                  self.agg_capacity()))  # fmt: skip
        for impl in used:
            impl.finish(self, o)
        if self.exec_gates:
            o.progs.append(exec_gate_program(self.exec_gates))
        if getattr(self, "uses_vtime", False):
            from pydtrace.engines.ebpf import cg_vtime

            o.maps.append(cg_vtime.map_spec())
            o.progs.append(cg_vtime.switch_program())
        for name, (probes, _, masks) in groups.items():
            mname = "sys_" + name
            # the probes' keys (syscall number, attach cookie), the map's size, and
            # the names an entry keeps (probefunc, and an instruction's probename)
            keys, entries, names = self.provider(probes[0]).group_map(self, name, probes)
            o.maps.append(MapSpec(mname, MAP_ARRAY, 4, SYS_NAME + names * L.align8(self.ssize),
                                  entries))  # fmt: skip
            fill = []
            for key, p in zip(keys, probes):
                nargs = min(len(getattr(p.data, "args", ()) or ()), 6)
                value = struct.pack("<IIQ", p.id, nargs, masks[p.id])
                value += p.function.encode()[: self.strsize]
                if names == 2:  # the probename after probefunc's whole area
                    value = value.ljust(SYS_NAME + L.align8(self.ssize), b"\0")
                    value += p.name.encode()[: self.strsize]
                fill.append((key, value))
            o.fills[mname] = fill
        return o

    def agg_capacity(self) -> int:
        """Entries of an aggregation map: with aggsize set, dtrace's (and the user
        engine's AggPool) aggsize / (largest key tuple + largest value), at most
        AGG_ENTRIES; a full map drops new keys (DTRACEDROP_AGGREGATION)."""
        from pydtrace.consume.aggregation import data_size, tuple_size
        from pydtrace.options import size_option

        aggsize = size_option(self.options, "aggsize", 0)
        specs = [lay.spec for lay in self.out.aggs.values()]
        if not aggsize or not specs:
            return AGG_ENTRIES
        tup = max(tuple_size(s.keytypes, self.strsize) for s in specs)
        dat = max(data_size(s) for s in specs)
        # never more than AGG_ENTRIES: the maps are preallocated per CPU (the
        # default aggsize, 4m, would mean ~130k entries per aggregation)
        return max(min(aggsize // (tup + dat), AGG_ENTRIES), 1)

    def share_agg_maps(self) -> None:
        """More than AGG_OWN_MAPS aggregations (a program may use 64 maps): one
        PERCPU_HASH per value size, key = u64 tag (the aggregation id), then
        the aggregation's own key, zero padded to the group's largest."""
        self.agg_own_key: dict[str, int] = {}
        if len(self.out.aggs) <= AGG_OWN_MAPS:
            return
        groups: dict[int, list[L.AggLayout]] = {}
        for lay in self.out.aggs.values():
            groups.setdefault(lay.value_size, []).append(lay)
        for vsize, lays in groups.items():
            ksize = 8 + max(lay.key_size for lay in lays)
            for lay in lays:
                self.agg_own_key[lay.spec.name] = 8 + lay.key_size
                for slot in lay.keys:
                    slot.off += 8
                lay.key_size, lay.map_name, lay.tag = ksize, f"aggs{vsize}", lay.spec.id

    def _memory_variable(self, scope: str, name: str, v: Any) -> bool:
        """Whether cg_vars' memory_variable (arrays, structs, unions) placed v."""
        place = getattr(self, "memory_variable", None)
        return bool(place is not None and place(scope, name, v))

    def provider(self, probe: Any) -> EbpfProvider:
        """How this engine fires the probe's provider (engines/ebpf/providers)."""
        return provider_of(probe)

    def group_entry(self, map_name: str, done: str) -> None:
        """r1 = a group's key (syscall number, attach cookie): its map entry's
        probe id and clause mask into the frame (f_sys), r0 = the entry; to done
        when the key serves no probe."""
        a = self.a
        a.stx(4, R9, self.f_sys, R1)
        a.mov(R2, R9)
        a.alu("+", R2, imm=self.f_sys)
        a.ld_map(R1, map_name)
        a.call("map_lookup_elem")
        a.jmp("==", R0, done, imm=0)
        a.ldx(4, R1, R0, 0)
        a.jmp("==", R1, done, imm=0)
        a.stx(8, R9, self.f_sys + 8, R1)
        a.ldx(8, R1, R0, 8)
        a.stx(8, R9, self.f_sys + 16, R1)

    def _patch_areas(self) -> None:
        for spec in self.out.progs:
            for i in spec.insns:
                mark = i.area
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

    def held_gate(self) -> None:
        """Return when the firing is in a held -c child that has not exec'd yet (the
        firing's thread: for sched:::on-cpu the incoming one, not the current)."""
        a = self.a
        self.current_ids("pid")
        a.alu(">>", R0, imm=32)
        for pid, off in sorted(self.exec_gates.items()):
            other = a.new_label("hgate")
            a.jmp("!=", R0, other, imm=pid)
            a.ld_map(R1, "globals", off)
            a.ldx(8, R1, R1, 0)
            a.jmp("!=", R1, other, imm=0)
            a.movi(R0, 0)
            a.exit()
            a.place(other)

    def program(self, probe: Any, clauses: list[ClauseInfo], group: Any = None) -> ProgSpec:
        a = Assembler()
        self.a = a
        self.probe = probe
        # (name, probes, masks) for a program serving many probes: raw syscalls
        # (entry|return) or a uprobe group (u<k>, i<k>): the providers' groups()
        self.group = group
        self.incoming = False  # sched:::on-cpu sets it (providers/sched.py)
        impl = self.provider(probe)  # a group's probes share one provider
        ptype, attach = impl.group_attach(group) if group is not None else impl.attach(probe)
        self.attach = attach
        a.origin = ("prologue", 0, 0)
        a.mov(6, R1)
        nodes = [[c.predicate, *c.body] for c in clauses]
        if calls_stack(nodes) or mentions(nodes, CALLER_VARS):
            a.stx(8, R10, CTX_SLOT, R1)  # bpf_get_stack's context (cg_stack)
        # frame = lookup(frame, &key): the key is the program's (frame_keys())
        self.key_insns.append(a.emit(Insn(0x62, R10, 0, -4, 0)))  # *(u32 *)(r10 - 4) = key
        a.mov(R2, R10)
        a.alu("+", R2, imm=-4)
        a.ld_map(R1, "frame")
        a.call("map_lookup_elem")
        done = a.new_label("out")
        if self.far:  # return here: `done` lies more than 32K slots ahead
            found = a.new_label("frame")
            a.jmp("!=", R0, found, imm=0)
            a.exit()  # r0 = 0
            a.place(found)
        else:
            a.jmp("==", R0, done, imm=0)
        a.mov(R9, R0)
        # a program whose clauses never read arg0..9 / args[] skips copying them
        # (for raw syscalls, the read of pt_regs: most of the cost of a firing)
        self.wants_args = any(reads_args([c.predicate, *c.body]) for c in clauses)
        self.prologue_args(impl, probe)
        if group is not None:
            impl.group_prologue(self, group, done)
        for name, off in self.this_off.items():
            for p in range(0, self.this_size[name], 8):
                a.st(8, R9, off + p, 0)  # the frame's areas are 8-byte aligned
        self.uses_ts = getattr(self, "f_ts", None) is not None and any(
            mentions(x, TIME_VARS) for c in clauses + self.error_clauses
            for x in [c.predicate, *c.body]
        )  # fmt: skip
        if self.uses_ts:
            a.st(8, R9, self.f_ts, 0)
        prologue = getattr(self, "memory_prologue", None)  # this-> arrays/structs (cg_memory)
        if prologue is not None:
            prologue()
        impl.prologue(self, probe, clauses)  # args in a memory region memory_prologue zeroes
        psinfo.prologue(self, probe, clauses, impl)  # curpsinfo; proc/sched filters and args
        if self.exec_gates and probe.provider != "dtrace":
            self.held_gate()  # (here: sched:::on-cpu's thread is the incoming one)
        is_end = self.is_end = probe.provider == "dtrace" and probe.name == "END"
        self.fires_once = is_end or (probe.provider == "dtrace" and probe.name == "BEGIN")
        # BEGIN's and END's records wait for the consumer (BEGIN's until the probes are
        # attached, END's until the end): like dtrace's principal buffer, one firing may
        # leave at most bufsize bytes; more are DTRACEDROP_PRINCIPAL drops
        # (only when its clauses could write more: program_fit)
        self.budget = self.budget_on and attach[0] == "run"
        if self.budget:
            if getattr(self, "f_used", None) is None:
                self.f_used = self.frame.take(8)  # record bytes written by this firing
            a.st(8, R9, self.f_used, 0)
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

    def program_fit(self, probe: Any, clauses: list[ClauseInfo], group: Any) -> ProgSpec:
        """program(), compiled again when it must be: `far` when a jump to the
        program's end does not reach (more than 32K slots), `budget_on` when
        BEGIN's/END's records could exceed bufsize (emit_output counts them)."""
        self.far = self.budget_on = False
        while True:
            try:
                spec = self.program(probe, clauses, group)
            except AsmError as e:
                if self.far or "too far" not in str(e):
                    raise
                self.far = True
                continue
            once = self.firing_bytes(probe, clauses)
            if self.budget_on or once <= self.principal_size():
                self.once_bytes = max(self.once_bytes, min(once, self.principal_size()))
                return spec
            self.budget_on = True

    def firing_bytes(self, probe: Any, clauses: list[ClauseInfo]) -> int:
        """The most ring bytes one BEGIN/END firing may write (0 for other probes):
        each clause's record and a fault record, with ERROR's records."""
        if probe.provider != "dtrace" or probe.name not in ("BEGIN", "END"):
            return 0

        def rec(c: ClauseInfo) -> int:
            lay = self.out.records.get(c.index)  # ERROR's: compiled only where a fault may be
            return 16 + L.align8(lay.size if lay else 0) + L.FAULT_SIZE

        err = sum(rec(ec) for ec in self.error_clauses)
        return sum(rec(c) + err for c in clauses)

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

    def prologue_args(self, impl: EbpfProvider, probe: Any) -> None:
        """arg0..arg9 zeroed (when a clause reads them) and errno, then the
        provider's arguments from the context."""
        a = self.a
        fa = self.f_args
        if self.wants_args:
            for i in range(MAX_ARGS):
                a.st(8, R9, fa + 8 * i, 0)
        a.st(8, R9, self.f_errno, 0)
        impl.args(self, probe)

    def clause(self, c: ClauseInfo, done: str, is_end: bool, bit: int | None = None) -> None:
        a = self.a
        self.c = c
        self.reset_temps()
        self.strings_used = 0
        self.layout = L.RecordLayout(c.index)
        self.actions = 1  # the next mask bit of an action inside `if` (new_action)
        self.cond_depth = 0
        self.static_mask = 0
        self.next_clause = a.new_label("next")
        self.fault_label = a.new_label("fault")
        self.faults_used = False
        # jumps to the clause's end and fault block go through islands (see island())
        self.clause_end, self.clause_fault = self.next_clause, self.fault_label
        self.next_clause, self.fault_label = a.new_label("iend"), a.new_label("ifault")
        self.islands: list[tuple[str, str, list[Insn]]] = []
        self.island_at = len(a.insns)
        a.origin = ("clause", c.index, c.line)
        if bit is not None:  # a raw syscall program: does this clause serve the firing probe?
            a.ldx(8, R1, R9, self.f_sys + 16)
            a.alu(">>", R1, imm=bit)
            a.alu("&", R1, imm=1)
            a.jmp("==", R1, self.next_clause, imm=0)
        if not is_end:
            a.ld_map(R1, "globals", 0)
            a.ldx(8, R1, R1, 0)
            if self.far:  # return here: `done` lies more than 32K slots ahead
                go = a.new_label("run")
                a.jmp("==", R1, go, imm=0)
                a.movi(R0, 0)
                a.exit()
                a.place(go)
            else:
                a.jmp("!=", R1, done, imm=0)
        if c.predicate is not None:
            a.origin = ("clause", c.index, line_of(c.predicate) or c.line)
            v = self.expr(c.predicate)
            self.truth(v)
            self.free(v)
            a.jmp("==", v.reg, self.next_clause, imm=0)
        if self.dvar_id:
            a.st(8, R9, self.f_dvdrop, 0)
        # the record header: kind, probe, clause, cpu, then the action mask
        mask_insn = None
        # a speculating clause leaves a record even with no data of its own
        records = c.records or _speculates(c.body)
        if records:
            # kind 0 (ignored by the engine) unless speculate() marks it
            a.st(4, R9, 0, L.REC_DATA if c.records else 0)
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
        if records:
            a.origin = ("clause", c.index, c.line)
            if self.actions > 64:
                raise LoweringError(
                    "the eBPF engine cannot record more than 63 actions inside `if` "
                    f"in one clause (line {c.line})"
                )
            assert mask_insn is not None
            mask_insn.imm = s32(self.static_mask & 0xFFFFFFFF)
            mask_hi.imm = s32(self.static_mask >> 32)
            self.rec_max = max(self.rec_max, self.layout.size)
            self.emit_output(self.layout.size)
        self.out.records[c.index] = self.layout
        if not self.fires_once and (self.faults_used or (records and not self._exit_only(c))):
            self.ring_unbounded = True  # records at the probe's rate: the whole ring
        self.settle_islands()
        if self.faults_used:
            # fault: r1 = code, r2 = value, r3 = pc
            a.ja(self.next_clause)
            a.place(self.fault_label)
            a.place(self.last_fault)
            if self.in_error:  # a fault in an ERROR clause is only counted
                self.count_drop(DROP_DBLERROR)
            else:
                self.emit_fault(done)
        a.place(self.next_clause)
        a.place(self.last_end)

    def _exit_only(self, c: ClauseInfo) -> bool:
        """Whether the clause's record is an unconditional exit() alone: once
        one is written, exit()'s draining word stops every clause but END's,
        so such records never outnumber the CPUs firing at that moment."""
        items = self.layout.items
        return (
            bool(c.records)
            and not _speculates(c.body)
            and len(items) == 1
            and items[0][0] == 0
            and self.layout.exits
        )

    def builtin(self, name: str, e: ast.Expr) -> Any:
        """timestamp is read once per firing (the frame caches it, as dtrace's
        mstate does), walltimestamp is that + the boot time; the other builtin
        variables are cg_expr's."""
        if name == "vtimestamp":
            from pydtrace.engines.ebpf import cg_vtime

            self.uses_vtime = True
            v = self.alloc(e.ctype)  # type: ignore[attr-defined]
            cg_vtime.load_vtimestamp(self, v.reg)
            return v
        if name not in ("timestamp", "walltimestamp"):
            return super().builtin(name, e)  # type: ignore[misc]
        a = self.a
        v = self.alloc(e.ctype)  # type: ignore[attr-defined]
        have = a.new_label("ts")
        a.ldx(8, v.reg, R9, self.f_ts)
        a.jmp("!=", v.reg, have, imm=0)
        a.call("ktime_get_ns")
        a.stx(8, R9, self.f_ts, R0)
        a.mov(v.reg, R0)
        a.place(have)
        if name == "walltimestamp":
            a.ld_wall_offset(R1, self.boot_offset)
            a.alu("+", v.reg, R1)
        return v

    def new_action(self, kind: str, build: Any) -> None:
        """Mask bits: every unconditional action shares bit 0 (always set), each
        action inside `if` has its own bit (1..63), so a clause may record any
        number of unconditional actions."""
        if self.cond_depth == 0:
            nxt, self.actions = self.actions, 0
            super().new_action(kind, build)  # type: ignore[misc]
            self.actions = nxt
        else:
            super().new_action(kind, build)  # type: ignore[misc]

    def emit_output(self, size: int) -> None:
        a = self.a
        full = a.new_label("full")
        if self.budget:  # bytes the ring holds for this record: 8-byte header + data
            a.ldx(8, R1, R9, self.f_used)
            a.alu("+", R1, imm=8 + L.align8(size))
            a.ld_imm64(R2, min(self.principal_size(), (1 << 63) - 1))
            a.jmp(">", R1, full, src=R2)
            a.stx(8, R9, self.f_used, R1)
        a.ld_map(R1, "records")
        self.rec_ptr(R2, 0)
        a.movi(R3, size)
        a.movi(R4, 0)
        a.call("ringbuf_output")
        ok = a.new_label("sent")
        a.jmp("s>=", R0, ok, imm=0)
        a.place(full)
        self.count_drop(DROP_RING)
        a.place(ok)

    def principal_size(self) -> int:
        """bufsize: one CPU's principal buffer in dtrace (our ring holds one per CPU)."""
        from pydtrace.options import size_option

        return size_option(self.options, "bufsize", 4 << 20)

    def lookup_drops(self, skip: str) -> None:
        """r0 = this CPU's `drops` words (cg_context.DROP_*), or jump to skip."""
        a = self.a
        a.st(4, R10, -4, 0)
        a.mov(R2, R10)
        a.alu("+", R2, imm=-4)
        a.ld_map(R1, "drops")
        a.call("map_lookup_elem")
        a.jmp("==", R0, skip, imm=0)

    def count_drop(self, which: int) -> None:
        a = self.a
        skip = a.new_label("nodrop")
        self.lookup_drops(skip)
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
            self.clause(ec, done, self.is_end)  # after exit(), END's faults still reach ERROR
        keep = ("rec_max", "nstrings")
        for k in list(self.__dict__):
            if k not in saved:
                del self.__dict__[k]
        self.__dict__.update({k: v for k, v in saved.items() if k not in keep})

    def island(self) -> None:
        """Between statements, every ISLAND_EVERY instructions, one island per
        target: `ja over; e: ja <next island or the clause's end>; over:` (and
        the same for the fault block). The code before an island jumps to it
        (BPF jumps reach 32K slots; a clause may be longer); settle_islands()
        turns the islands nothing jumps to into no-ops."""
        a = self.a
        if len(a.insns) - self.island_at < ISLAND_EVERY:
            return
        for kind in ("end", "fault"):
            label = self.next_clause if kind == "end" else self.fault_label
            nxt = a.new_label("i" + kind)
            over = a.new_label("island")
            a.ja(over)
            a.place(label)
            a.ja(nxt)
            a.place(over)
            self.islands.append((kind, label, a.insns[-2:]))
            if kind == "end":
                self.next_clause = nxt
            else:
                self.fault_label = nxt
        self.island_at = len(a.insns)

    def settle_islands(self) -> None:
        """An island nothing jumps to becomes two `ja +0` (the verifier rejects
        unreachable instructions); then the last segment's labels become the
        clause's end and fault block."""
        if self.islands:
            used: dict[str, int] = {}
            for i in self.a.insns:
                if i.target is not None:
                    used[i.target] = used.get(i.target, 0) + 1
            for kind, label, insns in self.islands:  # in order: a dropped one frees the next
                if used.get(label):
                    self.faults_used |= kind == "fault"
                    continue
                used[insns[1].target] -= 1
                for i in insns:
                    i.target, i.off = None, 0
        self.last_end, self.last_fault = self.next_clause, self.fault_label
        self.next_clause, self.fault_label = self.clause_end, self.clause_fault

    def stmt(self, s: ast.Stmt) -> None:
        a = self.a
        self.island()
        a.origin = ("clause", self.c.index, line_of(s) or self.c.line)
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


def _speculates(body: list[ast.Stmt]) -> bool:
    """Whether a clause body calls speculate() (at its top level or in an if)."""
    for s in body:
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            if isinstance(e, ast.Call) and e.name == "speculate":
                return True
        elif isinstance(s, ast.If) and (_speculates(s.then) or _speculates(s.other or [])):
            return True
    return False
