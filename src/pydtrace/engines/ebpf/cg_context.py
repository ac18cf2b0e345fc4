"""Shared state of the BPF code generator: constants, the compiled-program
specs, the frame layout, expression values, temporaries, and helpers the
cg_* lowering modules share. The lowering parts are mixins over
CompilerBase that call each other through methods of the one Compiler
object (codegen.Compiler lists them); a cg_* module imports another only
for a function or constant it holds, never cg_program or codegen (but
for type hints: the subroutine modules' `cg: Compiler`).

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

from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R9, R10, Insn
from pydtrace.lang import ast
from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.program import CheckedProgram
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# program types and map types (kernel uapi numbers)
PROG_TRACEPOINT, PROG_PERF_EVENT, PROG_RAW_TRACEPOINT = 5, 7, 17
MAP_HASH, MAP_ARRAY, MAP_PERCPU_HASH, MAP_PERCPU_ARRAY, MAP_RINGBUF = 1, 2, 5, 6, 27

BADADDR, DIVZERO = 1, 4  # DTRACEFLT_ codes (consume.records)
MAX_ARGS = 10

# drop counters (u64 words of the `drops` per-CPU array); SWITCH_LAST is no
# counter: the task the last sched_switch seen on the CPU switched to
DROP_RING, DROP_AGG, DROP_DYN, DROP_DBLERROR, DROP_SWITCH = 0, 1, 2, 3, 4
SWITCH_LAST = 5
DROP_WORDS = 6

TEMPS = (6, 7, 8)
# spill slots for temporaries on the BPF stack (r10-4..-32 are scratch of single operations)
SPILL_SLOTS = tuple(range(-40, -505, -8))
# the program's context pointer, kept where the verifier still knows it as one
# (a stack slot; in the frame map it would be a plain number): bpf_get_stack
# needs it (cg_stack)
CTX_SLOT = -512
SELECT_SLOTS = 8  # integer ternaries nested this deep meet in frame words (cg_expr.select)
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


def line_of(e: Any) -> int:
    """The source line of an AST node (0 when it has none)."""
    return getattr(e, "line", 0) or 0


class Value:
    """An expression's result: a temporary register; strings are a pointer to
    a zero-padded strsize+1 byte buffer inside a map value."""

    def __init__(self, reg: int, ctype: CType) -> None:
        self._reg = reg
        self.ctype = ctype
        self.spill: int | None = None  # its stack slot (r10 offset) while spilled
        self.region = 0  # the branch region it was made in (see CompilerBase.branch)

    @property
    def reg(self) -> int:
        if self.spill is not None:
            # a spilled value must be reloaded (CompilerBase.reload) before use
            raise LoweringError("the eBPF engine cannot compile an expression this deep yet")
        return self._reg

    @reg.setter
    def reg(self, r: int) -> None:
        self._reg = r


class CompilerBase:
    """State shared by the lowering mixins; see codegen.Compiler."""

    def __init__(
        self, prog: CheckedProgram, options: dict[str, Any], held: tuple[int, ...] = ()
    ) -> None:
        self.prog = prog
        self.options = options
        self.held = held  # -c children held before their exec (their probes wait for it)
        self.strsize = int(options.get("strsize", 256) or 256)
        self.ssize = self.strsize + 1  # bytes of a string buffer
        self.out = Compiled(strsize=self.strsize)
        self.frame = Frame()
        # the frame's fixed areas
        self.f_args = self.frame.take(8 * MAX_ARGS)
        self.f_errno = self.frame.take(8)
        self._f_word: int | None = None  # read_to_word()
        self._f_select: list[int] = []  # select_slot()
        self.select_depth = 0
        self.f_keysize = 8
        self.globals_size = 8  # offset 0: the draining flag set by exit()
        self.global_off: dict[str, int] = {}
        self.this_off: dict[str, int] = {}
        self.nstrings = 0
        self.boot_offset = time.time_ns() - time.monotonic_ns()
        # sched:::on-cpu fires in the thread going off the CPU and its clauses run as
        # the thread coming on (providers/sched.py): `incoming` is set for that program, and
        # f_incoming holds that thread's task, pid_tgid and uid_gid words
        self.incoming = False
        self.f_incoming: int | None = None
        self.f_callers: int | None = None  # frames read for caller/ucaller (cg_stack)
        self.attach: tuple[Any, ...] = ()  # the program's attachment (cg_program)

    # Record and string areas are placed after every clause is compiled (their
    # sizes are only known then); an instruction addressing one carries
    # Insn.area = (area, offset in it) and is patched once.
    def _mark(self, insn: Insn, area: str, rel: int) -> None:
        insn.area = (area, rel)

    def rec_ptr(self, reg: int, rel: int) -> None:
        """reg = pointer to the record area + rel."""
        a = self.a
        a.mov(reg, R9)
        a.alu("+", reg, imm=0)
        self._mark(a.insns[-1], "rec", rel)

    # -- the current thread (every builtin that names it goes through these)

    def current_task(self, out: int) -> None:
        """out = the current task_struct's address."""
        if self.incoming:
            self.a.ldx(8, out, R9, self.f_incoming)
            return
        self.a.call("get_current_task")
        if out != R0:
            self.a.mov(out, R0)

    def current_ids(self, which: str) -> None:
        """r0 = tgid << 32 | tid (which "pid") or gid << 32 | uid ("uid"), as
        get_current_pid_tgid / get_current_uid_gid give them."""
        if self.incoming:
            self.a.ldx(8, R0, R9, self.f_incoming + (8 if which == "pid" else 16))
        else:
            self.a.call("get_current_pid_tgid" if which == "pid" else "get_current_uid_gid")

    def current_comm(self, dst: int) -> None:
        """The 16-byte comm of the current thread to the address in register dst."""
        a = self.a
        a.mov(R1, dst)
        a.movi(R2, 16)
        if not self.incoming:
            a.call("get_current_comm")
            return
        a.ldx(8, R3, R9, self.f_incoming)
        a.alu("+", R3, imm=task_path("comm")[-1].offset)
        a.call("probe_read_kernel")

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

    def reset_temps(self) -> None:
        """Per clause: every temporary register free, no spilled value."""
        self.temps = list(TEMPS)  # free registers, next first
        self.live: list[Value] = []  # values holding a register, oldest first
        self.free_slots = list(SPILL_SLOTS)
        self.region = 0
        self.regions = 0

    def alloc(self, ctype: CType) -> Value:
        """A temporary register for a new value; when r6-r8 are all live, the
        oldest live value of the current branch region is spilled to the stack."""
        if not self.temps:
            self.spill_one(())
        v = Value(self.temps.pop(0), ctype)
        v.region = self.region
        self.live.append(v)
        return v

    def spill_one(self, keep: tuple[Value, ...]) -> None:
        # only values made in the current region: code inside a branch must not
        # spill a value the other path keeps in its register
        cands = [v for v in self.live if v.region == self.region and v not in keep]
        if not cands or not self.free_slots:
            raise LoweringError(
                f"the eBPF engine cannot compile an expression this deep yet (line {self._cur_line()})"
            )
        v = cands[0]
        v.spill = self.free_slots.pop(0)
        self.a.stx(8, R10, v.spill, v._reg)
        self.live.remove(v)
        self.temps.append(v._reg)

    def reload(self, v: Value, *keep: Value) -> None:
        """Bring a spilled value back into its own register (moving the value in
        `keep` that holds that register elsewhere); no-op when v is not spilled."""
        if v.spill is None:
            return
        a = self.a
        if v._reg in self.temps:
            self.temps.remove(v._reg)
        else:
            holder = next(w for w in self.live if w._reg == v._reg)
            if holder.region != self.region:
                raise LoweringError(
                    f"the eBPF engine cannot compile an expression this deep yet (line {self._cur_line()})"
                )
            if not self.temps:
                self.spill_one((holder, *keep))
            r = self.temps.pop(0)
            a.mov(r, holder._reg)
            holder._reg = r
        a.ldx(8, v._reg, R10, v.spill)
        self.free_slots.insert(0, v.spill)
        v.spill = None
        self.live.append(v)

    def claim(self, v: Value) -> None:
        """Take v's register again after it was freed (its register is free)."""
        self.temps.remove(v._reg)
        self.live.append(v)

    def branch(self) -> int:
        """Enter code that runs on one path only; returns what end_branch needs."""
        outer = self.region
        self.regions += 1
        self.region = self.regions
        return outer

    def end_branch(self, outer: int) -> None:
        self.region = outer

    def free(self, v: Value | None) -> None:
        if v is None:
            return
        if v.spill is not None:
            self.free_slots.insert(0, v.spill)
            v.spill = None
            return
        self.live = [w for w in self.live if w is not v]
        if v._reg not in self.temps:
            self.temps.insert(0, v._reg)

    def _cur_line(self) -> int:
        o = self.a.origin
        return o[2] if isinstance(o, tuple) else 0

    def string_buf(self) -> int:
        """A fresh string buffer's offset relative to the string area (one per use site)."""
        off = self.strings_used * self.ssize
        self.strings_used += 1
        self.nstrings = max(self.nstrings, self.strings_used)
        return off

    def read_to_word(self, helper: str, size: int) -> int:
        """R3: an address -> `helper` (probe_read_kernel or probe_read_user)
        called to read its `size` bytes into a frame word, which it zeroes
        when it cannot read them; the word's offset (R0: the helper's
        result). A frame word, not a stack slot: the kernel's verifier
        tracks the liveness of every stack slot written, at a cost that
        grows with the program. Taken at first use: a program without one
        keeps its layout."""
        if self._f_word is None:
            self._f_word = self.frame.take(8)
        a = self.a
        a.mov(R1, R9)
        a.alu("+", R1, imm=self._f_word)
        a.movi(R2, size)
        a.call(helper)
        return self._f_word

    def select_slot(self, depth: int) -> int:
        """The frame word where the arms of an integer ternary nested `depth`
        deep meet (cg_expr.select)."""
        while len(self._f_select) <= depth:
            self._f_select.append(self.frame.take(8))
        return self._f_select[depth]

    def truth(self, v: Value) -> None:
        pass  # any non-zero 64-bit value is true

    def check_nargs(self, e: ast.Call, lo: int, hi: int) -> None:
        """A subroutine called with lo..hi arguments; else it cannot be compiled."""
        if not lo <= len(e.args) <= hi:
            raise self.unsupported(f"{e.name}() with {len(e.args)} arguments", e)

    def unsupported(self, what: str, e: Any) -> LoweringError:
        return LoweringError(
            f"the eBPF engine cannot compile {what} yet (line {line_of(e) or self._cur_line()})"
        )


