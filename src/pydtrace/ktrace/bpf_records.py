"""Building trace-file records in the eBPF ktrace recorder's BPF programs:
the per-CPU scratch value's layout, the calls map's flags, the size limits,
and Gen, one program being assembled with the steps every program shares
(is the current process traced, the scratch value, the record header, sending
a record to the ring buffer).

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

from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R7, R10, Assembler
from pydtrace.ktrace import format as F

# limits (see above)
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

# scratch layout: the record's 64-byte header at 0, then its payload
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
# TMP+48: the next mmsghdr, TMP+56: messages left
# sched_switch's chain on this CPU: the last next task, the switch-ins of traced
# threads the kernel did not report (a prev that is not that task: the thread
# came on while a task hidden from tracing ran), and this firing's "broken" flag
CSW_LAST = TMP + 64
CSW_UNSEEN = CSW_LAST + 8
CSW_BROKEN = CSW_UNSEEN + 8
SCRATCH_SIZE = CSW_BROKEN + 8

# calls map flags; bits 0-5: argument i is a path
CF_EXEC = 1 << 8
CF_EXECAT = 1 << 9  # execveat: argv/envp one argument later
CF_BUF = 1 << 10  # fd, buf, count
CF_IOV = 1 << 11  # fd, iov, iovcnt
CF_MSG = 1 << 12  # fd, msghdr
CF_WRITE = 1 << 13
CF_WRITEV = 1 << 14  # the USER record convention (calls.py)
CF_MMSG = 1 << 15  # fd, mmsghdr array (recvmmsg/sendmmsg: the call returns its length)


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
