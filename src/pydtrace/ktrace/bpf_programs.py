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
    calls    ARRAY syscall nr -> u64 flags (CF_* below)
    structs  ARRAY syscall nr -> the structure it passes or gets (struct_entry())
    scratch  PERCPU_ARRAY, one value: the record being built and temporaries
    ring     RINGBUF of finished records

Lost records: a failed ringbuf_output counts one in the scratch word DROPS of
that CPU; the next record written on that CPU carries the count (lost field
and the DROP bit) and resets it.

Limits (the verifier needs bounded loops, unrolled here):
    exec ARGS/ENV  at most STR_COUNT strings, each cut at STR_MAX bytes, the
                   record cut once it passes STR_AREA bytes
    GIO            at most GIO_PAGES records of 4096 bytes for a plain buffer
                   and the first IOV_MAX iovec elements, IOV_PAGES records each;
                   recvmmsg/sendmmsg: the first MMSG_MAX messages, each so
    NAMI           paths cut at PATH_MAX_LEN bytes
    STRU           at most STRUCT_MAX bytes, at most 1023 elements (pollfd)
"""

from __future__ import annotations

from dataclasses import dataclass

from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10, Assembler
from pydtrace.ktrace import format as F

STR_COUNT = 64
STR_MAX = 1024
STR_AREA = 16384
PATH_MAX_LEN = 4096
GIO_PAGES = 64
IOV_MAX = 8
IOV_PAGES = 4
MMSG_MAX = 8
USER_LABEL = F.USER_ID_SIZE
STRUCT_MAX = 4096
ST_IN, ST_OUT = 1, 2  # structs map: when the structure is read

# scratch layout
HDR = 0
PAY = 64
PAY_MAX = STR_AREA + STR_MAX  # the largest payload (exec strings)
ARGS_OFF = PAY + PAY_MAX  # code, argsize, args[7], then the paths still to read
ARGS_SIZE = 72
PENDING = ARGS_OFF + 64  # bit i: argument i is a path sys_enter could not read
REGS_OFF = ARGS_OFF + ARGS_SIZE  # a copy of the syscall argument registers
REGS_SIZE = 72
DROPS = REGS_OFF + REGS_SIZE
TMP = DROPS + 8  # GIO's loop state: in map memory the verifier keeps no ranges of
# it, so the unrolled iovec loop's paths merge instead of multiplying
SCRATCH_SIZE = TMP + 64  # TMP+48: the next mmsghdr, TMP+56: messages left

# calls map flags
CF_PATHS = 0x3F  # bit i: argument i is a path
CF_EXEC = 1 << 8
CF_EXECAT = 1 << 9  # execveat: argv/envp one argument later
CF_BUF = 1 << 10  # fd, buf, count
CF_IOV = 1 << 11  # fd, iov, iovcnt
CF_MSG = 1 << 12  # fd, msghdr
CF_WRITE = 1 << 13
CF_WRITEV = 1 << 14  # the USER record convention (calls.py)
CF_MMSG = 1 << 15  # fd, mmsghdr array (recvmmsg/sendmmsg: the call returns its length)

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
    from pydtrace.engines.ebpf.btf import vmlinux
    from pydtrace.engines.ebpf.pt_regs import syscall_regs
    from pydtrace.probes.syscalls import table

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


class Gen:
    """One program: r6 = context, r7 = scratch, r8/r9 program-specific."""

    def __init__(self, boot_ns: int) -> None:
        self.a = Assembler()
        self.boot_ns = boot_ns
        self.out = self.a.new_label("out")

    def finish(self) -> Assembler:
        a = self.a
        a.place(self.out)
        a.movi(R0, 0)
        a.exit()
        return a

    def current_traced(self, held_ok: bool = False) -> None:
        """r0 = &traced[current tgid] or leave; stores pid_tgid at r10-16.
        held_ok=False also leaves for a held -c child (state 2)."""
        a = self.a
        a.call("get_current_pid_tgid")
        a.stx(8, R10, -16, R0)
        a.alu(">>", R0, imm=32)
        a.stx(4, R10, -4, R0)
        a.ld_map(R1, "traced")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-4)
        a.call("map_lookup_elem")
        a.jmp("==", R0, self.out, imm=0)
        if not held_ok:
            a.ldx(4, R1, R0, 0)
            a.jmp("==", R1, self.out, imm=2)

    def scratch(self) -> None:
        a = self.a
        a.st(4, R10, -8, 0)
        a.ld_map(R1, "scratch")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-8)
        a.call("map_lookup_elem")
        a.jmp("==", R0, self.out, imm=0)
        a.mov(R7, R0)

    def stamp(self) -> None:
        """cpu, time; lost = 0 (pid/tid/comm by header_current or the caller)."""
        a = self.a
        a.call("get_smp_processor_id")
        a.stx(4, R7, 12, R0)
        a.call("ktime_get_ns")
        a.ld_imm64(R1, self.boot_ns)
        a.alu("+", R0, R1)
        a.mov(R1, R0)
        a.alu("/", R1, imm=1_000_000_000)
        a.stx(8, R7, 16, R1)
        a.alu("*", R1, imm=1_000_000_000)
        a.alu("-", R0, R1)
        a.stx(8, R7, 24, R0)
        a.st(8, R7, 48, 0)

    def header_current(self) -> None:
        """The record's header for the current thread (pid_tgid at r10-16)."""
        a = self.a
        a.ldx(8, R1, R10, -16)
        a.stx(4, R7, 8, R1)
        a.alu(">>", R1, imm=32)
        a.stx(4, R7, 4, R1)
        self.stamp()
        a.mov(R1, R7)
        a.alu("+", R1, imm=32)
        a.movi(R2, 16)
        a.call("get_current_comm")

    def output(self, rtype: int, length: int | None = None, reg: int | None = None) -> None:
        """Send the record in scratch: payload `length` bytes, or `reg` (bounded) bytes."""
        a = self.a
        a.st(4, R7, 0, rtype)
        if reg is None:
            a.st(8, R7, 56, length or 0)
        else:
            a.stx(8, R7, 56, reg)
        nod, ok, end = a.new_label("nod"), a.new_label("ok"), a.new_label("end")
        a.ldx(8, R1, R7, DROPS)
        a.jmp("==", R1, nod, imm=0)
        a.stx(8, R7, 48, R1)
        a.st(4, R7, 0, rtype | F.DROP)
        a.place(nod)
        a.ld_map(R1, "ring")
        a.mov(R2, R7)
        if reg is None:
            a.movi(R3, PAY + (length or 0))
        else:
            a.mov(R3, reg)
            a.alu("+", R3, imm=PAY)
        a.movi(R4, 0)
        a.call("ringbuf_output")
        a.st(8, R7, 48, 0)
        a.jmp("==", R0, ok, imm=0)
        a.ldx(8, R1, R7, DROPS)
        a.alu("+", R1, imm=1)
        a.stx(8, R7, DROPS, R1)
        a.ja(end)
        a.place(ok)
        a.st(8, R7, DROPS, 0)
        a.place(end)

    def clamp(self, reg: int, limit: int, zero_to: str) -> None:
        """reg = min(reg, limit) unsigned; jump to zero_to when it is 0."""
        a = self.a
        below = a.new_label("le")
        a.jmp("==", reg, zero_to, imm=0)
        a.jmp("<=", reg, below, imm=limit)
        a.movi(reg, limit)
        a.place(below)

    def call_flags(self, code_reg: int) -> None:
        """r0 = calls[code] flags (0 when out of range); clobbers r1-r5."""
        a = self.a
        zero, done = a.new_label("nf"), a.new_label("f")
        a.stx(4, R10, -8, code_reg)
        a.ld_map(R1, "calls")
        a.mov(R2, R10)
        a.alu("+", R2, imm=-8)
        a.call("map_lookup_elem")
        a.jmp("==", R0, zero, imm=0)
        a.ldx(8, R0, R0, 0)
        a.ja(done)
        a.place(zero)
        a.movi(R0, 0)
        a.place(done)


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


