"""The syscall records with a variable payload, as code added to the
sys_enter and sys_exit programs (bpf_programs.py): STRU (a structure passed
or returned), NAMI for the paths sys_enter could not read, exec ARGS/ENV
strings, GIO data (plain buffers, iovecs, msghdrs, mmsghdrs) and USER.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R6, R7, R8, R9, R10
from pydtrace.ktrace import format as F
from pydtrace.ktrace.bpf_records import (
    ARGS_OFF,
    CF_BUF,
    CF_IOV,
    CF_MMSG,
    CF_MSG,
    CF_WRITEV,
    GIO_PAGES,
    IOV_MAX,
    IOV_PAGES,
    MMSG_MAX,
    PATH_MAX_LEN,
    PAY,
    PENDING,
    STR_AREA,
    STR_COUNT,
    STR_MAX,
    STRUCT_MAX,
    TMP,
    USER_LABEL,
    Gen,
)


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
