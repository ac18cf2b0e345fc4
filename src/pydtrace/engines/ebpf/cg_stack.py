"""Stacks and code addresses: stack(), ustack() (as actions and as
aggregation keys), sym/func/mod, usym/ufunc/umod/uaddr (as actions, and as
values: lower_symbol, in cg_subroutines' table), caller/ucaller, uregs[].

The frames come from bpf_get_stack, written straight into the record (or
the key buffer): for a kernel stack from the context's registers, for a
user stack (BPF_F_USER_STACK) by walking the thread's frame pointers, as
the kernel's perf callchains do (code built without frame pointers gives
short user stacks, as under bpftrace and perf). The unused tail is zeroed
first, so a stack ends at its first 0. User stacks carry the pid: the
consumer resolves them through that process's mappings (symbols/process.py)
and keeps the snapshot, so a process that exits early still resolves.
"""

from __future__ import annotations

from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.cg_context import CTX_SLOT, CompilerBase, Value, task_path
from pydtrace.engines.ebpf.cg_queries import calls
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9, R10
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.records import Action
from pydtrace.options import capped_frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BPF_F_USER_STACK = 1 << 8
STACK_CALLS = frozenset({"stack", "ustack", "jstack"})
USER_CALLS = frozenset({"ustack", "jstack", "usym", "ufunc", "umod", "uaddr"})
CALLER_FRAMES = 8  # kernel frames read for `caller` (machinery, the site, its caller)
PT_REGS_WORDS = 21  # x86_64 struct pt_regs, the R_ indexes of uregs[] (lang/dlib.py)
THREAD_WORDS = ("ds", "es", "fsbase", "gsbase", "trap_nr")  # uregs[21..25]


class StackMixin(CompilerBase):
    def stack_frames(self, e: ast.Call, user: bool) -> int:
        """stack(n) / ustack(n): n; else the stackframes / ustackframes option."""
        if e.args:
            n = getattr(e.args[0], "value", None)
            if not isinstance(n, int):
                raise self.unsupported(f"{e.name}() with a frame count that is not a constant", e)
            return capped_frames(self.options, max(1, n))
        opt = "ustackframes" if user else "stackframes"
        return capped_frames(self.options, int(self.options.get(opt) or (100 if user else 20)))

    def get_stack(self, dst: Any, zero: Any, nframes: int, user: bool, skip: int = 0) -> None:
        """Zero nframes words, then bpf_get_stack into them: dst(reg) points a
        register at the first word, zero(i) stores 0 in word i."""
        a = self.a
        for i in range(nframes):
            zero(i)
        a.ldx(8, R1, R10, CTX_SLOT)
        dst(R2)
        a.movi(R3, 8 * nframes)
        a.movi(R4, BPF_F_USER_STACK if user else skip)
        a.call("get_stack")

    def load_uregs(self, idx: int) -> Any:
        """uregs[idx]: the user registers the kernel saved on entry (task_pt_regs),
        0..20 in pt_regs order; 21..25 ds, es, fsbase, gsbase, trap_nr of
        task->thread, as dtrace-utils reads them."""
        a = self.a
        v = self.alloc(T.ULONG)
        if idx < PT_REGS_WORDS:
            a.call("get_current_task_btf")  # task_pt_regs takes a BTF task pointer
            a.mov(R1, R0)
            a.call("task_pt_regs")
            self.kernel_load(v.reg, R0, 8 * idx, 8)
            return v
        (acc,) = task_path("thread", THREAD_WORDS[idx - PT_REGS_WORDS])
        self.current_task(R0)
        self.kernel_load(v.reg, R0, acc.offset, acc.size)
        return v

    def load_caller(self, user: bool) -> Any:
        """caller: the return address into the function that called the
        probe's site (the first kernel frame below the probe machinery);
        ucaller: the user stack's second frame, as dtrace-utils gives it."""
        a = self.a
        v = self.alloc(T.ULONG)
        if self.f_callers is None:
            self.f_callers = self.frame.take(8 * CALLER_FRAMES)
        buf = self.f_callers

        def dst(reg: int) -> None:
            a.mov(reg, R9)
            a.alu("+", reg, imm=buf)

        def zero(i: int) -> None:
            a.st(8, R9, buf + 8 * i, 0)

        if user:
            self.get_stack(dst, zero, 2, True)
            a.ldx(8, v.reg, R9, buf + 8)
            return v
        raw = self.attach[0] == "raw_tp"  # frame 0 is the BPF program itself
        self.get_stack(dst, zero, CALLER_FRAMES, False, skip=1 if raw else 0)
        ranges = machinery_ranges(self.attach[1] if raw else None, self.attach)
        done = a.new_label("caller")
        for i in range(CALLER_FRAMES - 1):
            nxt = a.new_label("cframe")
            a.ldx(8, R1, R9, buf + 8 * i)
            for lo, hi in ranges:  # kernel text: imm32 sign-extends to the address
                below = a.new_label("cbelow")
                a.jmp("<", R1, below, imm=lo)
                a.jmp("<", R1, nxt, imm=hi)
                a.place(below)
            a.ldx(8, v.reg, R9, buf + 8 * (i + 1))  # frame i is the site
            a.ja(done)
            a.place(nxt)
        a.movi(v.reg, 0)
        a.place(done)
        return v

    def stack_action(self, e: ast.Call, act: Action) -> None:
        """stack()/ustack() as an action: the frames (and pid) in the record."""
        from pydtrace.consume.stacks import MACHINERY_ROOM

        a = self.a
        user = e.name != "stack"
        keep = self.stack_frames(e, user)
        n = keep if user else keep + MACHINERY_ROOM
        pslot = None
        if user:
            pslot = self.layout.slot(T.LONG, 8)
            self.current_ids("pid")
            a.alu(">>", R0, imm=32)
            a.stx(8, R9, pslot.off, R0)
            self._mark(a.insns[-1], "rec", pslot.off)
        slots = [self.layout.slot(T.ULONG, 8) for _ in range(n)]
        first = slots[0].off

        def zero(i: int) -> None:
            a.st(8, R9, first + 8 * i, 0)
            self._mark(a.insns[-1], "rec", first + 8 * i)

        self.get_stack(lambda reg: self.rec_ptr(reg, first), zero, n, user)
        idxs = [s.idx for s in slots]
        pid = pslot.idx if pslot is not None else None
        self.new_action("stack", L.StackItem(act, idxs, pid, "ustack" if user else "stack", keep))

    def stack_key(self, k: ast.Call, slot: L.StackSlot) -> None:
        """A stack() / ustack() aggregation key into the key buffer."""
        a = self.a
        at = self.f_key + slot.off
        if slot.user:
            self.current_ids("pid")
            a.alu(">>", R0, imm=32)
            a.stx(8, R9, at, R0)
            at += 8

        def dst(reg: int) -> None:
            a.mov(reg, R9)
            a.alu("+", reg, imm=at)

        self.get_stack(dst, lambda i: a.st(8, R9, at + 8 * i, 0), slot.frames, slot.user)

    def symbol_key(self, k: ast.Call, slot: L.SymSlot) -> None:
        """sym(addr) and the rest as an aggregation key: pid (0 for the
        kernel ones), then the address."""
        a = self.a
        v = self.expr(k)
        a.stx(8, R9, self.f_key + slot.off + 8, v.reg)
        self.free(v)
        if slot.ctype.name.startswith("_u"):
            self.current_ids("pid")
            a.alu(">>", R0, imm=32)
            a.stx(8, R9, self.f_key + slot.off, R0)
        else:
            a.st(8, R9, self.f_key + slot.off, 0)

    def lower_symbol(self, e: ast.Call) -> Value:
        """sym(addr) and the rest used as a value: the address, typed _sym,
        _ufunc... (an aggregation key of that type prints resolved)."""
        v = self.expr(e.args[0])
        v.ctype = e.ctype  # type: ignore[attr-defined]
        return v

    def sym_action(self, e: ast.Call, act: Action) -> None:
        """sym(addr) and the rest: the address (and for the user ones the pid)."""
        a = self.a
        slot = self.record_value(e.args[0])
        pslot = self.layout.slot(T.LONG, 8)
        self.current_ids("pid")
        a.alu(">>", R0, imm=32)
        a.stx(8, R9, pslot.off, R0)
        self._mark(a.insns[-1], "rec", pslot.off)
        self.new_action("sym", L.PickItem(act, [slot.idx, pslot.idx]))