def stru(g: Gen, when: int, at_entry: bool) -> None:
    """A STRU record when the `structs` map says this call passes (ST_IN, at
    entry) or gets back (ST_OUT, at a successful exit) a structure."""
    a = g.a
    skip = a.new_label("st")
    if at_entry:
        a.ldx(4, R1, R7, ARGS_OFF)
    else:
        a.jmp("s<", R6, skip, imm=0)
        a.ldx(4, R1, R8, 0)
    a.stx(4, R10, -8, R1)
    a.ld_map(R1, "structs")
    a.mov(R2, R10)
    a.alu("+", R2, imm=-8)
    a.call("map_lookup_elem")
    a.jmp("==", R0, skip, imm=0)
    a.mov(R9, R0)
    a.ldx(1, R1, R9, 0)
    a.jmp("!=", R1, skip, imm=when)

    def arg(dst: int, at: int) -> None:  # dst = args[byte at r9 + at]
        a.ldx(1, R1, R9, at)
        a.alu("&", R1, imm=7)
        a.alu("<<", R1, imm=3)
        if at_entry:
            a.mov(R2, R7)
            a.alu("+", R2, imm=ARGS_OFF)
        else:
            a.mov(R2, R8)
        a.alu("+", R2, R1)
        a.ldx(8, dst, R2, 8)

    arg(R3, 1)
    a.jmp("==", R3, skip, imm=0)
    a.stx(8, R7, TMP, R3)
    kinds = [a.new_label("sk") for _ in range(3)]
    have = a.new_label("sh")
    a.ldx(1, R1, R9, 2)
    for k, lab in enumerate(kinds, 1):
        a.jmp("==", R1, lab, imm=k)
    a.ldx(4, R4, R9, 4)  # a fixed size
    a.ja(have)
    a.place(kinds[0])  # an argument
    arg(R4, 3)
    a.ja(have)
    a.place(kinds[1])  # the u32 an argument points to (socklen_t *)
    arg(R3, 3)
    a.jmp("==", R3, skip, imm=0)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-32)
    a.movi(R2, 4)
    a.call("probe_read_user")
    a.jmp("!=", R0, skip, imm=0)
    a.ldx(4, R4, R10, -32)
    a.ja(have)
    a.place(kinds[2])  # argument-many elements of a fixed size
    arg(R4, 3)
    a.alu("&", R4, imm=1023)
    a.ldx(4, R1, R9, 4)
    a.alu("*", R4, R1)
    a.place(have)
    a.alu("<<", R4, imm=32)
    a.alu(">>", R4, imm=32)
    g.clamp(R4, STRUCT_MAX, skip)
    a.stx(8, R7, TMP + 8, R4)
    for k in (0, 8):  # the name (NUL padded)
        a.ldx(8, R1, R9, 8 + k)
        a.stx(8, R7, PAY + k, R1)
    a.ldx(4, R1, R9, 24)
    a.alu("&", R1, imm=31)
    a.stx(8, R7, TMP + 16, R1)
    a.alu("+", R1, R7)
    a.alu("+", R1, imm=PAY)
    a.ldx(8, R2, R7, TMP + 8)
    g.clamp(R2, STRUCT_MAX, skip)
    a.ldx(8, R3, R7, TMP)
    a.call("probe_read_user")
    a.jmp("!=", R0, skip, imm=0)
    a.ldx(8, R9, R7, TMP + 8)
    g.clamp(R9, STRUCT_MAX, skip)
    a.ldx(8, R1, R7, TMP + 16)
    a.alu("&", R1, imm=31)
    a.alu("+", R9, R1)
    g.output(F.STRUCT, reg=R9)
    a.place(skip)


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


