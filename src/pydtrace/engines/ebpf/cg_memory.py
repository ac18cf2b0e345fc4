"""D's memory model on BPF: alloca() scratch space, loads and stores through
pointers, `&`, member access, pointer subscripts and arithmetic; the
subroutines alloca, copyin, copyinto and bcopy (lower_*, in cg_subroutines'
table).

Addresses follow the user engine (engines/user/memory.py) so traced pointers
print the same: scratch addresses start at 8 (dtrace's numbering) and cover
scratchsize - 8 bytes. The scratch bytes live in the per-CPU frame after a
word holding the current top (the end of what alloca() gave out). The first
expression of every clause resets the top (dtrace resets scratch space per
clause); a clause that calls alloca() also zeroes the scratch bytes then, so
memory alloca() hands out is always zero. A load from [8, top) reads the
frame; any other address is read from kernel memory (probe_read_kernel), and
an unreadable one faults "invalid address" with the address, like the user
engine's unmapped addresses. Stores outside [8, top) fault the same way.
"""

from __future__ import annotations

from pydtrace.consume.records import BADINDEX, BADSIZE, NOSCRATCH
from pydtrace.engines.ebpf.cg_context import BADADDR, CompilerBase, Value
from pydtrace.engines.ebpf.cg_queries import calls
from pydtrace.engines.ebpf.errors import LoweringError
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R5, R9, R10
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.types import CType
from pydtrace.options import size_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SCRATCH_BASE = 8  # dtrace's first alloca() pointer
DEFAULT_SCRATCHSIZE = 8 + 256
_SCRATCH_FUNCS = ("alloca", "copyin", "copyinto")
# the user engine's regions for memory variables (engines/user/memory.py):
# globals in declaration order from 0x10000000, each followed by a gap
REGION_BASE, REGION_GAP = 0x10000000, 0x1000


class Region:
    """A memory variable: its D address range and where its bytes live
    (area 'globals': the globals map value; 'frame': the per-CPU frame)."""

    def __init__(self, vaddr: int, size: int, area: str, off: int) -> None:
        self.vaddr, self.size, self.area, self.off = vaddr, size, area, off


def _calls(node: Any, names: tuple[str, ...]) -> bool:
    """Does the AST under node call one of names?"""
    return calls(node, names)


def is_fds_member(e: Any) -> bool:
    """Is e `fds[fd].member` (the checker's fds[] reference, cg_files' to lower)?"""
    base = getattr(e, "base", None)
    return (
        isinstance(e, ast.Member)
        and not e.arrow
        and isinstance(base, ast.Index)
        and getattr(base, "ref", ("",))[0] == "fds"
    )


def scalar_size(t: CType) -> int:
    """Bytes a scalar of type t occupies in memory (0: not a loadable scalar)."""
    r = t.r
    if r.kind == "enum":
        return 4
    if r.kind == "ptr":
        return 8
    if r.kind == "int":
        return r.size
    return 0


def in_memory(t: CType) -> bool:
    return t.r.kind in ("struct", "union", "array")


def type_size(t: CType) -> int:
    return scalar_size(t) or max(t.r.size, 0)


