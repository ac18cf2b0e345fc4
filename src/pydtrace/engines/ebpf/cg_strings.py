"""String values: literals, zeroed string buffers in the frame, whole-buffer
copies, comparisons (a byte loop, or unrolled against a short literal),
NULL strings, and the loop exit the string loops share (loop_exit). The
string subroutines (strlen, strjoin, ...) are cg_string_subroutines'."""

from __future__ import annotations

from pydtrace.consume.records import BADADDR
from pydtrace.engines.ebpf.cg_context import (
    CompilerBase,
    Value,
)
from pydtrace.engines.ebpf.insn import NEGATE, R0, R1, R2, R3, R4, R5, R9
from pydtrace.lang import ast
from pydtrace.lang import types as T


class StringsMixin(CompilerBase):
    def copy_string_to(self, dst: int, off: int, src: int, area: str | None = None) -> None:
        """Copy a whole string buffer (strsize+1 bytes, zero padded) to dst+off.
        Both point into map values (the frame, a variable's value); dst is not
        r3. Clobbers r0-r5, as a helper call does (values live in r6-r8)."""
        a = self.a
        n = self.ssize
        if n < 64:  # two instructions per 8 bytes: fewer than a helper call's setup
            pos = 0
            while pos < n:
                size = 8 if n - pos >= 8 else 4 if n - pos >= 4 else 2 if n - pos >= 2 else 1
                a.ldx(size, R5, src, pos)
                a.stx(size, dst, off + pos, R5)
                if area is not None:
                    self._mark(a.insns[-1], area, off + pos)
                pos += size
            return
        # One probe_read_kernel of the whole buffer: 6 instructions where the
        # unrolled copy took 66 at the default strsize (a printf of 21 strings
        # was 1,400 of them, generated and verified at every start).
        assert dst != R3, "copy_string_to: dst in r3"
        if src in (R1, R2):
            a.mov(R3, src)  # before r1 and r2 are written
        a.mov(R1, dst)
        a.alu("+", R1, imm=0 if area is not None else off)
        if area is not None:
            self._mark(a.insns[-1], area, off)
        if src not in (R1, R2, R3):
            a.mov(R3, src)
        a.movi(R2, n)
        a.call("probe_read_kernel")

    def new_string(self, by_call: bool = False) -> tuple[Value, int]:
        """A zeroed string buffer in the frame; returns (pointer value, area offset).
        by_call: the caller holds nothing in r0-r5, so a long buffer is zeroed
        by one helper call rather than a store per 8 bytes."""
        a = self.a
        rel = self.string_buf()
        v = self.alloc(T.STRING)
        a.mov(v.reg, R9)
        a.alu("+", v.reg, imm=0)
        self._mark(a.insns[-1], "str", rel)
        if by_call and self.ssize >= 64:
            self.zero_by_call(v.reg, self.ssize)
            return v, rel
        pos = 0
        while pos < self.ssize:
            size = 8 if self.ssize - pos >= 8 else 1
            a.st(size, v.reg, pos, 0)
            pos += size
        return v, rel

    def zero_by_call(self, dst: int, n: int) -> None:
        """n bytes at dst (a register, into a map value) set to zero by
        probe_read_kernel from address 0: the read always fails, and a failed
        read zero-fills its destination (the verifier counts it as written).
        5 instructions for what took n/8 stores. Clobbers r0-r5."""
        a = self.a
        a.mov(R1, dst)
        a.movi(R2, n)
        a.movi(R3, 0)
        a.call("probe_read_kernel")

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
        # exits as fall-throughs (loop_exit): many comparisons in a row otherwise queue
        # more than the verifier's 8192 pending branches (PROG_LOAD fails with EFAULT)
        self.loop_exit("!=", R4, diff, src=R5)
        self.loop_exit("==", R4, equal, imm=0)
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

    def loop_exit(
        self, op: str, reg: int, label: str, src: int | None = None, imm: int = 0
    ) -> None:
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
