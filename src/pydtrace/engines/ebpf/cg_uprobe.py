"""pid and usdt probes: KPROBE-typed programs on uprobes (ctx = the user pt_regs).

attach(probe) gives ('uprobe', path, offset, ret, pid, refctr) for engine._attach;
prologue_args() filters on the process (a uprobe of a per-task perf event fires
in that mm only; the check also guards a forked child still carrying the
breakpoint) and fills arg0..arg9:
  entry:  rdi rsi rdx rcx r8 r9, then the stack (x86-64 SysV; *(sp + 8) is arg6);
  return: arg0 = 0, arg1 = rax (as dtrace-utils: a uretprobe cannot know the
          returning instruction's offset);
  usdt:   the note's argument strings, `[-]N@operand` with operand %reg,
          $constant, disp(%reg) or disp(%base,%index,scale), cut to N bytes
          (sign-extended when N < 0).
"""

from __future__ import annotations

import re
from typing import Any

from pydtrace.engines.ebpf.cg_context import MAX_ARGS, PROG_RAW_TRACEPOINT, ProgSpec
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import Assembler

PROG_KPROBE = 2
R0, R1, R2, R3, R6, R9 = 0, 1, 2, 3, 6, 9

# struct pt_regs (x86-64) offsets
PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112, "rip": 128,
    "rsp": 152,
}  # fmt: skip
ENTRY_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")
_LEGACY = {"ax": "rax", "bx": "rbx", "cx": "rcx", "dx": "rdx", "si": "rsi", "di": "rdi",
           "bp": "rbp", "sp": "rsp"}  # fmt: skip


def register(name: str) -> tuple[int, int]:
    """(pt_regs offset, width in bytes) of an AT&T register name (%eax, %r8d, %sil...)."""
    n = name.lstrip("%")
    if n in PT_REGS:
        return PT_REGS[n], 8
    m = re.fullmatch(r"r(\d+)([dwb]?)", n)
    if m and f"r{m.group(1)}" in PT_REGS:
        return PT_REGS[f"r{m.group(1)}"], {"": 8, "d": 4, "w": 2, "b": 1}[m.group(2)]
    if n.startswith("e") and n[1:] in _LEGACY:
        return PT_REGS[_LEGACY[n[1:]]], 4
    if n in _LEGACY:
        return PT_REGS[_LEGACY[n]], 2
    low = {"al": "ax", "bl": "bx", "cl": "cx", "dl": "dx", "sil": "si", "dil": "di",
           "bpl": "bp", "spl": "sp"}  # fmt: skip
    if n in low:
        return PT_REGS[_LEGACY[low[n]]], 1
    raise LoweringError(f"cannot decode USDT argument register %{n}")


_MEM = re.compile(r"(-?(?:0x[0-9a-fA-F]+|\d+))?\((%\w+)(?:,(%\w+)(?:,(\d))?)?\)")


def parse_arg(text: str) -> tuple[int, str, Any]:
    """`-4@%edi` -> (size, kind, operand): kind 'reg' (offset, width), 'imm' (value),
    'mem' (disp, base offset, index offset or None, scale)."""
    size_s, _, op = text.partition("@")
    if not op:
        size_s, op = "8", text
    size = int(size_s)
    if op.startswith("%"):
        return size, "reg", register(op)
    if op.startswith("$"):
        return size, "imm", int(op[1:], 0)
    m = _MEM.fullmatch(op)
    if m is None or m.group(2) == "%rip":
        raise LoweringError(f"cannot decode USDT argument '{text}'")
    base = register(m.group(2))[0]
    index = register(m.group(3))[0] if m.group(3) else None
    return size, "mem", (int(m.group(1) or "0", 0), base, index, int(m.group(4) or "1"))


def attach(probe: Any) -> tuple[int, tuple[Any, ...]]:
    s = probe.data
    return PROG_KPROBE, ("uprobe", s.path, s.offset, s.ret, s.pid, s.refctr)


def group_attach(probes: list[Any]) -> tuple[int, tuple[Any, ...]]:
    """One uprobe_multi link for a group (cg_program.uprobe_groups): every probe's
    offset, with its index in the group as the cookie."""
    s = probes[0].data
    offsets = [p.data.offset for p in probes]
    return PROG_KPROBE, ("uprobe_multi", s.path, offsets, s.ret, s.pid, list(range(len(probes))))


def _read_user(cg: Any, slot: int, size: int) -> None:
    """*(frame + slot) = `size` bytes of user memory at r3 (zero when unreadable)."""
    a = cg.a
    a.st(8, R9, slot, 0)
    a.mov(R1, R9)
    a.alu("+", R1, imm=slot)
    a.movi(R2, size)
    a.call("probe_read_user")


def _cut(cg: Any, reg: int, size: int) -> None:
    """reg = its low |size| bytes, sign-extended when size < 0."""
    n = abs(size)
    if n >= 8 or n == 0:
        return
    sh = 64 - 8 * n
    cg.a.alu("<<", reg, imm=sh)
    cg.a.alu("s>>" if size < 0 else ">>", reg, imm=sh)


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


def prologue_args(cg: Any, probe: Any) -> None:
    a = cg.a
    s = probe.data
    fa = cg.f_args
    ok = a.new_label("upid")
    a.call("get_current_pid_tgid")
    a.alu(">>", R0, imm=32)
    if s.held:  # and only once it has exec'd (exec_gate_program)
        other = a.new_label("uheld")
        a.jmp("!=", R0, other, imm=s.pid)
        a.ld_map(R1, "globals", cg.exec_gates[s.pid])
        a.ldx(8, R1, R1, 0)
        a.jmp("!=", R1, ok, imm=0)
        a.place(other)
    else:
        a.jmp("==", R0, ok, imm=s.pid)
    a.movi(R0, 0)
    a.exit()
    a.place(ok)
    if not cg.wants_args:
        return
    if s.ret:
        a.ldx(8, R1, R6, PT_REGS["rax"])
        a.stx(8, R9, fa + 8, R1)
        return
    if s.usdt_args is None:
        for i, r in enumerate(ENTRY_REGS):
            a.ldx(8, R1, R6, PT_REGS[r])
            a.stx(8, R9, fa + 8 * i, R1)
        for i in range(len(ENTRY_REGS), MAX_ARGS):  # above the return address
            a.ldx(8, R3, R6, PT_REGS["rsp"])
            a.alu("+", R3, imm=8 * (i - len(ENTRY_REGS) + 1))
            _read_user(cg, fa + 8 * i, 8)
        return
    for i, text in enumerate(s.usdt_args[:MAX_ARGS]):
        size, kind, op = parse_arg(text)
        slot = fa + 8 * i
        if kind == "imm":
            a.movi(R1, op)
        elif kind == "reg":
            a.ldx(8, R1, R6, op[0])
        else:
            disp, base, index, scale = op
            a.ldx(8, R3, R6, base)
            if index is not None:
                a.ldx(8, R2, R6, index)
                if scale != 1:
                    a.alu("*", R2, imm=scale)
                a.alu("+", R3, R2)
            if disp:
                a.alu("+", R3, imm=disp)
            _read_user(cg, slot, min(abs(size), 8) or 8)
            a.ldx(8, R1, R9, slot)
        _cut(cg, R1, size)
        a.stx(8, R9, slot, R1)