def late_paths(g: Gen) -> None:
    """NAMI records for the paths sys_enter could not read (r8 = saved)."""
    a = g.a
    a.ldx(8, R1, R8, PENDING - ARGS_OFF)
    a.stx(8, R10, -56, R1)
    for i in range(6):
        skip = a.new_label("lp")
        a.ldx(8, R1, R10, -56)
        a.alu("&", R1, imm=1 << i)
        a.jmp("==", R1, skip, imm=0)
        a.ldx(8, R3, R8, 8 + 8 * i)
        a.mov(R1, R7)
        a.alu("+", R1, imm=PAY)
        a.movi(R2, PATH_MAX_LEN)
        a.call("probe_read_user_str")
        a.jmp("s<=", R0, skip, imm=0)
        a.mov(R9, R0)
        a.alu("-", R9, imm=1)
        a.jmp(">", R9, skip, imm=PATH_MAX_LEN)
        g.output(F.NAMEI, reg=R9)
        a.place(skip)


def strings(g: Gen, rtype: int) -> None:
    """Copy the NULL-ended user array of strings at r9 into the payload, output it."""
    a = g.a
    done, empty = a.new_label("sd"), a.new_label("se")
    a.movi(R8, 0)
    a.jmp("==", R9, empty, imm=0)
    for _ in range(STR_COUNT):
        a.mov(R1, R10)
        a.alu("+", R1, imm=-32)
        a.movi(R2, 8)
        a.mov(R3, R9)
        a.call("probe_read_user")
        a.jmp("!=", R0, done, imm=0)
        a.ldx(8, R3, R10, -32)
        a.jmp("==", R3, done, imm=0)
        a.jmp(">", R8, done, imm=STR_AREA)
        a.mov(R1, R7)
        a.alu("+", R1, imm=PAY)
        a.alu("+", R1, R8)
        a.movi(R2, STR_MAX)
        a.call("probe_read_user_str")
        a.jmp("s<=", R0, done, imm=0)
        a.jmp(">", R0, done, imm=STR_MAX)
        a.alu("+", R8, R0)
        a.alu("+", R9, imm=8)
    a.place(done)
    a.place(empty)
    g.output(rtype, reg=R8)


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


