"""usdt probes (`<provider><pid>`, sys/sdt.h notes) on the eBPF engine: a
uprobe program per probe (uprobe.py). Arguments are the note's strings,
`[-]N@operand` with operand %reg, $constant, disp(%reg) or
disp(%base,%index,scale), cut to N bytes (sign-extended when N < 0).
"""

from __future__ import annotations

import re

from pydtrace.engines.ebpf.cg_context import MAX_ARGS
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R1, R2, R3, R6, R9
from pydtrace.engines.ebpf.providers import uprobe
from pydtrace.engines.ebpf.providers.uprobe import PT_REGS, UprobeProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


class UsdtProvider(UprobeProvider):
    name = "usdt"

    def args(self, cg: Any, probe: Any) -> None:
        uprobe.process_filter(cg, probe)
        if not cg.wants_args:
            return
        a = cg.a
        fa = cg.f_args
        for i, text in enumerate(probe.data.usdt_args[:MAX_ARGS]):
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
                uprobe.read_user(cg, slot, min(abs(size), 8) or 8)
                a.ldx(8, R1, R9, slot)
            _cut(cg, R1, size)
            a.stx(8, R9, slot, R1)


def _cut(cg: Any, reg: int, size: int) -> None:
    """reg = its low |size| bytes, sign-extended when size < 0."""
    n = abs(size)
    if n >= 8 or n == 0:
        return
    sh = 64 - 8 * n
    cg.a.alu("<<", reg, imm=sh)
    cg.a.alu("s>>" if size < 0 else ">>", reg, imm=sh)
