"""String values: literals, buffers, copies, comparisons, and string
subroutines (`_call_<name>` methods, e.g. copyinstr)."""

from __future__ import annotations

from pydtrace.consume.records import BADADDR, ILLOP
from pydtrace.engines.ebpf.cg_context import (
    CompilerBase,
    Value,
)
from pydtrace.engines.ebpf.insn import NEGATE, R0, R1, R2, R3, R4, R5, R9
from pydtrace.lang import ast
from pydtrace.lang import types as T


class StringsMixin(CompilerBase):
    def copy_string_to(self, dst: int, off: int, src: int, area: str | None = None) -> None:
        """Copy a whole string buffer (strsize+1 bytes, zero padded) to dst+off."""
        a = self.a
        n = self.ssize
        pos = 0
        while pos < n:
            size = 8 if n - pos >= 8 else 4 if n - pos >= 4 else 2 if n - pos >= 2 else 1
            a.ldx(size, R5, src, pos)
            a.stx(size, dst, off + pos, R5)
            if area is not None:
                self._mark(a.insns[-1], area, off + pos)
            pos += size

    def new_string(self) -> tuple[Value, int]:
        """A zeroed string buffer in the frame; returns (pointer value, area offset)."""
        a = self.a
        rel = self.string_buf()
        v = self.alloc(T.STRING)
        a.mov(v.reg, R9)
        a.alu("+", v.reg, imm=0)
        self._mark(a.insns[-1], "str", rel)
        pos = 0
        while pos < self.ssize:
            size = 8 if self.ssize - pos >= 8 else 1
            a.st(size, v.reg, pos, 0)
            pos += size
        return v, rel

    def const_string(self, s: str) -> Value:
        a = self.a
        v, _ = self.new_string()
        data = s.encode("utf-8", "surrogateescape")[: self.strsize]
        for i in range(0, len(data), 4):
            chunk = data[i : i + 4]
            if len(chunk) == 4:
                a.st(4, v.reg, i, int.from_bytes(chunk, "little"))
            else:
                for j, ch in enumerate(chunk):
                    a.st(1, v.reg, i + j, ch)
        return v

    def string_compare(self, x: Value, y: Value, op: str) -> None:
        """x.reg = 1 if (x op y) else 0, comparing bytes as unsigned chars."""
        a = self.a
        loop, diff, equal, end = (a.new_label(h) for h in ("sloop", "sdiff", "seq", "send"))
        a.mov(R1, x.reg)
        a.mov(R2, y.reg)
        a.movi(R3, 0)
        a.place(loop)
        a.ldx(1, R4, R1, 0)
        a.ldx(1, R5, R2, 0)
        a.jmp("!=", R4, diff, src=R5)
        a.jmp("==", R4, equal, imm=0)
        a.alu("+", R1, imm=1)
        a.alu("+", R2, imm=1)
        a.alu("+", R3, imm=1)
        a.jmp("<", R3, loop, imm=self.strsize)
        a.place(equal)
        a.movi(R0, 0)
        a.ja(end)
        a.place(diff)
        a.movi(R0, 1)
        lt = a.new_label("slt")
        a.jmp(">", R4, end, src=R5)
        a.place(lt)
        a.movi(R0, -1)
        a.place(end)
        # r0 = -1, 0, 1
        self._compare_result(x, op, "scmp")

    def _compare_result(self, x: Value, op: str, label: str) -> None:
        """x.reg = 1 if r0 (-1, 0 or 1: how the left string compares) satisfies op, else 0."""
        a = self.a
        yes = a.new_label(label)
        a.movi(x.reg, 1)
        a.jmp(
            {"==": "==", "!=": "!=", "<": "s<", "<=": "s<=", ">": "s>", ">=": "s>="}[op],
            R0,
            yes,
            imm=0,
        )
        a.movi(x.reg, 0)
        a.place(yes)

    def string_compare_literal(self, x: Value, lit: bytes, op: str) -> None:
        """x.reg = 1 if (x op lit) else 0: the literal's bytes (and its NUL) are
        compared unrolled, so no second buffer or register is needed."""
        a = self.a
        diff, end = a.new_label("ldiff"), a.new_label("lend")
        for i, ch in enumerate(lit + b"\0"):
            a.ldx(1, R4, x.reg, i)
            a.movi(R5, ch)
            a.jmp("!=", R4, diff, src=R5)
        a.movi(R0, 0)
        a.ja(end)
        a.place(diff)
        a.movi(R0, 1)
        a.jmp(">", R4, end, src=R5)
        a.movi(R0, -1)
        a.place(end)
        self._compare_result(x, op, "lcmp")

    def _x_StrLit(self, e: ast.StrLit) -> Value:
        return self.const_string(e.value)

    def _call_copyinstr(self, e: ast.Call) -> Value:
        """At most strsize (or len, when given and smaller) bytes of a user
        string; len < 1 gives ""."""
        self._nargs(e, 1, 2)
        a = self.a
        if len(e.args) == 2:
            self._args_to(e, (R3, R2), strs=())
        else:
            self._args_to(e, (R3,), strs=())
            a.movi(R2, self.strsize)
        v, _ = self.new_string()
        skip, capped = a.new_label("cis_none"), a.new_label("cis_cap")
        a.jmp("s<", R2, skip, imm=1)
        a.jmp("s<=", R2, capped, imm=self.strsize)
        a.movi(R2, self.strsize)
        a.place(capped)
        a.alu("+", R2, imm=1)  # the size counts the NUL
        a.mov(R1, v.reg)
        a.call("probe_read_user_str")
        a.place(skip)
        return v

    # --- string subroutines -------------------------------------------------------------
    # Every loop runs over at most strsize bytes: its counter is compared with
    # the constant strsize before each access, which is the bound the verifier
    # needs for a variable offset into the frame (or globals) map value.
    def _args_to(self, e: ast.Call, regs: tuple[int, ...], strs: tuple[int, ...] = (0,)) -> None:
        """Evaluate e's arguments and move them to the scratch registers regs
        (r1-r5); their temporaries are freed (a new_string() may reuse them).
        Arguments at positions strs must be strings; NULL there faults."""
        vals: list[Value] = []
        for i, arg in enumerate(e.args):
            if i in strs and not arg.ctype.is_string() and not _null_constant(arg):
                raise self.unsupported(f"{e.name}() of a {arg.ctype}", e)
            v = self.expr(arg)
            if i in strs and not arg.ctype.is_string():
                # NULL: the verifier sees the constant and takes only the fault path
                ok = self.a.new_label("snull")
                self.a.jmp("!=", v.reg, ok, imm=0)
                self.fault(BADADDR, v.reg)
                self.a.place(ok)
            for w in vals:
                self.reload(w, v, *[x for x in vals if x is not w])
            vals.append(v)
        for w in vals:
            self.reload(w, *[x for x in vals if x is not w])
        for v, r in zip(vals, regs):
            self.a.mov(r, v.reg)
        for v in vals:
            self.free(v)

    def _leave(self, op: str, reg: int, label: str, src: int | None = None, imm: int = 0) -> None:
        """Jump to label (a loop's exit) when reg op src/imm, emitted so that the
        exit is the fall-through: the verifier follows the fall-through first and
        queues the taken branch, so each pending branch is one loop turn and the
        queue stays short (queuing every exit of 16 loops in a row exceeds its
        8192 limit and the load fails with EFAULT)."""
        a = self.a
        stay = a.new_label("stay")
        a.jmp(NEGATE[op], reg, stay, src=src, imm=imm)
        a.ja(label)
        a.place(stay)

    def _forget(self, reg: int) -> None:
        """Make the verifier forget reg's exact value (a round trip through the
        per-CPU frame), so the paths leaving a loop at each count merge into
        one instead of multiplying through the code that follows."""
        off = getattr(self, "_forget_off", None)
        if off is None:
            off = self._forget_off = self.frame.take(8)
        self.a.stx(8, R9, off, reg)
        self.a.ldx(8, reg, R9, off)

    def _next_byte(self, byte: int, base: int, idx: int, done: str) -> None:
        """byte = base[idx], leaving the loop for done when idx reaches strsize
        (the verifier's bound) or the byte is the NUL; clobbers r5."""
        self._leave(">=", idx, done, imm=self.strsize)
        a = self.a
        a.mov(R5, base)
        a.alu("+", R5, src=idx)
        a.ldx(1, byte, R5, 0)
        self._leave("==", byte, done, imm=0)

    def _put_byte(self, base: int, idx: int, byte: int) -> None:
        """base[idx] = byte; clobbers r5."""
        a = self.a
        a.mov(R5, base)
        a.alu("+", R5, src=idx)
        a.stx(1, R5, 0, byte)

    def _strlen_loop(self, out: int, src: int) -> None:
        """out = length of the string at src (at most strsize); clobbers r5."""
        a = self.a
        loop, done = a.new_label("slen"), a.new_label("slen_done")
        a.movi(out, 0)
        a.place(loop)
        self._next_byte(R5, src, out, done)
        a.alu("+", out, imm=1)
        a.ja(loop)
        a.place(done)
        self._forget(out)

    def _copy_loop(
        self, dst: int, src: int, start: int, limit: int | None, reset: bool = True
    ) -> None:
        """r0 = 0 (unless not reset); dst[r0++] = src[start++] while the
        byte is not NUL, limit-- > 0 (signed; None = no limit) and both indexes
        are < strsize; r0 ends as the first unwritten index. Clobbers r4, r5 and the limit register."""
        a = self.a
        pos = R0
        loop, done = a.new_label("scopy"), a.new_label("scopy_done")
        if reset:
            a.movi(R0, 0)
        a.place(loop)
        self._leave(">=", pos, done, imm=self.strsize)
        if limit is not None:
            self._leave("s<=", limit, done, imm=0)
        self._next_byte(R4, src, start, done)
        self._put_byte(dst, pos, R4)
        a.alu("+", pos, imm=1)
        a.alu("+", start, imm=1)
        if limit is not None:
            a.alu("-", limit, imm=1)
        a.ja(loop)
        a.place(done)

    def _nargs(self, e: ast.Call, lo: int, hi: int) -> None:
        if not lo <= len(e.args) <= hi:
            raise self.unsupported(f"{e.name}() with {len(e.args)} arguments", e)

    def _call_strlen(self, e: ast.Call) -> Value:
        self._nargs(e, 1, 1)
        self._args_to(e, (R1,))
        out = self.alloc(getattr(e, "ctype", None) or T.LONG)
        self._strlen_loop(out.reg, R1)
        return out

    def _call_strjoin(self, e: ast.Call) -> Value:
        self._nargs(e, 2, 2)
        self._args_to(e, (R1, R2), strs=(0, 1))
        v, _ = self.new_string()
        a = self.a
        a.movi(R3, 0)
        self._copy_loop(v.reg, R1, R3, None)
        self._forget(R0)
        a.movi(R3, 0)
        self._copy_loop(v.reg, R2, R3, None, reset=False)
        return v

    def _call_substr(self, e: ast.Call) -> Value:
        """s[index:...] with the user engine's rules for negative index/length."""
        self._nargs(e, 2, 3)
        has_len = len(e.args) == 3
        self._args_to(e, (R1, R2, R3))
        v, _ = self.new_string()
        a = self.a
        empty, pos_ok = a.new_label("sub_empty"), a.new_label("sub_idx")
        self._strlen_loop(R0, R1)
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
            a.movi(R3, self.strsize)
        else:
            nonneg = a.new_label("sub_len")
            a.jmp("s>=", R3, nonneg, imm=0)
            a.alu("+", R3, src=R0)  # end = n + length; count = end - index
            a.alu("-", R3, src=R2)
            a.place(nonneg)
        self._copy_loop(v.reg, R1, R2, R3)
        a.place(empty)
        return v

    def _find_char(self, e: ast.Call, last: bool) -> Value:
        self._nargs(e, 2, 2)
        self._args_to(e, (R1, R2))
        v, _ = self.new_string()
        a = self.a
        loop, done, found = a.new_label("chr"), a.new_label("chr_done"), a.new_label("chr_hit")
        a.alu("&", R2, imm=0xFF)
        a.movi(R3, -1)  # index of the match
        a.movi(R0, 0)
        a.place(loop)
        self._next_byte(R4, R1, R0, done)
        nxt = a.new_label("chr_next")
        a.jmp("!=", R4, nxt, src=R2)
        a.mov(R3, R0)
        if not last:
            a.ja(done)
        a.place(nxt)
        a.alu("+", R0, imm=1)
        a.ja(loop)
        a.place(done)
        self._forget(R3)
        a.jmp("s<", R3, found, imm=0)  # no match: ""
        self._copy_loop(v.reg, R1, R3, None)
        a.place(found)
        return v

    def _call_strchr(self, e: ast.Call) -> Value:
        return self._find_char(e, last=False)

    def _call_strrchr(self, e: ast.Call) -> Value:
        return self._find_char(e, last=True)

    def _case(self, e: ast.Call, lo: int, hi: int) -> Value:
        """Copy the string, adding 32 (tolower) or subtracting it (toupper) to
        bytes in [lo, hi]."""
        self._nargs(e, 1, 1)
        self._args_to(e, (R1,))
        v, _ = self.new_string()
        a = self.a
        loop, done = a.new_label("case"), a.new_label("case_done")
        a.movi(R0, 0)
        a.place(loop)
        self._next_byte(R4, R1, R0, done)
        keep = a.new_label("case_keep")
        a.jmp("<", R4, keep, imm=lo)
        a.jmp(">", R4, keep, imm=hi)
        a.alu("^", R4, imm=0x20)
        a.place(keep)
        self._put_byte(v.reg, R0, R4)
        a.alu("+", R0, imm=1)
        a.ja(loop)
        a.place(done)
        return v

    def _call_toupper(self, e: ast.Call) -> Value:
        return self._case(e, ord("a"), ord("z"))

    def _call_tolower(self, e: ast.Call) -> Value:
        return self._case(e, ord("A"), ord("Z"))

    def _call_lltostr(self, e: ast.Call) -> Value:
        """Digits of a 64-bit value: decimal is signed, other bases unsigned,
        with 0x / 0 prefixes for 16 / 8; a base outside 2..36 is ILLOP."""
        self._nargs(e, 1, 2)
        a = self.a
        if len(e.args) == 2:
            self._args_to(e, (R1, R2), strs=())
        else:
            self._args_to(e, (R1,), strs=())
            a.movi(R2, 10)
        v, _ = self.new_string()
        ok, ten = a.new_label("ll_ok"), a.new_label("ll_dec")
        a.jmp("s<", R2, ok + "_bad", imm=2)
        a.jmp("s>", R2, ok + "_bad", imm=36)
        a.ja(ok)
        a.place(ok + "_bad")
        self.fault(ILLOP, R2)
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
        if self.strsize > 1:
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
        self._leave("==", R4, cdone, imm=0)
        a.jmp("<", R0, cnt, imm=64)
        a.place(cdone)
        # write digits from the last position back; positions >= strsize are cut
        a.alu("+", R3, src=R0)
        wr, wdone, small = a.new_label("ll_wr"), a.new_label("ll_wdone"), a.new_label("ll_dig")
        a.place(wr)
        self._leave("==", R0, wdone, imm=0)
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
        a.jmp(">=", R3, skip, imm=self.strsize)
        self._put_byte(v.reg, R3, R4)
        a.place(skip)
        a.jmp("<", R0, wr, imm=65)
        a.place(wdone)
        return v

    def _in_set(self, c: int, bm: int, yes: str, inside: bool = True) -> None:
        """Jump to yes when byte c is (inside=False: is not) in the 256-bit set
        at frame offset bm; clobbers r4, r5."""
        a = self.a
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

    def _call_strtok(self, e: ast.Call) -> Value:
        """The next token: strtok(s, d) starts on a copy of s, strtok(NULL, d)
        continues it. The copy and position live in the per-CPU frame (as in
        dtrace's BPF implementation); no saved string faults like dtrace."""
        self._nargs(e, 2, 2)
        a = self.a
        st = getattr(self, "_strtok_off", None)
        if st is None:  # [u64 position + 1 (0: none)][256-bit delimiter set][string]
            st = self._strtok_off = self.frame.take(8 + 32 + self.ssize)
        word, bm, buf = st, st + 8, st + 40
        fresh = e.args[0].ctype.is_string()
        if not fresh and not _null_constant(e.args[0]):
            raise self.unsupported(f"strtok() of a {e.args[0].ctype}", e)
        self._args_to(e, (R2, R1), strs=(1,))
        v, _ = self.new_string()
        for i in range(4):
            a.st(8, R9, bm + 8 * i, 0)
        loop, done = a.new_label("tokd"), a.new_label("tokd_done")
        a.movi(R0, 0)
        a.place(loop)
        self._next_byte(R3, R1, R0, done)
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
            self.copy_string_to(R9, buf, R2)
            a.st(8, R9, word, 1)
        a.ldx(8, R0, R9, word)
        ok = a.new_label("tok_saved")
        a.jmp("!=", R0, ok, imm=0)
        self.fault(BADADDR)
        a.place(ok)
        a.alu("-", R0, imm=1)  # the position, unknown to the verifier
        a.mov(R1, R9)
        a.alu("+", R1, imm=buf)
        skip, end, start = a.new_label("tok_skip"), a.new_label("tok_end"), a.new_label("tok_at")
        nxt = a.new_label("tok_skip_next")
        a.place(skip)
        self._next_byte(R3, R1, R0, end)
        self._in_set(R3, bm, nxt)
        a.ja(start)
        a.place(nxt)
        a.alu("+", R0, imm=1)
        a.ja(skip)
        # no token left: the position stays at the end, the result is ""
        a.place(end)
        a.alu("+", R0, imm=1)
        a.stx(8, R9, word, R0)
        out = a.new_label("tok_out")
        a.ja(out)
        a.place(start)
        self._forget(R0)
        a.mov(R2, R0)
        tok, tdone = a.new_label("tok"), a.new_label("tok_done")
        a.place(tok)
        self._next_byte(R3, R1, R0, tdone)
        nd = a.new_label("tok_more")
        self._in_set(R3, bm, nd, inside=False)
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
        self._copy_loop(v.reg, R1, R2, R3)
        a.place(out)
        return v

    def _x_Cond(self, e: ast.Cond) -> Value:
        """c ? s1 : s2 on strings: the pointer of the branch taken (each path's
        string is its own buffer, so nothing is copied). Other ?: are cg_expr's."""
        t = e.ctype  # type: ignore[attr-defined]
        if not t.is_string():
            return super()._x_Cond(e)  # type: ignore[misc]
        a = self.a
        c = self.expr(e.cond)
        other, end = a.new_label("selse"), a.new_label("sfi")
        a.jmp("==", c.reg, other, imm=0)
        for arm, last in ((e.then, False), (e.other, True)):
            outer = self.branch()
            x = self.expr(arm)
            self.reload(c, x)
            a.mov(c.reg, x.reg)
            self.free(x)
            self.end_branch(outer)
            if not last:
                a.ja(end)
                a.place(other)
        a.place(end)
        c.ctype = t
        return c

    def _back_over(self, end: int, src: int, slashes: bool) -> None:
        """end -= 1 while end > 0 and src[end - 1] is (slashes) / is not a '/'."""
        a = self.a
        loop, done = a.new_label("back"), a.new_label("back_done")
        a.place(loop)
        self._leave("==", end, done, imm=0)
        self._leave(">", end, done, imm=self.strsize)
        a.mov(R5, src)
        a.alu("+", R5, src=end)
        a.ldx(1, R4, R5, -1)
        self._leave("!=" if slashes else "==", R4, done, imm=ord("/"))
        a.alu("-", end, imm=1)
        a.ja(loop)
        a.place(done)
        self._forget(end)

    def _path_part(self, e: ast.Call, base: bool) -> Value:
        """basename()/dirname() with the user engine's rules ("" -> ".", all
        slashes -> "/", no directory -> ".")."""
        self._nargs(e, 1, 1)
        self._args_to(e, (R1,))
        v, _ = self.new_string()
        a = self.a
        dot, slash, out = a.new_label("p_dot"), a.new_label("p_slash"), a.new_label("p_out")
        self._strlen_loop(R2, R1)  # r2 = end of the part
        a.jmp("==", R2, dot, imm=0)
        self._back_over(R2, R1, slashes=True)
        a.jmp("==", R2, slash, imm=0)
        if base:
            a.mov(R3, R2)
            self._back_over(R3, R1, slashes=False)  # r3 = start of the last name
            a.alu("-", R2, src=R3)
            self._copy_loop(v.reg, R1, R3, R2)
        else:
            self._back_over(R2, R1, slashes=False)
            a.jmp("==", R2, dot, imm=0)
            self._back_over(R2, R1, slashes=True)
            a.jmp("==", R2, slash, imm=0)
            a.movi(R3, 0)
            self._copy_loop(v.reg, R1, R3, R2)
        a.ja(out)
        a.place(dot)
        a.st(1, v.reg, 0, ord("."))
        a.ja(out)
        a.place(slash)
        a.st(1, v.reg, 0, ord("/"))
        a.place(out)
        return v

    def _call_basename(self, e: ast.Call) -> Value:
        return self._path_part(e, base=True)

    def _call_dirname(self, e: ast.Call) -> Value:
        return self._path_part(e, base=False)


def _null_constant(x: ast.Expr) -> bool:
    """0 or NULL (possibly cast) where a string is expected."""
    while isinstance(x, ast.Cast):
        x = x.operand
    return (isinstance(x, ast.IntLit) and x.value == 0) or (
        isinstance(x, ast.Ident) and x.name == "NULL"
    )
