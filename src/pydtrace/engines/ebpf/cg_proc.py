"""The proc and sched providers on the eBPF engine, and curpsinfo /
curlwpsinfo: each probe is a raw tracepoint (or a timer), filtered in the
prologue, whose arguments point at psinfo_t / lwpsinfo_t structures written
into one frame area from task_struct fields found through BTF.

The area is registered as a memory region (cg_memory), so args[N] and
curpsinfo are D addresses and `->` member loads, strings and stringof() work
unchanged. A psinfo_t holds its lwpsinfo_t (pr_lwp): an `lwpsinfo_t *`
argument is the address of the psinfo's pr_lwp. docs/proc-sched.md maps
every probe to its tracepoint and arguments.
"""

from __future__ import annotations

from typing import Any

from pydtrace.engines.ebpf.cg_context import PROG_PERF_EVENT, PROG_RAW_TRACEPOINT
from pydtrace.engines.ebpf.cg_memory import Region
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R6, R9, R10
from pydtrace.lang import ast

REGION = ("proc", "psinfo")
PR_MODEL_LP64 = 2
CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
TICK_HZ = 100  # sched:::tick: a timer on every CPU (Linux has no tick tracepoint)
# probes that fire on every hit of their tracepoint (no jump to the prologue's skip)
UNFILTERED = frozenset(
    {"exec-success", "lwp-exit", "signal-handle", "on-cpu", "off-cpu", "wakeup", "enqueue", "tick"}
)
CUR_VARS = frozenset({"curpsinfo", "curlwpsinfo"})
# what sched:::on-cpu refuses: it runs as the incoming thread, in the outgoing one
ON_CPU_CALLS = frozenset({"stack", "ustack", "jstack", "copyin", "copyinstr", "copyinto",
                          "copyout", "copyoutstr", "raise", "stop"})  # fmt: skip
ON_CPU_VARS = ("uregs", "ucaller", "caller")

CPUINFO_SIZE = 24  # cpuinfo_t (probes/sched.py): cpu_id first

# stack scratch of the prologue (nothing else is live there)
S_TMP, S_TASK, S_AUX = -16, -24, -32

# calls a probe filters the raw sys_enter/sys_exit on (numbers from the syscall
# table; their arguments are read from pt_regs by x86_64 names: di, si, orig_ax)
FORKS = ("clone", "fork", "vfork", "clone3")
EXECS = ("execve", "execveat")

# probe -> its raw tracepoint (None: a timer); the prologue selects the firings
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


