"""String subroutines: copyinstr, strlen, strjoin, substr, strchr, strrchr,
toupper, tolower, lltostr, strtok, basename, dirname, strstr, index, rindex,
cleanpath. Each is a function (compiler, call) -> Value that
cg_subroutines.SUBROUTINES lists; the string buffers they fill come from
cg_strings (StringsMixin.new_string).

Every loop runs over at most strsize bytes: its counter is compared with
the constant strsize before each access, which is the bound the verifier
needs for a variable offset into the frame (or globals) map value.
"""

from __future__ import annotations

from pydtrace.consume.records import BADADDR, ILLOP
from pydtrace.engines.ebpf.cg_context import CompilerBase, Value
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R5, R9
from pydtrace.lang import ast
from pydtrace.lang import types as T


def copyinstr(cg: CompilerBase, e: ast.Call) -> Value:
    """At most strsize (or len, when given and smaller) bytes of a user
    string; len < 1 gives ""."""
    cg.check_nargs(e, 1, 2)
    a = cg.a
    v, _ = cg.new_string(by_call=True)  # first: r0-r5 hold nothing yet
    if len(e.args) == 2:
        _args_to(cg, e, (R3, R2), strs=())
    else:
        _args_to(cg, e, (R3,), strs=())
        a.movi(R2, cg.strsize)
    cg.reload(v)  # (the arguments may have spilled it; r2 and r3 survive a reload)
    where = cg.alloc(T.ULONG)  # the address, kept for the fault (r3 dies in the call)
    a.mov(where.reg, R3)
    skip, capped = a.new_label("cis_none"), a.new_label("cis_cap")
    a.jmp("s<", R2, skip, imm=1)
    a.jmp("s<=", R2, capped, imm=cg.strsize)
    a.movi(R2, cg.strsize)
    a.place(capped)
    a.alu("+", R2, imm=1)  # the size counts the NUL
    a.mov(R1, v.reg)
    a.call("probe_read_user_str")
    # A string that cannot be read here (a bad address, or a page not yet
    # resident: a probe program cannot fault it in) is dtrace's fault, never an
    # empty string passed off as the data.
    a.jmp("s>=", R0, skip, imm=0)
    cg.fault(BADADDR, where.reg)
    a.place(skip)
    cg.free(where)
    return v


# --- helpers of the byte loops -----------------------------------------------------
def _args_to(
    cg: CompilerBase, e: ast.Call, regs: tuple[int, ...], strs: tuple[int, ...] = (0,)
) -> None:
    """Evaluate e's arguments and move them to the scratch registers regs
    (r1-r5); their temporaries are freed (a new_string() may reuse them).
    Arguments at positions strs must be strings; NULL there faults."""
    vals: list[Value] = []
    for i, arg in enumerate(e.args):
        t = arg.ctype  # type: ignore[attr-defined]
        read = i in strs and not _null_constant(arg) and (t.is_pointer() or t.is_int())
        if i in strs and not t.is_string() and not _null_constant(arg) and not read:
            raise cg.unsupported(f"{e.name}() of a {t}", e)
        v = cg.expr(arg)
        if read:  # a char * (or an address) passed as a string: the string there
            for w in vals:
                cg.reload(w, v, *[x for x in vals if x is not w])
            v = cg.string_at(v)
        elif i in strs and not t.is_string():
            # NULL: the verifier sees the constant and takes only the fault path
            ok = cg.a.new_label("snull")
            cg.a.jmp("!=", v.reg, ok, imm=0)
            cg.fault(BADADDR, v.reg)
            cg.a.place(ok)
        for w in vals:
            cg.reload(w, v, *[x for x in vals if x is not w])
        vals.append(v)
    for w in vals:
        cg.reload(w, *[x for x in vals if x is not w])
    for v, r in zip(vals, regs):
        cg.a.mov(r, v.reg)
    for v in vals:
        cg.free(v)


def _forget(cg: CompilerBase, reg: int) -> None:
    """Make the verifier forget reg's exact value (a round trip through the
    per-CPU frame), so the paths leaving a loop at each count merge into
    one instead of multiplying through the code that follows."""
    off = getattr(cg, "forget_off", None)
    if off is None:
        off = cg.forget_off = cg.frame.take(8)
    cg.a.stx(8, R9, off, reg)
    cg.a.ldx(8, reg, R9, off)


