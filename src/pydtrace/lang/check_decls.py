"""Checking declarations: types (builtin, typedef, struct, union, enum, with
their layout), variable declarations, inlines and translators.

A part of checker.Checker; see there for the whole.
"""

from __future__ import annotations

from pydtrace.lang import ast
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS, VARIABLES
from pydtrace.lang.check_compat import assignable
from pydtrace.lang.errors import DError
from pydtrace.lang.program import Variable
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Declarations:
    """Types, declarations, inlines and translators (a part of checker.Checker)."""

    # --- types and declarations -----------------------------------------------
    def _spec_type(self, spec: ast.TypeSpec) -> CType:
        if spec.kind == "builtin":
            if not spec.words:
                return T.INT  # `self x;`: a storage class alone declares an int, as in C
            t = T.from_specifiers(spec.words)
            if t is None:
                self._bad_combo(spec)
            assert t is not None
            return t
        if spec.kind == "typedef":
            name = spec.words[0]
            if name in self.typedefs or self._library_types(name):
                return self.typedefs[name]
            kt = self._kernel_type(name, spec.module)
            if kt is not None:
                return kt
            raise DError(
                "D_UNKNOWN", f"failed to resolve type {name}: Unknown type name", spec.line
            )
        return self._tagged(spec)

    def _kernel_type(self, name: str, module: str | None = None) -> CType | None:
        """The kernel's type of that name ("struct x" or a typedef name), when
        the program has not declared one: dtrace looks in D's own definitions
        first, then in the kernel's (vmlinux`, or no module named)."""
        if self.kernel is None or module not in (None, "", "vmlinux"):
            return None
        return self.kernel.type_named(name)

    def _bad_combo(self, spec: ast.TypeSpec) -> None:
        words = spec.words
        if "short" in words and "long" in words:
            # dtrace spells the unresolvable name from its size flags
            raise DError(
                "D_UNKNOWN",
                f"failed to resolve type short long {' '.join(w for w in words if w not in ('short', 'long'))}: Unknown type name",
                spec.line,
            )
        if "signed" in words and "unsigned" in words:
            raise DError("D_DECL_COMBO", "invalid type combination", spec.line)
        base = [w for w in words if w not in ("signed", "unsigned", "short", "long")]
        if ("signed" in words or "unsigned" in words) and base and base[0] not in ("int", "char"):
            raise DError(
                "D_DECL_SIGNINT",
                "invalid type declaration: signed and unsigned may only be used with integer type",
                spec.line,
            )
        if "long" in words and base and base[0] not in ("int", "double"):
            if base[0] == "char":
                raise DError(
                    "D_DECL_CHARATTR",
                    "invalid type declaration: short and long may not be used with char type",
                    spec.line,
                )
            raise DError(
                "D_DECL_LONGINT",
                "invalid type declaration: long and long long may only be used with integer or floating-point type",
                spec.line,
            )
        if "short" in words and base and base[0] == "char":
            raise DError(
                "D_DECL_CHARATTR",
                "invalid type declaration: short and long may not be used with char type",
                spec.line,
            )
        raise DError("D_DECL_COMBO", "invalid type combination", spec.line)

    def _tagged(self, spec: ast.TypeSpec) -> CType:
        kind = spec.kind
        key = f"{kind} {spec.tag}" if spec.tag else None
        if kind == "enum":
            if spec.enumerators is None:
                if key and key in self.tags:
                    return self.tags[key]
                kt = self._kernel_type(key, spec.module) if key else None
                if kt is not None:
                    return kt
                t = CType("enum", key or "enum", 4, True, tag=spec.tag or "")
                if key:
                    self.tags[key] = t
                return t
            t = CType("enum", key or "enum (anon)", 4, True, tag=spec.tag or "")
            value = 0
            for e in spec.enumerators:
                if e.name in t.enumerators:
                    raise DError(
                        "D_UNKNOWN",
                        f"failed to define enumerator '{e.name}': Duplicate member or variable name",
                        e.line,
                    )
                if e.name in self.enumerators or e.name in self.prog.globals:
                    raise DError("D_DECL_IDRED", f"identifier redeclared: {e.name}", e.line)
                if e.value is not None:
                    et = self._expr(e.value)
                    c = self._const(e.value) if et.is_int() else None
                    if c is None:
                        raise DError(
                            "D_DECL_ENCONST",
                            f"enumerator '{e.name}' must be assigned to an integral constant expression",
                            e.line,
                        )
                    value = c
                if value > 0x7FFFFFFF or value < -0x80000000:
                    raise DError(
                        "D_DECL_ENOFLOW",
                        f"enumerator '{e.name}' value overflows INT_MAX (2147483647)",
                        e.line,
                    )
                t.enumerators[e.name] = value
                self.enumerators[e.name] = (value, t)
                value += 1
            if key:
                self.tags[key] = t
            return t
        # struct / union
        if spec.members is None:
            if key and key in self.tags:
                return self.tags[key]
            kt = self._kernel_type(key, spec.module) if key else None
            if kt is not None:
                return kt
            t = CType(kind, key or kind, 0, tag=spec.tag or "")
            if key:
                self.tags[key] = t
            return t
        if key and key in self.tags and self.tags[key].members is not None:
            raise DError("D_DECL_TYPERED", f"type redeclared: {key}", spec.line)
        t = self.tags.get(key) if key else None
        if t is None:
            t = CType(kind, key or f"{kind} (anon)", 0, tag=spec.tag or "")
            if key:
                self.tags[key] = t
        self._layout(t, spec.members)
        return t

    def _layout(self, t: CType, decls: list[ast.Decl]) -> None:
        members: list[T.Member] = []
        offset = 0  # in bits
        size = 0
        align = 1
        for d in decls:
            base = self._spec_type(d.spec)
            for dec in d.declarators:
                mt = self._derive(base, dec)
                name = dec.name or ""
                if any(m.name == name and name for m in members):
                    raise DError(
                        "D_UNKNOWN",
                        f"failed to define member '{name}': Duplicate member or variable name",
                        dec.line,
                    )
                if mt.is_void() or mt.r.kind == "func":  # a function member has no size either
                    raise DError("D_DECL_VOIDOBJ", f"cannot have void member: {name}", dec.line)
                if mt.r.kind in ("struct", "union") and mt.r.members is None:
                    raise DError(
                        "D_DECL_INCOMPLETE",
                        f"incomplete struct/union/enum {mt.name}: {name}",
                        dec.line,
                    )
                malign = _alignment(mt)
                if dec.bits is not None:
                    if not mt.is_int():
                        raise DError(
                            "D_DECL_BFTYPE",
                            f"invalid type for bit-field: {name or '(anon)'}",
                            dec.line,
                        )
                    self._expr(dec.bits)
                    bits = self._const(dec.bits)
                    if bits is None or bits < 0 or (bits == 0 and dec.name):
                        raise DError(
                            "D_DECL_BFCONST",
                            "positive integral constant expression expected as bit-field size",
                            dec.line,
                        )
                    if bits > mt.int_size() * 8:
                        raise DError(
                            "D_DECL_BFSIZE", f"bit-field too big for type: {name}", dec.line
                        )
                    unit = mt.int_size() * 8
                    if t.kind == "union":
                        off = 0
                    else:
                        off = offset
                        if bits == 0 or (off % unit) + bits > unit:
                            off = (off + unit - 1) // unit * unit
                    members.append(
                        T.Member(name, mt, (off // unit) * (unit // 8), off % unit, bits)
                    )
                    end = off + bits
                    align = max(align, malign)
                else:
                    off = (
                        0
                        if t.kind == "union"
                        else (offset + malign * 8 - 1) // (malign * 8) * (malign * 8)
                    )
                    members.append(T.Member(name, mt, off // 8))
                    end = off + mt.size * 8
                    align = max(align, malign)
                if t.kind == "union":
                    size = max(size, end)
                else:
                    offset = end
                    size = end
        nbytes = (size + 7) // 8
        t.size = (nbytes + align - 1) // align * align
        t.members = members

    def _derive(self, base: CType, dec: ast.Declarator) -> CType:
        t = base
        for d in reversed(dec.derived):
            if isinstance(d, ast.Pointer):
                t = T.pointer(t)
            elif isinstance(d, ast.ArrayOf):
                if d.keys is not None:
                    continue  # associative arrays are handled by the variable declaration
                if d.size is None:
                    raise DError(
                        "D_DECL_ARRNULL",
                        f"array declaration requires array dimension or tuple signature: {dec.name}",
                        dec.line,
                    )
                self._expr(d.size)
                n = self._const(d.size)
                if n is None or n <= 0:
                    raise DError(
                        "D_DECL_ARRSUB",
                        "positive integral constant expression or tuple signature expected as array declaration subscript",
                        dec.line,
                    )
                if n > 0x7FFFFFFF // max(1, t.size):
                    raise DError("D_DECL_ARRBIG", "array dimension too big", dec.line)
                t = T.array(t, n)
            elif isinstance(d, ast.FunctionOf):
                self._check_params(d, dec)
                t = CType("func", f"{t.name} ()", 0, target=t)
        return t

    def _check_params(self, f: ast.FunctionOf, dec: ast.Declarator) -> None:
        """A function prototype's parameters: void alone and unnamed, no dynamic types."""
        for i, p in enumerate(f.params):
            if any(isinstance(x, ast.ArrayOf) and x.keys is not None for x in p.declarator.derived):
                raise DError(
                    "D_DECL_PROTO_TYPE",
                    f"function prototype may not use parameter of type dynamic variable: {p.declarator.name or dec.name}, parameter #{i + 1}",
                    p.line,
                )
            t = self.typename(p)
            if not t.is_void():
                continue
            if p.declarator.name is not None:
                raise DError(
                    "D_DECL_PROTO_NAME",
                    f"void parameter may not have a name: {p.declarator.name}",
                    p.line,
                )
            if len(f.params) > 1 or f.varargs:
                raise DError("D_DECL_PROTO_VOID", "void must be sole parameter", p.line)

    def typename(self, tn: ast.TypeName) -> CType:
        return self._derive(self._spec_type(tn.spec), tn.declarator)

    def _declare(self, d: ast.Decl, local: bool) -> None:
        if d.storage in ("register", "static") and not local:
            raise DError("D_DECL_BADCLASS", "specified storage class not appropriate in D", d.line)
        base = self._spec_type(d.spec)
        if not d.declarators:
            anon = d.spec.tag is None and not d.spec.enumerators and d.spec.members is None
            if d.spec.kind in ("builtin", "typedef") or anon:
                raise DError("D_DECL_USELESS", "useless declaration", d.line)
            return
        if d.storage == "extern":
            return  # extern names a kernel symbol; there are none to bind here
        for dec in d.declarators:
            name = dec.name
            assert name is not None
            if d.storage == "typedef":
                t = self._derive(base, dec)
                if name in self.typedefs and name not in T.BUILTIN_TYPEDEFS:
                    raise DError("D_DECL_IDRED", f"typedef redeclared: {name}", dec.line)
                self.typedefs[name] = T.typedef(name, t)
                continue
            keys = None
            for x in dec.derived:
                if isinstance(x, ast.ArrayOf) and x.keys is not None:
                    keys = [self._key_type(k, i) for i, k in enumerate(x.keys)]
            t = self._derive(base, dec)
            if t.r.kind in ("struct", "union") and t.r.members is None:
                raise DError(
                    "D_DECL_INCOMPLETE", f"incomplete struct/union/enum {t.name}: {name}", dec.line
                )
            scope = {"self": "self", "this": "this"}.get(d.storage or "", "global")
            if scope == "this" and keys is not None:
                raise DError(
                    "D_DECL_LOCASSC",
                    f"associative arrays may not be declared as local variables: {name}",
                    dec.line,
                )
            table = self._scope(scope)
            if scope == "global" and (name in FUNCTIONS or name in VARIABLES):
                raise DError("D_DECL_IDRED", f"identifier redefined: {name}", dec.line)
            old = table.get(name)
            if old is not None:
                if not old.type.same(t) or (old.keys is None) != (keys is None):
                    raise DError("D_DECL_IDRED", f"identifier redeclared: {name}", dec.line)
                continue
            table[name] = Variable(name, scope, t, keys, array=t.is_array(), id=len(table))

    def _key_type(self, k: ast.TypeName, i: int) -> CType:
        """A declared associative array's key type: any type but void."""
        t = self.typename(k)
        if t.is_void():
            name = k.declarator.name or "(anonymous)"
            raise DError(
                "D_DECL_PROTO_TYPE",
                f"array prototype may not use parameter of type void: {name}, parameter #{i + 1}",
                k.line,
            )
        return t

    # --- inlines --------------------------------------------------------------
    def _inline(self, node: ast.Inline) -> None:
        name = node.declarator.name or ""
        d = node.declarator
        if d.derived and isinstance(d.derived[0], ast.ArrayOf) and d.derived[0].keys:
            self._inline_array(node, name, d.derived[0].keys)
            return
        t = self._derive(self._spec_type(node.spec), node.declarator)
        previous = self._ident_kind(name)
        if previous is not None:
            raise DError(
                "D_DECL_IDRED",
                f"identifier redefined: {name}\n\t current: inline definition\n\tprevious: {previous}",
                node.line,
            )
        vt = self._expr(node.value)
        if not assignable(t, vt):
            raise DError(
                "D_OP_INCOMPAT",
                f'inline {name} definition uses incompatible types: "{t.name}" = "{vt.name}"',
                node.line,
            )
        self.inlines[name] = (t, node.value)
        self._inline_costs[name] = (self._deepest, self._nodes)  # counted from this item's start

    def _inline_array(self, node: ast.Inline, name: str, keys: list[ast.TypeName]) -> None:
        """An inline with parameters: its value is checked with them bound, and
        each use (`f[1, 2]`) is the value with the arguments put in their place."""
        if self._ident_kind(name) is not None or name in self.inline_arrays:
            raise DError("D_DECL_IDRED", f"identifier redefined: {name}", node.line)
        t = self._spec_type(node.spec)
        params = [(k.declarator.name or "", self.typename(k)) for k in keys]
        self._inline_params = dict(params)
        try:
            vt = self._expr(node.value)
        finally:
            self._inline_params = {}
        if not assignable(t, vt):
            raise DError(
                "D_OP_INCOMPAT",
                f'inline {name} definition uses incompatible types: "{t.name}" = "{vt.name}"',
                node.line,
            )
        self.inline_arrays[name] = (t, node.value, params)

    def _inline_call(self, e: ast.Index, name: str) -> CType:
        t, value, params = self.inline_arrays[name]
        if len(e.args) != len(params):
            n = len(e.args)
            raise DError(
                "D_PROTO_LEN",
                f"{name}[ ] prototype mismatch: {n} key{'s' if n != 1 else ''} passed,"
                f" {len(params)} expected",
                e.line,
            )
        for k in e.args:
            self._expr(k)
        bound = {p: a for (p, _), a in zip(params, e.args)}
        body = _substitute(_fresh(value), bound)
        self._expr(body)
        e.ref = ("inline", body)  # type: ignore[attr-defined]
        return t

    def _ident_kind(self, name: str) -> str | None:
        """How dtrace describes an existing global identifier (kind, then 'inline' or '')."""
        if name in self.inlines:
            return "scalar inline"
        if name in FUNCTIONS:
            return "function "
        v = self.prog.globals.get(name)
        if v is not None:
            return "associative array " if v.keys is not None else "scalar "
        if name in VARIABLES or name in self.enumerators:
            return "scalar "
        return None

    # --- translators ----------------------------------------------------------
    def _translator(self, node: ast.Translator) -> None:
        """Check a translator definition; its member expressions see the input as `param`."""
        end = getattr(node, "end_line", node.line)
        out = self.typename(node.output)
        inp = self.typename(node.input)
        self._kernel_translators(out, inp)
        if not out.is_struct():
            raise DError("D_XLATE_SOU", "translator output type must be a struct or union", end)
        if out.r.members is None:
            raise DError("D_XLATE_SOU", f"incomplete struct/union/enum {out.r.name}", end)
        if any(o.same(out) and i.same(inp) for o, i, _ in self.translators):
            raise DError(
                "D_XLATE_REDECL",
                f"translator from {inp.name} to {out.name} has already been declared",
                end,
            )
        self._xlate_param = (node.param, inp)
        try:
            for name, value in node.members:
                m = out.member(name)
                if m is None:
                    raise DError(
                        "D_XLATE_MEMB",
                        f"translator member {name} is not a member of {out.name}",
                        end,
                    )
                vt = self._expr(value)
                int_to_ptr = m.type.is_pointer() and vt.is_int() and not self._is_null(value, vt)
                if not assignable(m.type, vt) or int_to_ptr:
                    raise DError(
                        "D_XLATE_INCOMPAT",
                        f'translator member {name} definition uses incompatible types: "{m.type.name}" = "{vt.name}"',
                        end,
                    )
        finally:
            self._xlate_param = None
        node.out_type = out  # type: ignore[attr-defined]
        node.in_type = inp  # type: ignore[attr-defined]
        node.cost = (self._deepest, self._nodes)  # type: ignore[attr-defined]  # all its members
        self.translators.append((out, inp, node))

    def _kernel_translators(self, out: CType, arg: CType) -> None:
        """Enter the D library's translators from struct task_struct * to
        psinfo_t and lwpsinfo_t (procfs.KERNEL_TRANSLATORS) the first time a
        program translates a kernel task to one, or declares such a
        translator itself (which dtrace refuses as a redeclaration)."""
        if getattr(self, "_kernel_xlators", False) or self.kernel is None:
            return
        target = arg.r.target if arg.is_pointer() else None
        if out.r.name not in ("struct psinfo", "struct lwpsinfo") or target is None:
            return
        if not (target.r.kernel and target.r.tag == "task_struct"):
            return
        self._kernel_xlators = True
        from pydtrace.lang.parser import parse
        from pydtrace.lang.procfs import KERNEL_TRANSLATORS

        reads = len(self.prog.kernel_reads)
        try:
            for item in parse(KERNEL_TRANSLATORS, from_file=True).items:
                if isinstance(item, ast.Translator):
                    self._translator(item)
                    item.library = True  # type: ignore[attr-defined]
        except DError:
            pass  # this kernel's task_struct differs: no library translation
        del self.prog.kernel_reads[reads:]  # counted where a program translates

    def _find_translator(self, out: CType, arg: CType) -> ast.Translator | None:
        self._kernel_translators(out, arg)
        for o, i, node in self.translators:
            if o.r.name != out.r.name:
                continue
            if i.same(arg) or (
                i.is_pointer()
                and arg.is_pointer()
                and i.r.target is not None
                and arg.r.target is not None
                and i.r.target.r.name == arg.r.target.r.name
            ):
                return node
        return None


def _alignment(t: CType) -> int:
    r = t.r
    if r.kind == "array":
        assert r.target is not None
        return _alignment(r.target)
    if r.kind in ("struct", "union"):
        return max((_alignment(m.type) for m in r.members or ()), default=1)
    if r.kind == "string":
        return 1
    return max(1, min(r.size if r.kind != "enum" else 4, 8))


def _fresh(node: Any) -> Any:
    """A copy of a node as the parser made it, without what the checker added
    (types, and the expanded bodies of the inlines it uses: copying those made
    each level of inlines using inlines cost several times the one below)."""
    if isinstance(node, list):
        return [_fresh(x) for x in node]
    if isinstance(node, ast.Node):
        return type(node)(**{f: _fresh(getattr(node, f)) for f in node.__struct_fields__})
    return node


def _substitute(node: Any, bound: dict[str, ast.Expr]) -> Any:
    """node with each Ident named in `bound` replaced by a copy of its expression."""
    if isinstance(node, ast.Ident) and node.name in bound:
        return _fresh(bound[node.name])
    if isinstance(node, list):
        return [_substitute(x, bound) for x in node]
    if isinstance(node, ast.Node):
        for f in node.__struct_fields__:
            setattr(node, f, _substitute(getattr(node, f), bound))
    return node
