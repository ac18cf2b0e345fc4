"""Integer subroutines: byte order (htons, htonl, htonll and the ntoh*
names of the same functions), device numbers (getmajor, getminor), network
addresses formatted as strings (inet_ntoa, inet_ntoa6, inet_ntop, link_ntop),
progenyof and rand. Each is a function (compiler, call) -> Value that
cg_subroutines.SUBROUTINES lists.
"""

from __future__ import annotations

from pydtrace.consume.records import ILLOP
from pydtrace.engines.ebpf.cg_context import CompilerBase, Value, task_path
from pydtrace.engines.ebpf.insn import ALU, ALU_OPS, R0, R1, R2, R3, R4, R5, R9, R10, Insn, X
from pydtrace.lang import ast
from pydtrace.lang import types as T


# --- byte order, device numbers ------------------------------------------------------
def _swap(cg: CompilerBase, e: ast.Call, size: int) -> Value:
    """The low size bytes of the value in reversed order (BPF_END to big
    endian: this is a little-endian machine), zero-extended."""
    cg.check_nargs(e, 1, 1)
    v = cg.expr(e.args[0])
    cg.a.emit(Insn(ALU | ALU_OPS["end"] | X, v.reg, 0, 0, 8 * size))
    v.ctype = getattr(e, "ctype", None) or T.ULONG
    return v


def htons(cg: CompilerBase, e: ast.Call) -> Value:
    return _swap(cg, e, 2)


def htonl(cg: CompilerBase, e: ast.Call) -> Value:
    return _swap(cg, e, 4)


def htonll(cg: CompilerBase, e: ast.Call) -> Value:
    return _swap(cg, e, 8)


def _device_part(cg: CompilerBase, e: ast.Call, shift: int, mask: int) -> Value:
    cg.check_nargs(e, 1, 1)
    v = cg.expr(e.args[0])
    if shift:
        cg.a.alu(">>", v.reg, imm=shift)
    cg.a.alu("&", v.reg, imm=mask)
    v.ctype = getattr(e, "ctype", None) or T.ULONG
    return v


def getmajor(cg: CompilerBase, e: ast.Call) -> Value:
    return _device_part(cg, e, 20, 0xFFF)


def getminor(cg: CompilerBase, e: ast.Call) -> Value:
    return _device_part(cg, e, 0, 0xFFFFF)


# --- network addresses: inet_ntoa, link_ntop -------------------------------------
def _addr_bytes(cg: CompilerBase) -> int:
    """A frame area for the bytes of an address being formatted (20 + n)."""
    off = getattr(cg, "addr_off", None)
    if off is None:
        off = cg.addr_off = cg.frame.take(32)
    return off


def _put_char(cg: CompilerBase, out: int, pos: int, ch: int, imm: bool = False) -> None:
    """out[pos++] = ch (a register, or a constant when imm) while pos < strsize; clobbers r5."""
    a = cg.a
    skip = a.new_label("pc_full")
    a.jmp(">=", pos, skip, imm=cg.strsize)
    a.mov(R5, out)
    a.alu("+", R5, src=pos)
    if imm:
        a.st(1, R5, 0, ch)
    else:
        a.stx(1, R5, 0, ch)
    a.alu("+", pos, imm=1)
    a.place(skip)


def _dotted(cg: CompilerBase, out: int, bo: int) -> None:
    """The 4 bytes at frame offset bo as dotted decimal, appended at out[r0]."""
    a = cg.a
    for k in range(4):
        if k:
            _put_char(cg, out, R0, ord("."), imm=True)
        a.ldx(1, R4, R9, bo + k)
        for div, label in ((100, "ip_h"), (10, "ip_t")):
            skip = a.new_label(label)
            a.jmp("<", R4, skip, imm=div)
            a.mov(R3, R4)
            a.alu("/", R3, imm=div)
            a.alu("%", R3, imm=10)
            a.alu("+", R3, imm=ord("0"))
            _put_char(cg, out, R0, R3)
            a.place(skip)
        a.mov(R3, R4)
        a.alu("%", R3, imm=10)
        a.alu("+", R3, imm=ord("0"))
        _put_char(cg, out, R0, R3)