def _next_byte(cg: CompilerBase, byte: int, base: int, idx: int, done: str) -> None:
    """byte = base[idx], leaving the loop for done when idx reaches strsize
    (the verifier's bound) or the byte is the NUL; clobbers r5."""
    cg.loop_exit(">=", idx, done, imm=cg.strsize)
    a = cg.a
    a.mov(R5, base)
    a.alu("+", R5, src=idx)
    a.ldx(1, byte, R5, 0)
    cg.loop_exit("==", byte, done, imm=0)


def _put_byte(cg: CompilerBase, base: int, idx: int, byte: int) -> None:
    """base[idx] = byte; clobbers r5."""
    a = cg.a
    a.mov(R5, base)
    a.alu("+", R5, src=idx)
    a.stx(1, R5, 0, byte)


def _strlen_loop(cg: CompilerBase, out: int, src: int) -> None:
    """out = length of the string at src (at most strsize); clobbers r5."""
    a = cg.a
    loop, done = a.new_label("slen"), a.new_label("slen_done")
    a.movi(out, 0)
    a.place(loop)
    _next_byte(cg, R5, src, out, done)
    a.alu("+", out, imm=1)
    a.ja(loop)
    a.place(done)
    _forget(cg, out)


def _copy_loop(
    cg: CompilerBase, dst: int, src: int, start: int, limit: int | None, reset: bool = True
) -> None:
    """r0 = 0 (unless not reset); dst[r0++] = src[start++] while the
    byte is not NUL, limit-- > 0 (signed; None = no limit) and both indexes
    are < strsize; r0 ends as the first unwritten index. Clobbers r4, r5 and the limit register."""
    a = cg.a
    pos = R0
    loop, done = a.new_label("scopy"), a.new_label("scopy_done")
    if reset:
        a.movi(R0, 0)
    a.place(loop)
    cg.loop_exit(">=", pos, done, imm=cg.strsize)
    if limit is not None:
        cg.loop_exit("s<=", limit, done, imm=0)
    _next_byte(cg, R4, src, start, done)
    _put_byte(cg, dst, pos, R4)
    a.alu("+", pos, imm=1)
    a.alu("+", start, imm=1)
    if limit is not None:
        a.alu("-", limit, imm=1)
    a.ja(loop)
    a.place(done)


def strlen(cg: CompilerBase, e: ast.Call) -> Value:
    cg.check_nargs(e, 1, 1)
    _args_to(cg, e, (R1,))
    out = cg.alloc(getattr(e, "ctype", None) or T.LONG)
    _strlen_loop(cg, out.reg, R1)
    return out


def strjoin(cg: CompilerBase, e: ast.Call) -> Value:
    cg.check_nargs(e, 2, 2)
    _args_to(cg, e, (R1, R2), strs=(0, 1))
    v, _ = cg.new_string()
    a = cg.a
    a.movi(R3, 0)
    _copy_loop(cg, v.reg, R1, R3, None)
    _forget(cg, R0)
    a.movi(R3, 0)
    _copy_loop(cg, v.reg, R2, R3, None, reset=False)
    return v


def substr(cg: CompilerBase, e: ast.Call) -> Value:
    """s[index:...] with the user engine's rules for negative index/length."""
    cg.check_nargs(e, 2, 3)
    has_len = len(e.args) == 3
    _args_to(cg, e, (R1, R2, R3))
    v, _ = cg.new_string()
    a = cg.a
    empty, pos_ok = a.new_label("sub_empty"), a.new_label("sub_idx")
    _strlen_loop(cg, R0, R1)
    a.jmp("s>=", R2, pos_ok, imm=0)
    a.alu("+", R2, src=R0)
    a.jmp("s>=", R2, pos_ok, imm=0)
    if has_len:  # the part before the start counts against the length
        a.alu("+", R3, src=R2)
        a.jmp("s<=", R3, empty, imm=0)
    a.movi(R2, 0)
    a.place(pos_ok)
    a.jmp("s>=", R2, empty, src=R0)
    if not has_len:
        a.movi(R3, cg.strsize)
    else:
        nonneg = a.new_label("sub_len")
        a.jmp("s>=", R3, nonneg, imm=0)
        a.alu("+", R3, src=R0)  # end = n + length; count = end - index
        a.alu("-", R3, src=R2)
        a.place(nonneg)
    _copy_loop(cg, v.reg, R1, R2, R3)
    a.place(empty)
    return v


