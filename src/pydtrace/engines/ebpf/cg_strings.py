"""String values: literals, buffers, copies, comparisons, and string
subroutines (`_call_<name>` methods, e.g. copyinstr)."""

from __future__ import annotations

from pydtrace.consume.records import BADADDR, ILLOP
from pydtrace.engines.ebpf.cg_context import (
    CompilerBase,
    Value,
)
from pydtrace.engines.ebpf.insn import ALU, ALU_OPS, NEGATE, R0, R1, R2, R3, R4, R5, R9, Insn, X
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
        # exits as fall-throughs (_leave): many comparisons in a row otherwise queue
        # more than the verifier's 8192 pending branches (PROG_LOAD fails with EFAULT)
        self._leave("!=", R4, diff, src=R5)
        self._leave("==", R4, equal, imm=0)
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
            t = arg.ctype  # type: ignore[attr-defined]
            read = i in strs and not _null_constant(arg) and (t.is_pointer() or t.is_int())
            if i in strs and not t.is_string() and not _null_constant(arg) and not read:
                raise self.unsupported(f"{e.name}() of a {t}", e)
            v = self.expr(arg)
            if read:  # a char * (or an address) passed as a string: the string there
                for w in vals:
                    self.reload(w, v, *[x for x in vals if x is not w])
                v = self.string_at(v)
            elif i in strs and not t.is_string():
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
        t0 = e.args[0].ctype  # type: ignore[attr-defined]
        fresh = t0.is_string()
        ptr = not fresh and not _null_constant(e.args[0]) and t0.is_pointer()
        if not fresh and not ptr and not _null_constant(e.args[0]):
            raise self.unsupported(f"strtok() of a {t0}", e)
        if ptr:
            # a char *: NULL goes on with the saved string (as the literal NULL), any
            # other address starts on the string there (the user engine's null_or_string)
            self.spill_region()  # type: ignore[attr-defined]
            p = self.expr(e.args[0])
            keep = a.new_label("tok_keep")
            a.jmp("==", p.reg, keep, imm=0)
            outer = self.branch()
            src = self.string_at(p)  # type: ignore[attr-defined]
            self.copy_string_to(R9, buf, src.reg)
            a.st(8, R9, word, 1)
            self.free(src)
            self.end_branch(outer)
            a.place(keep)  # (string_at freed p)
            delim = ast.Call(e.name, [e.args[1]], line=e.line)
            self._args_to(delim, (R1,), strs=(0,))
        else:
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
            live = a.new_label("tok_live")
            a.ldx(1, R5, R2, self.strsize)
            a.jmp("==", R5, live, imm=0)
            self.fault(BADADDR)  # a NULL string (strstr without a match, ...)
            a.place(live)
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
        self.mark_null_string(v.reg)
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
        string is its own buffer, so nothing is copied); cg_expr.select."""
        return self.select(e)  # type: ignore[attr-defined,no-any-return]

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

    # --- substring search: strstr, index, rindex ------------------------------------------
    # A nested byte loop costs the verifier strsize^2 walked states (it cannot prune an
    # inner loop across outer turns), too many at strsize 256. The search is linear
    # instead (Rabin-Karp): a 64-bit polynomial hash of the substring, then one pass
    # rolling the hash of each window of s; equal hashes are taken as a match.
    _HASH_B = 0x5BD1E995

    def _search(self, e: ast.Call, mode: str) -> int:
        """Scan s for sub; returns the frame offset of the u64 result: the first
        match at index >= start (index, strsize), or the last one at index <= start
        (rindex), -1 when none. Leaves s in r1."""
        a = self.a
        has_start = len(e.args) == 3
        self._args_to(e, (R1, R2, R3) if has_start else (R1, R2), strs=(0, 1))
        st = getattr(self, "_search_off", None)
        if st is None:  # [hash of sub][B^L][L][result][start]
            st = self._search_off = self.frame.take(40)
        hsub, bl, ln, res, start = st, st + 8, st + 16, st + 24, st + 32
        if has_start:
            a.stx(8, R9, start, R3)
        else:
            a.st(8, R9, start, 0 if mode != "rindex" else 0x7FFFFFFF)
        a.st(8, R9, res, -1)
        b = self._HASH_B
        # the substring's hash, B^L and L
        loop, done = a.new_label("hsub"), a.new_label("hsub_done")
        a.movi(R4, 0)
        a.movi(R3, 1)
        a.movi(R0, 0)
        a.place(loop)
        self._next_byte(R5, R2, R0, done)
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
        self._leave(">=", R0, done, src=R2)
        self._next_byte(R5, R1, R0, end)
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
        self._leave(">", R0, end, imm=self.strsize)
        a.ldx(8, R3, R9, hsub)
        a.jmp("!=", R4, miss, src=R3)
        a.ldx(8, R3, R9, start)
        if mode == "rindex":
            self._leave("s>", R0, end, src=R3)
            a.stx(8, R9, res, R0)
        else:
            a.jmp("s<", R0, miss, src=R3)
            a.stx(8, R9, res, R0)
            a.ja(end)
        a.place(miss)
        a.mov(R3, R0)
        a.alu("+", R3, src=R2)
        self._leave(">", R3, end, imm=self.strsize)
        a.mov(R5, R1)
        a.alu("+", R5, src=R3)
        a.ldx(1, R3, R5, 0)
        self._leave("==", R3, end, imm=0)
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

    def _call_strstr(self, e: ast.Call) -> Value:
        self._nargs(e, 2, 2)
        res = self._search(e, "strstr")
        v, _ = self.new_string()
        a = self.a
        found, end = a.new_label("sstr_hit"), a.new_label("sstr_end")
        a.ldx(8, R3, R9, res)
        a.jmp("s>=", R3, found, imm=0)
        self.mark_null_string(v.reg)
        a.ja(end)
        a.place(found)
        self._copy_loop(v.reg, R1, R3, None)
        a.place(end)
        return v

    # A NULL string (strstr without a match, strtok without a token: the user
    # engine's NullString) reads as "" but faults when traced or strtok'ed: its
    # buffer holds a 1 in the last byte (index strsize), which a real string's
    # NUL always occupies; copies of the buffer keep it.
    def mark_null_string(self, reg: int) -> None:
        self.a.st(1, reg, self.strsize, 1)

    def check_null_string(self, reg: int) -> None:
        """Fault (invalid address 0) when the string at reg is a NULL string
        (for trace(): the user engine's trace_string); clobbers r5."""
        a = self.a
        live = a.new_label("snn")
        a.ldx(1, R5, reg, self.strsize)
        a.jmp("==", R5, live, imm=0)
        self.fault(BADADDR)
        a.place(live)

    def _index_call(self, e: ast.Call, mode: str) -> Value:
        self._nargs(e, 2, 3)
        res = self._search(e, mode)
        out = self.alloc(getattr(e, "ctype", None) or T.INT)
        self.a.ldx(8, out.reg, R9, res)
        return out

    def _call_index(self, e: ast.Call) -> Value:
        return self._index_call(e, "index")

    def _call_rindex(self, e: ast.Call) -> Value:
        return self._index_call(e, "rindex")

    # --- integer subroutines: byte order, device numbers -----------------------------
    def _swap(self, e: ast.Call, size: int) -> Value:
        """The low size bytes of the value in reversed order (BPF_END to big
        endian: this is a little-endian machine), zero-extended."""
        self._nargs(e, 1, 1)
        v = self.expr(e.args[0])
        self.a.emit(Insn(ALU | ALU_OPS["end"] | X, v.reg, 0, 0, 8 * size))
        v.ctype = getattr(e, "ctype", None) or T.ULONG
        return v

    def _call_htons(self, e: ast.Call) -> Value:
        return self._swap(e, 2)

    def _call_htonl(self, e: ast.Call) -> Value:
        return self._swap(e, 4)

    def _call_htonll(self, e: ast.Call) -> Value:
        return self._swap(e, 8)

    _call_ntohs, _call_ntohl, _call_ntohll = _call_htons, _call_htonl, _call_htonll

    def _device_part(self, e: ast.Call, shift: int, mask: int) -> Value:
        self._nargs(e, 1, 1)
        v = self.expr(e.args[0])
        if shift:
            self.a.alu(">>", v.reg, imm=shift)
        self.a.alu("&", v.reg, imm=mask)
        v.ctype = getattr(e, "ctype", None) or T.ULONG
        return v

    def _call_getmajor(self, e: ast.Call) -> Value:
        return self._device_part(e, 20, 0xFFF)

    def _call_getminor(self, e: ast.Call) -> Value:
        return self._device_part(e, 0, 0xFFFFF)

    # --- network addresses: inet_ntoa, link_ntop -------------------------------------
    def _addr_bytes(self) -> int:
        """A frame area for the bytes of an address being formatted (20 + n)."""
        off = getattr(self, "_addr_off", None)
        if off is None:
            off = self._addr_off = self.frame.take(32)
        return off

    def _put_char(self, out: int, pos: int, ch: int, imm: bool = False) -> None:
        """out[pos++] = ch (a register, or a constant when imm) while pos < strsize; clobbers r5."""
        a = self.a
        skip = a.new_label("pc_full")
        a.jmp(">=", pos, skip, imm=self.strsize)
        a.mov(R5, out)
        a.alu("+", R5, src=pos)
        if imm:
            a.st(1, R5, 0, ch)
        else:
            a.stx(1, R5, 0, ch)
        a.alu("+", pos, imm=1)
        a.place(skip)

    def _call_inet_ntoa(self, e: ast.Call) -> Value:
        """The 4 bytes at the address as dotted decimal (unreadable: invalid address)."""
        self._nargs(e, 1, 1)
        bo = self._addr_bytes()
        p = self.expr(e.args[0])
        self.read_block(self.frame_dst(bo), p, 4)  # type: ignore[attr-defined]
        self.free(p)
        v, _ = self.new_string()
        a = self.a
        a.movi(R0, 0)
        for k in range(4):
            if k:
                self._put_char(v.reg, R0, ord("."), imm=True)
            a.ldx(1, R4, R9, bo + k)
            for div, label in ((100, "ip_h"), (10, "ip_t")):
                skip = a.new_label(label)
                a.jmp("<", R4, skip, imm=div)
                a.mov(R3, R4)
                a.alu("/", R3, imm=div)
                a.alu("%", R3, imm=10)
                a.alu("+", R3, imm=ord("0"))
                self._put_char(v.reg, R0, R3)
                a.place(skip)
            a.mov(R3, R4)
            a.alu("%", R3, imm=10)
            a.alu("+", R3, imm=ord("0"))
            self._put_char(v.reg, R0, R3)
        return v

    def _call_link_ntop(self, e: ast.Call) -> Value:
        """link_ntop(hwtype, addr): ARPHRD_ETHER (1) 6 bytes, ARPHRD_INFINIBAND (32)
        20, as colon-separated hex; another type is an illegal operation."""
        self._nargs(e, 2, 2)
        a = self.a
        bo = self._addr_bytes()
        t = self.expr(e.args[0])
        p = self.expr(e.args[1])
        self.reload(t, p)
        eth, ib, done = a.new_label("ln_eth"), a.new_label("ln_ib"), a.new_label("ln_read")
        a.jmp("==", t.reg, eth, imm=1)
        a.jmp("==", t.reg, ib, imm=32)
        self.fault(ILLOP, t.reg)
        for label, n in ((eth, 6), (ib, 20)):
            a.place(label)
            self.read_block(self.frame_dst(bo), p, n)  # type: ignore[attr-defined]
            a.st(8, R9, bo + 24, n)
            if n == 6:
                a.ja(done)
        a.place(done)
        self.free(p)
        self.free(t)
        v, _ = self.new_string()
        a.ldx(8, R2, R9, bo + 24)
        end = a.new_label("ln_end")
        for i in range(20):
            if i:
                a.jmp("<=", R2, end, imm=i)
            for pos, shift in ((3 * i, 4), (3 * i + 1, 0)):
                if pos >= self.strsize:
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
            if i and 3 * i - 1 < self.strsize:
                a.st(1, v.reg, 3 * i - 1, ord(":"))
        a.place(end)
        return v

    # --- cleanpath ----------------------------------------------------------------
    def _call_cleanpath(self, e: ast.Call) -> Value:
        """posixpath.normpath as the user engine: one pass over the bytes (no nested
        loop for the verifier). Each component is written after the output as it is
        read and kept (w advances) unless it is "", "." or ".."; a ".." pops the
        last kept component, whose start is on a stack of u16 in the frame."""
        self._nargs(e, 1, 1)
        self._args_to(e, (R1,))
        v, _ = self.new_string()
        a = self.a
        depth_max = self.strsize // 2 + 2
        st = getattr(self, "_clean_off", None)
        if st is None:  # [w][base][cs][depth][dotdepth][u16 stack]
            st = self._clean_off = self.frame.take(40 + 2 * depth_max + 6)
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
        self._leave(">", R0, done, imm=self.strsize)
        a.movi(R4, 0)
        skip_read = a.new_label("cp_end_of_s")
        a.jmp("==", R0, skip_read, imm=self.strsize)
        a.mov(R5, R1)
        a.alu("+", R5, src=R0)
        a.ldx(1, R4, R5, 0)
        a.place(skip_read)
        # the verifier follows fall-throughs first: the end of a component (which
        # may end the loop) is the fall-through, so its queue of pending branches
        # stays short (see _leave)
        comp_end, plain = a.new_label("cp_comp"), a.new_label("cp_plain")
        self._leave("==", R4, comp_end, imm=0)
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
        a.jmp(">=", R2, nxt, imm=self.strsize)
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
        a.jmp(">", R3, fin, imm=self.strsize - 1)  # (cs + 1 <= strsize for the verifier)
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
        a.jmp(">=", R3, nosep + "_x", imm=self.strsize)
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
        self._leave("==", R4, done, imm=0)
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
        self._leave(">=", R0, out, imm=self.strsize)
        a.movi(R4, 0)
        self._put_byte(v.reg, R0, R4)
        a.alu("+", R0, imm=1)
        a.ja(zl)
        a.place(empty)
        a.place(out)
        return v

    def _call_inet_ntoa6(self, e: ast.Call) -> Value:
        """The 16 bytes at the address as Python's ipaddress prints them (the user
        engine): 8 hex groups without leading zeros, the first longest run of two
        or more zero groups as "::"."""
        self._nargs(e, 1, 2)
        bo = self._addr_bytes()
        p = self.expr(e.args[0])
        for extra in e.args[1:]:  # flags: evaluated, unused (as the user engine)
            self.free(self.expr(extra))
        self.reload(p)
        self.read_block(self.frame_dst(bo), p, 16)  # type: ignore[attr-defined]
        self.free(p)
        a = self.a
        bs, bl, sep = bo + 16, bo + 20, bo + 24

        def group(reg: int, i: int) -> None:
            a.ldx(2, reg, R9, bo + 2 * i)
            a.emit(Insn(ALU | ALU_OPS["end"] | X, reg, 0, 0, 16))

        # r1, r2 = start, length of the current zero run; r3, r4 = the longest
        for r in (R1, R2, R3, R4):
            a.movi(r, 0)
        for i in range(8):
            group(R5, i)
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
        a.stx(4, R9, bs, R3)
        a.stx(4, R9, bl, R4)
        a.st(4, R9, sep, 0)
        v, _ = self.new_string()
        a.movi(R0, 0)
        for i in range(8):
            a.ldx(4, R1, R9, bs)
            a.ldx(4, R2, R9, bl)
            out, nxt = a.new_label("g6_out"), a.new_label("g6_next")
            a.jmp(">", R1, out, imm=i)
            a.mov(R3, R1)
            a.alu("+", R3, src=R2)
            a.jmp("<=", R3, out, imm=i)
            a.jmp("!=", R1, nxt, imm=i)  # inside the run: "::" at its start
            self._put_char(v.reg, R0, ord(":"), imm=True)
            self._put_char(v.reg, R0, ord(":"), imm=True)
            a.st(4, R9, sep, 0)
            a.ja(nxt)
            a.place(out)
            nosep = a.new_label("g6_nosep")
            a.ldx(4, R3, R9, sep)
            a.jmp("==", R3, nosep, imm=0)
            self._put_char(v.reg, R0, ord(":"), imm=True)
            a.place(nosep)
            group(R4, i)
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
                self._put_char(v.reg, R0, R3)
                a.place(skip)
            a.st(4, R9, sep, 1)
            a.place(nxt)
        return v


def _null_constant(x: ast.Expr) -> bool:
    """0 or NULL (possibly cast) where a string is expected."""
    while isinstance(x, ast.Cast):
        x = x.operand
    return (isinstance(x, ast.IntLit) and x.value == 0) or (
        isinstance(x, ast.Ident) and x.name == "NULL"
    )
