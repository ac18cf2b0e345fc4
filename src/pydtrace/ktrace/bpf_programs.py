"""The BPF programs of the eBPF ktrace recorder, hand-written with the Assembler.

Every program builds trace-file records (format.py's 64-byte header, then the
payload) in a per-CPU scratch value and copies them whole into one ring
buffer, so the Python side only appends the bytes it reads to the file. The
kernel stamps each record with CLOCK_REALTIME (ktime + the offset measured
when the programs are built, split into seconds and nanoseconds).

Maps:
    traced   HASH u32 tgid -> u32 state (1 traced; 2 a held -c child: its
             calls are ignored until it calls execve)
    saved    HASH u32 tid -> the CALL payload of its call in progress (code,
             argsize, 8 argument slots): sys_exit's data and FORK's flags
    calls    ARRAY syscall nr -> u64 flags (bpf_records.CF_*)
    structs  ARRAY syscall nr -> the structure it passes or gets (struct_entry())
    scratch  PERCPU_ARRAY, one value: the record being built and temporaries
    ring     RINGBUF of finished records

The records' layout and the steps shared by the programs are in bpf_records.py,
the variable payloads of syscall records in bpf_payloads.py.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10, Assembler
from pydtrace.ktrace import format as F
from pydtrace.ktrace.bpf_payloads import (
    gio,
    late_paths,
    strings,
    stru,
    user,
)
from pydtrace.ktrace.bpf_records import (
    ARGS_OFF,
    CF_EXEC,
    CF_EXECAT,
    CSW_BROKEN,
    CSW_LAST,
    CSW_UNSEEN,
    PATH_MAX_LEN,
    PAY,
    PENDING,
    REGS_OFF,
    Gen,
)
from pydtrace.lang.dataclass import dataclass

ST_IN, ST_OUT = 1, 2  # structs map: when the structure is read

CLONE_THREAD_FLAGS = 0x10000 | 0x800 | 0x100  # CLONE_THREAD | CLONE_SIGHAND | CLONE_VM
SIGCHLD = 17
VFORK_FLAGS = 0x4000 | 0x100 | SIGCHLD


def struct_entry(when: str, name: str, ptr: int, size: int | tuple) -> bytes:
    """The structs map value: u8 when (ST_IN/ST_OUT), u8 pointer argument,
    u8 size kind (0 fixed, 1 an argument, 2 the u32 an argument points to,
    3 an argument times a fixed element size), u8 that argument, u32 the
    fixed size, char name[16], u32 len(name) + 1, u32 0."""
    kind, arg, fixed = 0, 0, 0
    if isinstance(size, int):
        fixed = size
    else:
        kind = {"arg": 1, "ptr": 2, "count": 3}[size[0]]
        arg = size[1]
        fixed = size[2] if kind == 3 else 0
    raw = name.encode()[:15]
    when_code = ST_IN if when == "in" else ST_OUT
    return (
        bytes((when_code, ptr, kind, arg))
        + fixed.to_bytes(4, "little")
        + raw.ljust(16, b"\0")
        + (len(raw) + 1).to_bytes(4, "little")
        + bytes(4)
    )


@dataclass
class Offsets:
    """Kernel layout the programs need (BTF), and syscall numbers."""

    regs_base: int  # first pt_regs byte copied
    regs_args: list[int]  # each argument's offset in that copy
    task_pid: int
    task_tgid: int
    task_exit_code: int
    task_comm: int
    task_blocked: int
    task_signal: int
    signal_live: int
    signal_group_exit_code: int
    siginfo_size: int
    nr_clone: int
    nr_clone3: int
    nr_vfork: int


def offsets() -> Offsets:
    from pydtrace.engines.ebpf.pt_regs import syscall_regs
    from pydtrace.probes.syscalls import table
    from pydtrace.symbols.btf import vmlinux

    regs = syscall_regs()
    if regs is None:
        raise OSError("the syscall registers of this machine are unknown")
    base = min(regs["args"])
    b = vmlinux()
    t = table().by_name

    def nr(name: str) -> int:
        return t[name].nr if name in t else -1

    return Offsets(
        base, [o - base for o in regs["args"]], b.member_offset("task_struct", "pid"),
        b.member_offset("task_struct", "tgid"), b.member_offset("task_struct", "exit_code"),
        b.member_offset("task_struct", "comm"), b.member_offset("task_struct", "blocked"),
        b.member_offset("task_struct", "signal"), b.member_offset("signal_struct", "live"),
        b.member_offset("signal_struct", "group_exit_code"),
        min(F.SIGINFO_SIZE, b.size_of(b.find("kernel_siginfo"))),
        nr("clone"), nr("clone3"), nr("vfork"),
    )  # fmt: skip


def sys_enter(o: Offsets, boot_ns: int, points: str, nr_exec: tuple[int, ...]) -> Assembler:
    g = Gen(boot_ns)
    a = g.a
    a.mov(R6, R1)
    g.current_traced(held_ok=True)
    a.ldx(8, R9, R6, 8)  # the syscall number
    go = a.new_label("go")
    a.st(8, R10, -48, 0)  # 1: this is the held command's execve
    a.ldx(4, R1, R0, 0)
    a.jmp("!=", R1, go, imm=2)
    for n in nr_exec:  # a held -c child is traced from its execve on
        a.jmp("==", R9, f"arm{n}", imm=n)
    a.ja(g.out)
    for n in nr_exec:
        a.place(f"arm{n}")
    a.st(4, R0, 0, 1)
    a.st(8, R10, -48, 1)
    a.place(go)
    g.scratch()
    # the CALL payload at ARGS_OFF: code, argsize, the 6 argument registers
    a.stx(4, R7, ARGS_OFF, R9)
    a.st(4, R7, ARGS_OFF + 4, 48)
    a.ldx(8, R3, R6, 0)  # struct pt_regs *
    a.alu("+", R3, imm=o.regs_base)
    a.mov(R1, R7)
    a.alu("+", R1, imm=REGS_OFF)
    a.movi(R2, max(o.regs_args) + 8)
    a.call("probe_read_kernel")
    for i, off in enumerate(o.regs_args):
        a.ldx(8, R1, R7, REGS_OFF + off)
        a.stx(8, R7, ARGS_OFF + 8 + 8 * i, R1)
    a.st(8, R7, PENDING, 0)
    g.header_current()
    named = a.new_label("nm")
    a.ldx(8, R1, R10, -48)
    a.jmp("==", R1, named, imm=0)
    a.ld_imm64(R1, int.from_bytes(b"ktrace\0\0", "little"))  # as OpenBSD: ktrace execs it
    a.stx(8, R7, 32, R1)
    a.st(8, R7, 40, 0)
    a.place(named)
    if "c" in points:
        for k in range(0, 56, 8):
            a.ldx(8, R1, R7, ARGS_OFF + k)
            a.stx(8, R7, PAY + k, R1)
        g.output(F.SYSCALL, 56)
    if not any(p in points for p in "nxXt"):
        save(g)
        return g.finish()
    g.call_flags(R9)
    a.mov(R8, R0)
    if "n" in points:
        for i in range(6):
            skip = a.new_label("np")
            a.mov(R1, R8)
            a.alu("&", R1, imm=1 << i)
            a.jmp("==", R1, skip, imm=0)
            a.ldx(8, R3, R7, ARGS_OFF + 8 + 8 * i)
            a.jmp("==", R3, skip, imm=0)
            a.mov(R1, R7)
            a.alu("+", R1, imm=PAY)
            a.movi(R2, PATH_MAX_LEN)
            a.call("probe_read_user_str")
            a.jmp("s>", R0, f"nok{i}", imm=0)
            a.mov(R1, R8)  # (never after an exec: the old image is gone by then)
            a.alu("&", R1, imm=CF_EXEC)
            a.jmp("!=", R1, skip, imm=0)
            a.ldx(8, R1, R7, PENDING)  # not in memory yet: read it at sys_exit
            a.alu("|", R1, imm=1 << i)
            a.stx(8, R7, PENDING, R1)
            a.ja(skip)
            a.place(f"nok{i}")
            a.mov(R9, R0)
            a.alu("-", R9, imm=1)
            a.jmp(">", R9, skip, imm=PATH_MAX_LEN)
            g.output(F.NAMEI, reg=R9)
            a.place(skip)
    for letter, rtype, idx in (("x", F.EXECARGS, 1), ("X", F.EXECENV, 2)):
        if letter not in points:
            continue
        skip, at, load = a.new_label("nx"), a.new_label("xat"), a.new_label("xl")
        a.mov(R1, R8)
        a.alu("&", R1, imm=CF_EXEC)
        a.jmp("==", R1, skip, imm=0)
        a.mov(R1, R8)
        a.alu("&", R1, imm=CF_EXECAT)
        a.jmp("!=", R1, at, imm=0)
        a.ldx(8, R9, R7, ARGS_OFF + 8 + 8 * idx)
        a.ja(load)
        a.place(at)
        a.ldx(8, R9, R7, ARGS_OFF + 8 + 8 * (idx + 1))
        a.place(load)
        a.stx(8, R10, -24, R8)  # the flags wait on the stack; r8 = bytes so far
        strings(g, rtype)
        a.ldx(8, R8, R10, -24)
        a.place(skip)
    if "t" in points:
        stru(g, ST_IN, at_entry=True)
    save(g)
    return g.finish()


def save(g: Gen) -> None:
    """saved[tid] = the call's payload and pending paths, for sys_exit."""
    a = g.a
    a.ld_map(R1, "saved")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-16)  # the tid: the low half of pid_tgid
    a.mov(R3, R7)
    a.alu("+", R3, imm=ARGS_OFF)
    a.movi(R4, 0)
    a.call("map_update_elem")


