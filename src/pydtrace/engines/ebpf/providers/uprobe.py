"""What the pid and usdt providers share on the eBPF engine: KPROBE-typed
programs on uprobes (ctx = the user pt_regs), attached per probe
(('uprobe', path, offset, ret, pid, refctr)) or, for a pid group, on one
uprobe_multi link (engines/ebpf/providers/pid.py). Their prologue first
filters on the process (process_filter()): a uprobe of a per-task perf event fires
in that mm only; the check also guards a forked child still carrying the
breakpoint (a held -c child waits for its exec in every program: the
compiler's held_gate).
"""

from __future__ import annotations

from pydtrace.engines.ebpf.errors import EbpfError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R9
from pydtrace.engines.ebpf.providers.base import EbpfProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PROG_KPROBE = 2
KINDS = frozenset({"pid", "usdt"})  # the providers whose programs are uprobes
# pid/usdt programs loaded at once (about 0.5 ms each to build and attach): one per
# usdt probe, one per pid probe outside a group (pid.py: a file's entry,
# return or instruction probes, 16 or more, share one)
MAX_UPROBES = 50000

# struct pt_regs (x86-64) offsets
PT_REGS = {
    "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56,
    "r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112, "rip": 128,
    "rsp": 152,
}  # fmt: skip


class UprobeProvider(EbpfProvider):
    """pid's and usdt's attach() and the program-wide step they share (a
    program with both kinds takes the step twice: the same check)."""

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        s = probe.data
        return PROG_KPROBE, ("uprobe", s.path, s.offset, s.ret, s.pid, s.refctr)

    def prepare(self, cg: Any, progs: list[tuple[Any, list[Any], Any]]) -> None:
        prepare(cg, progs)  # both kinds' programs


def prepare(cg: Any, progs: list[tuple[Any, list[Any], Any]]) -> None:
    """Refuse more than MAX_UPROBES programs."""
    uprobes = sum(1 for probe, _, _ in progs if probe.kind in KINDS)
    if uprobes > MAX_UPROBES:
        raise EbpfError(
            f"{uprobes} programs for pid and usdt probes are more than the {MAX_UPROBES}"
            " the eBPF engine loads at once: name fewer functions or probes"
        )


def process_filter(cg: Any, probe: Any) -> None:
    """Return unless the firing is in the probe's process (a held -c child's
    firings before its exec return in the compiler's held_gate)."""
    a = cg.a
    ok = a.new_label("upid")
    a.call("get_current_pid_tgid")
    a.alu(">>", R0, imm=32)
    a.jmp("==", R0, ok, imm=probe.data.pid)
    a.movi(R0, 0)
    a.exit()
    a.place(ok)


def read_user(cg: Any, slot: int, size: int) -> None:
    """*(frame + slot) = `size` bytes of user memory at r3 (zero when unreadable)."""
    a = cg.a
    a.st(8, R9, slot, 0)
    a.mov(R1, R9)
    a.alu("+", R1, imm=slot)
    a.movi(R2, size)
    a.call("probe_read_user")
