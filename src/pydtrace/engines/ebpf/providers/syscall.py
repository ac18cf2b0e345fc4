"""syscall::NAME:entry|return on the eBPF engine: a TRACEPOINT program on
syscalls:sys_enter_NAME / sys_exit_NAME, or, when a description matches
RAW_SYSCALL_MIN calls or more, one RAW_TRACEPOINT program on sys_enter /
sys_exit for all of them (groups()), which finds the call's probe in a map
keyed by its number. Fewer calls of one kind (execve and execveat's
returns) share one TRACEPOINT program attached to each call's own
tracepoint, which finds the probe by the event's __syscall_nr: the clauses
are generated and verified once, and other calls pay nothing.

Arguments: entry, the call's arguments (at most 6, the others stay 0);
return, arg0 = arg1 = the return value, errno = -ret for -4095 <= ret < 0.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import (
    PROG_RAW_TRACEPOINT,
    PROG_TRACEPOINT,
    RAW_SYSCALL_MIN,
)
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9
from pydtrace.engines.ebpf.providers.base import EbpfProvider
from pydtrace.engines.ebpf.providers.groups import merged_clauses
from pydtrace.engines.ebpf.pt_regs import syscall_regs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class SyscallProvider(EbpfProvider):
    name = "syscall"

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        if probe.name not in ("entry", "return"):
            raise LoweringError(f"the eBPF engine cannot attach {probe.fqn}")
        return PROG_TRACEPOINT, ("tracepoint", "syscalls", _event(probe))

    def args(self, cg: Any, probe: Any) -> None:
        if cg.group is not None:
            return  # a raw syscall program: group_prologue() reads them
        if probe.name != "entry":
            return_args(cg, 16)
        elif cg.wants_args:
            a = cg.a
            fa = cg.f_args
            sc = probe.data
            n = min(len(getattr(sc, "args", ()) or ()), 6)
            for i in range(n):
                a.ldx(8, R1, 6, 16 + 8 * i)
                a.stx(8, R9, fa + 8 * i, R1)

    def groups(self, cg: Any, by_probe: dict[int, list[Any]]) -> dict[str, Any]:
        """entry/return -> (probes, merged clauses, {probe id: clause mask}): one
        raw syscall program for a probe name matching RAW_SYSCALL_MIN syscalls
        or more; t<entry|return>: one program on the tracepoints of fewer (two
        or more, or more when the raw one cannot be had)."""
        out: dict[str, Any] = {}
        regs: dict[str, Any] | None = None
        for which in ("entry", "return"):
            probes = [
                cg.out.probes[pid]
                for pid in sorted(by_probe)
                if cg.out.probes[pid].kind == "syscall"
                and cg.out.probes[pid].name == which
                and getattr(cg.out.probes[pid].data, "nr", None) is not None
            ]
            served = merged_clauses(probes, by_probe) if len(probes) >= 2 else None
            if served is None:
                continue
            raw = len(probes) >= RAW_SYSCALL_MIN
            if raw and regs is None:  # only then: the offsets may need BTF on some machines
                regs = syscall_regs()
            cg.sys_entries = max(getattr(cg, "sys_entries", 1), max(p.data.nr for p in probes) + 1)
            out[which if raw and regs is not None else "t" + which] = (probes, *served)
        if regs is not None:
            cg.sys_regs = regs
        return out

    def group_attach(self, group: Any) -> tuple[int, tuple[Any, ...]]:
        if group[0].startswith("t"):  # each probe's own tracepoint
            return PROG_TRACEPOINT, ("tracepoint", "syscalls", tuple(_event(p) for p in group[1]))
        return PROG_RAW_TRACEPOINT, ("raw_tp", "sys_enter" if group[0] == "entry" else "sys_exit")

    def group_prologue(self, cg: Any, group: Any, done: str) -> None:
        """raw_syscalls: ctx = (struct pt_regs *, nr | return value). Find the
        syscall's probe in the dispatch map (untraced syscalls end here), then
        its arguments (entry) or return value and errno (return)."""
        a = cg.a
        which = group[0]
        if which.startswith("t"):
            _shared_prologue(cg, which[1:], done)
            return
        regs = cg.sys_regs
        fa = cg.f_args
        # a copy of pt_regs: the arguments, and the syscall number at return
        if which != "entry" or cg.wants_args:
            a.mov(R1, R9)
            a.alu("+", R1, imm=cg.f_regs)
            a.movi(R2, regs["size"])
            a.ldx(8, R3, 6, 0)
            a.call("probe_read_kernel")
            a.jmp("!=", R0, done, imm=0)
        if which == "entry":
            a.ldx(8, R1, 6, 8)
        else:
            a.ldx(8, R1, R9, cg.f_regs + regs["nr"])
        a.jmp(">=", R1, done, imm=cg.sys_entries)  # also -1 (no syscall)
        cg.group_entry("sys_" + which, done)
        if which != "entry":
            return_args(cg, 8)
        elif cg.wants_args:
            a.ldx(4, R4, R0, 4)  # nargs: the others stay 0, as with the syscall's tracepoint
            end = a.new_label("args")
            for i, off in enumerate(regs["args"]):
                a.jmp("<=", R4, end, imm=i)
                a.ldx(8, R1, R9, cg.f_regs + off)
                a.stx(8, R9, fa + 8 * i, R1)
            a.place(end)

    def group_map(self, cg: Any, name: str, probes: list[Any]) -> tuple[list[int], int, int]:
        return [p.data.nr for p in probes], cg.sys_entries, 1  # keyed by the call's number


def _event(probe: Any) -> str:
    """The syscalls tracepoint of a syscall probe."""
    return ("sys_enter_" if probe.name == "entry" else "sys_exit_") + probe.function


def _shared_prologue(cg: Any, which: str, done: str) -> None:
    """A program shared by syscall tracepoints: the call's number is the
    event's __syscall_nr (an int at 8); then the return value at 16, or the
    entry's arguments, the probe's nargs of them (read with a helper: a
    direct load past the shortest event's end would keep the program off
    that event's tracepoint)."""
    a = cg.a
    a.ldx(4, R1, 6, 8)
    a.jmp(">=", R1, done, imm=cg.sys_entries)
    cg.group_entry("sys_t" + which, done)
    if which != "entry":
        return_args(cg, 16)
    elif cg.wants_args:
        a.ldx(4, R2, R0, 4)  # nargs (at most 6): the others stay 0
        a.jmp(">", R2, done, imm=6)
        a.alu("<<", R2, imm=3)
        a.mov(R1, R9)
        a.alu("+", R1, imm=cg.f_args)
        a.mov(R3, 6)
        a.alu("+", R3, imm=16)
        a.call("probe_read_kernel")


def return_args(cg: Any, ret_off: int) -> None:
    """A syscall's return: arg0 = arg1 = the return value (the u64 at
    ret_off in the context, r6); errno = -ret for -4095 <= ret < 0."""
    a = cg.a
    fa = cg.f_args
    a.ldx(8, R1, 6, ret_off)
    a.stx(8, R9, fa, R1)
    a.stx(8, R9, fa + 8, R1)
    skip = a.new_label("noerr")
    a.jmp("s>=", R1, skip, imm=0)
    a.jmp("s<", R1, skip, imm=-4095)
    a.neg(R1)
    a.stx(8, R9, cg.f_errno, R1)
    a.place(skip)
