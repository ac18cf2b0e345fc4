"""vtimestamp: nanoseconds the current thread has been on a CPU.

The kernel keeps a thread's CPU time in task->se.sum_exec_runtime, but
brings it up to date only at a context switch or a scheduler tick (a tick
is 1-10 ms: too coarse to time a system call). So a program that reads
vtimestamp gets a helper program on the sched_switch raw tracepoint which,
as a thread comes on a CPU, keeps (switch-in time, sum_exec_runtime then)
in an LRU hash keyed by tid. While the thread runs, its CPU time is that
sum plus the time since it switched in. A thread not seen switching in
since tracing began (running since before) falls back to sum_exec_runtime.

The time since switch-in is wall time: it includes interrupts and, in a
virtual machine, time stolen by the host, which the kernel leaves out of
sum_exec_runtime. So the next switch-in can find a smaller sum than a value
already given out; each entry also keeps the last value given out for its
thread, and vtimestamp never goes back below it.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import MapSpec, ProgSpec
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R6, R10, Assembler

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAP_NAME = "vtime"
MAP_LRU_HASH = 9
ENTRIES = 16384  # threads remembered; the least recently switched-in are forgotten
PROG_RAW_TRACEPOINT = 17


class SwitchProbe:
    """Stands in for a catalogue probe in messages and -S output."""

    fqn = "sched_switch raw tracepoint (for vtimestamp)"
    id = 0


def offsets() -> tuple[int, int]:
    """(task_struct.pid, task_struct.se.sum_exec_runtime) from kernel BTF."""
    try:
        from pydtrace.symbols.btf import BTFError, vmlinux

        b = vmlinux()
        return b.member_offset("task_struct", "pid"), b.member_offset(
            "task_struct", "se.sum_exec_runtime"
        )
    except (ImportError, OSError, BTFError) as e:
        raise LoweringError(f"the eBPF engine needs kernel BTF for vtimestamp: {e}") from None


def map_spec() -> MapSpec:
    # tid -> (switched in at, CPU time then, the last vtimestamp given out)
    return MapSpec(MAP_NAME, MAP_LRU_HASH, 4, 24, ENTRIES)


def switch_program() -> ProgSpec:
    """On sched_switch(preempt, prev, next): vtime[next->pid] = (now, next's sum)."""
    pid_off, sum_off = offsets()
    a = Assembler()
    a.ldx(8, R6, R1, 16)  # the raw tracepoint's third argument: next
    a.st(8, R10, -8, 0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-8)
    a.movi(R2, 4)
    a.mov(R3, R6)
    a.alu("+", R3, imm=pid_off)
    a.call("probe_read_kernel")
    a.st(8, R10, -16, 0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-16)
    a.movi(R2, 8)
    a.mov(R3, R6)
    a.alu("+", R3, imm=sum_off)
    a.call("probe_read_kernel")
    a.call("ktime_get_ns")
    a.stx(8, R10, -24, R0)
    a.ld_map(R1, MAP_NAME)  # a known thread: its last value stays
    a.mov(R2, R10)
    a.alu("+", R2, imm=-8)
    a.call("map_lookup_elem")
    new = a.new_label("vt_new")
    a.jmp("==", R0, new, imm=0)
    a.ldx(8, R1, R10, -24)
    a.stx(8, R0, 0, R1)
    a.ldx(8, R1, R10, -16)
    a.stx(8, R0, 8, R1)
    a.movi(R0, 0)
    a.exit()
    a.place(new)
    a.ldx(8, R1, R10, -16)  # value = (now, sum, 0) at -40..-17
    a.stx(8, R10, -32, R1)
    a.ldx(8, R1, R10, -24)
    a.stx(8, R10, -40, R1)
    a.st(8, R10, -24, 0)
    a.ld_map(R1, MAP_NAME)
    a.mov(R2, R10)
    a.alu("+", R2, imm=-8)
    a.mov(R3, R10)
    a.alu("+", R3, imm=-40)
    a.movi(R4, 0)
    a.call("map_update_elem")
    a.movi(R0, 0)
    a.exit()
    insns = a.resolve()
    return ProgSpec("dt_vtime", PROG_RAW_TRACEPOINT, SwitchProbe(), ("raw_tp", "sched_switch"),
                    insns, [])  # fmt: skip


def load_vtimestamp(cg: Any, out: int) -> None:
    """out = the current thread's CPU time (uses the stack scratch -8..-24)."""
    _, sum_off = offsets()
    a = cg.a
    fallback, end = a.new_label("vt_task"), a.new_label("vt_end")
    if cg.incoming:  # sched:::on-cpu: the thread coming on has not run since its sum
        cg.current_task(R0)
        cg.kernel_load(out, R0, sum_off, 8)
        return
    a.call("get_current_pid_tgid")
    a.stx(4, R10, -8, R0)  # the tid is the low half
    a.ld_map(R1, MAP_NAME)
    a.mov(R2, R10)
    a.alu("+", R2, imm=-8)
    a.call("map_lookup_elem")
    a.jmp("==", R0, fallback, imm=0)
    a.stx(8, R10, -24, R0)  # the entry
    a.ldx(8, R1, R0, 0)
    a.stx(8, R10, -16, R1)  # switched in at
    a.ldx(8, out, R0, 8)  # CPU time until then
    a.call("ktime_get_ns")
    a.alu("+", out, R0)
    a.ldx(8, R1, R10, -16)
    a.alu("-", out, R1)
    a.ldx(8, R2, R10, -24)
    a.ldx(8, R1, R2, 16)  # never below the last value given out
    keep = a.new_label("vt_keep")
    a.jmp(">=", out, keep, R1)
    a.mov(out, R1)
    a.place(keep)
    a.stx(8, R2, 16, out)
    a.ja(end)
    a.place(fallback)
    a.call("get_current_task")
    cg.kernel_load(out, R0, sum_off, 8)
    a.place(end)