def sys_exit(o: Offsets, boot_ns: int, points: str, maxdata: int) -> Assembler:
    g = Gen(boot_ns)
    a = g.a
    a.mov(R6, R1)
    g.current_traced()
    g.scratch()
    a.ld_map(R1, "saved")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-16)
    a.call("map_lookup_elem")
    a.jmp("==", R0, g.out, imm=0)
    a.mov(R8, R0)  # the saved CALL payload
    a.ldx(8, R6, R6, 8)  # r6 = the return value from now on
    g.header_current()
    if "n" in points:
        late_paths(g)
    if "i" in points or "u" in points:
        a.ldx(4, R1, R8, 0)
        g.call_flags(R1)
        a.stx(8, R10, -24, R0)  # flags
        if "i" in points:
            gio(g, maxdata)
        if "u" in points:
            user(g)
    if "t" in points:
        stru(g, ST_OUT, at_entry=False)
    if "c" in points:
        err, send = a.new_label("err"), a.new_label("snd")
        a.ldx(4, R1, R8, 0)
        a.stx(4, R7, PAY, R1)
        a.jmp("s>=", R6, "retok", imm=0)
        a.jmp("s<", R6, "retok", imm=-4095)
        a.ja(err)
        a.place("retok")
        a.st(4, R7, PAY + 4, 0)
        a.stx(8, R7, PAY + 8, R6)
        g.output(F.SYSRET, 16)
        a.ja(send)
        a.place(err)
        a.mov(R1, R6)
        a.neg(R1)
        a.stx(4, R7, PAY + 4, R1)
        g.output(F.SYSRET, 8)
        a.place(send)
    return g.finish()


