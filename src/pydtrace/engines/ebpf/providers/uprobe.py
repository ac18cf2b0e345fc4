"""What the pid and usdt providers share on the eBPF engine: KPROBE-typed
programs on uprobes (ctx = the user pt_regs), attached per probe
(('uprobe', path, offset, ret, pid, refctr)) or, for a pid group, on one
uprobe_multi link (engines/ebpf/providers/pid.py). Their prologue first
filters on the process (process_filter()): a uprobe of a per-task perf event fires
in that mm only; the check also guards a forked child still carrying the
breakpoint, and a held -c child until it has exec'd (the exec gate).
"""

from __future__ import annotations

from typing import Any

from pydtrace.engines.ebpf.cg_context import PROG_RAW_TRACEPOINT, ProgSpec
from pydtrace.engines.ebpf.errors import EbpfError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R9, Assembler
from pydtrace.engines.ebpf.providers.base import EbpfProvider

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
    """pid's and usdt's attach() and the program-wide steps they share, which
    pid's prepare() and finish() take for both (the table calls every
    provider's: usdt does not repeat them)."""

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        s = probe.data
        return PROG_KPROBE, ("uprobe", s.path, s.offset, s.ret, s.pid, s.refctr)


def prepare(cg: Any, progs: list[tuple[Any, list[Any], Any]]) -> None:
    """Refuse more than MAX_UPROBES programs; a word of the globals per held -c
    child, set once it has exec'd (exec_gate_program)."""
    uprobes = sum(1 for probe, _, _ in progs if probe.kind in KINDS)
    if uprobes > MAX_UPROBES:
        raise EbpfError(
            f"{uprobes} programs for pid and usdt probes are more than the {MAX_UPROBES}"
            " the eBPF engine loads at once: name fewer functions or probes"
        )
    for probe, _, _ in progs:  # (the compiler gave every held -c child a gate)
        spec = probe.data
        if probe.kind in KINDS and spec.held and spec.pid not in cg.exec_gates:
            cg.exec_gates[spec.pid] = cg.globals_size
            cg.globals_size += 8


def finish(cg: Any, out: Any) -> None:
    if cg.exec_gates:
        out.progs.append(exec_gate_program(cg.exec_gates))


def process_filter(cg: Any, probe: Any) -> None:
    """Return unless the firing is in the probe's process (once it has exec'd,
    for a held -c child)."""
    a = cg.a
    s = probe.data
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


def read_user(cg: Any, slot: int, size: int) -> None:
    """*(frame + slot) = `size` bytes of user memory at r3 (zero when unreadable)."""
    a = cg.a
    a.st(8, R9, slot, 0)
    a.mov(R1, R9)
    a.alu("+", R1, imm=slot)
    a.movi(R2, size)
    a.call("probe_read_user")


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