def calls_stack(node: Any) -> bool:
    """Whether an AST (sub)tree calls stack()/ustack()/jstack()."""
    return calls(node, STACK_CALLS)


def calls_ustack(node: Any) -> bool:
    """Whether user stacks or addresses are recorded (they need process maps)."""
    return calls(node, USER_CALLS)


def machinery_ranges(raw_tp: str | None, attach: tuple[Any, ...] = ()) -> list[tuple[int, int]]:
    """[start, end) of the kernel functions of the probe machinery that can
    lead a stack taken in a program on raw tracepoint raw_tp (or on a perf
    tracepoint or event: None): bpf_trace_runN, the tracepoint's own
    __bpf_trace_<class> thunk and __traceiter_<event> (there when several
    programs share the tracepoint), and the syscall tracepoints' callers.
    Only kernel text (the top 2 GiB: 32-bit immediates reach it)."""
    from pydtrace.symbols.kallsyms import MACHINERY, kernel_symbols

    # the events whose __traceiter_ may lead: a syscall's perf tracepoint is
    # fired from sys_enter/sys_exit's
    if raw_tp is not None:
        events = {raw_tp}
    elif attach[:2] == ("tracepoint", "syscalls"):
        events = {"sys_enter", "sys_exit"}
    elif attach[:1] == ("tracepoint",):
        events = {attach[2]}
    else:
        events = set()

    def thunk_of(name: str) -> bool:  # __bpf_trace_<raw_tp> or of its event class
        c = name[len("__bpf_trace_") :]
        return raw_tp is not None and (
            c == raw_tp
            or raw_tp.startswith(c + "_")
            or (c.endswith("_template") and raw_tp.startswith(c[: -len("_template")]))
        )

    def want(mod: str, name: str) -> bool:
        if mod != "vmlinux" or MACHINERY.fullmatch(name) is None:
            return False
        if name.startswith("__traceiter_"):
            return name[len("__traceiter_") :] in events
        return thunk_of(name) if name.startswith("__bpf_trace_") else True

    return [(lo, hi) for lo, hi in kernel_symbols().ranges(want) if lo >= KERNEL_TEXT]


KERNEL_TEXT = 0xFFFFFFFF80000000