def _chunks(g: Gen, pages: int, rem_slot: int, ptr_slot: int, left_slot: int | None) -> None:
    """Output GIO records of up to 4096 bytes from the user pointer at
    scratch[ptr_slot] while scratch[rem_slot] bytes remain (also taken from
    scratch[left_slot], the call's remaining budget, when given)."""
    a = g.a
    end = a.new_label("ce")
    for _ in range(pages):
        a.ldx(8, R9, R7, rem_slot)
        g.clamp(R9, F.GIO_CHUNK, end)
        a.mov(R1, R7)
        a.alu("+", R1, imm=PAY + 8)
        a.mov(R2, R9)
        a.ldx(8, R3, R7, ptr_slot)
        a.call("probe_read_user")
        a.jmp("!=", R0, end, imm=0)
        a.alu("+", R9, imm=8)
        g.output(F.GENIO, reg=R9)
        a.alu("-", R9, imm=8)
        for slot in (rem_slot, left_slot):
            if slot is not None:
                a.ldx(8, R1, R7, slot)
                a.alu("-", R1, R9)
                a.stx(8, R7, slot, R1)
        a.ldx(8, R1, R7, ptr_slot)
        a.alu("+", R1, R9)
        a.stx(8, R7, ptr_slot, R1)
    a.place(end)