def _find_char(cg: CompilerBase, e: ast.Call, last: bool) -> Value:
    cg.check_nargs(e, 2, 2)
    _args_to(cg, e, (R1, R2))
    v, _ = cg.new_string()
    a = cg.a
    loop, done, found = a.new_label("chr"), a.new_label("chr_done"), a.new_label("chr_hit")
    a.alu("&", R2, imm=0xFF)
    a.movi(R3, -1)  # index of the match
    a.movi(R0, 0)
    a.place(loop)
    _next_byte(cg, R4, R1, R0, done)
    nxt = a.new_label("chr_next")
    a.jmp("!=", R4, nxt, src=R2)
    a.mov(R3, R0)
    if not last:
        a.ja(done)
    a.place(nxt)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(done)
    _forget(cg, R3)
    a.jmp("s<", R3, found, imm=0)  # no match: ""
    _copy_loop(cg, v.reg, R1, R3, None)
    a.place(found)
    return v


def strchr(cg: CompilerBase, e: ast.Call) -> Value:
    return _find_char(cg, e, last=False)


def strrchr(cg: CompilerBase, e: ast.Call) -> Value:
    return _find_char(cg, e, last=True)


def _case(cg: CompilerBase, e: ast.Call, lo: int, hi: int) -> Value:
    """Copy the string, adding 32 (tolower) or subtracting it (toupper) to
    bytes in [lo, hi]."""
    cg.check_nargs(e, 1, 1)
    _args_to(cg, e, (R1,))
    v, _ = cg.new_string()
    a = cg.a
    loop, done = a.new_label("case"), a.new_label("case_done")
    a.movi(R0, 0)
    a.place(loop)
    _next_byte(cg, R4, R1, R0, done)
    keep = a.new_label("case_keep")
    a.jmp("<", R4, keep, imm=lo)
    a.jmp(">", R4, keep, imm=hi)
    a.alu("^", R4, imm=0x20)
    a.place(keep)
    _put_byte(cg, v.reg, R0, R4)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(done)
    return v


def toupper(cg: CompilerBase, e: ast.Call) -> Value:
    return _case(cg, e, ord("a"), ord("z"))


def tolower(cg: CompilerBase, e: ast.Call) -> Value:
    return _case(cg, e, ord("A"), ord("Z"))


def lltostr(cg: CompilerBase, e: ast.Call) -> Value:
    """Digits of a 64-bit value: decimal is signed, other bases unsigned,
    with 0x / 0 prefixes for 16 / 8; a base outside 2..36 is ILLOP."""
    cg.check_nargs(e, 1, 2)
    a = cg.a
    if len(e.args) == 2:
        _args_to(cg, e, (R1, R2), strs=())
    else:
        _args_to(cg, e, (R1,), strs=())
        a.movi(R2, 10)
    v, _ = cg.new_string()
    ok, ten = a.new_label("ll_ok"), a.new_label("ll_dec")
    a.jmp("s<", R2, ok + "_bad", imm=2)
    a.jmp("s>", R2, ok + "_bad", imm=36)
    a.ja(ok)
    a.place(ok + "_bad")
    cg.fault(ILLOP, R2)
    a.place(ok)
    # r3 = prefix length (sign or 0x/0), written now; r1 = magnitude
    a.movi(R3, 0)
    a.jmp("!=", R2, ten, imm=10)
    pos = a.new_label("ll_pos")
    a.jmp("s>=", R1, pos, imm=0)
    a.alu("*", R1, imm=-1)  # INT64_MIN stays 2^63 unsigned
    a.st(1, v.reg, 0, ord("-"))
    a.movi(R3, 1)
    a.place(pos)
    a.place(ten)
    hexp, octp = a.new_label("ll_hex"), a.new_label("ll_oct")
    a.jmp("!=", R2, hexp, imm=16)
    a.st(1, v.reg, 0, ord("0"))
    if cg.strsize > 1:
        a.st(1, v.reg, 1, ord("x"))
    a.movi(R3, 2)
    a.place(hexp)
    a.jmp("!=", R2, octp, imm=8)
    a.st(1, v.reg, 0, ord("0"))
    a.movi(R3, 1)
    a.place(octp)
    # r0 = digit count (at least one)
    cnt, cdone = a.new_label("ll_cnt"), a.new_label("ll_cnt_done")
    a.mov(R4, R1)
    a.movi(R0, 0)
    a.place(cnt)
    a.alu("+", R0, imm=1)
    a.alu("/", R4, src=R2)
    cg.loop_exit("==", R4, cdone, imm=0)
    a.jmp("<", R0, cnt, imm=64)
    a.place(cdone)
    # write digits from the last position back; positions >= strsize are cut
    a.alu("+", R3, src=R0)
    wr, wdone, small = a.new_label("ll_wr"), a.new_label("ll_wdone"), a.new_label("ll_dig")
    a.place(wr)
    cg.loop_exit("==", R0, wdone, imm=0)
    a.alu("-", R3, imm=1)
    a.alu("-", R0, imm=1)
    a.mov(R4, R1)
    a.alu("%", R4, src=R2)
    a.alu("/", R1, src=R2)
    a.jmp("<", R4, small, imm=10)
    a.alu("+", R4, imm=ord("a") - 10 - ord("0"))
    a.place(small)
    a.alu("+", R4, imm=ord("0"))
    skip = a.new_label("ll_cut")
    a.jmp(">=", R3, skip, imm=cg.strsize)
    _put_byte(cg, v.reg, R3, R4)
    a.place(skip)
    a.jmp("<", R0, wr, imm=65)
    a.place(wdone)
    return v


