"""Where the kernel's pt_regs keeps a syscall's arguments and number.

The eBPF compiler reads them in its raw-syscall programs, and ktrace's
recorder in its own; both ask here.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def syscall_regs() -> dict[str, Any] | None:
    """{"args": six offsets, "nr": offset, "size": bytes read} on this machine;
    None when unknown: each syscall then gets its own tracepoint. x86_64's
    pt_regs is fixed ABI (no BTF parse, ~0.1 s at start-up); other
    architectures ask BTF."""
    m = os.uname().machine
    if m == "x86_64":  # di si dx r10 r8 r9, orig_ax
        return {"args": [112, 104, 96, 56, 72, 64], "nr": 120, "size": 168}
    try:
        from pydtrace.symbols.btf import BTFError, vmlinux

        b = vmlinux()
        if m == "aarch64":
            base = b.member_offset("pt_regs", "regs")
            args = [b.member_offset("pt_regs", "orig_x0")] + [base + 8 * i for i in range(1, 6)]
            nr = b.member_offset("pt_regs", "syscallno")
        else:
            return None
    except (ImportError, OSError, BTFError):
        return None
    size = max(args + [nr]) + 8
    return {"args": args, "nr": nr, "size": size} if size <= 168 else None
