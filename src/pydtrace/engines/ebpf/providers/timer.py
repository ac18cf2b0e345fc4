"""What the timer-driven probes (profile-N, tick-N, sched:::tick) share: a
PERF_EVENT program on a clock, its arguments the interrupted pc."""

from __future__ import annotations

from pydtrace.engines.ebpf.insn import R1, R2, R9

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def pc_args(cg: Any) -> None:
    """arg0 = the kernel pc or arg1 = the user pc, where the timer interrupted."""
    a = cg.a
    fa = cg.f_args
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