class MemoryMixin(CompilerBase):
    # --- scratch space -----------------------------------------------------------
    def scratch(self) -> tuple[int, int, int] | None:
        """(frame offset of the top word, of the scratch bytes, their size), or
        None when the program never allocates scratch memory. Kept on the frame
        object: compiler state set while compiling ERROR's clauses is discarded."""
        info = getattr(self.frame, "scratch", False)
        if info is False:
            info = None
            if _calls(
                [c.body for c in self.prog.clauses] + [c.predicate for c in self.prog.clauses],
                _SCRATCH_FUNCS,
            ):
                size = size_option(self.options, "scratchsize", DEFAULT_SCRATCHSIZE) - SCRATCH_BASE
                size = max(size, 0)
                if size >= 1 << 15:  # no frame offset reaches past it (-x scratchsize=1t hung)
                    raise LoweringError("the eBPF engine's frame is too large (lower scratchsize)")
                info = (self.frame.take(8), self.frame.take(max(size, 8)), size)
            self.frame.scratch = info  # type: ignore[attr-defined]
        return info

    def mem_regions(self) -> dict[tuple[str, str], Region]:
        """(scope, name) -> Region of every memory variable placed so far."""
        regs = getattr(self.frame, "regions", None)
        if regs is None:
            regs = self.frame.regions = {}  # type: ignore[attr-defined]
        return regs

    def next_vaddr(self) -> int:
        """The D address of the next memory variable (after the last, a gap between)."""
        vaddr = REGION_BASE
        for r in self.mem_regions().values():
            vaddr = max(
                vaddr, r.vaddr + (max(r.size, 1) + 2 * REGION_GAP - 1) // REGION_GAP * REGION_GAP
            )
        return vaddr

    def memory_variable(self, scope: str, name: str, var: Any) -> bool:
        """Place a variable cg_program cannot: global or this-> arrays/structs/
        unions (memory regions), floats (8-byte words holding their bits),
        self-> and associative arrays holding structs/unions/floats or keyed
        by structs (dynamic variables); False: not one we can place."""
        t: CType = var.type
        if t.r.kind == "float" and not getattr(var, "array", False):
            if scope == "global" and var.keys is None:
                self.global_off[name] = self.globals_size
                self.globals_size += 8
                return True
            if scope == "this":
                self.this_off[name] = -1  # cg_program places it as an 8-byte scalar
                return True
        if scope == "self" or var.keys is not None:
            return self.dynamic_variable(scope, name, var)
        if not in_memory(t) or scope not in ("global", "this"):
            return False
        size = type_size(t)
        regs = self.mem_regions()
        vaddr = self.next_vaddr()
        if scope == "global":
            off = self.globals_size
            self.globals_size += (size + 7) // 8 * 8
            regs[(scope, name)] = Region(vaddr, size, "globals", off)
        else:
            off = self.frame.take(size)
            regs[(scope, name)] = Region(vaddr, size, "frame", off)
        return True

    def dynamic_variable(self, scope: str, name: str, var: Any) -> bool:
        """A self-> variable or associative array cg_program leaves to us: its
        value a struct/union (copied through a frame area registered as a
        memory region, so member loads read it) or a float, its keys scalars,
        strings or structs/unions (their bytes)."""
        t: CType = var.type
        keys = list(var.keys or [])
        if getattr(var, "array", False) and t.r.kind != "array":
            return False
        if not all(k.is_int() or k.is_pointer() or k.is_string() or in_memory(k) for k in keys):
            return False
        ok_value = t.is_int() or t.is_pointer() or t.is_string() or t.r.kind == "float"
        if not ok_value and not (in_memory(t) and 0 < type_size(t) <= 256):
            return False
        if not hasattr(self, "dvar_id"):
            return False  # cg_program's globals loop: the dvars loop places it
        self.dvar_id[(scope, name)] = len(self.dvar_id) + 1
        ksize = 16 + sum(self.key_width(k) for k in keys)
        self.dkey_size = max(self.dkey_size, ksize)
        if t.is_string():
            self.dval_size = max(self.dval_size, (self.ssize + 7) // 8 * 8)
        if in_memory(t):
            size = type_size(t)
            self.dval_size = max(self.dval_size, (size + 7) // 8 * 8)
            vaddr = self.next_vaddr()
            off = self.frame.take((size + 7) // 8 * 8)
            self.mem_regions()[("dyn-" + scope, name)] = Region(vaddr, size, "frame", off)
        return True

    def read_block(self, dst: Any, addr: Value, size: int) -> None:
        """Copy size bytes at the D address in addr (a memory region, scratch or
        kernel memory; unreadable = invalid address) to where dst(reg) points
        (dst emits `reg = destination pointer`)."""
        a = self.a
        read = a.new_label("bread")

        def found(ptr: int, off: int) -> None:
            if off:
                a.alu("+", ptr, imm=off)
            a.mov(R3, ptr)
            a.ja(read)

        self.region_ptr(addr.reg, size, found)
        a.mov(R3, addr.reg)
        a.place(read)
        dst(R1)
        a.movi(R2, size)
        a.call("probe_read_kernel")
        ok = a.new_label("bok")
        a.jmp("==", R0, ok, imm=0)
        self.fault(BADADDR, addr.reg)
        a.place(ok)

    def frame_dst(self, off: int) -> Any:
        def dst(reg: int) -> None:
            self.a.mov(reg, R9)
            self.a.alu("+", reg, imm=off)

        return dst

    def memory_prologue(self) -> None:
        """Per firing (the program's prologue): this-> memory variables start zeroed."""
        self.frame.zeroed_for = self.a  # type: ignore[attr-defined]
        for r in self.mem_regions().values():
            if r.area == "frame":
                for p in range(0, r.size, 8):
                    self.a.st(8, R9, r.off + p, 0)  # the area is 8-byte aligned

    def clause_memory_reset(self) -> None:
        """Called before the first expression of each clause (always on the
        clause's unconditional path): scratch space starts empty."""
        if getattr(self, "_mem_clause", None) is self.c:
            return
        self._mem_clause = self.c
        if getattr(self.frame, "zeroed_for", None) is not self.a:
            # the program's prologue did not call memory_prologue: zero this->
            # memory variables before the program's first expression instead
            self.memory_prologue()
        info = self.scratch()
        if info is None:
            return
        top, base, size = info
        a = self.a
        a.st(8, R9, top, SCRATCH_BASE)
        if _calls([self.c.body, self.c.predicate], _SCRATCH_FUNCS):
            for p in range(0, size, 8):
                a.st(min(8, size - p) if size - p in (1, 2, 4) else 8, R9, base + p, 0)

    def lower_alloca(self, e: ast.Call) -> Value:
        """Scratch memory, 8-byte aligned; too big = "out of scratch space"."""
        v = self.expr(e.args[0])
        self.alloca_value(v)
        v.ctype = e.ctype  # type: ignore[attr-defined]
        return v

    def lower_copyin(self, e: ast.Call) -> Value:
        """copyin(uaddr, n): n bytes of the current process's memory in fresh
        scratch space; unreadable = invalid address (the user address)."""
        src = self.expr(e.args[0])
        n = self.expr(e.args[1])
        self.reload(src, n)
        self.reload(n, src)
        self.copy_size_check(n)
        keep = self.alloc(T.ULONG)
        self.reload(n, keep)
        self.a.mov(keep.reg, n.reg)
        self.alloca_value(n)  # n.reg = the scratch address
        self.reload(src, n, keep)
        self.reload(n, src, keep)
        self.user_read(n, keep, src)
        self.free(keep)
        self.free(src)
        n.ctype = e.ctype  # type: ignore[attr-defined]
        return n

    def lower_copyinto(self, e: ast.Call) -> Value:
        """copyinto(uaddr, n, dst): into allocated scratch space at dst."""
        src = self.expr(e.args[0])
        n = self.expr(e.args[1])
        dst = self.expr(e.args[2])
        for v in (src, n, dst):
            self.reload(v, *(w for w in (src, n, dst) if w is not v))
        self.user_read(dst, n, src, copyinto=True)
        self.free(src)
        self.free(n)
        self.a.movi(dst.reg, 0)
        dst.ctype = e.ctype  # type: ignore[attr-defined]
        return dst

    def copy_size_check(self, n: Value) -> None:
        """copyin's and copyinto's first check, as dtrace's: a size below 0 or
        above scratch space is an invalid size (the size)."""
        info = self.scratch()
        assert info is not None
        a = self.a
        ok = a.new_label("csz")
        a.jmp("<=", n.reg, ok, imm=info[2])  # unsigned: a negative size is huge
        self.fault(BADSIZE, n.reg)
        a.place(ok)

    def user_read(self, dst: Value, n: Value, src: Value, copyinto: bool = False) -> None:
        """probe_read_user n bytes at src into scratch at dst, checked in
        dtrace's order: (copyinto: the size and a NULL source,) a destination
        outside allocated scratch space (invalid address), one too small
        (invalid size: n), an unreadable source (invalid address)."""
        info = self.scratch()
        assert info is not None
        top, base, size = info
        a = self.a
        if copyinto:
            self.copy_size_check(n)
            nonnull = a.new_label("urn")
            a.jmp("!=", src.reg, nonnull, imm=0)
            self.fault(BADADDR, src.reg)
            a.place(nonnull)
        bad_dst, bad_size = a.new_label("urd"), a.new_label("urz")
        bad_src, done = a.new_label("urs"), a.new_label("urok")
        a.mov(R1, dst.reg)
        a.alu("-", R1, imm=SCRATCH_BASE)
        a.jmp(">=", R1, bad_dst, imm=size)
        a.ldx(8, R0, R9, top)
        a.jmp(">=", dst.reg, bad_dst, src=R0)
        a.mov(R2, n.reg)
        a.jmp(">", R2, bad_size, imm=size)
        a.mov(R3, dst.reg)
        a.alu("+", R3, R2)
        a.jmp(">", R3, bad_size, src=R0)
        a.jmp("==", R2, done, imm=0)
        a.alu("+", R1, R9)
        a.alu("+", R1, imm=base)
        a.mov(R3, src.reg)
        a.call("probe_read_user")
        a.jmp("==", R0, done, imm=0)
        a.ja(bad_src)
        a.place(bad_dst)
        self.fault(BADADDR, dst.reg)
        a.place(bad_size)
        self.fault(BADSIZE, n.reg)
        a.place(bad_src)
        self.fault(BADADDR, src.reg)
        a.place(done)

    def copyin_scalar(self, e: ast.Unary) -> tuple[ast.Expr, CType] | None:
        """(address, T) when e is *(T *)copyin(address, n) with T an integer or
        pointer of n bytes (a user word read the D way), else None."""
        cast = e.operand
        if not (isinstance(cast, ast.Cast) and isinstance(cast.operand, ast.Call)):
            return None
        call = cast.operand
        t: CType = e.ctype  # type: ignore[attr-defined]
        if call.name != "copyin" or len(call.args) != 2 or not (t.is_int() or t.is_pointer()):
            return None
        n = call.args[1]
        size = scalar_size(t)
        info = self.scratch()
        if not isinstance(n, ast.IntLit) or n.value != size or info is None or size > info[2]:
            return None
        return call.args[0], t

    def user_scalar(self, addr: ast.Expr, t: CType) -> Value:
        """*(T *)copyin(addr, sizeof (T)): copyin's scratch space is taken as
        copyin takes it (a full scratch space faults the same way), but the
        word is read to the stack and loaded, not copied into scratch and
        looked up there: 31 instructions where the whole took 76 (execsnoop
        reads 21 argv words so at each exec)."""
        size = scalar_size(t)
        src = self.expr(addr)
        room = self.alloc(T.ULONG)
        self.a.movi(room.reg, size)
        self.alloca_value(room)
        self.free(room)
        self.reload(src)
        self.read_word(src.reg, size, "probe_read_user")
        if t.is_int():
            self.wrap(src.reg, t)
        src.ctype = t
        return src

    def alloca_value(self, v: Value) -> None:
        """v.reg: a size -> the address of that much fresh scratch space."""
        info = self.scratch()
        assert info is not None
        top, _, size = info
        a = self.a
        a.ldx(8, R1, R9, top)
        a.movi(R2, SCRATCH_BASE + size)
        a.alu("-", R2, R1)
        ok = a.new_label("alloca")
        a.jmp("<=", v.reg, ok, src=R2)
        self.fault(NOSCRATCH)
        a.place(ok)
        a.alu("+", v.reg, imm=7)
        a.alu("&", v.reg, imm=-8)
        a.alu("+", v.reg, R1)
        a.stx(8, R9, top, v.reg)
        a.mov(v.reg, R1)

    def scratch_ptr(self, reg: int, n: int, miss: str) -> int:
        """R1 = a frame-relative pointer for the n bytes at address reg when they
        lie in allocated scratch space, else jump to miss; returns the offset to
        add to R1 (the scratch area's frame offset)."""
        info = self.scratch()
        a = self.a
        if info is None:
            return 0  # no scratch space: the caller goes on with the miss path
        top, base, size = info
        if n > size:
            self.always(miss)
            return base
        a.mov(R1, reg)
        a.alu("-", R1, imm=SCRATCH_BASE)
        a.jmp(">", R1, miss, imm=size - n)
        a.ldx(8, R2, R9, top)
        a.mov(R3, R1)
        a.alu("+", R3, imm=n + SCRATCH_BASE)
        a.jmp(">", R3, miss, src=R2)
        a.alu("+", R1, R9)
        return base

    def always(self, label: str) -> None:
        """Jump to label; written as a conditional jump the verifier resolves, so
        the static reachability check still sees the code after it."""
        self.a.movi(R1, 0)
        self.a.jmp("==", R1, label, imm=0)

    def region_ptr(self, reg: int, n: int, found: Any) -> None:
        """For each memory region the n bytes at address reg may lie in: R1 = a
        pointer to them, then found(R1, offset) emits the access; falls through
        when the address is in no region."""
        a = self.a
        info = self.scratch()
        if info is not None:
            miss = a.new_label("nscr")
            off = self.scratch_ptr(reg, n, miss)
            if n <= info[2]:
                found(R1, off)
            a.place(miss)
        for r in self.mem_regions().values():
            if n > r.size:
                continue
            miss = a.new_label("nreg")
            a.mov(R1, reg)
            a.ld_imm64(R2, r.vaddr)
            a.alu("-", R1, R2)
            a.jmp(">", R1, miss, imm=r.size - n)
            if r.area == "globals":
                a.ld_map(R2, "globals", 0)
            else:
                a.mov(R2, R9)
            a.alu("+", R1, R2)
            found(R1, r.off)
            a.place(miss)

    def read_word(self, reg: int, size: int, helper: str) -> None:
        """reg: an address -> the size bytes there (1, 2, 4 or 8, zero-extended),
        read by helper (probe_read_kernel or probe_read_user) through a frame
        word (read_to_word); an unreadable address faults "invalid address"
        with it."""
        a = self.a
        a.mov(R3, reg)
        word = self.read_to_word(helper, size)
        ok = a.new_label("rdok")
        a.jmp("==", R0, ok, imm=0)
        self.fault(BADADDR, reg)
        a.place(ok)
        a.ldx(size, reg, R9, word)

    def mem_load(self, v: Value, t: CType) -> None:
        """v.reg: an address -> the scalar of type t stored there (faults when
        the address is in no region and not readable kernel memory)."""
        size = scalar_size(t)
        if size not in (1, 2, 4, 8):
            raise self.unsupported(f"loading a value of type {t}", None)
        a = self.a
        done = a.new_label("ld")

        def found(ptr: int, off: int) -> None:
            a.ldx(size, v.reg, ptr, off)
            a.ja(done)

        self.region_ptr(v.reg, size, found)
        self.read_word(v.reg, size, "probe_read_kernel")
        a.place(done)
        if t.is_int():
            self.wrap(v.reg, t)
        v.ctype = t

    def mem_store(self, addr: Value, val: Value, t: CType) -> None:
        """*addr = val (type t); only scratch memory and D variables are writable."""
        size = scalar_size(t)
        if size not in (1, 2, 4, 8):
            raise self.unsupported(f"storing a value of type {t}", None)
        a = self.a
        done, bad = a.new_label("st"), a.new_label("stbad")

        def found(ptr: int, off: int) -> None:
            a.stx(size, ptr, off, val.reg)
            a.ja(done)

        self.region_ptr(addr.reg, size, found)
        self.always(bad)  # the code after must stay reachable for the verifier's first pass
        a.ja(done)
        a.place(bad)
        self.fault(BADADDR, addr.reg)
        a.place(done)

    # --- addresses ---------------------------------------------------------------
    def address(self, e: ast.Expr) -> Value:
        """The address of an lvalue in memory."""
        if isinstance(e, ast.Unary) and e.op == "*":
            return self.expr(e.operand)
        if isinstance(e, ast.Member):
            off = e.member.offset  # type: ignore[attr-defined]
            v = self.expr(e.base) if e.arrow else self.address(e.base)
            if e.arrow:  # a NULL pointer faults at 0 (dtrace's address), not at the offset
                ok = self.a.new_label("nonnull")
                self.a.jmp("!=", v.reg, ok, imm=0)
                self.fault(BADADDR, v.reg)
                self.a.place(ok)
            if off:
                self.a.alu("+", v.reg, imm=off)
            return v
        if isinstance(e, ast.Index) and e.ref[0] == "element":  # type: ignore[attr-defined]
            bt: CType = e.base.ctype  # type: ignore[attr-defined]
            size = type_size(e.ctype)  # type: ignore[attr-defined]
            if bt.is_array():
                v = self.address(e.base)
                i = self.expr(e.args[0])
                self.reload(v, i)
                if isinstance(e.base, ast.Ident):  # a declared array: dtrace checks the index
                    ok, bad = self.a.new_label("idx"), self.a.new_label("badidx")
                    self.a.jmp("s<", i.reg, bad, imm=0)
                    self.a.jmp("s<", i.reg, ok, imm=bt.r.count)
                    self.a.place(bad)
                    self.fault(BADINDEX, i.reg)
                    self.a.place(ok)
            else:
                v = self.expr(e.base)
                i = self.expr(e.args[0])
                self.reload(v, i)
            if size != 1:
                self.a.alu("*", i.reg, imm=size)
            self.a.alu("+", v.reg, i.reg)
            self.free(i)
            return v
        t: CType = e.ctype  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident) and e.ref[0] == "inline":  # type: ignore[attr-defined]
            return self.address(e.ref[1])  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident) and e.ref[0] == "ksym":  # type: ignore[attr-defined]
            return self.ksym_address(e.ref[1], t)  # type: ignore[attr-defined]
        if isinstance(e, ast.Ident) and e.ref[0] == "xlarg" and in_memory(t):  # type: ignore[attr-defined]
            return self.expr(e)  # a translator's struct parameter: the operand's address
        key = None
        if isinstance(e, ast.Ident) and e.ref[0] == "global":  # type: ignore[attr-defined]
            key = ("global", e.name)
        elif isinstance(e, ast.ThisVar):
            key = ("this", e.name)
        r = self.mem_regions().get(key) if key else None
        if r is not None:
            return self.const(r.vaddr, t)
        kind = e.ref[0] if isinstance(e, ast.Index) else None  # type: ignore[attr-defined]
        if kind == "fds":
            return self.fds_struct(e)  # type: ignore[attr-defined, no-any-return]
        if in_memory(t) and (isinstance(e, ast.SelfVar) or kind == "assoc"):
            return self.expr(e)  # a dynamic struct: the address of its copy in the frame
        if in_memory(t) and not isinstance(e, (ast.Ident, ast.ThisVar, ast.SelfVar, ast.Index)):
            return self.expr(e)  # an expression of aggregate type yields its address
        raise self.unsupported(f"the address of {type(e).__name__.lower()}", e)

    def load_lvalue(self, e: ast.Expr) -> Value:
        """The value of an lvalue in memory: its address for aggregates."""
        if is_fds_member(e):
            return self.fds_member(e)  # type: ignore[arg-type, attr-defined]
        if isinstance(e, ast.Member) and isinstance(e.base, ast.Xlate):
            one = self.xlate_member(e)
            if one is not None:
                return one
        t: CType = e.ctype  # type: ignore[attr-defined]
        m = getattr(e, "member", None) if isinstance(e, ast.Member) else None
        if m is not None and m.bits:
            return self.load_bits(e, m)
        if t.is_string():  # read up to strsize bytes, to the NUL
            return self.string_at(self.address(e))
        v = self.address(e)
        if in_memory(t):
            v.ctype = t
            return v
        self.mem_load(v, t)
        return v

    def load_bits(self, e: ast.Member, m: Any) -> Value:
        """A bit-field: the container integer (the member's type) at the
        member's offset, shifted and masked, sign-extended when signed."""
        mt: CType = m.type
        v = self.address(e)
        self.mem_load(v, _unsigned(mt))
        a = self.a
        top = 64 - m.bit_offset - m.bits
        a.alu("<<", v.reg, imm=top)
        a.alu("s>>" if mt.is_signed() else ">>", v.reg, imm=64 - m.bits)
        v.ctype = e.ctype  # type: ignore[attr-defined]
        return v

    def store_bits(self, target: ast.Member, m: Any, v: Value) -> None:
        mt: CType = m.type
        ut = _unsigned(mt)
        a = self.a
        addr = self.address(target)
        old = self.alloc(ut)
        self.reload(addr, old)
        a.mov(old.reg, addr.reg)
        self.mem_load(old, ut)
        mask = ((1 << m.bits) - 1) << m.bit_offset
        a.ld_imm64(R1, ~mask & 0xFFFFFFFFFFFFFFFF)
        a.alu("&", old.reg, R1)
        self.reload(v, addr, old)
        a.mov(R2, v.reg)
        a.alu("<<", R2, imm=m.bit_offset)
        a.ld_imm64(R1, mask)
        a.alu("&", R2, R1)
        a.alu("|", old.reg, R2)
        self.reload(addr, old)
        self.mem_store(addr, old, ut)
        self.free(old)
        self.free(addr)

    def store_lvalue(self, target: ast.Expr, v: Value) -> None:
        t: CType = target.ctype  # type: ignore[attr-defined]
        m = getattr(target, "member", None) if isinstance(target, ast.Member) else None
        if m is not None and m.bits:
            self.store_bits(target, m, v)  # type: ignore[arg-type]
            return
        if in_memory(t):
            self.copy_block(target, v, type_size(t))
            return
        if t.is_string():
            self.store_string(target, v, type_size(t) or self.strsize)
            return
        addr = self.address(target)
        self.reload(v, addr)
        self.mem_store(addr, v, t)
        self.free(addr)

    def store_string(self, target: ast.Expr, v: Value, size: int) -> None:
        """A string stored in memory: its first size - 1 bytes then zeroes (the
        string buffer is zero padded), as the user engine writes it; the
        target must be scratch space or a D variable, else invalid address."""
        if not 1 <= size <= self.ssize:
            raise self.unsupported(f"storing a string of {size} bytes in memory", target)
        a = self.a
        addr = self.address(target)
        self.reload(v, addr)
        done, bad = a.new_label("sst"), a.new_label("sstbad")

        def found(ptr: int, off: int) -> None:
            a.alu("+", ptr, imm=off)
            a.stx(8, R10, -8, ptr)
            if size > 1:
                a.movi(R2, size - 1)
                a.mov(R3, v.reg)
                a.call("probe_read_kernel")
                a.ldx(8, R1, R10, -8)
            a.st(1, R1, size - 1, 0)
            a.ja(done)

        self.region_ptr(addr.reg, size, found)
        self.always(bad)
        a.ja(done)
        a.place(bad)
        self.fault(BADADDR, addr.reg)
        a.place(done)
        self.free(addr)

    def copy_block(self, target: ast.Expr, src: Value, size: int) -> None:
        """Assign a struct/union/array: copy size bytes from the address in
        src (0: zeroes, as the user engine does) to the target's memory."""
        if size > 256:
            raise self.unsupported(f"assigning {size}-byte objects", target)
        a = self.a
        dst = self.address(target)
        self.reload(src, dst)
        zero = a.new_label("cpz")
        end = a.new_label("cpe")
        for pass_zero in (False, True):
            if pass_zero:
                a.ja(end)
                a.place(zero)
            else:
                a.jmp("==", src.reg, zero, imm=0)
            k = 0
            while k < size:
                n = 8 if size - k >= 8 else 4 if size - k >= 4 else 2 if size - k >= 2 else 1
                ct = T.ULONG if n == 8 else T.UINT if n == 4 else T.USHORT if n == 2 else T.UCHAR
                val = self.alloc(ct)
                self.reload(src, val)
                if pass_zero:
                    a.movi(val.reg, 0)
                else:
                    a.mov(val.reg, src.reg)
                    a.alu("+", val.reg, imm=k)
                    self.mem_load(val, ct)
                where = self.alloc(T.ULONG)
                self.reload(dst, val, where)
                self.reload(val, dst, where)
                a.mov(where.reg, dst.reg)
                a.alu("+", where.reg, imm=k)
                self.mem_store(where, val, ct)
                self.free(where)
                self.free(val)
                k += n
        a.place(end)
        self.free(dst)

    def string_at(self, v: Value) -> Value:
        """A string read from the address in v (a D variable, scratch or kernel
        memory): at most strsize bytes up to a NUL; address 0 or unreadable
        memory faults "invalid address", as the user engine's read_string."""
        a = self.a
        out, _ = self.new_string()
        self.reload(v, out)
        read = a.new_label("sread")

        def found(ptr: int, off: int) -> None:
            a.alu("+", ptr, imm=off)
            a.mov(R3, ptr)
            a.ja(read)

        miss = a.new_label("smiss")
        a.jmp("==", v.reg, miss, imm=0)
        self.region_ptr(v.reg, 1, found)
        a.mov(R3, v.reg)
        a.place(read)
        a.mov(R1, out.reg)
        a.movi(R2, self.ssize)
        a.call("probe_read_kernel_str")
        ok = a.new_label("sok")
        a.jmp("s>", R0, ok, imm=0)
        a.place(miss)
        self.fault(BADADDR, v.reg)
        a.place(ok)
        self.free(v)
        return out

    def _x_Stringof(self, e: ast.Stringof) -> Value:
        ot: CType = e.operand.ctype  # type: ignore[attr-defined]
        v = self.expr(e.operand)
        if ot.is_string():
            return v
        if not (ot.is_pointer() or ot.is_int() or ot.is_array()):
            self.free(v)
            raise self.unsupported(f"stringof of {ot}", e)
        return self.string_at(v)

    def string_char(self, e: ast.Index) -> Value:
        """s[i] on a string: its i-th byte as a char, 0 past the end (string
        buffers are zero padded, so bytes after the NUL read as 0)."""
        a = self.a
        s = self.expr(e.base)
        i = self.expr(e.args[0])
        self.reload(s, i)
        live = a.new_label("scnn")  # a NULL string: NULL + i is read, as dtrace does
        a.ldx(1, R5, s.reg, self.strsize)
        a.jmp("==", R5, live, imm=0)
        self.fault(BADADDR, i.reg)
        a.place(live)
        out = a.new_label("sc")
        inside = a.new_label("scin")
        a.jmp("<", i.reg, inside, imm=self.ssize)  # unsigned: negative indexes too
        a.movi(s.reg, 0)
        a.ja(out)
        a.place(inside)
        a.alu("+", s.reg, i.reg)
        a.ldx(1, s.reg, s.reg, 0)
        self.wrap(s.reg, T.CHAR)
        a.place(out)
        self.free(i)
        s.ctype = e.ctype  # type: ignore[attr-defined]
        return s

    def _x_Xlate(self, e: Any) -> Value:
        """xlate<T>(x): a fresh T in a frame area of its own (one per xlate in
        the program, registered as a memory region), filled by the
        translator's member expressions with x as the input parameter (kept in
        a frame word while they run); the value is the area's D address (for
        `xlate<T *>(p)->m` and `xlate<T>(s).m` alike)."""
        node = e.translator
        out: CType = node.out_type
        size = max(type_size(out), 1)
        stack = self._xl_stack_for(e)
        a = self.a
        regs = self.mem_regions()
        key = ("xlate", str(id(e)))
        r = regs.get(key)
        if r is None:
            r = regs[key] = Region(
                self.next_vaddr(), size, "frame", self.frame.take((size + 7) // 8 * 8)
            )
        arg = self._xl_input(stack, e.operand)
        for p in range(0, (size + 7) // 8 * 8, 8):
            a.st(8, R9, r.off + p, 0)
        stack.append(arg)
        try:
            for name, expr in node.members:
                m = out.member(name)
                if m is None:
                    continue
                mt: CType = m.type
                if m.bits:
                    raise self.unsupported(f"translating into a member of type {mt}", expr)
                x = self.expr(expr)
                if mt.is_string():  # the text, cut to the member's size
                    n, pos = min(self.ssize, type_size(mt)), 0
                    while pos < n:
                        step = (
                            8 if n - pos >= 8 else 4 if n - pos >= 4 else 2 if n - pos >= 2 else 1
                        )
                        a.ldx(step, R5, x.reg, pos)
                        a.stx(step, R9, r.off + m.offset + pos, R5)
                        pos += step
                elif in_memory(mt):
                    self.read_block(self.frame_dst(r.off + m.offset), x, type_size(mt))
                else:
                    n = scalar_size(mt)
                    if n not in (1, 2, 4, 8):
                        raise self.unsupported(f"translating into a member of type {mt}", expr)
                    a.stx(n, R9, r.off + m.offset, x.reg)
                self.free(x)
        finally:
            stack.pop()
        return self.const(r.vaddr, e.ctype)

    def _xl_stack_for(self, e: Any) -> list[int]:
        """The input words of the translations being evaluated (innermost last),
        refusing a fifth level."""
        stack = getattr(self, "_xl_stack", None)
        if stack is None:
            stack = self._xl_stack = []
        if len(stack) >= 4:
            raise self.unsupported("translations nested this deep", e)
        return stack

    def _xl_input(self, stack: list[int], operand: ast.Expr) -> int:
        """Store a translation's input in the frame word of its nesting level
        (one word per level, shared by the program's translations); its offset."""
        slot = getattr(self.frame, "xl_slots", None)
        if slot is None:
            slot = self.frame.xl_slots = []  # type: ignore[attr-defined]
        while len(slot) <= len(stack):
            slot.append(self.frame.take(8))
        arg = slot[len(stack)]
        v = self.expr(operand)
        self.a.stx(8, R9, arg, v.reg)
        self.free(v)
        return arg

    def xlate_member(self, e: ast.Member) -> Value | None:
        """xlate<T>(x).m, xlate<T *>(x)->m: only m's translation is evaluated,
        as dtrace translates only the members a program names (so a member
        that reads nothing of x works for a NULL x); None when m is not a
        scalar or string (the whole translation is made then)."""
        xl: Any = e.base
        mt: CType = e.ctype  # type: ignore[attr-defined]
        expr = dict(xl.translator.members).get(e.name)
        if expr is None or not (scalar_size(mt) in (1, 2, 4, 8) or mt.is_string()):
            return None
        if getattr(e, "member", None) is not None and e.member.bits:  # type: ignore[attr-defined]
            return None
        stack = self._xl_stack_for(e)
        arg = self._xl_input(stack, xl.operand)
        stack.append(arg)
        try:
            x = self.expr(expr)
        finally:
            stack.pop()
        if mt.is_int():
            self.wrap(x.reg, mt)
        x.ctype = mt
        return x

    def xlate_arg(self, t: CType) -> Value:
        """The operand of the translation being evaluated (a translator's parameter)."""
        stack = getattr(self, "_xl_stack", None)
        if not stack:
            raise self.unsupported("a translator parameter outside xlate", None)
        v = self.alloc(t)
        self.a.ldx(8, v.reg, R9, stack[-1])
        return v

    def _x_Member(self, e: ast.Member) -> Value:
        return self.load_lvalue(e)

    def pointer_arith(self, e: ast.Binary) -> Value | None:
        """p + i, i + p, p - i (scaled by the pointed-to size) and p - q (in
        elements); None when e is not pointer arithmetic."""
        t: CType = e.ctype  # type: ignore[attr-defined]
        lt: CType = e.left.ctype  # type: ignore[attr-defined]
        rt: CType = e.right.ctype  # type: ignore[attr-defined]
        a = self.a
        if e.op in ("+", "-") and t.is_pointer():
            size = max(1, t.r.target.r.size)  # type: ignore[union-attr]
            x = self.expr(e.left)
            y = self.expr(e.right)
            self.reload(x, y)
            ptr_left = lt.is_pointer() or lt.is_array()
            scaled = y if ptr_left else x
            if size != 1:
                a.alu("*", scaled.reg, imm=size)
            a.alu(e.op, x.reg, y.reg)
            self.free(y)
            x.ctype = t
            return x
        if e.op == "-" and lt.is_pointer() and rt.is_pointer():
            size = max(1, lt.r.target.r.size)  # type: ignore[union-attr]
            x = self.expr(e.left)
            y = self.expr(e.right)
            self.reload(x, y)
            a.alu("-", x.reg, y.reg)
            if size & (size - 1) == 0:
                if size > 1:
                    a.alu("s>>", x.reg, imm=size.bit_length() - 1)
            else:  # floor division, as the user engine's // on the signed difference
                neg, end = a.new_label("pneg"), a.new_label("pend")
                a.jmp("s<", x.reg, neg, imm=0)
                a.alu("/", x.reg, imm=size)
                a.ja(end)
                a.place(neg)
                a.neg(x.reg)
                a.alu("+", x.reg, imm=size - 1)
                a.alu("/", x.reg, imm=size)
                a.neg(x.reg)
                a.place(end)
            self.free(y)
            x.ctype = t
            return x
        return None

    def lower_bcopy(self, e: ast.Call) -> Value:
        """bcopy(src, dst, n): dst must be scratch memory (else invalid
        address); a bad source start is an invalid address, a bad end a bad
        size, as the user engine checks."""
        info = self.scratch()
        a = self.a
        src = self.expr(e.args[0])
        dst = self.expr(e.args[1])
        n = self.expr(e.args[2])
        self.reload(src, dst, n)
        self.reload(dst, src, n)
        if info is None:
            bad, skip = a.new_label("bcd"), a.new_label("bcok")
            self.always(bad)
            a.ja(skip)
            a.place(bad)
            self.fault(BADADDR, dst.reg)
            a.place(skip)
            self.free(src)
            self.free(n)
            dst.ctype = T.VOID if hasattr(T, "VOID") else dst.ctype
            return dst
        top, base, size = info
        bad_dst, bad_size, done = a.new_label("bcd"), a.new_label("bcs"), a.new_label("bcok")
        # dst inside scratch at all (in_scratch), else invalid address
        a.mov(R1, dst.reg)
        a.alu("-", R1, imm=SCRATCH_BASE)
        a.jmp(">=", R1, bad_dst, imm=max(size, 1))
        # n: 0 .. 0x7fffffff (bigger or negative: bad size)
        a.jmp(">", n.reg, bad_size, imm=0x7FFFFFFF)
        # the source: scratch (start must lie below top; the end too) or kernel memory
        kern_src = a.new_label("bck")
        src_ok = a.new_label("bcsrc")
        bad_src = a.new_label("bcbs")
        is_str = e.args[0].ctype.is_string()  # type: ignore[attr-defined]
        if is_str:
            # a string's buffer (zero padded): at most strsize + 1 of its bytes
            a.stx(8, R10, -24, src.reg)
        else:
            a.mov(R1, src.reg)
            a.alu("-", R1, imm=SCRATCH_BASE)
            a.jmp(">=", R1, kern_src, imm=max(size, 1))
            self._below_top(src.reg, n.reg, top, bad_src, bad_size)
            a.alu("+", R1, R9)
            a.alu("+", R1, imm=base)
            a.stx(8, R10, -24, R1)
            a.ja(src_ok)
            a.place(kern_src)
            a.stx(8, R10, -24, src.reg)
            a.place(src_ok)
        # the destination: start below top (else invalid address), end at most top
        self._below_top(dst.reg, n.reg, top, bad_dst, bad_size)
        a.jmp("==", n.reg, done, imm=0)
        a.mov(R1, dst.reg)
        a.alu("-", R1, imm=SCRATCH_BASE)
        a.jmp(">=", R1, bad_dst, imm=max(size, 1))  # bounds for the verifier
        a.alu("+", R1, R9)
        a.alu("+", R1, imm=base)
        a.mov(R2, n.reg)
        a.jmp(">", R2, bad_size, imm=size)
        if is_str:
            short = a.new_label("bcn")
            a.jmp("<=", R2, short, imm=self.ssize)
            a.movi(R2, self.ssize)
            a.place(short)
        a.ldx(8, R3, R10, -24)
        a.call("probe_read_kernel")
        a.jmp("==", R0, done, imm=0)
        bad_read = a.new_label("bcr")
        a.ja(bad_read)
        if not is_str:
            a.place(bad_src)
            self.fault(BADADDR, src.reg)
        a.place(bad_read)
        self.fault(BADADDR, src.reg)
        a.place(bad_dst)
        self.fault(BADADDR, dst.reg)
        a.place(bad_size)
        self.fault(BADSIZE, n.reg)
        a.place(done)
        self.free(src)
        self.free(n)
        a.movi(dst.reg, 0)
        dst.ctype = e.ctype  # type: ignore[attr-defined]
        return dst

    def _below_top(self, addr: int, n: int, top: int, bad_addr: str, bad_size: str) -> None:
        """Jump to bad_addr unless the scratch address addr lies below the
        scratch top (the u64 at frame offset top), to bad_size unless addr + n
        stays within it; clobbers r2, r3."""
        a = self.a
        a.ldx(8, R2, R9, top)
        a.mov(R3, addr)
        a.alu("+", R3, imm=1)
        a.jmp(">", R3, bad_addr, src=R2)
        a.mov(R3, addr)
        a.alu("+", R3, n)
        a.jmp(">", R3, bad_size, src=R2)


def _unsigned(t: CType) -> CType:
    """The unsigned integer type as wide as t (a bit-field's container)."""
    return {1: T.UCHAR, 2: T.USHORT, 4: T.UINT}.get(scalar_size(t), T.ULONG)