def fork(o: Offsets, boot_ns: int, points: str, inherit: bool) -> Assembler:
    """sched_process_fork (current = the parent): FORK, and follow the child."""
    g = Gen(boot_ns)
    a = g.a
    a.mov(R6, R1)
    g.current_traced()
    g.scratch()
    a.ldx(8, R8, R6, 8)  # the child's task_struct
    for off, at in ((o.task_pid, -40), (o.task_tgid, -36)):
        a.mov(R1, R10)
        a.alu("+", R1, imm=at)
        a.movi(R2, 4)
        a.mov(R3, R8)
        a.alu("+", R3, imm=off)
        a.call("probe_read_kernel")
    g.header_current()
    a.ldx(4, R1, R10, -36)
    a.stx(4, R7, PAY, R1)
    a.ldx(4, R1, R10, -40)
    a.stx(4, R7, PAY + 4, R1)
    # clone flags from the call in progress (clone's argument 0, clone3's first word)
    thread, flags, done = a.new_label("th"), a.new_label("fl"), a.new_label("fd")
    a.ld_map(R1, "saved")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-16)
    a.call("map_lookup_elem")
    a.movi(R9, SIGCHLD)
    a.jmp("==", R0, thread, imm=0)
    a.ldx(4, R1, R0, 0)
    a.ldx(8, R9, R0, 8)
    a.jmp("==", R1, done, imm=o.nr_clone)
    a.movi(R9, VFORK_FLAGS)
    a.jmp("==", R1, done, imm=o.nr_vfork)
    a.movi(R9, SIGCHLD)
    a.jmp("!=", R1, thread, imm=o.nr_clone3)
    a.ldx(8, R3, R0, 8)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-48)
    a.movi(R2, 8)
    a.call("probe_read_user")
    a.jmp("!=", R0, thread, imm=0)
    a.ldx(8, R9, R10, -48)
    a.ja(done)
    a.place(thread)  # unknown call: a thread when the child shares our tgid
    a.ldx(4, R1, R10, -36)
    a.ldx(4, R2, R10, -4)
    a.jmp("!=", R1, flags, R2)
    a.movi(R9, CLONE_THREAD_FLAGS)
    a.place(flags)
    a.place(done)
    a.stx(8, R7, PAY + 8, R9)
    if "f" in points:
        g.output(F.FORK, 16)
    # the child returns from the parent's call: give it the call to return from
    nosave = a.new_label("ns")
    a.ld_map(R1, "saved")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-16)
    a.call("map_lookup_elem")
    a.jmp("==", R0, nosave, imm=0)
    a.mov(R3, R0)
    a.ld_map(R1, "saved")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-40)
    a.movi(R4, 0)
    a.call("map_update_elem")
    a.place(nosave)
    if inherit:
        a.ldx(4, R1, R10, -36)
        a.ldx(4, R2, R10, -4)
        a.jmp("==", R1, g.out, R2)
        a.st(4, R10, -44, 1)
        a.ld_map(R1, "traced")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-36)
        a.mov(R3, R10)
        a.alu("+", R3, imm=-44)
        a.movi(R4, 0)
        a.call("map_update_elem")
    return g.finish()