def _in_set(cg: CompilerBase, c: int, bm: int, yes: str, inside: bool = True) -> None:
    """Jump to yes when byte c is (inside=False: is not) in the 256-bit set
    at frame offset bm; clobbers r4, r5."""
    a = cg.a
    a.mov(R4, c)
    a.alu(">>", R4, imm=3)
    a.mov(R5, R9)
    a.alu("+", R5, src=R4)
    a.ldx(1, R5, R5, bm)
    a.mov(R4, c)
    a.alu("&", R4, imm=7)
    a.alu(">>", R5, src=R4)
    a.alu("&", R5, imm=1)
    a.jmp("!=" if inside else "==", R5, yes, imm=0)


def strtok(cg: CompilerBase, e: ast.Call) -> Value:
    """The next token: strtok(s, d) starts on a copy of s, strtok(NULL, d)
    continues it. The copy and position live in the per-CPU frame (as in
    dtrace's BPF implementation); no saved string faults like dtrace."""
    cg.check_nargs(e, 2, 2)
    a = cg.a
    st = getattr(cg, "strtok_off", None)
    if st is None:  # [u64 position + 1 (0: none)][256-bit delimiter set][string]
        st = cg.strtok_off = cg.frame.take(8 + 32 + cg.ssize)
    word, bm, buf = st, st + 8, st + 40
    t0 = e.args[0].ctype  # type: ignore[attr-defined]
    fresh = t0.is_string()
    ptr = not fresh and not _null_constant(e.args[0]) and t0.is_pointer()
    if not fresh and not ptr and not _null_constant(e.args[0]):
        raise cg.unsupported(f"strtok() of a {t0}", e)
    if ptr:
        # a char *: NULL goes on with the saved string (as the literal NULL), any
        # other address starts on the string there (the user engine's null_or_string)
        cg.spill_region()
        p = cg.expr(e.args[0])
        keep = a.new_label("tok_keep")
        a.jmp("==", p.reg, keep, imm=0)
        outer = cg.branch()
        src = cg.string_at(p)
        cg.copy_string_to(R9, buf, src.reg)
        a.st(8, R9, word, 1)
        cg.free(src)
        cg.end_branch(outer)
        a.place(keep)  # (string_at freed p)
        delim = ast.Call(e.name, [e.args[1]], line=e.line)
        _args_to(cg, delim, (R1,), strs=(0,))
    else:
        _args_to(cg, e, (R2, R1), strs=(1,))
    v, _ = cg.new_string()
    for i in range(4):
        a.st(8, R9, bm + 8 * i, 0)
    loop, done = a.new_label("tokd"), a.new_label("tokd_done")
    a.movi(R0, 0)
    a.place(loop)
    _next_byte(cg, R3, R1, R0, done)
    a.mov(R4, R3)
    a.alu(">>", R4, imm=3)
    a.alu("&", R3, imm=7)
    a.movi(R5, 1)
    a.alu("<<", R5, src=R3)
    a.alu("+", R4, src=R9)
    a.ldx(1, R3, R4, bm)
    a.alu("|", R3, src=R5)
    a.stx(1, R4, bm, R3)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(done)
    if fresh:
        live = a.new_label("tok_live")
        a.ldx(1, R5, R2, cg.strsize)
        a.jmp("==", R5, live, imm=0)
        cg.fault(BADADDR)  # a NULL string (strstr without a match, ...)
        a.place(live)
        cg.copy_string_to(R9, buf, R2)
        a.st(8, R9, word, 1)
    a.ldx(8, R0, R9, word)
    ok = a.new_label("tok_saved")
    a.jmp("!=", R0, ok, imm=0)
    cg.fault(BADADDR)
    a.place(ok)
    a.alu("-", R0, imm=1)  # the position, unknown to the verifier
    a.mov(R1, R9)
    a.alu("+", R1, imm=buf)
    skip, end, start = a.new_label("tok_skip"), a.new_label("tok_end"), a.new_label("tok_at")
    nxt = a.new_label("tok_skip_next")
    a.place(skip)
    _next_byte(cg, R3, R1, R0, end)
    _in_set(cg, R3, bm, nxt)
    a.ja(start)
    a.place(nxt)
    a.alu("+", R0, imm=1)
    a.ja(skip)
    # no token left: the position stays at the end, the result is ""
    a.place(end)
    a.alu("+", R0, imm=1)
    a.stx(8, R9, word, R0)
    cg.mark_null_string(v.reg)
    out = a.new_label("tok_out")
    a.ja(out)
    a.place(start)
    _forget(cg, R0)
    a.mov(R2, R0)
    tok, tdone = a.new_label("tok"), a.new_label("tok_done")
    a.place(tok)
    _next_byte(cg, R3, R1, R0, tdone)
    nd = a.new_label("tok_more")
    _in_set(cg, R3, bm, nd, inside=False)
    a.ja(tdone)
    a.place(nd)
    a.alu("+", R0, imm=1)
    a.ja(tok)
    a.place(tdone)
    # the delimiter ending the token is not consumed (the next call skips its own)
    a.mov(R3, R0)
    a.alu("+", R3, imm=1)
    a.stx(8, R9, word, R3)
    a.ldx(8, R3, R9, word)
    a.alu("-", R3, imm=1)
    a.alu("-", R3, src=R2)
    _copy_loop(cg, v.reg, R1, R2, R3)
    a.place(out)
    return v


