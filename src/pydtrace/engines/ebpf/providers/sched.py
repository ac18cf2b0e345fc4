"""sched:::* on the eBPF engine: scheduler raw tracepoints (and a timer for
tick), filtered in the prologue (select()), whose arguments point at
psinfo_t / lwpsinfo_t / cpuinfo_t structures in the psinfo area
(engines/ebpf/psinfo.py). docs/internals/proc-sched.md maps every probe to its
tracepoint and arguments."""

from __future__ import annotations

from pydtrace.engines.ebpf import psinfo
from pydtrace.engines.ebpf.cg_context import (
    DROP_SWITCH,
    PROG_PERF_EVENT,
    PROG_RAW_TRACEPOINT,
    SWITCH_LAST,
)
from pydtrace.engines.ebpf.cg_memory import Region
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R9, R10
from pydtrace.engines.ebpf.providers import timer
from pydtrace.engines.ebpf.providers.base import EbpfProvider
from pydtrace.lang import ast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TICK_HZ = 100  # sched:::tick: a timer on every CPU (Linux has no tick tracepoint)
# probe -> its raw tracepoint (None: a timer); the prologue selects the firings
SCHED = {
    "on-cpu": "sched_switch",
    "off-cpu": "sched_switch",
    "sleep": "sched_switch",
    "preempt": "sched_switch",
    "wakeup": "sched_wakeup",
    "enqueue": "sched_wakeup",
    "dequeue": "sched_switch",
    "surrender": "sys_enter",
    "tick": None,
}
# probes that fire on every hit of their tracepoint (no jump to the prologue's skip)
UNFILTERED = frozenset({"on-cpu", "off-cpu", "wakeup", "enqueue", "tick"})
# what sched:::on-cpu refuses: it runs as the incoming thread, in the outgoing one
ON_CPU_CALLS = frozenset({"stack", "ustack", "jstack", "copyin", "copyinstr", "copyinto",
                          "copyout", "copyoutstr", "raise", "stop"})  # fmt: skip
ON_CPU_VARS = ("uregs", "ucaller", "caller")


