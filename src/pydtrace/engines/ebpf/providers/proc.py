"""proc:::* on the eBPF engine: each probe is a raw tracepoint, filtered in
the prologue (select()), whose arguments point at psinfo_t / lwpsinfo_t
structures in the psinfo area (engines/ebpf/psinfo.py). docs/internals/proc-sched.md
maps every probe to its tracepoint and arguments."""

from __future__ import annotations

from pydtrace.engines.ebpf import psinfo
from pydtrace.engines.ebpf.cg_context import PROG_RAW_TRACEPOINT
from pydtrace.engines.ebpf.cg_memory import Region
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R9, R10
from pydtrace.engines.ebpf.providers.base import EbpfProvider

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
# calls a probe filters the raw sys_enter/sys_exit on (numbers from the syscall
# table; their arguments are read from pt_regs by x86_64 names: di, si, orig_ax)
FORKS = ("clone", "fork", "vfork", "clone3")
EXECS = ("execve", "execveat")

# probe -> its raw tracepoint; the prologue selects the firings
PROC = {
    "create": "sched_process_fork",
    "lwp-create": "sched_process_fork",
    "start": "sys_exit",
    "lwp-start": "sys_exit",
    "exec": "sys_enter",
    "exec-success": "sched_process_exec",
    "exec-failure": "sys_exit",
    "exit": "sched_process_exit",
    "lwp-exit": "sched_process_exit",
    "signal-send": "signal_generate",
    "signal-discard": "signal_generate",
    "signal-handle": "signal_deliver",
    "signal-clear": "sys_exit",
}
# probes that fire on every hit of their tracepoint (no jump to the prologue's skip)
UNFILTERED = frozenset({"exec-success", "lwp-exit", "signal-handle"})