def probe_string(p: Any, which: str) -> str:
    """A probe's probeprov, probemod, probefunc or probename."""
    return {"probeprov": p.provider, "probemod": p.module, "probefunc": p.function,
            "probename": p.name}[which]  # fmt: skip


def task_path(*path: str) -> Any:
    """The Accesses reading current->path (BTF); LoweringError without BTF."""
    try:
        from pydtrace.symbols.btf import BTFError, vmlinux

        return vmlinux().resolve_path("task_struct", *path)
    except (ImportError, OSError, BTFError) as e:
        raise LoweringError(
            f"the eBPF engine needs kernel BTF for {'->'.join(path)}: {e}"
        ) from None


def is_scalar(t: CType) -> bool:
    """Whether a variable of type t is one 8-byte word or a string buffer."""
    return t.is_int() or t.is_pointer() or t.is_string()


def dvar_capacity(prog: CheckedProgram, strsize: int, options: dict[str, Any]) -> int:
    """The dvars map's entries: engines.dvars' rule (the user engine's too),
    at most 1 << 20; 0 when the program has no dynamic variables."""
    from pydtrace.engines.dvars import dvar_capacity as capacity
    from pydtrace.options import size_option

    n = capacity(prog, strsize, size_option(options, "dynvarsize", 0) or 1 << 20)
    return 0 if n is None else min(n, 1 << 20)


# The most entries of one aggregation map.  No option sets it (dtrace has
# none), for the maps are preallocated per CPU.
AGG_ENTRIES = 4096


# [C3] speculations: the most buffers speculation() unrolls
MAX_NSPEC = 64
