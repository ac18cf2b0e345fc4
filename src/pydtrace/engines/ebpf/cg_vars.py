"""Variables: globals, this->, self-> and associative arrays (the `dvars`
hash map), reading them (_x_Ident, _x_ThisVar, _x_SelfVar, _x_Index) and
stores into them."""

from __future__ import annotations

from pydtrace.engines.ebpf import layout as L
from pydtrace.engines.ebpf.cg_context import (
    DKEY_LEVELS,
    DROP_DYN,
    MAX_ARGS,
    CompilerBase,
    Value,
)
from pydtrace.engines.ebpf.cg_memory import in_memory, type_size
from pydtrace.engines.ebpf.insn import R0, R1, R2, R3, R4, R9
from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.types import CType


class VarsMixin(CompilerBase):
    def _x_Ident(self, e: ast.Ident) -> Value:
        kind, what = e.ref  # type: ignore[attr-defined]
        t: CType = e.ctype  # type: ignore[attr-defined]
        a = self.a
        if kind == "global" and (("global", e.name) in self.mem_regions()):
            return self.address(e)  # an array/struct/union: its address
        if kind == "global":
            off = self.global_off[what.name]
            v = self.alloc(t)
            if t.is_string():
                a.ld_map(v.reg, "globals", off)
            else:
                a.ld_map(v.reg, "globals", 0)
                a.ldx(8, v.reg, v.reg, off)
            return v
        if kind == "xlarg":
            return self.xlate_arg(t)
        if kind == "const":
            return self.const(what, t)
        if kind == "inline":
            inner = self.expr(what)
            if t.is_int():
                self.wrap(inner.reg, t)
            return inner
        if kind == "builtin":
            return self.builtin(what, e)
        if kind == "ksym":
            return self.ksym_value(e)  # cg_kernel
        raise self.unsupported(f"identifier {e.name}", e)

    def is_memory_variable(self, e: ast.Expr) -> bool:
        """Is e a global or this-> array/struct/union placed by cg_memory?"""
        scope = "this" if isinstance(e, ast.ThisVar) else "global"
        return (scope, getattr(e, "name", "")) in self.mem_regions()

    def _x_ThisVar(self, e: ast.ThisVar) -> Value:
        if ("this", e.name) in self.mem_regions():
            return self.address(e)  # an array/struct/union: its address
        v = self.alloc(e.ctype)  # type: ignore[attr-defined]
        if v.ctype.is_string():  # the frame's buffer itself
            self.a.mov(v.reg, R9)
            self.a.alu("+", v.reg, imm=self.this_off[e.name])
        else:
            self.a.ldx(8, v.reg, R9, self.this_off[e.name])
        return v

    def key_width(self, t: CType) -> int:
        if in_memory(t):
            return L.align8(type_size(t))
        return L.align8(self.ssize) if t.is_string() else 8

    def dvar_key(self, scope: str, name: str, keys: list[ast.Expr]) -> int:
        """Build a `dvars` key in the frame; returns its frame offset."""
        a = self.a
        depth = self.dkey_depth
        if depth >= getattr(self, "dkey_levels", DKEY_LEVELS):
            raise self.unsupported(
                "associative arrays subscripted this deep", keys[0] if keys else None
            )
        base = self.f_dkey + depth * self.dkey_size
        self.dkey_depth += 1
        pos = 16
        for k in keys:
            t: CType = k.ctype  # type: ignore[attr-defined]
            v = self.expr(k)
            if t.is_string():
                self.copy_string_to(R9, base + pos, v.reg)
                for pad in range(self.ssize, self.key_width(t)):
                    a.st(1, R9, base + pos + pad, 0)
            elif in_memory(t):  # a struct/union key: its bytes, zero padded
                size = type_size(t)
                for p in range(size // 8 * 8, self.key_width(t), 8):
                    a.st(8, R9, base + pos + p, 0)
                self.read_block(self.frame_dst(base + pos), v, size)
            else:
                if t.is_int():
                    self.wrap(v.reg, t)
                a.stx(8, R9, base + pos, v.reg)
            pos += self.key_width(t)
            self.free(v)
        self.dkey_depth -= 1
        a.st(8, R9, base, self.dvar_id[(scope, name)])
        if scope == "self":
            self.current_ids("pid")
            a.alu("=", R0, R0, wide=False)
            a.stx(8, R9, base + 8, R0)
        else:
            a.st(8, R9, base + 8, 0)
        for p in range(pos, self.dkey_size, 8):
            a.st(8, R9, base + p, 0)
        return base

    def dvar_load(self, scope: str, name: str, keys: list[ast.Expr], t: CType) -> Value:
        """The variable's value; 0 (or "") when it does not exist."""
        a = self.a
        if in_memory(t):
            return self.dvar_load_block(scope, name, keys, t)
        base = self.dvar_key(scope, name, keys)
        if t.is_string():
            v, _ = self.new_string(by_call=True)  # (the lookup's call follows)
        else:
            v = self.alloc(t)
            a.movi(v.reg, 0)
        a.ld_map(R1, "dvars")
        a.mov(R2, R9)
        a.alu("+", R2, imm=base)
        a.call("map_lookup_elem")
        unset = a.new_label("unset")
        a.jmp("==", R0, unset, imm=0)
        if t.is_string():
            self.copy_string_to(v.reg, 0, R0)
            done = a.new_label("set")
            a.ja(done)
            a.place(unset)
            # one that does not exist is a NULL string, as in dtrace: "" to printf and
            # comparisons, a fault when traced or indexed
            self.mark_null_string(v.reg)
            a.place(done)
            return v
        a.ldx(8, v.reg, R0, 0)
        a.place(unset)
        return v

    def dvar_store(self, scope: str, name: str, keys: list[ast.Expr], v: Value, t: CType) -> None:
        """Assign a dynamic variable; an integer 0 deletes it, as dtrace does."""
        a = self.a
        if t.r.kind == "float":
            self.check_float(t, v, keys[0] if keys else None)
        base = self.dvar_key(scope, name, keys)
        self.reload(v)
        done = a.new_label("dvdone")
        delete = a.new_label("dvdel")
        if t.is_string():
            self.copy_string_to(R9, self.f_dval, v.reg)
        elif in_memory(t):  # 0 deletes, else the bytes at the address v
            a.jmp("==", v.reg, delete, imm=0)
            self.read_block(self.frame_dst(self.f_dval), v, type_size(t))
        else:
            a.jmp("==", v.reg, delete, imm=0)
            a.stx(8, R9, self.f_dval, v.reg)
        if self.dvar_capacity > 0:  # (none fit: every store is a drop)
            a.ld_map(R1, "dvars")
            a.mov(R2, R9)
            a.alu("+", R2, imm=base)
            a.mov(R3, R9)
            a.alu("+", R3, imm=self.f_dval)
            a.movi(R4, 0)
            a.call("map_update_elem")
            a.jmp("s>=", R0, done, imm=0)
        # No room: the clause goes on without the store, as DTrace's DIF does (dtrace-utils'
        # BPF returns, losing the rest of the clause); a clause counts one drop however
        # many of its stores fail, as dtrace-utils reports.
        a.ldx(8, R1, R9, self.f_dvdrop)
        a.jmp("!=", R1, done, imm=0)
        a.st(8, R9, self.f_dvdrop, 1)
        self.count_drop(DROP_DYN)
        a.ja(done)
        a.place(delete)
        if not t.is_string():  # strings are never deleted (no jump here)
            a.ld_map(R1, "dvars")
            a.mov(R2, R9)
            a.alu("+", R2, imm=base)
            a.call("map_delete_elem")
        a.place(done)

    def check_float(self, t: CType, v: Value, where: ast.Expr | None) -> None:
        """Floats are stored as their bits: only a float of the same type can be
        assigned (the eBPF engine does no floating-point arithmetic)."""
        vt = v.ctype
        if vt is None or vt.r.kind != "float" or vt.r.size != t.r.size:
            raise self.unsupported(f"converting {vt} to {t} (no floating point in eBPF)", where)

    def dvar_load_block(self, scope: str, name: str, keys: list[ast.Expr], t: CType) -> Value:
        """A struct/union dynamic variable: its bytes copied to its frame area (a
        memory region; zeroes when it does not exist); the value is that
        area's D address."""
        a = self.a
        r = self.mem_regions()[("dyn-" + scope, name)]
        base = self.dvar_key(scope, name, keys)
        a.ld_map(R1, "dvars")
        a.mov(R2, R9)
        a.alu("+", R2, imm=base)
        a.call("map_lookup_elem")
        unset, done = a.new_label("unset"), a.new_label("dvld")
        a.jmp("==", R0, unset, imm=0)
        for p in range(0, L.align8(r.size), 8):
            a.ldx(8, R1, R0, p)
            a.stx(8, R9, r.off + p, R1)
        a.ja(done)
        a.place(unset)
        for p in range(0, L.align8(r.size), 8):
            a.st(8, R9, r.off + p, 0)
        a.place(done)
        return self.const(r.vaddr, t)

    def _x_SelfVar(self, e: ast.SelfVar) -> Value:
        return self.dvar_load("self", e.name, [], e.ctype)  # type: ignore[attr-defined]

    def _x_Index(self, e: ast.Index) -> Value:
        kind, what = e.ref  # type: ignore[attr-defined]
        if kind == "inline":  # an inline with parameters, its arguments put in
            inner = self.expr(what)
            t: CType = e.ctype  # type: ignore[attr-defined]
            if t.is_int():
                self.wrap(inner.reg, t)
            return inner
        if kind == "assoc":
            return self.dvar_load(what.scope, what.name, e.args, what.type)
        if kind == "args" and what is not None:
            t: CType = e.ctype  # type: ignore[attr-defined]
            v = self.alloc(t)
            if what < MAX_ARGS:
                self.a.ldx(8, v.reg, R9, self.f_args + 8 * what)
                if t.is_int():
                    self.wrap(v.reg, t)
                elif t.is_string():  # a string argument is a D address (proc:::exec)
                    return self.string_at(v)
            else:
                self.a.movi(v.reg, 0)
            return v
        if kind == "element":
            return self.load_lvalue(e)
        if kind == "strchar":
            return self.string_char(e)
        if kind == "uregs":
            return self.load_uregs(what)
        if kind == "fds":
            return self.fds_struct(e)  # cg_files
        raise self.unsupported("this kind of subscript", e)

    def clear_string(self, target: ast.Expr) -> Value:
        """`s = 0` / `s = NULL`: a dynamic string variable is deleted, as any dynamic
        variable assigned 0 is; another holds a NULL string (it reads as "" and
        equals NULL, but tracing or indexing it faults, as in dtrace)."""
        empty, _ = self.new_string(by_call=True)  # (first: nothing is in r0-r5)
        self.mark_null_string(empty.reg)
        if isinstance(target, ast.SelfVar):
            scope, name, keys = "self", target.name, []
        elif isinstance(target, ast.Index) and target.ref[0] == "assoc":  # type: ignore[attr-defined]
            var = target.ref[1]  # type: ignore[attr-defined]
            scope, name, keys = var.scope, var.name, target.args
        else:
            self.store(target, empty)
            return empty
        zero = self.const(0, T.INT)
        self.dvar_store(scope, name, keys, zero, T.INT)
        self.free(zero)
        return empty

    def store(self, target: ast.Expr, v: Value) -> None:
        a = self.a
        t: CType = target.ctype  # type: ignore[attr-defined]
        if t.r.kind == "float":
            self.check_float(t, v, target)
        if isinstance(target, ast.Ident | ast.ThisVar) and self.is_memory_variable(target):
            self.store_lvalue(target, v)
            return
        if isinstance(target, ast.Ident) and target.ref[0] == "global":  # type: ignore[attr-defined]
            off = self.global_off[target.name]
            a.ld_map(R2, "globals", 0)
            if t.is_string():
                self.copy_string_to(R2, off, v.reg)
            else:
                a.stx(8, R2, off, v.reg)
            return
        if isinstance(target, ast.ThisVar):
            if t.is_string():
                self.copy_string_to(R9, self.this_off[target.name], v.reg)
            else:
                a.stx(8, R9, self.this_off[target.name], v.reg)
            return
        if isinstance(target, ast.SelfVar):
            self.dvar_store("self", target.name, [], v, t)
            return
        if isinstance(target, ast.Index) and target.ref[0] == "assoc":  # type: ignore[attr-defined]
            var = target.ref[1]  # type: ignore[attr-defined]
            self.dvar_store(var.scope, var.name, target.args, v, var.type)
            return
        root = _dynamic_root(target)
        if root is not None:  # a member of a dynamic struct: store into its copy, write it back
            self.store_lvalue(target, v)
            rt: CType = root.ctype  # type: ignore[attr-defined]
            if isinstance(root, ast.SelfVar):
                scope, name, keys = "self", root.name, []
            else:
                var = root.ref[1]  # type: ignore[attr-defined]
                scope, name, keys = var.scope, var.name, root.args  # type: ignore[attr-defined]
            r = self.mem_regions()[("dyn-" + scope, name)]
            addr = self.const(r.vaddr, rt)
            self.dvar_store(scope, name, keys, addr, rt)
            self.free(addr)
            return
        if (
            isinstance(target, ast.Member)
            or isinstance(target, ast.Unary)
            and target.op == "*"
            or isinstance(target, ast.Index)
            and target.ref[0] == "element"  # type: ignore[attr-defined]
        ):
            self.store_lvalue(target, v)
            return
        raise self.unsupported(f"assignment to {type(target).__name__}", target)


def _dynamic_root(e: ast.Expr) -> ast.Expr | None:
    """The self-> variable or associative array element (of struct type) whose
    bytes the lvalue e (a member or array element inside it) lies in."""
    root = e
    while True:
        if isinstance(root, ast.Member) and not root.arrow:
            root = root.base
        elif (
            isinstance(root, ast.Index)
            and root.ref[0] == "element"  # type: ignore[attr-defined]
            and root.base.ctype.is_array()  # type: ignore[attr-defined]
        ):
            root = root.base
        else:
            break
    if root is e or not in_memory(root.ctype):  # type: ignore[attr-defined]
        return None
    if isinstance(root, ast.SelfVar):
        return root
    if isinstance(root, ast.Index) and root.ref[0] == "assoc":  # type: ignore[attr-defined]
        return root
    return None