def inet_ntoa(cg: CompilerBase, e: ast.Call) -> Value:
    """The 4 bytes at the address as dotted decimal (unreadable: invalid address)."""
    cg.check_nargs(e, 1, 1)
    bo = _addr_bytes(cg)
    p = cg.expr(e.args[0])
    cg.read_block(cg.frame_dst(bo), p, 4)
    cg.free(p)
    v, _ = cg.new_string()
    cg.a.movi(R0, 0)
    _dotted(cg, v.reg, bo)
    return v


def link_ntop(cg: CompilerBase, e: ast.Call) -> Value:
    """link_ntop(hwtype, addr): ARPHRD_ETHER (1) 6 bytes, ARPHRD_INFINIBAND (32)
    20, as colon-separated hex; another type is an illegal operation."""
    cg.check_nargs(e, 2, 2)
    a = cg.a
    bo = _addr_bytes(cg)
    t = cg.expr(e.args[0])
    p = cg.expr(e.args[1])
    cg.reload(t, p)
    eth, ib, done = a.new_label("ln_eth"), a.new_label("ln_ib"), a.new_label("ln_read")
    a.jmp("==", t.reg, eth, imm=1)
    a.jmp("==", t.reg, ib, imm=32)
    cg.fault(ILLOP, t.reg)
    for label, n in ((eth, 6), (ib, 20)):
        a.place(label)
        cg.read_block(cg.frame_dst(bo), p, n)
        a.st(8, R9, bo + 24, n)
        if n == 6:
            a.ja(done)
    a.place(done)
    cg.free(p)
    cg.free(t)
    v, _ = cg.new_string()
    a.ldx(8, R2, R9, bo + 24)
    end = a.new_label("ln_end")
    for i in range(20):
        if i:
            a.jmp("<=", R2, end, imm=i)
        for pos, shift in ((3 * i, 4), (3 * i + 1, 0)):
            if pos >= cg.strsize:
                continue
            a.ldx(1, R4, R9, bo + i)
            if shift:
                a.alu(">>", R4, imm=shift)
            a.alu("&", R4, imm=0xF)
            small = a.new_label("ln_dig")
            a.jmp("<", R4, small, imm=10)
            a.alu("+", R4, imm=ord("a") - 10 - ord("0"))
            a.place(small)
            a.alu("+", R4, imm=ord("0"))
            a.stx(1, v.reg, pos, R4)
        if i and 3 * i - 1 < cg.strsize:
            a.st(1, v.reg, 3 * i - 1, ord(":"))
    a.place(end)
    return v


# What the bytes of an address being formatted hold (at frame offset bo + 28)
_KIND6, _KIND_COMPAT, _KIND_MAPPED, _KIND4 = 0, 1, 2, 3


def _classify6(cg: CompilerBase, bo: int) -> None:
    """Store the kind of the IPv6 address at bo: IPv4-mapped (::ffff:a.b.c.d),
    IPv4-compatible, or plain. As dtrace (and legacy DTrace): the first five
    words zero, then 0xffff is mapped; six zero words and a non-zero one, or
    seven and a last one above 1 (:: and ::1 are not), is compatible."""
    a = cg.a
    kind = bo + 28
    plain, compat, done = (a.new_label(x) for x in ("k6_plain", "k6_compat", "k6_done"))
    a.st(4, R9, kind, _KIND6)
    a.ldx(8, R1, R9, bo)
    a.jmp("!=", R1, plain, imm=0)
    a.ldx(2, R1, R9, bo + 8)
    a.jmp("!=", R1, plain, imm=0)
    a.ldx(2, R1, R9, bo + 10)
    mapped = a.new_label("k6_mapped")
    a.jmp("==", R1, mapped, imm=0xFFFF)
    a.jmp("!=", R1, plain, imm=0)
    a.ldx(2, R1, R9, bo + 12)
    a.jmp("!=", R1, compat, imm=0)
    a.ldx(2, R1, R9, bo + 14)
    a.emit(Insn(ALU | ALU_OPS["end"] | X, R1, 0, 0, 16))
    a.jmp(">", R1, compat, imm=1)
    a.ja(plain)
    a.place(mapped)
    a.st(4, R9, kind, _KIND_MAPPED)
    a.ja(done)
    a.place(compat)
    a.st(4, R9, kind, _KIND_COMPAT)
    a.place(plain)
    a.place(done)


