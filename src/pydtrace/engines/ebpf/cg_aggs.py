"""Aggregations: `@a[keys] = f(args)` statements (ProgramMixin.stmt hands
them here): key building, per-CPU value updates, quantize buckets."""

from __future__ import annotations

from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.cg_context import (
    DROP_AGG,
    CompilerBase,
)
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9, s64
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.types import CType


class AggsMixin(CompilerBase):
    def aggregate(self, e: ast.Assign) -> None:
        a = self.a
        info = e.agg  # type: ignore[attr-defined]
        lay = self.out.aggs[info.name]
        target = e.target
        keys = target.args if isinstance(target, ast.Index) else []
        own = self.agg_own_key.get(info.name)
        if own is not None:  # a shared map: the tag, then this key, zero padded
            a.st(8, R9, self.f_key, lay.tag)
            for p in range(own, lay.key_size, 8):
                a.st(8, R9, self.f_key + p, 0)
            if not keys:
                a.st(8, R9, self.f_key + 8, 0)
        elif not keys:
            a.st(8, R9, self.f_key, 0)
        for k, slot in zip(keys, lay.keys):
            t: CType = k.ctype  # type: ignore[attr-defined]
            if isinstance(slot, L.ProbeNameSlot):
                self.probe_id_to(R1)
                a.stx(8, R9, self.f_key + slot.off, R1)
                continue
            if isinstance(slot, L.StackSlot):
                self.stack_key(k, slot)  # cg_stack
                continue
            if isinstance(slot, L.SymSlot):
                self.symbol_key(k, slot)  # cg_stack
                continue
            v = self.expr(k)
            if t.is_char_array():  # a string key (the checker typed it so): its characters
                v = self.string_at(v)
                t = T.STRING
            if t.is_string():
                self.copy_string_to(R9, self.f_key + slot.off, v.reg)
                if own is not None:  # other aggregations' keys leave bytes here
                    for pad in range(self.ssize, L.align8(self.ssize)):
                        a.st(1, R9, self.f_key + slot.off + pad, 0)
            elif t.is_int() or t.is_pointer():
                self.wrap(v.reg, slot.ctype if slot.ctype.is_int() else t)
                a.stx(8, R9, self.f_key + slot.off, v.reg)
            else:
                raise self.unsupported(f"aggregation keys of type {t}", k)
            self.free(v)
        call = e.value
        assert isinstance(call, ast.Call)
        func = call.name
        val = self.expr(call.args[0]) if call.args and func != "count" else None
        incr_pos = {"quantize": 1, "lquantize": 4, "llquantize": 5}.get(func)
        incr = (
            self.expr(call.args[incr_pos])
            if incr_pos is not None and len(call.args) > incr_pos
            else None
        )
        # r0 = the entry, created zeroed when missing
        found = a.new_label("agg")
        skip = a.new_label("aggdrop")
        for attempt in range(2):
            a.ld_map(R1, lay.map_name)
            a.mov(R2, R9)
            a.alu("+", R2, imm=self.f_key)
            a.call("map_lookup_elem")
            a.jmp("!=", R0, found, imm=0)
            if attempt == 0:
                a.ld_map(R1, lay.map_name)
                a.mov(R2, R9)
                a.alu("+", R2, imm=self.f_key)
                a.mov(R3, R9)
                a.alu("+", R3, imm=self.f_zero)
                a.movi(R4, 1)  # BPF_NOEXIST
                a.call("map_update_elem")
        self.count_drop(DROP_AGG)
        a.ja(skip)
        a.place(found)
        a.ldx(8, R1, R0, 0)
        a.alu("+", R1, imm=1)
        a.stx(8, R0, 0, R1)  # updates on this CPU (the first says "no value yet" for min/max)
        vr = val.reg if val is not None else None
        if func == "count":
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
        elif func == "sum":
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, vr)
            a.stx(8, R0, 8, R2)
        elif func in ("min", "max"):
            store = a.new_label("set")
            keep = a.new_label("keep")
            a.jmp("==", R1, store, imm=1)  # first value on this CPU
            a.ldx(8, R2, R0, 8)
            a.jmp("s<=" if func == "min" else "s>=", R2, keep, src=vr)
            a.place(store)
            a.stx(8, R0, 8, vr)
            a.place(keep)
        elif func in ("avg", "stddev"):  # count, sum (and stddev's sum of squares)
            a.ldx(8, R2, R0, 8)
            a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
            a.ldx(8, R2, R0, 16)
            a.alu("+", R2, vr)
            a.stx(8, R0, 16, R2)
            if func == "stddev":
                assert vr is not None
                self.add_square_128(vr)
        elif func in ("quantize", "lquantize", "llquantize"):
            assert vr is not None
            if func == "quantize":
                self.quantize_bucket(vr)
            elif func == "lquantize":
                self.lquantize_bucket(vr, *info.params)
            else:
                self.llquantize_bucket(vr, *info.params)
            # r1 = bucket index, bounded for the verifier
            a.alu("&", R1, imm=0x7FFF)
            a.jmp(">=", R1, skip, imm=lay.words)
            a.alu("<<", R1, imm=3)
            a.alu("+", R0, R1)
            a.ldx(8, R2, R0, 8)
            if incr is not None:
                a.alu("+", R2, incr.reg)
            else:
                a.alu("+", R2, imm=1)
            a.stx(8, R0, 8, R2)
        else:
            raise self.unsupported(f"{func}()", e)
        a.place(skip)
        self.free(incr)
        self.free(val)

    def add_square_128(self, vr: int) -> None:
        """The entry's 128-bit sum of squares (words at r0+24, r0+32) += vr * vr."""
        a = self.a
        a.mov(R1, vr)
        pos = a.new_label("sqabs")
        a.jmp("s>=", R1, pos, imm=0)
        a.neg(R1)
        a.place(pos)
        a.alu("=", R2, R1, wide=False)  # low half
        a.alu(">>", R1, imm=32)  # high half
        a.mov(R3, R2)
        a.alu("*", R3, R2)  # lo*lo
        a.mov(R4, R1)
        a.alu("*", R4, R2)  # hi*lo
        a.alu("*", R1, R1)  # hi*hi
        a.mov(R2, R4)
        a.alu("<<", R2, imm=33)  # 2*hi*lo << 32, low word
        a.alu(">>", R4, imm=31)  # ... its high word
        a.alu("+", R1, R4)
        a.alu("+", R2, R3)
        c1 = a.new_label("carry")
        a.jmp(">=", R2, c1, src=R3)
        a.alu("+", R1, imm=1)
        a.place(c1)
        # (r1:r2) = the square; add it to the stored words
        a.ldx(8, R3, R0, 24)
        a.alu("+", R3, R2)
        c2 = a.new_label("carry")
        a.jmp(">=", R3, c2, src=R2)
        a.alu("+", R1, imm=1)
        a.place(c2)
        a.stx(8, R0, 24, R3)
        a.ldx(8, R4, R0, 32)
        a.alu("+", R4, R1)
        a.stx(8, R0, 32, R4)

    def llquantize_bucket(self, vr: int, factor: int, low: int, high: int, steps: int) -> None:
        """r1 = the log-linear bin of vr (consume.aggregation.llquantize_bucket, unrolled
        over the magnitudes low..high)."""
        from pydtrace.consume.aggregation import llquantize_geometry

        a = self.a
        sf, bin0, _ = llquantize_geometry(factor, low, high, steps)
        done, sign = a.new_label("lldone"), a.new_label("llsign")
        a.movi(R1, bin0)
        a.mov(R2, vr)
        pos = a.new_label("llabs")
        a.jmp("s>=", R2, pos, imm=0)
        a.neg(R2)
        a.place(pos)
        top = factor**low
        if top < 1 << 64:
            a.ld_imm64(R3, s64(top))
            a.jmp("<", R2, done, src=R3)
        else:
            a.ja(done)
        for mag in range(low, high + 1):
            top *= factor
            nxt = a.new_label("llmag")
            if top < 1 << 64:
                a.ld_imm64(R3, s64(top))
                a.jmp(">=", R2, nxt, src=R3)
            a.mov(R4, R2)
            if mag != 0:
                a.ld_imm64(R3, s64(max(1, top // steps)))
                a.alu("/", R4, R3)
            else:
                a.alu("*", R4, imm=steps)
                a.ld_imm64(R3, s64(top))
                a.alu("/", R4, R3)
            a.alu("+", R4, imm=(mag - low) * (steps - sf) - sf + 1)
            a.ja(sign)
            a.place(nxt)
            if top >= 1 << 64:
                break
        else:
            a.movi(R4, (high + 1 - low) * (steps - sf) + 1)
        a.place(sign)
        a.mov(R1, R4)
        neg = a.new_label("llneg")
        a.jmp("s<", vr, neg, imm=0)
        a.alu("+", R1, imm=bin0)
        a.ja(done)
        a.place(neg)
        a.neg(R1)
        a.alu("+", R1, imm=bin0)
        a.place(done)

    def quantize_bucket(self, vr: int) -> None:
        """r1 = the power-of-two bucket of the value in vr (63 holds 0)."""
        a = self.a
        done = a.new_label("qdone")
        a.movi(R1, 63)
        a.jmp("==", vr, done, imm=0)
        a.mov(R2, vr)
        neg = a.new_label("qneg")
        a.jmp("s<", R2, neg, imm=0)
        self.bit_length(R2, R3)
        a.mov(R1, R3)
        a.alu("+", R1, imm=63)
        a.ja(done)
        a.place(neg)
        a.neg(R2)  # INT64_MIN stays 2**63: 64 bits, bucket 0
        self.bit_length(R2, R3)
        a.movi(R1, 63)
        a.alu("-", R1, R3)
        a.place(done)

    def bit_length(self, src: int, out: int) -> None:
        """out = the bit length of the unsigned value in src (src is clobbered)."""
        a = self.a
        a.movi(out, 0)
        for shift in (32, 16, 8, 4, 2, 1):
            small = a.new_label("bl")
            a.mov(R4, src)
            a.alu(">>", R4, imm=shift)
            a.jmp("==", R4, small, imm=0)
            a.mov(src, R4)
            a.alu("+", out, imm=shift)
            a.place(small)
        none = a.new_label("bl0")
        a.jmp("==", src, none, imm=0)
        a.alu("+", out, imm=1)
        a.place(none)

    def lquantize_bucket(self, vr: int, low: int, high: int, step: int, *_: int) -> None:
        """r1 = 0 below low, 1 + (v - low) / step, capped at levels + 1."""
        a = self.a
        levels = (high - low) // step
        done = a.new_label("ldone")
        a.movi(R1, 0)
        a.movi(R2, low)
        a.jmp("s<", vr, done, src=R2)
        a.mov(R1, vr)
        a.alu("-", R1, R2)
        a.movi(R2, step)
        a.alu("/", R1, R2)
        a.movi(R2, levels)
        capped = a.new_label("lcap")
        a.jmp("<=", R1, capped, src=R2)
        a.mov(R1, R2)
        a.place(capped)
        a.alu("+", R1, imm=1)
        a.place(done)