def attach(probe: Any) -> tuple[int, tuple[Any, ...]]:
    """(program type, attachment) of a proc or sched probe."""
    table = PROC if probe.provider == "proc" else SCHED
    if probe.name not in table:
        raise LoweringError(f"the eBPF engine cannot attach {probe.fqn} (no tracepoint for it)")
    _btf()  # a clear message when the kernel has no BTF
    tp = table[probe.name]
    if tp is None:
        return PROG_PERF_EVENT, ("timer", 1_000_000_000 // TICK_HZ, True)
    return PROG_RAW_TRACEPOINT, ("raw_tp", tp)


def _btf() -> Any:
    try:
        from pydtrace.engines.ebpf.btf import vmlinux

        return vmlinux()
    except (ImportError, OSError, LookupError) as e:
        raise LoweringError(
            f"the eBPF engine needs kernel BTF for proc/sched probes: {e}"
        ) from None


def _path(root: str, *path: str) -> list[Any]:
    try:
        return _btf().resolve_path(root, *path)
    except LookupError as e:
        raise LoweringError(f"the eBPF engine cannot read {root}->{'.'.join(path)}: {e}") from None


def _nrs(names: tuple[str, ...]) -> list[int]:
    from pydtrace.probes.syscalls import table

    t = table()
    return [t.by_name[n].nr for n in names if n in t.by_name]


# --- the area -----------------------------------------------------------------------
def _sizes() -> tuple[int, dict[str, tuple[int, Any]], dict[str, tuple[int, Any]]]:
    from pydtrace.lang.checker import library_types, member_offsets

    size = library_types()["psinfo_t"].r.size
    return (size + 7) // 8 * 8, member_offsets("psinfo_t"), member_offsets("lwpsinfo_t")


def region(cg: Any) -> Region:
    """Two psinfo_t: [0] the probe's subject task, [1] the current task."""
    regs = cg.mem_regions()
    r = regs.get(REGION)
    if r is None:
        # + exec's path + curcpu's cpuinfo_t + the sched args' cpuinfo_t (last)
        size = 2 * _sizes()[0] + (cg.strsize + 8) // 8 * 8 + 2 * CPUINFO_SIZE
        r = regs[REGION] = Region(cg.next_vaddr(), size, "frame", cg.frame.take(size))
    return r


def builtin(cg: Any, name: str, t: Any) -> Any:
    """curpsinfo / curlwpsinfo / curcpu: addresses of the area prologue() filled."""
    if name == "curcpu":
        r = region(cg)
        return cg.const(r.vaddr + r.size - 2 * CPUINFO_SIZE, t)
    size, ps, _ = _sizes()
    at = region(cg).vaddr + size
    if name == "curlwpsinfo":
        at += ps["pr_lwp"][0]
    return cg.const(at, t)


# --- filling a psinfo_t from a task_struct -------------------------------------------
def _follow(cg: Any, accesses: list[Any]) -> None:
    """R3 = the address of the last member of a path from the task at S_TASK."""
    a = cg.a
    a.ldx(8, R3, R10, S_TASK)
    for acc in accesses[:-1]:  # pointer members: load them
        a.st(8, R10, S_TMP, 0)
        a.alu("+", R3, imm=acc.offset)
        a.mov(R1, R10)
        a.alu("+", R1, imm=S_TMP)
        a.movi(R2, 8)
        a.call("probe_read_kernel")
        a.ldx(8, R3, R10, S_TMP)
    a.alu("+", R3, imm=accesses[-1].offset)


def _copy(cg: Any, dst: int, size: int, *path: str) -> None:
    """frame[dst:dst+size] = task->path (zeros when unreadable)."""
    a = cg.a
    _follow(cg, _path("task_struct", *path))
    a.mov(R1, R9)
    a.alu("+", R1, imm=dst)
    a.movi(R2, size)
    a.call("probe_read_kernel")


def _load(cg: Any, *path: str) -> None:
    """R0 = task->path, zero-extended (0 when unreadable)."""
    a = cg.a
    acc = _path("task_struct", *path)
    _follow(cg, acc)
    size = acc[-1].size
    a.st(8, R10, S_TMP, 0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=S_TMP)
    a.movi(R2, size)
    a.call("probe_read_kernel")
    a.ldx(size, R0, R10, S_TMP)


def _fill(cg: Any, base: int, current: bool = False) -> None:
    """Write the psinfo_t (with its pr_lwp) of the task whose address is at
    S_TASK into the frame at base."""
    a = cg.a
    size, ps, lw = _sizes()
    for off in range(0, size, 8):
        a.st(8, R9, base + off, 0)
    lwp = base + ps["pr_lwp"][0]
    _copy(cg, base + ps["pr_pid"][0], 4, "tgid")
    _copy(cg, base + ps["pr_ppid"][0], 4, "real_parent", "tgid")
    for m, f in (("pr_uid", "uid"), ("pr_euid", "euid"), ("pr_gid", "gid"), ("pr_egid", "egid")):
        _copy(cg, base + ps[m][0], 4, "cred", f)
    _copy(cg, base + ps["pr_nlwp"][0], 4, "signal", "nr_threads")
    _copy(cg, base + ps["pr_fname"][0], 16, "comm")
    _copy(cg, base + ps["pr_psargs"][0], 16, "comm")
    a.st(1, R9, base + ps["pr_dmodel"][0], PR_MODEL_LP64)
    a.ldx(8, R1, R10, S_TASK)
    a.stx(8, R9, base + ps["pr_addr"][0], R1)
    a.stx(8, R9, lwp + lw["pr_addr"][0], R1)
    _copy(cg, lwp + lw["pr_lwpid"][0], 4, "pid")
    _copy(cg, lwp + lw["pr_name"][0], 16, "comm")
    _copy(cg, lwp + lw["pr_onpro"][0], 4, "thread_info", "cpu")
    _load(cg, "prio")  # /proc's priority: prio - MAX_RT_PRIO
    a.alu("-", R0, imm=100)
    a.stx(4, R9, lwp + lw["pr_pri"][0], R0)
    _load(cg, "static_prio")  # nice = static_prio - 120
    a.alu("-", R0, imm=120)
    a.stx(1, R9, lwp + lw["pr_nice"][0], R0)
    # pr_state / pr_sname in Solaris' numbering (as the ptrace engine's procinfo)
    _load(cg, "__state")
    states = ((0, 2, "R"), (0x1, 1, "S"), (0x2, 1, "S"), (0x402, 1, "S"), (0x4, 4, "T"),
              (0x8, 4, "T"))  # fmt: skip
    done = a.new_label("pstate")
    for value, st, letter in states:
        nxt = a.new_label("pst")
        a.jmp("!=", R0, nxt, imm=value)
        a.st(1, R9, lwp + lw["pr_state"][0], st)
        a.st(1, R9, lwp + lw["pr_sname"][0], ord(letter))
        a.ja(done)
        a.place(nxt)
    a.st(1, R9, lwp + lw["pr_state"][0], 1)
    a.st(1, R9, lwp + lw["pr_sname"][0], ord("S"))
    a.place(done)
    if current:
        _psargs(cg, base + ps["pr_psargs"][0], ps["pr_psargs"][1].r.size)


def _psargs(cg: Any, dst: int, room: int) -> None:
    """pr_psargs of the current task: its arguments (mm->arg_start..arg_end,
    user memory only the task itself can read), NULs made blanks, as /proc's
    cmdline; left as the comm when unreadable (kernel threads, paged out)."""
    a = cg.a
    _load(cg, "mm", "arg_start")
    a.stx(8, R10, S_AUX, R0)
    _load(cg, "mm", "arg_end")
    a.ldx(8, R3, R10, S_AUX)
    a.mov(R2, R0)
    a.alu("-", R2, R3)
    end = a.new_label("psend")
    a.jmp("s<=", R2, end, imm=0)
    fits = a.new_label("psfit")
    a.jmp("<=", R2, fits, imm=room - 1)
    a.movi(R2, room - 1)
    a.place(fits)
    a.stx(8, R10, S_AUX, R2)
    a.mov(R1, R9)
    a.alu("+", R1, imm=dst)
    a.call("probe_read_user")
    a.ldx(8, R4, R10, S_AUX)
    ok = a.new_label("psok")
    a.jmp("==", R0, ok, imm=0)
    for off in range(0, room, 8):
        a.st(8, R9, dst + off, 0)
    _copy(cg, dst, 16, "comm")
    a.ja(end)
    a.place(ok)
    for k in range(room - 1):
        nxt = a.new_label("psb")
        a.jmp("<=", R4, end, imm=k + 1)  # the last byte read is the final NUL
        a.ldx(1, R1, R9, dst + k)
        a.jmp("!=", R1, nxt, imm=0)
        a.st(1, R9, dst + k, ord(" "))
        a.place(nxt)
    a.place(end)


# --- the prologue -------------------------------------------------------------------
def prologue(cg: Any, probe: Any, clauses: list[Any]) -> None:
    """Filter the firing (proc/sched) and fill the argument area and argN;
    fill curpsinfo's area when a clause names curpsinfo/curlwpsinfo."""
    from pydtrace.engines.ebpf.cg_program import _mentions

    a = cg.a
    wants_cur = any(_mentions([c.predicate, *c.body], CUR_VARS) for c in clauses)
    wants_cpu = any(_mentions([c.predicate, *c.body], frozenset({"curcpu"})) for c in clauses)
    if probe.provider not in ("proc", "sched") and not (wants_cur or wants_cpu):
        return
    r = region(cg)
    if wants_cpu:  # one node: pset, chip and lgrp 0, as the pset/chip/lgrp variables
        cpu = r.off + r.size - 2 * CPUINFO_SIZE
        for off in range(0, CPUINFO_SIZE, 8):
            a.st(8, R9, cpu + off, 0)
        a.call("get_smp_processor_id")
        a.stx(4, R9, cpu, R0)
    size = _sizes()[0]
    skip, go = a.new_label("pskip"), a.new_label("pgo")
    if probe.provider in ("proc", "sched"):
        _probe(cg, probe, r, skip, clauses)
    if wants_cur:
        cg.current_task(R0)
        a.stx(8, R10, S_TASK, R0)
        # the incoming thread's arguments lie in another address space
        _fill(cg, r.off + size, current=not cg.incoming)
    if probe.provider in ("proc", "sched") and probe.name not in UNFILTERED:
        a.ja(go)
        a.place(skip)
        a.movi(R0, 0)
        a.exit()
        a.place(go)


def _ctx(cg: Any, reg: int, i: int) -> None:
    cg.a.ldx(8, reg, R6, 8 * i)


def _task_args(cg: Any, r: Region, ctx_index: int | None, lwp_first: bool = True) -> None:
    """Fill the subject psinfo from the task at ctx[i] (None: current) and
    set args[0] (lwpsinfo_t *) and args[1] (psinfo_t *) or, when not
    lwp_first, args[0] (psinfo_t *)."""
    a = cg.a
    if ctx_index is None:
        cg.current_task(R0)
        a.stx(8, R10, S_TASK, R0)
    else:
        _ctx(cg, R1, ctx_index)
        a.stx(8, R10, S_TASK, R1)
    _fill(cg, r.off)
    _, ps, _ = _sizes()
    fa = cg.f_args
    if lwp_first:
        a.ld_imm64(R1, r.vaddr + ps["pr_lwp"][0])
        a.stx(8, R9, fa, R1)
        a.ld_imm64(R1, r.vaddr)
        a.stx(8, R9, fa + 8, R1)
    else:
        a.ld_imm64(R1, r.vaddr)
        a.stx(8, R9, fa, R1)


def _incoming(cg: Any, clauses: list[Any]) -> None:
    """sched:::on-cpu, at sched_switch(preempt, prev, next, prev_state): from
    here on the clauses run as next (CompilerBase.current_*). Keep its task,
    tgid << 32 | tid and gid << 32 | uid in the frame, as the helpers give them."""
    a = cg.a
    if cg.f_incoming is None:
        cg.f_incoming = cg.frame.take(24)
    f = cg.f_incoming
    _ctx(cg, R1, 2)
    a.stx(8, R9, f, R1)
    a.stx(8, R10, S_TASK, R1)
    from pydtrace.engines.ebpf.cg_program import _mentions

    nodes = [[c.predicate, *c.body] for c in clauses]
    bad = ast.find_call(nodes, ON_CPU_CALLS)
    what = (
        f"{bad.name}()"
        if bad
        else next((v for v in ON_CPU_VARS if _mentions(nodes, frozenset({v}))), "")
    )
    if what:  # the stack, user memory and signals are still the outgoing thread's
        raise LoweringError(
            f"{what} cannot be used in sched:::on-cpu on the eBPF engine: the probe fires "
            "at the switch, where the stack, user memory and signals are those of the "
            "thread going off the CPU"
        )
    for at, high, low in ((f + 8, ("tgid",), ("pid",)),
                          (f + 16, ("cred", "gid", "val"), ("cred", "uid", "val"))):  # fmt: skip
        _load(cg, *high)
        a.alu("<<", R0, imm=32)
        a.stx(8, R9, at, R0)
        _load(cg, *low)
        a.ldx(8, R1, R9, at)
        a.alu("|", R1, R0)
        a.stx(8, R9, at, R1)
    cg.incoming = True


def _syscall_nr(cg: Any) -> None:
    """R0 = the number of the call a raw sys_exit reports (regs->orig_ax)."""
    a = cg.a
    off = _path("pt_regs", "orig_ax")[-1].offset
    _ctx(cg, R3, 0)
    a.alu("+", R3, imm=off)
    a.st(8, R10, S_TMP, 0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=S_TMP)
    a.movi(R2, 8)
    a.call("probe_read_kernel")
    a.ldx(8, R0, R10, S_TMP)


def _only_nrs(cg: Any, reg: int, nrs: list[int], skip: str) -> None:
    a = cg.a
    ok = a.new_label("pnr")
    for nr in nrs:
        a.jmp("==", reg, ok, imm=nr)
    a.ja(skip)
    a.place(ok)


def _is_thread(cg: Any, ctx_index: int | None) -> None:
    """R0 = 1 when the task (ctx[i] or current) is not its process's leader."""
    a = cg.a
    if ctx_index is None:
        cg.current_task(R0)
        a.stx(8, R10, S_TASK, R0)
    else:
        _ctx(cg, R1, ctx_index)
        a.stx(8, R10, S_TASK, R1)
    _load(cg, "pid")
    a.stx(8, R10, S_AUX, R0)
    _load(cg, "tgid")
    a.ldx(8, R1, R10, S_AUX)
    same = a.new_label("pleader")
    a.jmp("==", R0, same, src=R1)
    a.movi(R0, 1)
    end = a.new_label("pthr")
    a.ja(end)
    a.place(same)
    a.movi(R0, 0)
    a.place(end)


def _probe(cg: Any, probe: Any, r: Region, skip: str, clauses: list[Any]) -> None:
    a = cg.a
    n = probe.name
    fa = cg.f_args
    args = cg.wants_args
    if probe.provider == "proc":
        if n in ("create", "lwp-create"):  # sched_process_fork(parent, child)
            _is_thread(cg, 1)
            a.jmp("==", R0, skip, imm=1 if n == "create" else 0)
            if args:
                _task_args(cg, r, 1, lwp_first=n == "lwp-create")
        elif n in ("start", "lwp-start"):  # sys_exit of clone/fork in the child: 0
            _ctx(cg, R1, 1)
            a.jmp("!=", R1, skip, imm=0)
            _syscall_nr(cg)
            _only_nrs(cg, R0, _nrs(FORKS), skip)
            if n == "start":  # lwp-start fires for every new thread, after start
                _is_thread(cg, None)
                a.jmp("==", R0, skip, imm=1)
        elif n == "exec":  # sys_enter(regs, id): the path, read from user memory
            _ctx(cg, R1, 1)
            nrs = _nrs(EXECS)
            _only_nrs(cg, R1, nrs, skip)
            if args:
                di = _path("pt_regs", "di")[-1].offset
                si = _path("pt_regs", "si")[-1].offset
                _ctx(cg, R3, 1)
                a.movi(R2, di)
                at = a.new_label("pexecve")
                a.jmp("==", R3, at, imm=nrs[0])
                a.movi(R2, si)  # execveat(dirfd, path, ...)
                a.place(at)
                _ctx(cg, R3, 0)
                a.alu("+", R3, R2)
                a.st(8, R10, S_TMP, 0)
                a.mov(R1, R10)
                a.alu("+", R1, imm=S_TMP)
                a.movi(R2, 8)
                a.call("probe_read_kernel")
                a.ldx(8, R3, R10, S_TMP)
                dst = 2 * _sizes()[0]
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
            _ctx(cg, R1, 1)
            if n == "exec-failure":
                a.jmp("s>=", R1, skip, imm=0)
            else:
                a.jmp("s<=", R1, skip, imm=0)
            _syscall_nr(cg)
            _only_nrs(cg, R0, _nrs(EXECS if n == "exec-failure" else ("rt_sigtimedwait",)), skip)
            _ctx(cg, R1, 1)
            if n == "exec-failure":
                a.alu("*", R1, imm=-1)  # errno
            a.stx(8, R9, fa, R1)
        elif n in ("exit", "lwp-exit"):  # sched_process_exit(p, group_dead)
            if n == "exit":  # lwp-exit fires for every thread, the last one before exit
                _ctx(cg, R1, 1)
                a.alu("&", R1, imm=0xFF)
                a.jmp("==", R1, skip, imm=0)
                a.call("get_current_task")
                a.stx(8, R10, S_TASK, R0)
                _load(cg, "exit_code")
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
            _ctx(cg, R1, 4)
            a.jmp("!=", R1, skip, imm=0 if n == "signal-send" else 1)
            if args:
                _task_args(cg, r, 2)
                _ctx(cg, R1, 0)
                a.stx(8, R9, fa + 16, R1)
        elif n == "signal-handle":  # signal_deliver(sig, info, ka)
            # a fatal signal without a handler arrives as SIGKILL: the one sent
            # is the group's exit code (as dtrace-utils reads it)
            _ctx(cg, R1, 0)
            a.stx(8, R9, fa, R1)
            real = a.new_label("psig")
            a.jmp("!=", R1, real, imm=9)
            a.call("get_current_task")
            a.stx(8, R10, S_TASK, R0)
            _load(cg, "signal", "group_exit_code")
            a.jmp("==", R0, real, imm=0)
            a.alu("&", R0, imm=0x7F)
            a.stx(8, R9, fa, R0)
            a.place(real)
            _ctx(cg, R1, 1)
            a.stx(8, R9, fa + 8, R1)
        return
    # sched
    cpuinfo = r.off + r.size - CPUINFO_SIZE
    if n == "on-cpu":
        _incoming(cg, clauses)
        return
    if n in ("off-cpu", "sleep", "preempt", "dequeue"):
        # sched_switch(preempt, prev, next, prev_state), in prev: sleep and
        # dequeue when prev blocks (prev_state != TASK_RUNNING), preempt when not
        if n != "off-cpu":
            _ctx(cg, R1, 3)
            a.jmp("!=" if n == "preempt" else "==", R1, skip, imm=0)
        if args and n == "off-cpu":
            _task_args(cg, r, 2)  # the thread that comes on
        if args and n == "dequeue":
            _task_args(cg, r, None)
            for off in range(0, CPUINFO_SIZE, 8):
                a.st(8, R9, cpuinfo + off, 0)
            a.call("get_smp_processor_id")
            a.stx(4, R9, cpuinfo, R0)
            a.ld_imm64(R1, r.vaddr + r.size - CPUINFO_SIZE)
            a.stx(8, R9, fa + 16, R1)
    elif n in ("wakeup", "enqueue"):  # sched_wakeup(p), in the waker
        if args:
            _task_args(cg, r, 0)
        if args and n == "enqueue":  # the run queue of the CPU p was placed on
            for off in range(0, CPUINFO_SIZE, 8):
                a.st(8, R9, cpuinfo + off, 0)
            _, ps, lw = _sizes()
            a.ldx(4, R1, R9, r.off + ps["pr_lwp"][0] + lw["pr_onpro"][0])
            a.stx(4, R9, cpuinfo, R1)
            a.ld_imm64(R1, r.vaddr + r.size - CPUINFO_SIZE)
            a.stx(8, R9, fa + 16, R1)
    elif n == "surrender":
        _ctx(cg, R1, 1)
        _only_nrs(cg, R1, _nrs(("sched_yield",)), skip)
        if args:
            _task_args(cg, r, None)
    elif n == "tick" and args:
        _task_args(cg, r, None)