def _zero_run(cg: CompilerBase, bo: int) -> None:
    """Store the start (bo + 16) and length (bo + 20) of the first longest run
    of two or more zero words of the IPv6 address at bo (start 99: none)."""
    a = cg.a

    # r1, r2 = start, length of the current zero run; r3, r4 = the longest
    for r in (R1, R2, R3, R4):
        a.movi(r, 0)
    for i in range(8):
        _word(cg, R5, bo, i)
        nz, nxt = a.new_label("z6_nz"), a.new_label("z6_next")
        a.jmp("!=", R5, nz, imm=0)
        started = a.new_label("z6_in")
        a.jmp("!=", R2, started, imm=0)
        a.movi(R1, i)
        a.place(started)
        a.alu("+", R2, imm=1)
        a.jmp("<=", R2, nxt, src=R4)
        a.mov(R3, R1)
        a.mov(R4, R2)
        a.ja(nxt)
        a.place(nz)
        a.movi(R2, 0)
        a.place(nxt)
    run = a.new_label("z6_run")
    a.jmp(">=", R4, run, imm=2)
    a.movi(R3, 99)  # no run
    a.place(run)
    a.stx(4, R9, bo + 16, R3)
    a.stx(4, R9, bo + 20, R4)


def _word(cg: CompilerBase, reg: int, bo: int, i: int) -> None:
    """reg = word i of the IPv6 address at bo, in host order."""
    cg.a.ldx(2, reg, R9, bo + 2 * i)
    cg.a.emit(Insn(ALU | ALU_OPS["end"] | X, reg, 0, 0, 16))


def _format6(cg: CompilerBase, out: int, bo: int, strict: bool) -> None:
    """Write the address at bo (its kind and zero run stored) at out[r0]: IPv4
    in IPv6 as dotted decimal (prefixed by :: or ::ffff: when strict), any
    other as 8 hex groups without leading zeros, the zero run as "::"."""
    a = cg.a
    v6, end = a.new_label("f6_v6"), a.new_label("f6_end")
    a.ldx(4, R1, R9, bo + 28)
    a.jmp("==", R1, v6, imm=_KIND6)
    if strict:
        dotted = a.new_label("f6_dotted")
        a.jmp("==", R1, dotted, imm=_KIND4)
        for ch in "::":
            _put_char(cg, out, R0, ord(ch), imm=True)
        a.ldx(4, R1, R9, bo + 28)
        a.jmp("!=", R1, dotted, imm=_KIND_MAPPED)
        for ch in "ffff:":
            _put_char(cg, out, R0, ord(ch), imm=True)
        a.place(dotted)
    a.ldx(4, R1, R9, bo + 28)
    four = a.new_label("f6_four")
    a.jmp("==", R1, four, imm=_KIND4)
    _dotted(cg, out, bo + 12)
    a.ja(end)
    a.place(four)
    _dotted(cg, out, bo)
    a.ja(end)
    a.place(v6)
    bs, bl, sep = bo + 16, bo + 20, bo + 24
    a.st(4, R9, sep, 0)
    for i in range(8):
        a.ldx(4, R1, R9, bs)
        a.ldx(4, R2, R9, bl)
        outside, nxt = a.new_label("g6_out"), a.new_label("g6_next")
        a.jmp(">", R1, outside, imm=i)
        a.mov(R3, R1)
        a.alu("+", R3, src=R2)
        a.jmp("<=", R3, outside, imm=i)
        a.jmp("!=", R1, nxt, imm=i)  # inside the run: "::" at its start
        _put_char(cg, out, R0, ord(":"), imm=True)
        _put_char(cg, out, R0, ord(":"), imm=True)
        a.st(4, R9, sep, 0)
        a.ja(nxt)
        a.place(outside)
        nosep = a.new_label("g6_nosep")
        a.ldx(4, R3, R9, sep)
        a.jmp("==", R3, nosep, imm=0)
        _put_char(cg, out, R0, ord(":"), imm=True)
        a.place(nosep)
        _word(cg, R4, bo, i)
        for shift in (12, 8, 4, 0):
            skip = a.new_label("g6_lead")
            if shift:
                a.jmp("<", R4, skip, imm=1 << shift)
            a.mov(R3, R4)
            a.alu(">>", R3, imm=shift)
            a.alu("&", R3, imm=0xF)
            small = a.new_label("g6_dig")
            a.jmp("<", R3, small, imm=10)
            a.alu("+", R3, imm=ord("a") - 10 - ord("0"))
            a.place(small)
            a.alu("+", R3, imm=ord("0"))
            _put_char(cg, out, R0, R3)
            a.place(skip)
        a.st(4, R9, sep, 1)
        a.place(nxt)
    a.place(end)