class ProcProvider(EbpfProvider):
    name = "proc"
    psinfo = True

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        if probe.name not in PROC:
            raise LoweringError(f"the eBPF engine cannot attach {probe.fqn} (no tracepoint for it)")
        psinfo.btf()  # a clear message when the kernel has no BTF
        return PROG_RAW_TRACEPOINT, ("raw_tp", PROC[probe.name])

    def filtered(self, probe: Any) -> bool:
        return probe.name not in UNFILTERED

    def select(self, cg: Any, probe: Any, r: Region, skip: str, clauses: list[Any]) -> None:
        a = cg.a
        n = probe.name
        fa = cg.f_args
        args = cg.wants_args
        if n in ("create", "lwp-create"):  # sched_process_fork(parent, child)
            _is_thread(cg, 1)
            a.jmp("==", R0, skip, imm=1 if n == "create" else 0)
            if args:
                psinfo.task_args(cg, r, 1, lwp_first=n == "lwp-create")
        elif n in ("start", "lwp-start"):  # sys_exit of clone/fork in the child: 0
            psinfo.ctx(cg, R1, 1)
            a.jmp("!=", R1, skip, imm=0)
            _syscall_nr(cg)
            psinfo.only_nrs(cg, R0, psinfo.nrs(FORKS), skip)
            if n == "start":  # lwp-start fires for every new thread, after start
                _is_thread(cg, None)
                a.jmp("==", R0, skip, imm=1)
        elif n == "exec":  # sys_enter(regs, id): the path, read from user memory
            psinfo.ctx(cg, R1, 1)
            nrs = psinfo.nrs(EXECS)
            psinfo.only_nrs(cg, R1, nrs, skip)
            if args:
                di = psinfo.path("pt_regs", "di")[-1].offset
                si = psinfo.path("pt_regs", "si")[-1].offset
                psinfo.ctx(cg, R3, 1)
                a.movi(R2, di)
                at = a.new_label("pexecve")
                a.jmp("==", R3, at, imm=nrs[0])
                a.movi(R2, si)  # execveat(dirfd, path, ...)
                a.place(at)
                psinfo.ctx(cg, R3, 0)
                a.alu("+", R3, R2)
                a.st(8, R10, psinfo.S_TMP, 0)
                a.mov(R1, R10)
                a.alu("+", R1, imm=psinfo.S_TMP)
                a.movi(R2, 8)
                a.call("probe_read_kernel")
                a.ldx(8, R3, R10, psinfo.S_TMP)
                dst = 2 * psinfo.sizes()[0]
                a.st(8, R9, r.off + dst, 0)
                a.mov(R1, R9)
                a.alu("+", R1, imm=r.off + dst)
                a.movi(R2, cg.strsize)
                a.call("probe_read_user_str")
                a.ld_imm64(R1, r.vaddr + dst)
                a.stx(8, R9, fa, R1)
        elif n == "exec-success":
            pass  # sched_process_exec, in the new image
        elif n in ("exec-failure", "signal-clear"):
            psinfo.ctx(cg, R1, 1)
            if n == "exec-failure":
                a.jmp("s>=", R1, skip, imm=0)
            else:
                a.jmp("s<=", R1, skip, imm=0)
            _syscall_nr(cg)
            psinfo.only_nrs(
                cg, R0, psinfo.nrs(EXECS if n == "exec-failure" else ("rt_sigtimedwait",)), skip
            )
            psinfo.ctx(cg, R1, 1)
            if n == "exec-failure":
                a.alu("*", R1, imm=-1)  # errno
            a.stx(8, R9, fa, R1)
        elif n in ("exit", "lwp-exit"):  # sched_process_exit(p, group_dead)
            if n == "exit":  # lwp-exit fires for every thread, the last one before exit
                psinfo.ctx(cg, R1, 1)
                a.alu("&", R1, imm=0xFF)
                a.jmp("==", R1, skip, imm=0)
                a.call("get_current_task")
                a.stx(8, R10, psinfo.S_TASK, R0)
                psinfo.load(cg, "exit_code")
                a.movi(R1, CLD_EXITED)
                a.mov(R2, R0)
                a.alu("&", R2, imm=0x7F)
                out = a.new_label("pwhy")
                a.jmp("==", R2, out, imm=0)
                a.movi(R1, CLD_DUMPED)
                a.mov(R2, R0)
                a.alu("&", R2, imm=0x80)
                a.jmp("!=", R2, out, imm=0)
                a.movi(R1, CLD_KILLED)
                a.place(out)
                a.stx(8, R9, fa, R1)
        elif n in ("signal-send", "signal-discard"):
            # signal_generate(sig, info, task, group, result): TRACE_SIGNAL_DELIVERED
            # 0 (sent), TRACE_SIGNAL_IGNORED 1 (discarded: ignored by the target)
            psinfo.ctx(cg, R1, 4)
            a.jmp("!=", R1, skip, imm=0 if n == "signal-send" else 1)
            if args:
                psinfo.task_args(cg, r, 2)
                psinfo.ctx(cg, R1, 0)
                a.stx(8, R9, fa + 16, R1)
        elif n == "signal-handle":  # signal_deliver(sig, info, ka)
            # a fatal signal without a handler arrives as SIGKILL: the one sent
            # is the group's exit code (as dtrace-utils reads it)
            psinfo.ctx(cg, R1, 0)
            a.stx(8, R9, fa, R1)
            real = a.new_label("psig")
            a.jmp("!=", R1, real, imm=9)
            a.call("get_current_task")
            a.stx(8, R10, psinfo.S_TASK, R0)
            psinfo.load(cg, "signal", "group_exit_code")
            a.jmp("==", R0, real, imm=0)
            a.alu("&", R0, imm=0x7F)
            a.stx(8, R9, fa, R0)
            a.place(real)
            psinfo.ctx(cg, R1, 1)
            a.stx(8, R9, fa + 8, R1)


def _syscall_nr(cg: Any) -> None:
    """R0 = the number of the call a raw sys_exit reports (regs->orig_ax)."""
    a = cg.a
    off = psinfo.path("pt_regs", "orig_ax")[-1].offset
    psinfo.ctx(cg, R3, 0)
    a.alu("+", R3, imm=off)
    a.st(8, R10, psinfo.S_TMP, 0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=psinfo.S_TMP)
    a.movi(R2, 8)
    a.call("probe_read_kernel")
    a.ldx(8, R0, R10, psinfo.S_TMP)


def _is_thread(cg: Any, ctx_index: int | None) -> None:
    """R0 = 1 when the task (ctx[i] or current) is not its process's leader."""
    a = cg.a
    if ctx_index is None:
        cg.current_task(R0)
        a.stx(8, R10, psinfo.S_TASK, R0)
    else:
        psinfo.ctx(cg, R1, ctx_index)
        a.stx(8, R10, psinfo.S_TASK, R1)
    psinfo.load(cg, "pid")
    a.stx(8, R10, psinfo.S_AUX, R0)
    psinfo.load(cg, "tgid")
    a.ldx(8, R1, R10, psinfo.S_AUX)
    same = a.new_label("pleader")
    a.jmp("==", R0, same, src=R1)
    a.movi(R0, 1)
    end = a.new_label("pthr")
    a.ja(end)
    a.place(same)
    a.movi(R0, 0)
    a.place(end)