def gio(g: Gen, maxdata: int) -> None:
    """GIO records for a data call that moved r6 > 0 bytes (flags at r10-24)."""
    a = g.a
    skip, iov, msg, run = a.new_label("gs"), a.new_label("gi"), a.new_label("gm"), a.new_label("gr")
    mmsg = a.new_label("gmm")
    a.jmp("s<=", R6, skip, imm=0)
    a.ldx(8, R1, R8, 8)  # fd, direction
    a.stx(4, R7, PAY, R1)
    a.ldx(8, R1, R10, -24)
    a.alu(">>", R1, imm=13)
    a.alu("&", R1, imm=1)
    a.stx(4, R7, PAY + 4, R1)
    a.mov(R1, R6)  # the budget: min(ret, maxdata) at r10-40
    limit = a.new_label("gl")
    a.jmp("<=", R1, limit, imm=maxdata)
    a.movi(R1, maxdata)
    a.place(limit)
    a.stx(8, R7, TMP + 32, R1)
    a.ldx(8, R1, R10, -24)
    a.alu("&", R1, imm=CF_IOV)
    a.jmp("!=", R1, iov, imm=0)
    a.ldx(8, R1, R10, -24)
    a.alu("&", R1, imm=CF_MSG)
    a.jmp("!=", R1, msg, imm=0)
    a.ldx(8, R1, R10, -24)
    a.alu("&", R1, imm=CF_MMSG)
    a.jmp("!=", R1, mmsg, imm=0)
    a.ldx(8, R1, R10, -24)
    a.alu("&", R1, imm=CF_BUF)
    a.jmp("==", R1, skip, imm=0)
    a.ldx(8, R1, R8, 16)
    a.stx(8, R7, TMP + 24, R1)
    _chunks(g, min(GIO_PAGES, -(-maxdata // F.GIO_CHUNK)), TMP + 32, TMP + 24, None)
    a.ja(skip)
    a.place(msg)  # struct msghdr: msg_iov at 16, msg_iovlen at 24
    a.ldx(8, R3, R8, 16)
    _read_msghdr_iov(g, skip)
    a.ja(run)
    a.place(iov)
    a.ldx(8, R1, R8, 16)
    a.stx(8, R7, TMP + 16, R1)  # the iovec array
    a.ldx(8, R1, R8, 24)
    a.stx(8, R7, TMP + 40, R1)  # elements left
    a.place(run)
    pages = min(IOV_PAGES, -(-maxdata // F.GIO_CHUNK))
    _iov_elements(g, pages, skip)
    a.ja(skip)
    # recvmmsg/sendmmsg: r6 messages; each has its msghdr, then its msg_len
    # (u32 at 56 of the 64-byte mmsghdr), the bytes it moved: its own budget
    a.place(mmsg)
    a.ldx(8, R1, R8, 16)
    a.stx(8, R7, TMP + 48, R1)
    a.stx(8, R7, TMP + 56, R6)
    for _ in range(MMSG_MAX):
        done = a.new_label("mm")
        a.ldx(8, R1, R7, TMP + 56)
        a.jmp("==", R1, skip, imm=0)
        a.alu("-", R1, imm=1)
        a.stx(8, R7, TMP + 56, R1)
        a.mov(R1, R7)  # msg_len (and the padding after it) first: TMP is reused below
        a.alu("+", R1, imm=TMP)
        a.movi(R2, 8)
        a.ldx(8, R3, R7, TMP + 48)
        a.alu("+", R3, imm=56)
        a.call("probe_read_user")
        a.jmp("!=", R0, skip, imm=0)
        a.ldx(4, R1, R7, TMP)
        ok = a.new_label("ml")
        a.jmp("<=", R1, ok, imm=maxdata)
        a.movi(R1, maxdata)
        a.place(ok)
        a.stx(8, R7, TMP + 32, R1)
        a.ldx(8, R3, R7, TMP + 48)  # this message's msghdr; then on to the next
        a.mov(R1, R3)
        a.alu("+", R1, imm=64)
        a.stx(8, R7, TMP + 48, R1)
        _read_msghdr_iov(g, skip)
        _iov_elements(g, pages, done)
        a.place(done)
    a.place(skip)


def _read_msghdr_iov(g: Gen, fail: str) -> None:
    """The msg_iov and msg_iovlen of the struct msghdr at user address r3
    into TMP+16 (the iovec array) and TMP+40 (elements left)."""
    a = g.a
    a.mov(R1, R7)
    a.alu("+", R1, imm=TMP)
    a.movi(R2, 16)
    a.alu("+", R3, imm=16)
    a.call("probe_read_user")
    a.jmp("!=", R0, fail, imm=0)
    a.ldx(8, R1, R7, TMP + 0)
    a.stx(8, R7, TMP + 16, R1)
    a.ldx(8, R1, R7, TMP + 8)
    a.stx(8, R7, TMP + 40, R1)


def _iov_elements(g: Gen, pages: int, done: str) -> None:
    """GIO records from the first IOV_MAX iovec elements at TMP+16 (TMP+40
    of them) while the budget at TMP+32 lasts; then on to `done`."""
    a = g.a
    for _ in range(IOV_MAX):
        a.ldx(8, R1, R7, TMP + 40)
        a.jmp("==", R1, done, imm=0)
        a.alu("-", R1, imm=1)
        a.stx(8, R7, TMP + 40, R1)
        a.ldx(8, R1, R7, TMP + 32)
        a.jmp("==", R1, done, imm=0)
        a.mov(R1, R7)
        a.alu("+", R1, imm=TMP)  # iov_base, iov_len
        a.movi(R2, 16)
        a.ldx(8, R3, R7, TMP + 16)
        a.call("probe_read_user")
        a.jmp("!=", R0, done, imm=0)
        a.ldx(8, R1, R7, TMP + 16)
        a.alu("+", R1, imm=16)
        a.stx(8, R7, TMP + 16, R1)
        a.ldx(8, R1, R7, TMP + 8)  # this element's share: min(iov_len, budget)
        a.ldx(8, R2, R7, TMP + 32)
        le = a.new_label("ie")
        a.jmp("<=", R1, le, R2)
        a.mov(R1, R2)
        a.place(le)
        a.stx(8, R7, TMP + 8, R1)
        _chunks(g, pages, TMP + 8, TMP, TMP + 32)


def user(g: Gen) -> None:
    """A USER record for writev(-1, iov, 2) (calls.py's convention)."""
    a = g.a
    skip = a.new_label("us")
    a.ldx(8, R1, R10, -24)
    a.alu("&", R1, imm=CF_WRITEV)
    a.jmp("==", R1, skip, imm=0)
    a.ldx(4, R1, R8, 8)
    a.movi(R2, 0xFFFFFFFF)  # fd -1 as the s32 it is
    a.jmp("!=", R1, skip, R2)
    a.ldx(8, R1, R8, 24)
    a.jmp("!=", R1, skip, imm=2)
    a.mov(R1, R10)
    a.alu("+", R1, imm=-72)  # iov[0] at -72, iov[1] at -56
    a.movi(R2, 32)
    a.ldx(8, R3, R8, 16)
    a.call("probe_read_user")
    a.jmp("!=", R0, skip, imm=0)
    for k in range(0, USER_LABEL, 4):
        a.st(4, R7, PAY + k, 0)
    a.ldx(8, R2, R10, -64)
    g.clamp(R2, USER_LABEL, "ud")
    a.mov(R1, R7)
    a.alu("+", R1, imm=PAY)
    a.ldx(8, R3, R10, -72)
    a.call("probe_read_user")
    a.place("ud")
    a.ldx(8, R9, R10, -48)
    nodata = a.new_label("un")
    from pydtrace.ktrace.calls import USER_MAX

    g.clamp(R9, USER_MAX, nodata)
    a.mov(R1, R7)
    a.alu("+", R1, imm=PAY + USER_LABEL)
    a.mov(R2, R9)
    a.ldx(8, R3, R10, -56)
    a.call("probe_read_user")
    a.jmp("==", R0, "usend", imm=0)
    a.place(nodata)
    a.movi(R9, 0)
    a.place("usend")
    a.alu("+", R9, imm=USER_LABEL)
    g.output(F.USER, reg=R9)
    a.place(skip)


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
    dead, EXIT with the wait status and stop tracing the tgid."""
    g = Gen(boot_ns)
    a = g.a
    g.current_traced(held_ok=True)
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
    for a traced next."""
    g = Gen(boot_ns)
    a = g.a
    a.mov(R6, R1)
    g.scratch()
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
            sleep, put = a.new_label("sl"), a.new_label("pu")
            a.ldx(8, R1, R6, 24)
            a.alu("&", R1, imm=0xFFFF)
            a.jmp("!=", R1, sleep, imm=0)
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
