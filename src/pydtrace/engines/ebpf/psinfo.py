"""psinfo_t / lwpsinfo_t (and cpuinfo_t) written into one frame area from
task_struct fields found through BTF: curpsinfo, curlwpsinfo and curcpu for
every probe, and the arguments of the proc and sched providers
(engines/ebpf/providers/proc.py, sched.py), whose select() runs inside
prologue() here.

The area is registered as a memory region (cg_memory), so args[N] and
curpsinfo are D addresses and `->` member loads, strings and stringof() work
unchanged. A psinfo_t holds its lwpsinfo_t (pr_lwp): an `lwpsinfo_t *`
argument is the address of the psinfo's pr_lwp. docs/internals/proc-sched.md maps
every probe to its tracepoint and arguments.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_memory import Region
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R6, R9, R10

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REGION = ("proc", "psinfo")
PR_MODEL_LP64 = 2
CUR_VARS = frozenset({"curpsinfo", "curlwpsinfo"})
BUILTINS = frozenset({"curpsinfo", "curlwpsinfo", "curcpu"})

CPUINFO_SIZE = 24  # cpuinfo_t (lang/procfs.py): cpu_id first

# stack scratch of the prologue (nothing else is live there)
S_TMP, S_TASK, S_AUX = -16, -24, -32


def btf() -> Any:
    try:
        from pydtrace.symbols.btf import vmlinux

        return vmlinux()
    except (ImportError, OSError, LookupError) as e:
        raise LoweringError(
            f"the eBPF engine needs kernel BTF for proc/sched probes: {e}"
        ) from None


def path(root: str, *members: str) -> list[Any]:
    try:
        return btf().resolve_path(root, *members)
    except LookupError as e:
        raise LoweringError(
            f"the eBPF engine cannot read {root}->{'.'.join(members)}: {e}"
        ) from None


def nrs(names: tuple[str, ...]) -> list[int]:
    """The numbers of these system calls on this machine."""
    from pydtrace.probes.syscalls import table

    t = table()
    return [t.by_name[n].nr for n in names if n in t.by_name]


# --- the area -----------------------------------------------------------------------
def sizes() -> tuple[int, dict[str, tuple[int, Any]], dict[str, tuple[int, Any]]]:
    """(psinfo_t's size rounded to 8, its members' offsets, lwpsinfo_t's)."""
    from pydtrace.lang.checker import library_types, member_offsets

    size = library_types()["psinfo_t"].r.size
    return (size + 7) // 8 * 8, member_offsets("psinfo_t"), member_offsets("lwpsinfo_t")


def region(cg: Any) -> Region:
    """Two psinfo_t: [0] the probe's subject task, [1] the current task."""
    regs = cg.mem_regions()
    r = regs.get(REGION)
    if r is None:
        # + exec's path + curcpu's cpuinfo_t + the sched args' cpuinfo_t (last)
        size = 2 * sizes()[0] + (cg.strsize + 8) // 8 * 8 + 2 * CPUINFO_SIZE
        r = regs[REGION] = Region(cg.next_vaddr(), size, "frame", cg.frame.take(size))
    return r


def builtin(cg: Any, name: str, t: Any) -> Any:
    """curpsinfo / curlwpsinfo / curcpu: addresses of the area prologue() filled."""
    if name == "curcpu":
        r = region(cg)
        return cg.const(r.vaddr + r.size - 2 * CPUINFO_SIZE, t)
    size, ps, _ = sizes()
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


def _copy(cg: Any, dst: int, size: int, *members: str) -> None:
    """frame[dst:dst+size] = task->path (zeros when unreadable)."""
    a = cg.a
    _follow(cg, path("task_struct", *members))
    a.mov(R1, R9)
    a.alu("+", R1, imm=dst)
    a.movi(R2, size)
    a.call("probe_read_kernel")


def load(cg: Any, *members: str) -> None:
    """R0 = task->path, zero-extended (0 when unreadable)."""
    a = cg.a
    acc = path("task_struct", *members)
    _follow(cg, acc)
    size = acc[-1].size
    a.st(8, R10, S_TMP, 0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=S_TMP)
    a.movi(R2, size)
    a.call("probe_read_kernel")
    a.ldx(size, R0, R10, S_TMP)


def fill(cg: Any, base: int, current: bool = False) -> None:
    """Write the psinfo_t (with its pr_lwp) of the task whose address is at
    S_TASK into the frame at base."""
    a = cg.a
    size, ps, lw = sizes()
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
    load(cg, "prio")  # /proc's priority: prio - MAX_RT_PRIO
    a.alu("-", R0, imm=100)
    a.stx(4, R9, lwp + lw["pr_pri"][0], R0)
    load(cg, "static_prio")  # nice = static_prio - 120
    a.alu("-", R0, imm=120)
    a.stx(1, R9, lwp + lw["pr_nice"][0], R0)
    # pr_state / pr_sname in Solaris' numbering (as the ptrace engine's procinfo)
    load(cg, "__state")
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
    load(cg, "mm", "arg_start")
    a.stx(8, R10, S_AUX, R0)
    load(cg, "mm", "arg_end")
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
def prologue(cg: Any, probe: Any, clauses: list[Any], provider: Any) -> None:
    """Fill curcpu's and curpsinfo's areas when a clause names them; for a
    provider with psinfo arguments (proc, sched), its select() filters the
    firing and fills the arguments (in between, as curpsinfo may be the
    subject's task read there)."""
    from pydtrace.engines.ebpf.cg_queries import mentions

    a = cg.a
    wants_cur = any(mentions([c.predicate, *c.body], CUR_VARS) for c in clauses)
    wants_cpu = any(mentions([c.predicate, *c.body], frozenset({"curcpu"})) for c in clauses)
    if not provider.psinfo and not (wants_cur or wants_cpu):
        return
    r = region(cg)
    if wants_cpu:  # one node: pset, chip and lgrp 0, as the pset/chip/lgrp variables
        cpu = r.off + r.size - 2 * CPUINFO_SIZE
        for off in range(0, CPUINFO_SIZE, 8):
            a.st(8, R9, cpu + off, 0)
        a.call("get_smp_processor_id")
        a.stx(4, R9, cpu, R0)
    size = sizes()[0]
    skip, go = a.new_label("pskip"), a.new_label("pgo")
    if provider.psinfo:
        provider.select(cg, probe, r, skip, clauses)
    if wants_cur:
        cg.current_task(R0)
        a.stx(8, R10, S_TASK, R0)
        # the incoming thread's arguments lie in another address space
        fill(cg, r.off + size, current=not cg.incoming)
    if provider.psinfo and provider.filtered(probe):
        a.ja(go)
        a.place(skip)
        a.movi(R0, 0)
        a.exit()
        a.place(go)


def ctx(cg: Any, reg: int, i: int) -> None:
    cg.a.ldx(8, reg, R6, 8 * i)


def task_args(cg: Any, r: Region, ctx_index: int | None, lwp_first: bool = True) -> None:
    """Fill the subject psinfo from the task at ctx[i] (None: current) and
    set args[0] (lwpsinfo_t *) and args[1] (psinfo_t *) or, when not
    lwp_first, args[0] (psinfo_t *)."""
    a = cg.a
    if ctx_index is None:
        cg.current_task(R0)
        a.stx(8, R10, S_TASK, R0)
    else:
        ctx(cg, R1, ctx_index)
        a.stx(8, R10, S_TASK, R1)
    fill(cg, r.off)
    _, ps, _ = sizes()
    fa = cg.f_args
    if lwp_first:
        a.ld_imm64(R1, r.vaddr + ps["pr_lwp"][0])
        a.stx(8, R9, fa, R1)
        a.ld_imm64(R1, r.vaddr)
        a.stx(8, R9, fa + 8, R1)
    else:
        a.ld_imm64(R1, r.vaddr)
        a.stx(8, R9, fa, R1)


def only_nrs(cg: Any, reg: int, numbers: list[int], skip: str) -> None:
    """To skip unless reg holds one of these numbers."""
    a = cg.a
    ok = a.new_label("pnr")
    for nr in numbers:
        a.jmp("==", reg, ok, imm=nr)
    a.ja(skip)
    a.place(ok)