def exit_(o: Offsets, boot_ns: int, points: str) -> Assembler:
    """sched_process_exit (current exits): forget its call; when the group is
    dead, EXIT with the wait status and stop tracing the tgid. With CSW
    records, a last thread that came on while the kernel reported nothing
    (the CPU's last switch went to another task) counts a missing resume:
    its switch away, after this, is no longer traced."""
    g = Gen(boot_ns)
    a = g.a
    g.current_traced(held_ok=True)
    a.ldx(4, R1, R0, 0)
    a.stx(4, R10, -48, R1)  # 1 traced, 2 a held -c child
    a.ld_map(R1, "saved")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-16)
    a.call("map_delete_elem")
    a.call("get_current_task")
    a.mov(R8, R0)
    a.mov(R1, R10)  # task->signal->live == 0: the last thread
    a.alu("+", R1, imm=-32)
    a.movi(R2, 8)
    a.mov(R3, R8)
    a.alu("+", R3, imm=o.task_signal)
    a.call("probe_read_kernel")
    a.mov(R1, R10)
    a.alu("+", R1, imm=-24)
    a.movi(R2, 4)
    a.ldx(8, R3, R10, -32)
    a.alu("+", R3, imm=o.signal_live)
    a.call("probe_read_kernel")
    a.jmp("!=", R0, g.out, imm=0)
    a.ldx(4, R1, R10, -24)
    a.jmp("!=", R1, g.out, imm=0)
    if "f" in points:
        g.scratch()
        g.header_current()
        a.mov(R1, R7)
        a.alu("+", R1, imm=PAY)
        a.movi(R2, 4)
        a.mov(R3, R8)
        a.alu("+", R3, imm=o.task_exit_code)
        a.call("probe_read_kernel")
        g.output(F.EXIT, 4)
    if "w" in points:
        seen = a.new_label("seen")
        a.ldx(4, R1, R10, -48)
        a.jmp("!=", R1, seen, imm=1)
        g.scratch()
        a.ldx(8, R1, R7, CSW_LAST)
        a.jmp("==", R1, seen, imm=0)
        a.jmp("==", R1, seen, src=R8)
        a.ldx(8, R1, R7, CSW_UNSEEN)
        a.alu("+", R1, imm=1)
        a.stx(8, R7, CSW_UNSEEN, R1)
        a.place(seen)
    a.ld_map(R1, "traced")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-4)
    a.call("map_delete_elem")
    return g.finish()