def _back_over(cg: CompilerBase, end: int, src: int, slashes: bool) -> None:
    """end -= 1 while end > 0 and src[end - 1] is (slashes) / is not a '/'."""
    a = cg.a
    loop, done = a.new_label("back"), a.new_label("back_done")
    a.place(loop)
    cg.loop_exit("==", end, done, imm=0)
    cg.loop_exit(">", end, done, imm=cg.strsize)
    a.mov(R5, src)
    a.alu("+", R5, src=end)
    a.ldx(1, R4, R5, -1)
    cg.loop_exit("!=" if slashes else "==", R4, done, imm=ord("/"))
    a.alu("-", end, imm=1)
    a.ja(loop)
    a.place(done)
    _forget(cg, end)


def _path_part(cg: CompilerBase, e: ast.Call, base: bool) -> Value:
    """basename()/dirname() with the user engine's rules ("" -> ".", all
    slashes -> "/", no directory -> ".")."""
    cg.check_nargs(e, 1, 1)
    _args_to(cg, e, (R1,))
    v, _ = cg.new_string()
    a = cg.a
    dot, slash, out = a.new_label("p_dot"), a.new_label("p_slash"), a.new_label("p_out")
    _strlen_loop(cg, R2, R1)  # r2 = end of the part
    a.jmp("==", R2, dot, imm=0)
    _back_over(cg, R2, R1, slashes=True)
    a.jmp("==", R2, slash, imm=0)
    if base:
        a.mov(R3, R2)
        _back_over(cg, R3, R1, slashes=False)  # r3 = start of the last name
        a.alu("-", R2, src=R3)
        _copy_loop(cg, v.reg, R1, R3, R2)
    else:
        _back_over(cg, R2, R1, slashes=False)
        a.jmp("==", R2, dot, imm=0)
        _back_over(cg, R2, R1, slashes=True)
        a.jmp("==", R2, slash, imm=0)
        a.movi(R3, 0)
        _copy_loop(cg, v.reg, R1, R3, R2)
    a.ja(out)
    a.place(dot)
    a.st(1, v.reg, 0, ord("."))
    a.ja(out)
    a.place(slash)
    a.st(1, v.reg, 0, ord("/"))
    a.place(out)
    return v