def _read6(cg: CompilerBase, bo: int, p: Value) -> None:
    """Read the 16 bytes of an IPv6 address to bo; store its kind and zero run."""
    cg.read_block(cg.frame_dst(bo), p, 16)
    _classify6(cg, bo)
    _zero_run(cg, bo)


def inet_ntoa6(cg: CompilerBase, e: ast.Call) -> Value:
    """inet_ntoa6(addr[, strict]): the 16 bytes at addr as dtrace prints an
    IPv6 address; strict (a constant, non-zero) keeps the IPv6 prefix of an
    IPv4 address in IPv6."""
    cg.check_nargs(e, 1, 2)
    bo = _addr_bytes(cg)
    p = cg.expr(e.args[0])
    cg.reload(p)
    _read6(cg, bo, p)
    cg.free(p)
    v, _ = cg.new_string()
    cg.a.movi(R0, 0)
    _format6(cg, v.reg, bo, bool(getattr(e, "strict", False)))
    return v


def inet_ntop(cg: CompilerBase, e: ast.Call) -> Value:
    """inet_ntop(af, addr): AF_INET6 (10) is inet_ntoa6(addr, 1), any other
    family inet_ntoa(addr), as dtrace compiles it."""
    cg.check_nargs(e, 2, 2)
    a = cg.a
    bo = _addr_bytes(cg)
    af = cg.expr(e.args[0])
    p = cg.expr(e.args[1])
    cg.reload(af, p)
    six, read = a.new_label("nt_six"), a.new_label("nt_read")
    a.jmp("==", af.reg, six, imm=10)
    cg.read_block(cg.frame_dst(bo), p, 4)
    a.st(4, R9, bo + 28, _KIND4)
    a.ja(read)
    a.place(six)
    _read6(cg, bo, p)
    a.place(read)
    cg.free(p)
    cg.free(af)
    v, _ = cg.new_string()
    a.movi(R0, 0)
    _format6(cg, v.reg, bo, True)
    return v


# --- processes and random numbers ---------------------------------------------------
def progenyof(cg: CompilerBase, e: ast.Call) -> Value:
    """1 if the current process is pid or one of its descendants: walk
    task->real_parent (at most 64 levels) comparing tgids."""
    a = cg.a
    parent, tgid = task_path("real_parent", "tgid")
    want = cg.expr(e.args[0])
    cg.wrap(want.reg, T.INT)
    loop, yes, no, end = (a.new_label(x) for x in ("ploop", "pyes", "pno", "pend"))
    cg.current_task(R0)
    a.stx(8, R10, -24, R0)
    a.st(8, R10, -32, 0)
    a.place(loop)
    a.ldx(8, R3, R10, -24)
    a.jmp("==", R3, no, imm=0)
    cg.kernel_load(R0, R3, tgid.offset, 4)
    a.jmp("==", R0, no, imm=0)
    a.alu("<<", R0, imm=32)
    a.alu("s>>", R0, imm=32)
    a.jmp("==", R0, yes, src=want.reg)
    a.ldx(8, R3, R10, -24)
    cg.kernel_load(R0, R3, parent.offset, 8)
    a.stx(8, R10, -24, R0)
    a.ldx(8, R1, R10, -32)
    a.alu("+", R1, imm=1)
    a.stx(8, R10, -32, R1)
    a.jmp("<", R1, loop, imm=64)
    a.place(no)
    a.movi(want.reg, 0)
    a.ja(end)
    a.place(yes)
    a.movi(want.reg, 1)
    a.place(end)
    want.ctype = T.INT
    return want


def rand(cg: CompilerBase, e: ast.Call) -> Value:
    """rand(): 32 random bits (bpf_get_prandom_u32), as the user engine's."""
    v = cg.alloc(e.ctype)  # type: ignore[attr-defined]
    cg.a.call("get_prandom_u32")
    cg.a.mov(v.reg, R0)
    return v