def signal_deliver(o: Offsets, boot_ns: int) -> Assembler:
    """signal:signal_deliver(sig, kernel_siginfo *info, k_sigaction *ka): PSIG."""
    g = Gen(boot_ns)
    a = g.a
    a.mov(R6, R1)
    g.current_traced()
    g.scratch()
    g.header_current()
    a.ldx(8, R1, R6, 0)
    a.stx(4, R7, PAY, R1)
    for k in range(0, F.SIGINFO_SIZE, 8):
        a.st(8, R7, PAY + 24 + k, 0)
    a.mov(R1, R7)
    a.alu("+", R1, imm=PAY + 24)
    a.movi(R2, o.siginfo_size)
    a.ldx(8, R3, R6, 8)
    a.call("probe_read_kernel")
    a.ldx(4, R1, R7, PAY + 24 + 8)  # si_code
    a.stx(4, R7, PAY + 4, R1)
    a.mov(R1, R7)
    a.alu("+", R1, imm=PAY + 8)
    a.movi(R2, 8)
    a.ldx(8, R3, R6, 16)  # ka->sa.sa_handler (offset 0)
    a.call("probe_read_kernel")
    a.call("get_current_task")
    a.mov(R3, R0)
    a.alu("+", R3, imm=o.task_blocked)
    a.mov(R1, R7)
    a.alu("+", R1, imm=PAY + 16)
    a.movi(R2, 8)
    a.call("probe_read_kernel")
    # a fatal signal kills the group by a SIGKILL without siginfo: name the
    # signal that did it (signal->group_exit_code), as the exit status does
    real = a.new_label("rs")
    a.ldx(8, R1, R6, 8)
    a.jmp("!=", R1, real, imm=0)
    a.ldx(8, R1, R6, 0)
    a.jmp("!=", R1, real, imm=9)
    a.call("get_current_task")
    a.mov(R3, R0)
    a.alu("+", R3, imm=o.task_signal)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-32)
    a.movi(R2, 8)
    a.call("probe_read_kernel")
    a.jmp("!=", R0, real, imm=0)
    a.ldx(8, R3, R10, -32)
    a.alu("+", R3, imm=o.signal_group_exit_code)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-24)
    a.movi(R2, 4)
    a.call("probe_read_kernel")
    a.jmp("!=", R0, real, imm=0)
    a.ldx(4, R1, R10, -24)
    a.alu("&", R1, imm=0x7F)
    a.jmp("==", R1, real, imm=0)
    a.stx(4, R7, PAY, R1)
    a.place(real)
    g.output(F.PSIG, 24 + F.SIGINFO_SIZE)
    return g.finish()