def basename(cg: CompilerBase, e: ast.Call) -> Value:
    return _path_part(cg, e, base=True)


def dirname(cg: CompilerBase, e: ast.Call) -> Value:
    return _path_part(cg, e, base=False)


# --- substring search: strstr, index, rindex ------------------------------------------
# A nested byte loop costs the verifier strsize^2 walked states (it cannot prune an
# inner loop across outer turns), too many at strsize 256. The search is linear
# instead (Rabin-Karp): a 64-bit polynomial hash of the substring, then one pass
# rolling the hash of each window of s; equal hashes are taken as a match.
_HASH_B = 0x5BD1E995


def _search(cg: CompilerBase, e: ast.Call, mode: str) -> int:
    """Scan s for sub; returns the frame offset of the u64 result: the first
    match at index >= start (index, strsize), or the last one at index <= start
    (rindex), -1 when none. Leaves s in r1."""
    a = cg.a
    has_start = len(e.args) == 3
    _args_to(cg, e, (R1, R2, R3) if has_start else (R1, R2), strs=(0, 1))
    st = getattr(cg, "search_off", None)
    if st is None:  # [hash of sub][B^L][L][result][start]
        st = cg.search_off = cg.frame.take(40)
    hsub, bl, ln, res, start = st, st + 8, st + 16, st + 24, st + 32
    if has_start:
        a.stx(8, R9, start, R3)
    else:
        a.st(8, R9, start, 0 if mode != "rindex" else 0x7FFFFFFF)
    a.st(8, R9, res, -1)
    b = _HASH_B
    # the substring's hash, B^L and L
    loop, done = a.new_label("hsub"), a.new_label("hsub_done")
    a.movi(R4, 0)
    a.movi(R3, 1)
    a.movi(R0, 0)
    a.place(loop)
    _next_byte(cg, R5, R2, R0, done)
    a.alu("*", R4, imm=b)
    a.alu("+", R4, src=R5)
    a.alu("*", R3, imm=b)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(done)
    a.stx(8, R9, hsub, R4)
    a.stx(8, R9, bl, R3)
    a.stx(8, R9, ln, R0)
    # the hash of s's first window (s shorter than sub: no match)
    a.ldx(8, R2, R9, ln)
    loop, done, end = a.new_label("hwin"), a.new_label("hwin_done"), a.new_label("srch_end")
    a.movi(R4, 0)
    a.movi(R0, 0)
    a.place(loop)
    cg.loop_exit(">=", R0, done, src=R2)
    _next_byte(cg, R5, R1, R0, end)
    a.alu("*", R4, imm=b)
    a.alu("+", R4, src=R5)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(done)
    # roll over the windows: r0 = i, r4 = hash of s[i, i + L); L is read again so
    # that the verifier forgets the exact value the window loop's exit taught it
    a.ldx(8, R2, R9, ln)
    loop, miss = a.new_label("scan"), a.new_label("scan_miss")
    a.movi(R0, 0)
    a.place(loop)
    cg.loop_exit(">", R0, end, imm=cg.strsize)
    a.ldx(8, R3, R9, hsub)
    a.jmp("!=", R4, miss, src=R3)
    a.ldx(8, R3, R9, start)
    if mode == "rindex":
        cg.loop_exit("s>", R0, end, src=R3)
        a.stx(8, R9, res, R0)
    else:
        a.jmp("s<", R0, miss, src=R3)
        a.stx(8, R9, res, R0)
        a.ja(end)
    a.place(miss)
    a.mov(R3, R0)
    a.alu("+", R3, src=R2)
    cg.loop_exit(">", R3, end, imm=cg.strsize)
    a.mov(R5, R1)
    a.alu("+", R5, src=R3)
    a.ldx(1, R3, R5, 0)
    cg.loop_exit("==", R3, end, imm=0)
    a.alu("*", R4, imm=b)
    a.alu("+", R4, src=R3)
    a.mov(R5, R1)
    a.alu("+", R5, src=R0)
    a.ldx(1, R5, R5, 0)
    a.ldx(8, R3, R9, bl)
    a.alu("*", R5, src=R3)
    a.alu("-", R4, src=R5)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(end)
    return res