class SchedProvider(EbpfProvider):
    name = "sched"
    psinfo = True

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        if probe.name not in SCHED:
            raise LoweringError(f"the eBPF engine cannot attach {probe.fqn} (no tracepoint for it)")
        psinfo.btf()  # a clear message when the kernel has no BTF
        tp = SCHED[probe.name]
        if tp is None:
            return PROG_PERF_EVENT, ("timer", 1_000_000_000 // TICK_HZ, True)
        return PROG_RAW_TRACEPOINT, ("raw_tp", tp)

    def args(self, cg: Any, probe: Any) -> None:
        if probe.name == "tick":  # select() fills them again when a clause reads them
            timer.pc_args(cg)

    def filtered(self, probe: Any) -> bool:
        return probe.name not in UNFILTERED

    def prepare(self, cg: Any, progs: list[tuple[Any, list[Any], Any]]) -> None:
        # one program on sched_switch counts the switches the kernel hid (_watch)
        cg.switch_watch = next((p.id for p, _, group in progs if group is None and
                                p.provider == "sched" and SCHED.get(p.name) == "sched_switch"),
                               None)  # fmt: skip

    def select(self, cg: Any, probe: Any, r: Region, skip: str, clauses: list[Any]) -> None:
        a = cg.a
        n = probe.name
        fa = cg.f_args
        args = cg.wants_args
        cpuinfo = r.off + r.size - psinfo.CPUINFO_SIZE
        if probe.id == getattr(cg, "switch_watch", None):
            _watch(cg)
        if n == "on-cpu":
            _incoming(cg, clauses)
            return
        if n in ("off-cpu", "sleep", "preempt", "dequeue"):
            # sched_switch(preempt, prev, next, prev_state), in prev: sleep and
            # dequeue when prev blocks, preempt when it stays runnable. The kernel
            # blocks prev only when the switch is not a preemption and its state is
            # not TASK_RUNNING: a thread preempted between setting its sleeping state
            # and calling schedule() keeps that state but stays on the run queue
            if n == "preempt":
                fires = a.new_label("preempted")
                psinfo.ctx(cg, R1, 0)
                a.jmp("!=", R1, fires, imm=0)
                psinfo.ctx(cg, R1, 3)
                a.jmp("!=", R1, skip, imm=0)
                a.place(fires)
            elif n != "off-cpu":
                psinfo.ctx(cg, R1, 0)
                a.jmp("!=", R1, skip, imm=0)
                psinfo.ctx(cg, R1, 3)
                a.jmp("==", R1, skip, imm=0)
            if args and n == "off-cpu":
                psinfo.task_args(cg, r, 2)  # the thread that comes on
            if args and n == "dequeue":
                psinfo.task_args(cg, r, None)
                for off in range(0, psinfo.CPUINFO_SIZE, 8):
                    a.st(8, R9, cpuinfo + off, 0)
                a.call("get_smp_processor_id")
                a.stx(4, R9, cpuinfo, R0)
                a.ld_imm64(R1, r.vaddr + r.size - psinfo.CPUINFO_SIZE)
                a.stx(8, R9, fa + 16, R1)
        elif n in ("wakeup", "enqueue"):  # sched_wakeup(p), in the waker
            if args:
                psinfo.task_args(cg, r, 0)
            if args and n == "enqueue":  # the run queue of the CPU p was placed on
                for off in range(0, psinfo.CPUINFO_SIZE, 8):
                    a.st(8, R9, cpuinfo + off, 0)
                _, ps, lw = psinfo.sizes()
                a.ldx(4, R1, R9, r.off + ps["pr_lwp"][0] + lw["pr_onpro"][0])
                a.stx(4, R9, cpuinfo, R1)
                a.ld_imm64(R1, r.vaddr + r.size - psinfo.CPUINFO_SIZE)
                a.stx(8, R9, fa + 16, R1)
        elif n == "surrender":
            psinfo.ctx(cg, R1, 1)
            psinfo.only_nrs(cg, R1, psinfo.nrs(("sched_yield",)), skip)
            if args:
                psinfo.task_args(cg, r, None)
        elif n == "tick" and args:
            psinfo.task_args(cg, r, None)


def _watch(cg: Any) -> None:
    """Count the context switches the kernel made without firing sched_switch.

    A kernel may hide some tasks from tracing: every tracepoint is silent
    while such a task is current, its switch away included (a sandbox's kernel
    may hide its own agent so: Firecracker's init here). The thread it switched
    to then runs without an on-cpu firing. Each CPU's switches
    chain (a switch's prev is the last one's next), so a prev that is not the
    task the last switch seen went to means one was missed; the count goes out
    as a drop (PYDTRACEDROP_SWITCH). Per CPU in the `drops` words: the
    counter, and the last next task (SWITCH_LAST)."""
    a = cg.a
    done = a.new_label("swseen")
    cg.lookup_drops(done)
    a.ldx(8, R1, R0, 8 * SWITCH_LAST)
    psinfo.ctx(cg, R2, 2)
    a.stx(8, R0, 8 * SWITCH_LAST, R2)
    a.jmp("==", R1, done, imm=0)  # the first switch seen on this CPU
    psinfo.ctx(cg, R2, 1)
    a.jmp("==", R1, done, src=R2)
    a.movi(R1, 1)
    a.atomic_add(8, R0, 8 * DROP_SWITCH, R1)
    a.place(done)


def _incoming(cg: Any, clauses: list[Any]) -> None:
    """sched:::on-cpu, at sched_switch(preempt, prev, next, prev_state): from
    here on the clauses run as next (CompilerBase.current_*). Keep its task,
    tgid << 32 | tid and gid << 32 | uid in the frame, as the helpers give them."""
    a = cg.a
    if cg.f_incoming is None:
        cg.f_incoming = cg.frame.take(24)
    f = cg.f_incoming
    psinfo.ctx(cg, R1, 2)
    a.stx(8, R9, f, R1)
    a.stx(8, R10, psinfo.S_TASK, R1)
    from pydtrace.engines.ebpf.cg_queries import mentions

    nodes = [[c.predicate, *c.body] for c in clauses]
    bad = ast.find_call(nodes, ON_CPU_CALLS)
    what = (
        f"{bad.name}()"
        if bad
        else next((v for v in ON_CPU_VARS if mentions(nodes, frozenset({v}))), "")
    )
    if what:  # the stack, user memory and signals are still the outgoing thread's
        raise LoweringError(
            f"{what} cannot be used in sched:::on-cpu on the eBPF engine: the probe fires "
            "at the switch, where the stack, user memory and signals are those of the "
            "thread going off the CPU"
        )
    for at, high, low in ((f + 8, ("tgid",), ("pid",)),
                          (f + 16, ("cred", "gid", "val"), ("cred", "uid", "val"))):  # fmt: skip
        psinfo.load(cg, *high)
        a.alu("<<", R0, imm=32)
        a.stx(8, R9, at, R0)
        psinfo.load(cg, *low)
        a.ldx(8, R1, R9, at)
        a.alu("|", R1, R0)
        a.stx(8, R9, at, R1)
    cg.incoming = True