def sched_switch(o: Offsets, boot_ns: int) -> Assembler:
    """sched_switch(preempt, prev, next, prev_state): CSW out for a traced
    prev (wmesg "sleep" when it blocks, "preempt" when it still runs), CSW in
    for a traced next. A traced prev whose switch-in the kernel did not report
    (the CPU's chain of switches broken before it) counts in CSW_UNSEEN: its
    resume record is missing, and ktrace says how many at the end."""
    g = Gen(boot_ns)
    a = g.a
    a.mov(R6, R1)
    g.scratch()
    whole = a.new_label("chain")
    a.ldx(8, R1, R7, CSW_LAST)
    a.ldx(8, R2, R6, 16)
    a.stx(8, R7, CSW_LAST, R2)
    a.ldx(8, R2, R6, 8)
    a.movi(R3, 0)
    a.jmp("==", R1, whole, imm=0)  # the first switch seen on this CPU
    a.jmp("==", R1, whole, src=R2)
    a.movi(R3, 1)
    a.place(whole)
    a.stx(8, R7, CSW_BROKEN, R3)
    for side in ("prev", "next"):
        skip = a.new_label("cs")
        task = 8 if side == "prev" else 16
        a.ldx(8, R8, R6, task)
        a.mov(R1, R10)
        a.alu("+", R1, imm=-40)  # pid, tgid
        a.movi(R2, 8)
        a.mov(R3, R8)
        a.alu("+", R3, imm=o.task_pid)
        a.call("probe_read_kernel")
        a.jmp("!=", R0, skip, imm=0)
        a.ld_map(R1, "traced")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-36)
        a.call("map_lookup_elem")
        a.jmp("==", R0, skip, imm=0)
        a.ldx(4, R1, R0, 0)
        a.jmp("!=", R1, skip, imm=1)
        if side == "prev":
            seen = a.new_label("seen")
            a.ldx(8, R1, R7, CSW_BROKEN)
            a.jmp("==", R1, seen, imm=0)
            a.ldx(8, R1, R7, CSW_UNSEEN)
            a.alu("+", R1, imm=1)
            a.stx(8, R7, CSW_UNSEEN, R1)
            a.place(seen)
        a.ldx(4, R1, R10, -36)
        a.stx(4, R7, 4, R1)
        a.ldx(4, R1, R10, -40)
        a.stx(4, R7, 8, R1)
        g.stamp()
        a.mov(R1, R7)
        a.alu("+", R1, imm=32)
        a.movi(R2, 16)
        a.mov(R3, R8)
        a.alu("+", R3, imm=o.task_comm)
        a.call("probe_read_kernel")
        a.st(8, R7, PAY + 8, 0)
        if side == "prev":
            a.st(4, R7, PAY, 1)
            sleep, put, preempt = a.new_label("sl"), a.new_label("pu"), a.new_label("pr")
            # prev blocks only when the switch is no preemption and its state is
            # not TASK_RUNNING (a thread preempted on its way to sleep stays runnable)
            a.ldx(8, R1, R6, 0)
            a.jmp("!=", R1, preempt, imm=0)
            a.ldx(8, R1, R6, 24)
            a.alu("&", R1, imm=0xFFFF)
            a.jmp("!=", R1, sleep, imm=0)
            a.place(preempt)
            a.ld_imm64(R1, int.from_bytes(b"preempt\0", "little"))
            a.ja(put)
            a.place(sleep)
            a.ld_imm64(R1, int.from_bytes(b"sleep\0\0\0", "little"))
            a.place(put)
            a.stx(8, R7, PAY + 8, R1)
        else:
            a.st(4, R7, PAY, 0)
        a.st(4, R7, PAY + 4, 0)
        g.output(F.CSW, 16)
        a.place(skip)
    return g.finish()