def strstr(cg: CompilerBase, e: ast.Call) -> Value:
    cg.check_nargs(e, 2, 2)
    res = _search(cg, e, "strstr")
    v, _ = cg.new_string()
    a = cg.a
    found, end = a.new_label("sstr_hit"), a.new_label("sstr_end")
    a.ldx(8, R3, R9, res)
    a.jmp("s>=", R3, found, imm=0)
    cg.mark_null_string(v.reg)
    a.ja(end)
    a.place(found)
    _copy_loop(cg, v.reg, R1, R3, None)
    a.place(end)
    return v


def _index_call(cg: CompilerBase, e: ast.Call, mode: str) -> Value:
    cg.check_nargs(e, 2, 3)
    res = _search(cg, e, mode)
    out = cg.alloc(getattr(e, "ctype", None) or T.INT)
    cg.a.ldx(8, out.reg, R9, res)
    return out


def index(cg: CompilerBase, e: ast.Call) -> Value:
    return _index_call(cg, e, "index")


def rindex(cg: CompilerBase, e: ast.Call) -> Value:
    return _index_call(cg, e, "rindex")


# --- cleanpath ----------------------------------------------------------------
def cleanpath(cg: CompilerBase, e: ast.Call) -> Value:
    """posixpath.normpath as the user engine: one pass over the bytes (no nested
    loop for the verifier). Each component is written after the output as it is
    read and kept (w advances) unless it is "", "." or ".."; a ".." pops the
    last kept component, whose start is on a stack of u16 in the frame."""
    cg.check_nargs(e, 1, 1)
    _args_to(cg, e, (R1,))
    v, _ = cg.new_string()
    a = cg.a
    depth_max = cg.strsize // 2 + 2
    st = getattr(cg, "clean_off", None)
    if st is None:  # [w][base][cs][depth][dotdepth][u16 stack]
        st = cg.clean_off = cg.frame.take(40 + 2 * depth_max + 6)
    w, base, cs, depth, dots, stack = st, st + 8, st + 16, st + 24, st + 32, st + 40
    empty, out = a.new_label("cp_empty"), a.new_label("cp_out")
    a.ldx(1, R4, R1, 0)
    a.jmp("==", R4, empty, imm=0)
    for off in (w, base, cs, depth, dots):
        a.st(8, R9, off, 0)
    rel = a.new_label("cp_rel")
    a.jmp("!=", R4, rel, imm=ord("/"))
    a.st(1, v.reg, 0, ord("/"))
    a.st(8, R9, w, 1)
    a.st(8, R9, base, 1)
    a.place(rel)
    loop, done, nxt = a.new_label("cp"), a.new_label("cp_done"), a.new_label("cp_next")
    a.movi(R0, 0)
    a.place(loop)
    cg.loop_exit(">", R0, done, imm=cg.strsize)
    a.movi(R4, 0)
    skip_read = a.new_label("cp_end_of_s")
    a.jmp("==", R0, skip_read, imm=cg.strsize)
    a.mov(R5, R1)
    a.alu("+", R5, src=R0)
    a.ldx(1, R4, R5, 0)
    a.place(skip_read)
    # the verifier follows fall-throughs first: the end of a component (which
    # may end the loop) is the fall-through, so its queue of pending branches
    # stays short (see StringsMixin.loop_exit)
    comp_end, plain = a.new_label("cp_comp"), a.new_label("cp_plain")
    cg.loop_exit("==", R4, comp_end, imm=0)
    a.jmp("!=", R4, plain, imm=ord("/"))
    a.ja(comp_end)
    a.place(plain)
    # an ordinary byte: out[w + (w > base) + i - cs] = c
    a.ldx(8, R2, R9, w)
    a.ldx(8, R3, R9, base)
    nosep = a.new_label("cp_nosep")
    a.jmp("<=", R2, nosep, src=R3)
    a.alu("+", R2, imm=1)
    a.place(nosep)
    a.ldx(8, R3, R9, cs)
    a.alu("-", R2, src=R3)
    a.alu("+", R2, src=R0)
    a.jmp(">=", R2, nxt, imm=cg.strsize)
    a.mov(R5, v.reg)
    a.alu("+", R5, src=R2)
    a.stx(1, R5, 0, R4)
    a.ja(nxt)
    # the end of a component s[cs, i): r2 = its length
    a.place(comp_end)
    a.stx(8, R9, st + 40 + 2 * depth_max, R4)  # the byte: 0 ends the loop
    a.ldx(8, R3, R9, cs)
    a.mov(R2, R0)
    a.alu("-", R2, src=R3)
    a.mov(R5, R0)
    a.alu("+", R5, imm=1)
    a.stx(8, R9, cs, R5)
    fin = a.new_label("cp_fin")
    a.jmp("==", R2, fin, imm=0)
    a.jmp(">", R3, fin, imm=cg.strsize - 1)  # (cs + 1 <= strsize for the verifier)
    a.mov(R5, R1)
    a.alu("+", R5, src=R3)
    push = a.new_label("cp_push")
    a.jmp(">", R2, push, imm=2)
    a.ldx(1, R4, R5, 0)
    a.jmp("!=", R4, push, imm=ord("."))
    a.jmp("==", R2, fin, imm=1)  # "."
    a.ldx(1, R4, R5, 1)
    a.jmp("!=", R4, push, imm=ord("."))
    # "..": pop a component that is not a "..", else keep it if relative
    a.ldx(8, R3, R9, depth)
    a.ldx(8, R4, R9, dots)
    keep = a.new_label("cp_dotdot")
    a.jmp("<=", R3, keep, src=R4)
    a.alu("-", R3, imm=1)
    a.stx(8, R9, depth, R3)
    a.jmp(">=", R3, fin, imm=depth_max)
    a.alu("<<", R3, imm=1)
    a.alu("+", R3, src=R9)
    a.ldx(2, R4, R3, stack)
    a.stx(8, R9, w, R4)
    a.ja(fin)
    a.place(keep)
    a.ldx(8, R4, R9, base)
    a.jmp("!=", R4, fin, imm=0)  # "/.." is "/"
    a.ldx(8, R3, R9, depth)
    a.alu("+", R3, imm=1)
    a.stx(8, R9, dots, R3)
    # keep the component: push w, w += (w > base) + length
    a.place(push)
    a.ldx(8, R3, R9, depth)
    a.jmp(">=", R3, fin, imm=depth_max)
    a.mov(R4, R3)
    a.alu("+", R4, imm=1)
    a.stx(8, R9, depth, R4)
    a.alu("<<", R3, imm=1)
    a.alu("+", R3, src=R9)
    a.ldx(8, R4, R9, w)
    a.stx(2, R3, stack, R4)
    a.ldx(8, R3, R9, base)
    nosep = a.new_label("cp_nosep2")
    a.jmp("<=", R4, nosep, src=R3)
    a.mov(R3, R4)  # the separator
    a.jmp(">=", R3, nosep + "_x", imm=cg.strsize)
    a.mov(R5, v.reg)
    a.alu("+", R5, src=R3)
    a.st(1, R5, 0, ord("/"))
    a.place(nosep + "_x")
    a.alu("+", R4, imm=1)
    a.place(nosep)
    a.alu("+", R4, src=R2)
    a.stx(8, R9, w, R4)
    a.place(fin)
    a.ldx(8, R4, R9, st + 40 + 2 * depth_max)
    cg.loop_exit("==", R4, done, imm=0)
    a.place(nxt)
    a.alu("+", R0, imm=1)
    a.ja(loop)
    a.place(done)
    # zero what follows w (components written and dropped); "" -> "."
    a.ldx(8, R0, R9, w)
    dot = a.new_label("cp_dot")
    a.jmp("!=", R0, dot, imm=0)
    a.st(1, v.reg, 0, ord("."))
    a.movi(R0, 1)
    a.place(dot)
    zl = a.new_label("cp_zero")
    a.place(zl)
    cg.loop_exit(">=", R0, out, imm=cg.strsize)
    a.movi(R4, 0)
    _put_byte(cg, v.reg, R0, R4)
    a.alu("+", R0, imm=1)
    a.ja(zl)
    a.place(empty)
    a.place(out)
    return v


def _null_constant(x: ast.Expr) -> bool:
    """0 or NULL (possibly cast) where a string is expected."""
    while isinstance(x, ast.Cast):
        x = x.operand
    return (isinstance(x, ast.IntLit) and x.value == 0) or (
        isinstance(x, ast.Ident) and x.name == "NULL"
    )
