"""Semantic checks: D's types, identifier kinds, actions and aggregations.

The checker walks a parsed program in order (D creates an undeclared
variable at its first assignment in program order, so order matters), gives
every expression its C type, decides what each identifier names, and raises
DError with dtrace's tag and wording for anything wrong. Several programs
(-n, -s given more than once) are checked into one CheckedProgram: they share
variables and aggregations, and clause numbering runs on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from typing import Any

from pydtrace.lang import ast, procfs
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS, VARIABLES, Builtin, prototype
from pydtrace.lang.dlib import library_inlines
from pydtrace.lang.errors import DError
from pydtrace.lang.program import AggInfo, CheckedProgram, ClauseInfo, Variable
from pydtrace.lang.records import describe
from pydtrace.lang.types import CType

AGG_FUNCS = {"count", "sum", "avg", "min", "max", "stddev", "quantize", "lquantize", "llquantize"}
# Actions that put data in the trace buffer (and so make the probe line print).
RECORDING = {
    "trace", "printf", "printa", "exit", "tracemem", "stack", "ustack", "jstack", "print",
    "sym", "usym", "func", "ufunc", "mod", "umod", "uaddr", "setopt", "clear", "trunc",
    "normalize", "denormalize", "system", "raise", "stop", "freopen", "ftruncate", "pcap",
    "breakpoint", "panic", "chill",
}  # fmt: skip
# Actions that also yield a value, usable inside expressions.
_VALUE_ACTIONS = {
    "sym",
    "usym",
    "func",
    "ufunc",
    "mod",
    "umod",
    "uaddr",
    "stack",
    "ustack",
    "jstack",
}
ARITH_OPS = {"*", "/", "%", "+", "-"}
INT_OPS = {"<<", ">>", "&", "^", "|"}
REL_OPS = {"<", "<=", ">", ">=", "==", "!="}
LOGIC_OPS = {"&&", "||", "^^"}

ProbeLookup = Callable[[str, int], list[Any]]

UREGS_COUNT = 26  # uregs[0..20]: pt_regs words; 21..25: ds, es, fsbase, gsbase, trap_nr


class Checker:
    def __init__(
        self,
        lookup: ProbeLookup,
        *,
        strsize: int = 256,
        scratchsize: int = 256,
        has_target: bool = False,
    ) -> None:
        self.lookup = lookup
        self.has_target = has_target  # -c/-p: printf's %A takes a plain integer
        self.scratchsize = scratchsize  # usable scratch bytes (the option's value less 8)
        self.prog = CheckedProgram()
        self.typedefs: dict[str, CType] = dict(T.BUILTIN_TYPEDEFS)
        self.tags: dict[str, CType] = {}  # 'struct foo' -> type
        self.enumerators: dict[str, tuple[int, CType]] = {}
        self.inlines: dict[str, tuple[CType, ast.Expr]] = {}
        # inline int f[int x, int y] = x + y: name -> (type, value, [(param, type)])
        self.inline_arrays: dict[str, tuple[CType, ast.Expr, list[tuple[str, CType]]]] = {}
        self._inline_params: dict[str, CType] = {}
        self._library_inlines()
        self._agg_lines: dict[str, int] = {}
        self.translators: list[tuple[CType, CType, ast.Translator]] = []  # (output, input, node)
        self._xlate_param: tuple[str, CType] | None = None
        self.strsize = strsize
        self._clause: ClauseInfo | None = None
        self._probe_args: list[CType] | None = None
        self._speculating = False
        self._committed = False
        self._recorded = False
        self._pc = 0

    def _library_inlines(self) -> None:
        """Enter the D library's constants as already-checked inline definitions."""
        for name, (tname, value) in library_inlines().items():
            t = self.typedefs.get(tname) or T.from_specifiers([tname])
            assert t is not None, tname
            lit = ast.IntLit(value, str(value))
            lit.ctype = _int_literal_type(lit)  # type: ignore[attr-defined]
            lit.pc = 0  # type: ignore[attr-defined]
            self.inlines[name] = (t, lit)

    # --- entry point ---------------------------------------------------------
    def check(self, program: ast.Program) -> CheckedProgram:
        if not program.items:
            raise DError("D_EMPTY", "empty D program translation unit")
        for item in program.items:
            if isinstance(item, ast.Clause):
                self._check_clause(item)
            elif isinstance(item, ast.Decl):
                self._declare(item, local=False)
            elif isinstance(item, ast.Inline):
                self._inline(item)
            elif isinstance(item, ast.Pragma):
                self._pragma(item)
            elif isinstance(item, ast.Translator):
                self._translator(item)
            # translators and provider definitions carry nothing the engines use yet
        return self.prog

    # --- pragmas -------------------------------------------------------------
    def _pragma(self, p: ast.Pragma) -> None:
        w = p.words
        if not w or w[0] != "D":
            return  # dtrace ignores pragmas for other consumers
        if len(w) >= 2 and w[1] == "option":
            if len(w) != 3:
                msg = (
                    "superfluous arguments specified for #pragma option"
                    if len(w) > 3
                    else ("malformed #pragma option")
                )
                raise DError("D_PRAGMA_MALFORM", msg, p.line, p.file)
            name, _, value = w[2].partition("=")
            self.prog.options.append((name, value if "=" in w[2] else None, p.line))
        elif len(w) >= 2 and w[1] == "depends_on" and len(w) >= 3 and w[2] == "library":
            raise DError(
                "D_PRAGMA_DEPEND",
                "main program may not explicitly depend on a library",
                p.line,
                p.file,
            )

    # --- declarations --------------------------------------------------------
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
            raise DError(
                "D_UNKNOWN", f"failed to resolve type {name}: Unknown type name", spec.line
            )
        return self._tagged(spec)

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
            table[name] = Variable(
                name, scope, t, keys, array=t.is_array(), declared=True, id=len(table)
            )

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
        if not _assignable(t, vt, node.value):
            raise DError(
                "D_OP_INCOMPAT",
                f'inline {name} definition uses incompatible types: "{t.name}" = "{vt.name}"',
                node.line,
            )
        self.inlines[name] = (t, node.value)

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
        if not _assignable(t, vt, node.value):
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
        body = _substitute(copy.deepcopy(value), bound)
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

    # --- translators -----------------------------------------------------------
    def _translator(self, node: ast.Translator) -> None:
        """Check a translator definition; its member expressions see the input as `param`."""
        end = getattr(node, "end_line", node.line)
        out = self.typename(node.output)
        inp = self.typename(node.input)
        if not out.is_struct():
            raise DError("D_XLATE_SOU", "translator output type must be a struct or union", end)
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
                if not _assignable(m.type, vt, value) or int_to_ptr:
                    raise DError(
                        "D_XLATE_INCOMPAT",
                        f'translator member {name} definition uses incompatible types: "{m.type.name}" = "{vt.name}"',
                        end,
                    )
        finally:
            self._xlate_param = None
        node.out_type = out  # type: ignore[attr-defined]
        node.in_type = inp  # type: ignore[attr-defined]
        self.translators.append((out, inp, node))

    def _find_translator(self, out: CType, arg: CType) -> ast.Translator | None:
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

    def _scope(self, scope: str) -> dict[str, Variable]:
        return {"global": self.prog.globals, "self": self.prog.tlocals, "this": self.prog.clocals}[
            scope
        ]

    # --- clauses -------------------------------------------------------------
    def _check_clause(self, c: ast.Clause) -> None:
        probes: list[Any] = []
        for spec in c.probes:
            probes.extend(self.lookup(spec.text, spec.line))
        info = ClauseInfo(
            len(self.prog.clauses), c, probes, c.predicate, c.body or [], False, c.line
        )
        self._clause = info
        argsets = [tuple(getattr(p, "argtypes", ())) for p in probes]
        self._probe_args = (
            list(argsets[0]) if argsets and all(a == argsets[0] for a in argsets) else None
        )
        # `args->field`: probes whose data gives a struct pointer (sdt tracepoints)
        # (one probe: different tracepoints never share the struct; asking
        # for it may read a tracefs format file)
        one = probes and all(p is probes[0] for p in probes)
        self._probe_argstruct = (
            getattr(getattr(probes[0], "data", None), "args_type", None) if one else None
        )
        self._speculating = self._committed = self._recorded = False
        self._pc = 0
        # dtrace types the actions before the predicate, so an action may create
        # a variable the predicate reads. We try the predicate first and, if it
        # names something not yet created, type it again after the actions.
        retry = False
        try:
            self._predicate(c)
        except DError as err:
            if err.tag not in ("D_IDENT_UNDEF", "D_VAR_UNDEF"):
                raise
            retry = True
        for s in c.body or []:
            self._stmt(s)
        if retry:
            self._predicate(c)
        info.records = self._recorded or not c.body
        info.actions = describe(info.body)
        self.prog.clauses.append(info)
        self._clause = None
        self._probe_argstruct = None

    def _predicate(self, c: ast.Clause) -> None:
        if c.predicate is not None:
            try:
                pt = self._expr(c.predicate)
            except DError as err:
                if err.tag.startswith("D_OP_") and hasattr(c.predicate, "cook_line"):
                    err.line = c.predicate.cook_line
                raise
            if not pt.is_scalar():
                line = getattr(c, "end_line", c.predicate.line)
                raise DError("D_PRED_SCALAR", "predicate result must be of scalar type", line)

    def _stmt(self, s: ast.Stmt) -> None:
        if isinstance(s, ast.ExprStmt):
            e = s.expr
            self._agg_shape(e)
            if isinstance(e, ast.Assign) and _is_agg_target(e.target):
                self._aggregate(e)
            elif (
                isinstance(e, ast.Call)
                and e.name in FUNCTIONS
                and FUNCTIONS[e.name].kind == "action"
            ):
                self._action(e)
            else:
                self._expr(e)
        elif isinstance(s, ast.If):
            ct = self._expr(s.cond)
            if not ct.is_scalar():
                raise DError("D_OP_SCALAR", "if condition must be of scalar type", s.line)
            for x in s.then:
                self._stmt(x)
            for x in s.other or []:
                self._stmt(x)
        elif isinstance(s, ast.Block):
            for x in s.body:
                self._stmt(x)
        elif isinstance(s, ast.Decl):
            self._declare(s, local=True)

    # --- aggregations --------------------------------------------------------
    def _agg_shape(self, e: ast.Expr) -> None:
        """Statement-level misuse of an aggregation: @a[x][y], or @a alone."""
        target = e.target if isinstance(e, ast.Assign) else e
        if (
            isinstance(target, ast.Index)
            and isinstance(target.base, ast.Index)
            and isinstance(target.base.base, ast.AggVar)
        ):
            raise DError(
                "D_AGG_MDIM",
                f"improper attempt to reference {target.base.base.name} as a multi-dimensional array",
                e.line,
            )
        agg = target.base if isinstance(target, ast.Index) else target
        if isinstance(agg, ast.AggVar) and not isinstance(e, ast.Assign):
            if agg.name not in self.prog.aggs and agg is target:  # @a[k] names one even if new
                raise DError(
                    "D_IDENT_UNDEF", f"failed to resolve {agg.name}: Unknown variable name", e.line
                )
            raise DError("D_AGG_NULL", f"expression has null effect: {agg.name}", e.line)

    def _aggregate(self, e: ast.Assign) -> None:
        target = e.target
        keys: list[ast.Expr] = []
        if isinstance(target, ast.Index):
            keys = target.args
            target = target.base
        assert isinstance(target, ast.AggVar)
        name = target.name
        if self._speculating:
            raise DError("D_AGG_SPEC", "aggregating actions may not follow speculate( )", e.line)
        if self._committed:
            raise DError("D_AGG_COMM", "aggregating actions may not follow commit( )", e.line)
        f = e.value
        if isinstance(f, ast.Call) and f.name not in FUNCTIONS:
            raise DError("D_FUNC_UNDEF", f"undefined function name: {f.name}", f.line)
        if e.op != "=" or not isinstance(f, ast.Call) or f.name not in AGG_FUNCS:
            fname = f.name if isinstance(f, ast.Call) else None
            if isinstance(f, ast.Call) and fname in FUNCTIONS:
                raise DError(
                    "D_AGG_FUNC",
                    f"{name} must be assigned the result of an aggregating function",
                    e.line,
                )
            raise DError(
                "D_AGG_FUNC",
                f"{name} must be assigned the result of an aggregating function",
                e.line,
            )
        keytypes = [self._key(k, i, "aggregation") for i, k in enumerate(keys)]
        args = f.args
        func = f.name
        nargs = len(args)
        arity = {
            "count": (0, 0),
            "quantize": (1, 2),
            "lquantize": (3, 5),
            "llquantize": (5, 6),
        }.get(func, (1, 1))
        if not arity[0] <= nargs <= arity[1]:
            lo, hi = arity
            if lo == hi:
                exp = f"{lo} expected"
            elif nargs < lo:
                exp = f"at least {lo} expected"
            else:
                exp = f"at most {hi} expected"
            raise DError(
                "D_PROTO_LEN",
                f"{func}( ) prototype mismatch: {nargs} arg{'s' if nargs != 1 else ''} passed, {exp}",
                f.line,
            )
        argtypes = [self._expr(a) for a in args]
        for i, (a, at) in enumerate(zip(args, argtypes)):
            if i == 0 and func != "count" and not at.is_arith() and not at.is_pointer():
                raise DError(
                    "D_AGG_SCALAR", f"{func}( ) argument #1 must be of scalar type", a.line
                )
        params: tuple[int, ...] = ()
        if func == "lquantize":
            params = self._lquantize_params(f)
        elif func == "llquantize":
            params = self._llquantize_params(f)
        if func in ("quantize", "lquantize", "llquantize"):
            incr_pos = {"quantize": 1, "lquantize": 4, "llquantize": 5}[func]
            if nargs > incr_pos and not argtypes[incr_pos].is_arith():
                raise DError(
                    "D_PROTO_ARG",
                    f"{func}( ) argument #{incr_pos + 1} is incompatible with prototype",
                    f.line,
                )
        valtype = argtypes[0] if argtypes else None
        old = self.prog.aggs.get(name)
        if old is None:
            info = AggInfo(len(self.prog.aggs), name, func, params, keytypes, valtype)
            self._agg_lines[name] = e.line
            self.prog.aggs[name] = info
        else:
            if old.func != func:
                aname = name.lstrip("@")
                raise DError(
                    "D_AGG_REDEF",
                    f"aggregation redefined: @{aname}\n\t current: @{aname} = {func}( )\n\tprevious: @{aname} = {old.func}( ) : line {self._agg_lines.get(name, 0)}",
                    e.line,
                )
            self._params_match(name, func, old.params, params, f.line)
            if len(old.keys) != len(keytypes):
                raise DError(
                    "D_PROTO_LEN",
                    f"{name}[ ] prototype mismatch: {len(keytypes)} key{'s' if len(keytypes) != 1 else ''} passed, {len(old.keys)} expected",
                    e.line,
                )
            for i, (a, b) in enumerate(zip(old.keys, keytypes)):
                if not _key_compatible(a, b):
                    raise DError(
                        "D_PROTO_ARG",
                        f"{name}[ ] key #{i + 1} is incompatible with prototype:\n\tprototype: {a.name}\n\t      key: {b.name}",
                        e.line,
                    )
            info = old
        e.agg = info  # type: ignore[attr-defined]
        e.ctype = T.VOID  # type: ignore[attr-defined]

    def _int_arg(self, f: ast.Call, i: int, tag: str) -> int:
        """Argument #i (counted after the value) of a quantizing function: an integer constant."""
        a = f.args[i]
        c = self._const(a) if a.ctype.is_int() else None  # type: ignore[attr-defined]
        if c is None:
            raise DError(tag, f"{f.name}( ) argument #{i} must be an integer constant", a.line)
        return c

    def _posconst(self, f: ast.Call, i: int, tag: str) -> int:
        a = f.args[i]
        c = self._const(a) if a.ctype.is_int() else None  # type: ignore[attr-defined]
        if c is None or c <= 0:
            raise DError(
                tag,
                f"{f.name}( ) argument #{i} must be a non-zero positive integer constant",
                a.line,
            )
        return c

    def _lquantize_params(self, f: ast.Call) -> tuple[int, ...]:
        # Argument numbers in dtrace's messages count after the value being quantized.
        base = self._int_arg(f, 1, "D_LQUANT_BASETYPE")
        if not -(2**31) <= base < 2**31:
            raise DError(
                "D_LQUANT_BASEVAL",
                "lquantize( ) argument #1 must be a 32-bit quantity",
                f.args[1].line,
            )
        limit = self._int_arg(f, 2, "D_LQUANT_LIMTYPE")
        if not -(2**31) <= limit < 2**31:
            raise DError(
                "D_LQUANT_LIMVAL",
                "lquantize( ) argument #2 must be a 32-bit quantity",
                f.args[2].line,
            )
        if limit <= base:
            raise DError(
                "D_LQUANT_MISMATCH",
                "lquantize( ) base (argument #1) must be less than limit (argument #2)",
                f.line,
            )
        step = 1
        if len(f.args) > 3:
            step = self._posconst(f, 3, "D_LQUANT_STEPTYPE")
            if step > 0xFFFF:
                raise DError(
                    "D_LQUANT_STEPVAL",
                    "lquantize( ) argument #3 must be a 16-bit quantity",
                    f.args[3].line,
                )
        levels = (limit - base) // step
        if levels == 0:
            raise DError(
                "D_LQUANT_STEPLARGE",
                "lquantize( ) step (argument #3) too large: must have at least one quantization level",
                f.line,
            )
        if levels > 0xFFFF:
            raise DError(
                "D_LQUANT_STEPSMALL",
                "lquantize( ) step (argument #3) too small: number of quantization levels must be a 16-bit quantity",
                f.line,
            )
        return (base, limit, step)

    def _llquantize_params(self, f: ast.Call) -> tuple[int, ...]:
        u64 = 2**64
        factor = self._int_arg(f, 1, "D_LLQUANT_FACTORTYPE") % u64
        if not 2 <= factor <= 0xFFFF:
            raise DError(
                "D_LLQUANT_FACTORVAL",
                "llquantize( ) argument #1 must be an unsigned 16-bit quantity greater than or equal to 2",
                f.args[1].line,
            )
        low = self._int_arg(f, 2, "D_LLQUANT_LMAGTYPE") % u64
        if low > 0xFFFF:
            raise DError(
                "D_LLQUANT_LMAGVAL",
                "llquantize( ) argument #2 must be an unsigned 16-bit quantity",
                f.args[2].line,
            )
        high = self._int_arg(f, 3, "D_LLQUANT_HMAGTYPE") % u64
        hline = f.args[3].line
        if high > 0xFFFF:
            raise DError(
                "D_LLQUANT_HMAGVAL",
                "llquantize( ) argument #3 must be an unsigned 16-bit quantity",
                hline,
            )
        if high < low:
            raise DError(
                "D_LLQUANT_HMAGVAL",
                "llquantize( ) argument #3 (high magnitude) must be at least argument #2 (low magnitude)",
                hline,
            )
        if factor ** (high + 1) > u64 - 1:
            raise DError(
                "D_LLQUANT_HMAGVAL",
                "llquantize( ) argument #3 (high magnitude) will cause overflow of 64 bits",
                hline,
            )
        steps = self._posconst(f, 4, "D_LLQUANT_STEPTYPE")
        if steps > 0xFFFF:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize( ) argument #4 must be an unsigned 16-bit quantity",
                f.args[4].line,
            )
        self._llquantize_steps(f, factor, low, steps)
        return (factor, low, high, steps)

    def _llquantize_steps(self, f: ast.Call, factor: int, low: int, steps: int) -> None:
        line = f.args[1].line
        if steps < factor and factor % steps:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must evenly divide argument #1 (factor) when steps<factor",
                line,
            )
        if steps <= factor:
            return
        if steps % factor:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must be a multiple of argument #1 (factor) when steps>factor",
                line,
            )
        if low == 0 and (factor * factor) % steps:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must evenly divide the square of argument #1 (factor) when steps>factor and lmag==0",
                line,
            )
        if low > 0 and (factor ** (low + 1)) % (2**64) % steps:
            raise DError(
                "D_LLQUANT_STEPVAL",
                "llquantize() argument #4 (steps) must evenly divide pow(argument #1 (factor), lmag (argument #2) + 1) when steps>factor and lmag>0",
                line,
            )

    def _params_match(
        self, name: str, func: str, old: tuple[int, ...], new: tuple[int, ...], line: int
    ) -> None:
        """A quantizing aggregation's parameters must repeat its first use's exactly."""
        if old == new:
            return
        if func == "lquantize":
            (ob, ol, os_), (nb, nl, ns) = old, new
            if ob != nb:
                raise DError(
                    "D_LQUANT_MATCHBASE",
                    f"lquantize( ) base (argument #1) doesn't match previous declaration: expected {ob}, found {nb}",
                    line,
                )
            olim, nlim = ob + (ol - ob) // os_ * os_, nb + (nl - nb) // ns * ns
            if olim != nlim:
                raise DError(
                    "D_LQUANT_MATCHLIM",
                    f"lquantize( ) limit (argument #2) doesn't match previous declaration: expected {olim}, found {nlim}",
                    line,
                )
            if os_ != ns:
                raise DError(
                    "D_LQUANT_MATCHSTEP",
                    f"lquantize( ) step (argument #3) doesn't match previous declaration: expected {os_}, found {ns}",
                    line,
                )
            return
        what = [("D_LLQUANT_MATCHFACTOR", "factor (argument #1)"), ("D_LLQUANT_MATCHLMAG", "lmag (argument #2)"),
                ("D_LLQUANT_MATCHHMAG", "hmag (argument #3)"), ("D_LLQUANT_MATCHSTEPS", "steps (argument #4)")]  # fmt: skip
        for (tag, label), o, n in zip(what, old, new):
            if o != n:
                raise DError(
                    tag,
                    f"llquantize() {label} doesn't match previous declaration: expected {o}, found {n}",
                    line,
                )

    def _key(self, k: ast.Expr, i: int = 0, kind: str = "associative array") -> CType:
        what = None
        if isinstance(k, ast.AggVar):
            what = "aggregation"  # dynamic: an aggregation has no value to key by
        elif (
            isinstance(k, ast.Call)
            and k.name in FUNCTIONS
            and FUNCTIONS[k.name].kind != "func"
            and k.name not in _VALUE_ACTIONS
        ):
            what = "void"
        if what is not None:
            raise DError(
                "D_KEY_TYPE",
                f"{what} expression may not be used as {kind} index: key #{i + 1}",
                k.line,
            )
        t = self._expr(k)
        if t.is_void():
            raise DError(
                "D_KEY_TYPE",
                f"void expression may not be used as {kind} index: key #{i + 1}",
                k.line,
            )
        if t.is_char_array():
            return T.STRING
        return t

    # --- actions -------------------------------------------------------------
    def _action(self, e: ast.Call) -> None:
        b = FUNCTIONS[e.name]
        name = e.name
        if b.destructive:
            self.prog.destructive = True
        if name in ("speculate",):
            if self._speculating:
                raise DError("D_SPEC_SPEC", "speculate( ) may not follow speculate( )", e.line)
            if self._committed:
                raise DError("D_SPEC_COMM", "speculate( ) may not follow commit( )", e.line)
            if self._recorded:
                raise DError(
                    "D_SPEC_DREC", "speculate( ) may not follow data-recording action(s)", e.line
                )
        elif name in ("commit", "discard"):
            if self._recorded and name == "commit":
                raise DError(
                    "D_COMM_DREC", "commit( ) may not follow data-recording action(s)", e.line
                )
            if self._speculating and name == "commit":
                raise DError("D_COMM_SPEC", "commit( ) may not follow speculate( )", e.line)
        else:
            if self._committed and name in RECORDING:
                raise DError(
                    "D_DREC_COMM", "data-recording actions may not follow commit( )", e.line
                )
            if self._speculating and b.destructive:
                raise DError(
                    "D_ACT_SPEC", "destructive actions may not follow speculate( )", e.line
                )
            if self._speculating and name == "exit":
                raise DError("D_EXIT_SPEC", "exit( ) may not follow speculate( )", e.line)
        if name == "printf":
            self._printf(e)
        elif name == "printa":
            self._printa(e)
        elif name in ("clear", "denormalize", "normalize", "trunc"):
            self._agg_action(e)
        elif name == "trace":
            self._proto(e, b)
            t = e.args[0].ctype  # type: ignore[attr-defined]
            if t.is_void():
                raise DError(
                    "D_TRACE_VOID", "trace( ) may not be applied to a void expression", e.line
                )
            if isinstance(e.args[0], ast.AggVar):
                raise DError(
                    "D_TRACE_DYN", "trace( ) may not be applied to a dynamic expression", e.line
                )
        elif name == "tracemem":
            self._proto(e, b)
            c = self._const(e.args[1])
            if c is None or c <= 0:
                raise DError(
                    "D_TRACEMEM_SIZE",
                    "tracemem( ) argument #2 must be a non-zero positive integral constant expression",
                    e.line,
                )
        elif name == "setopt":
            self._proto(e, b)
        else:
            self._proto(e, b)
        if name == "speculate":
            self._speculating = True
        elif name == "commit":
            self._committed = True
        elif name in RECORDING:
            self._recorded = True
        e.ctype = T.VOID  # type: ignore[attr-defined]
        e.builtin = b  # type: ignore[attr-defined]
        self._pc += 1
        e.pc = self._pc  # type: ignore[attr-defined]

    def _printf(self, e: ast.Call) -> None:
        from pydtrace.lang.formats import check_printf, parse_format

        if not e.args:
            raise DError(
                "D_PROTO_LEN",
                "printf( ) prototype mismatch: 0 args passed, at least 1 expected",
                e.line,
            )
        fmt_node = e.args[0]
        ft = self._expr(fmt_node)
        if not (ft.is_string() or ft.is_char_array()):
            raise DError(
                "D_PROTO_ARG",
                f"printf( ) argument #1 is incompatible with prototype:\n\tprototype: string\n\t argument: {ft.name}",
                e.line,
            )
        if not isinstance(fmt_node, ast.StrLit):
            raise DError(
                "D_PRINTF_ARG_FMT",
                f"printf( ) argument #1 is incompatible with prototype:\n\tprototype: string constant\n\t argument: {ft.name}",
                e.line,
            )
        argtypes = [self._expr(a) for a in e.args[1:]]
        for a, t in zip(e.args[1:], argtypes):
            if isinstance(a, ast.AggVar) or t.r.kind == "agg":
                pass
        try:
            fmt = parse_format(fmt_node.value, "printf")
            check_printf(fmt, argtypes, "printf", has_target=self.has_target)
        except DError as err:
            err.line = err.line or e.line
            raise
        e.format = fmt  # type: ignore[attr-defined]

    def _printa(self, e: ast.Call) -> None:
        from pydtrace.lang.formats import check_printf, parse_format

        args = e.args
        if not args:
            raise DError(
                "D_PROTO_LEN",
                "printa( ) prototype mismatch: 0 args passed, at least 1 expected",
                e.line,
            )
        fmt = None
        if isinstance(args[0], ast.StrLit):
            fmt = args[0].value
            args = args[1:]
            if not args:
                raise DError(
                    "D_PRINTA_PROTO",
                    "printa( ) prototype mismatch: 1 args passed, 2 expected",
                    e.line,
                )
        aggs: list[AggInfo] = []
        for i, a in enumerate(args):
            pos = i + (2 if fmt is not None else 1)
            if not isinstance(a, ast.AggVar):
                at = self._expr(a)
                raise DError(
                    "D_PRINTA_AGGARG",
                    f"printa( ) argument #{pos} is incompatible with prototype:\n\tprototype: aggregation\n\t argument: {at.name}",
                    e.line,
                )
            info = self.prog.aggs.get(a.name)
            if info is None:
                raise DError(
                    "D_PRINTA_AGGARG",
                    f"printa( ) argument #{pos} is incompatible with prototype:\n\tprototype: aggregation\n\t argument: undefined aggregation {a.name}",
                    e.line,
                )
            a.ctype = T.AGG  # type: ignore[attr-defined]
            aggs.append(info)
        first = aggs[0]
        for other in aggs[1:]:
            if len(other.keys) != len(first.keys):
                n1, n2 = len(first.keys), len(other.keys)
                raise DError(
                    "D_PRINTA_AGGKEY",
                    f"printa( ): {first.name} and {other.name} do not have matching key signatures: {first.name} has {n1} key{'s' if n1 != 1 else ''}, {other.name} has {n2} key{'s' if n2 != 1 else ''}",
                    e.line,
                )
            for i, (a, b) in enumerate(zip(first.keys, other.keys)):
                if not _key_compatible(a, b):
                    raise DError(
                        "D_PRINTA_AGGPROTO",
                        f"printa( ): {other.name}[ ] key #{i + 1} is incompatible with {first.name}:\n{first.name[1:]:>9} key #{i + 1}: {a.name}\n{other.name[1:]:>9} key #{i + 1}: {b.name}",
                        e.line,
                    )
        parsed = None
        if fmt is not None:
            try:
                parsed = parse_format(fmt, "printa")
                check_printf(parsed, list(first.keys), "printa", has_target=self.has_target)
            except DError as err:
                err.line = err.line or e.line
                raise
        e.format = parsed  # type: ignore[attr-defined]
        e.aggs = aggs  # type: ignore[attr-defined]

    def _agg_action(self, e: ast.Call) -> None:
        b = FUNCTIONS[e.name]
        self._arity(e, b)
        a = e.args[0]
        if not isinstance(a, ast.AggVar) or a.name not in self.prog.aggs:
            tag = {"clear": "D_CLEAR_AGGARG", "trunc": "D_TRUNC_AGGARG"}.get(
                e.name, "D_NORMALIZE_AGGARG"
            )
            at = self._agg_arg_type(a)
            raise DError(
                tag,
                f"{e.name}( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: {at.name}",
                e.line,
            )
        a.ctype = T.AGG  # type: ignore[attr-defined]
        for x in e.args[1:]:
            t = self._expr(x)
            if not t.is_int():
                raise DError(
                    "D_PROTO_ARG",
                    f"{e.name}( ) argument #2 is incompatible with prototype:\n\tprototype: {prototype(b).params[1]}\n\t argument: {t.name}",
                    e.line,
                )
        e.aggs = [self.prog.aggs[a.name]]  # type: ignore[attr-defined]

    def _agg_arg_type(self, a: ast.Expr) -> CType:
        """The type of a non-aggregation given where an aggregation is required."""
        if isinstance(a, ast.AggVar):
            return T.VOID
        if isinstance(a, ast.Call) and a.name in AGG_FUNCS:
            return T.VOID  # an aggregating function's result is not a value
        return self._expr(a)

    def _arity(self, e: ast.Call, b: Builtin) -> None:
        p = prototype(b)
        n = len(e.args)
        maxn = None if p.varargs else len(p.params)
        if n < p.required or (maxn is not None and n > maxn):
            if maxn == p.required:
                exp = f"{p.required} expected"
            elif n < p.required:
                exp = f"at least {p.required} expected"
            else:
                exp = f"at most {maxn} expected"
            raise DError(
                "D_PROTO_LEN",
                f"{b.name}( ) prototype mismatch: {n} arg{'s' if n != 1 else ''} passed, {exp}",
                e.line,
            )

    def _proto(self, e: ast.Call, b: Builtin) -> CType:
        """Check a call against its prototype; return its result type."""
        self._arity(e, b)
        p = prototype(b)
        for i, a in enumerate(e.args):
            at = self._expr(a)
            want = p.params[i] if i < len(p.params) else "@"
            if want == "@":
                continue
            wt = self._proto_type(want)
            null = self._is_null(a, at) and isinstance(a, ast.IntLit | ast.Ident)
            if (
                not _arg_ok(wt, at, a)
                or (wt.is_pointer() and at.is_int() and not null)
                or (at.is_void() and not wt.is_void())
            ):
                shown = want.replace("const ", "")  # dtrace's prototypes print without const
                raise DError(
                    "D_PROTO_ARG",
                    f"{b.name}( ) argument #{i + 1} is incompatible with prototype:\n\tprototype: {shown}\n\t argument: {at.name}",
                    e.line,
                )
        if b.name in ("stack", "ustack", "jstack") and e.args:
            self._stack_args(e, b.name)
        if p.ret in ("_symaddr", "_usymaddr"):
            return T.SYMADDR[b.name]
        if b.name in ("ustack", "jstack"):
            return T.USTACK
        return self._proto_type(p.ret)

    def _stack_args(self, e: ast.Call, name: str) -> None:
        """stack(n), ustack(n[, strsize]): constants, as dtrace requires."""
        n = self._const(e.args[0])
        if n is None or n <= 0:
            tag = "D_STACK_SIZE" if name == "stack" else "D_USTACK_FRAMES"
            raise DError(
                tag, f"{name}( ) argument #1 must be a non-zero positive integer constant", e.line
            )
        if len(e.args) > 1:
            size = self._const(e.args[1])
            if size is None or size < 0:
                raise DError(
                    "D_USTACK_STRSIZE",
                    f"{name}( ) argument #2 must be a positive integer constant",
                    e.line,
                )

    def _library_types(self, name: str) -> bool:
        """Enter D's process-information types when a program first names one."""
        if name not in procfs.TYPE_NAMES:
            return False
        for key, t in library_types().items():
            (self.tags if key.startswith("struct ") else self.typedefs).setdefault(key, t)
        return True

    def _proto_type(self, name: str) -> CType:
        name = name.replace("const ", "")
        stars = name.count("*")
        base = name.replace("*", "").strip()
        if base not in self.typedefs:
            self._library_types(base)
        if base.startswith("struct "):
            # a kernel structure named by a prototype: opaque, known by its tag only
            t = self.tags.get(base) or CType("struct", base, 0, tag=base[7:])
        else:
            t = (
                T.STACK
                if base == "stack"
                else self.typedefs.get(base) or T.from_specifiers(base.split())
            )
        assert t is not None, name
        for _ in range(stars):
            t = T.pointer(t)
        return t

    # --- expressions -----------------------------------------------------------
    def _expr(self, e: ast.Expr) -> CType:
        t = self._expr_inner(e)
        e.ctype = t  # type: ignore[attr-defined]
        self._pc += 1
        e.pc = self._pc  # type: ignore[attr-defined]
        return t

    def _expr_inner(self, e: ast.Expr) -> CType:
        m = getattr(self, "_x_" + type(e).__name__)
        return m(e)

    def _x_IntLit(self, e: ast.IntLit) -> CType:
        return _int_literal_type(e)

    def _x_CharLit(self, e: ast.CharLit) -> CType:
        # as in C, a character constant is an int (sizeof('c') is 4); dtrace
        # types a longer multi-character one by its value, as an integer constant
        v = e.value
        if v <= 0x7FFFFFFF:
            return T.INT
        if v <= 0xFFFFFFFF:
            return T.UINT
        return T.LONG if v <= 0x7FFFFFFFFFFFFFFF else T.ULONG

    def _x_StrLit(self, e: ast.StrLit) -> CType:
        return T.STRING

    def _x_Ident(self, e: ast.Ident) -> CType:
        name = e.name
        if name in self._inline_params:
            # checked only for its type here: every use substitutes the argument
            e.ref = ("const", 0)  # type: ignore[attr-defined]
            return self._inline_params[name]
        if self._xlate_param is not None and name == self._xlate_param[0]:
            e.ref = ("xlarg", None)  # type: ignore[attr-defined]
            return self._xlate_param[1]
        if name in self.prog.globals:
            v = self.prog.globals[name]
            if v.keys is not None:
                raise DError(
                    "D_IDENT_BADREF",
                    f"associative array '{name}' may not be referenced as scalar",
                    e.line,
                )
            e.ref = ("global", v)  # type: ignore[attr-defined]
            return v.type
        if name in self.enumerators:
            value, et = self.enumerators[name]
            e.ref = ("const", value)  # type: ignore[attr-defined]
            return et
        if name in self.inlines:
            t, x = self.inlines[name]
            e.ref = ("inline", x)  # type: ignore[attr-defined]
            return t
        if name in VARIABLES:
            e.ref = ("builtin", name)  # type: ignore[attr-defined]
            return self._proto_type(VARIABLES[name])
        if name in FUNCTIONS:
            raise DError(
                "D_IDENT_BADREF",
                f"{FUNCTIONS[name].kind} '{name}' may not be referenced as scalar"
                if False
                else f"function '{name}' may not be referenced as scalar",
                e.line,
            )
        if name == "args" and getattr(self, "_probe_argstruct", None) is not None:
            e.ref = ("builtin", "args")  # type: ignore[attr-defined]
            return self._probe_argstruct
        if "`" in name:
            raise DError(
                "D_SYM_NOKERNEL",
                f"failed to resolve {name}: kernel symbols are not available on this engine",
                e.line,
            )
        raise DError("D_IDENT_UNDEF", f"failed to resolve {name}: Unknown variable name", e.line)

    def _x_SelfVar(self, e: ast.SelfVar) -> CType:
        v = self.prog.tlocals.get(e.name)
        if v is None:
            raise DError("D_VAR_UNDEF", f"{e.name} has not yet been declared or assigned", e.line)
        if v.keys is not None:
            raise DError(
                "D_IDENT_BADREF",
                f"associative array 'self->{e.name}' may not be referenced as scalar",
                e.line,
            )
        e.ref = ("self", v)  # type: ignore[attr-defined]
        return v.type

    def _x_ThisVar(self, e: ast.ThisVar) -> CType:
        v = self.prog.clocals.get(e.name)
        if v is None:
            raise DError("D_VAR_UNDEF", f"{e.name} has not yet been declared or assigned", e.line)
        e.ref = ("this", v)  # type: ignore[attr-defined]
        return v.type

    def _x_AggVar(self, e: ast.AggVar) -> CType:
        if e.name not in self.prog.aggs:
            raise DError("D_AGG_NOTDEF", f"aggregation {e.name} is not defined", e.line)
        return T.AGG

    def _x_Unary(self, e: ast.Unary) -> CType:
        op = e.op
        if op in ("++", "--"):
            t = self._lvalue(e.operand, op)
            return t
        if op == "&":
            o = e.operand
            if isinstance(o, ast.AggVar):
                raise DError("D_ADDROF_VAR", "cannot take address of dynamic variable", e.line)
            t = self._expr(o)
            # every D variable lives in dtrace's own storage, which has no address
            if isinstance(o, ast.SelfVar | ast.ThisVar) or (
                isinstance(o, ast.Ident) and o.ref[0] in ("global", "builtin")
            ):  # type: ignore[attr-defined]
                raise DError("D_ADDROF_VAR", "cannot take address of dynamic variable", e.line)
            if isinstance(o, ast.Index) and getattr(o, "ref", None) and o.ref[0] == "assoc":  # type: ignore[attr-defined]
                raise DError("D_ADDROF_VAR", "cannot take address of dynamic variable", e.line)
            if isinstance(o, ast.Member) and getattr(o, "member", None) and o.member.bits:  # type: ignore[attr-defined]
                raise DError("D_ADDROF_BITFIELD", "cannot take address of bit-field", e.line)
            if not isinstance(o, ast.Ident | ast.Index | ast.Member | ast.Unary):
                raise DError("D_ADDROF_LVAL", "unacceptable operand for unary & operator", e.line)
            return T.pointer(t)
        t = self._expr(e.operand)
        if op == "*":
            if t.is_array():
                return t.r.target  # type: ignore[return-value]
            if not t.is_pointer():
                raise DError("D_DEREF_NONPTR", "cannot dereference non-pointer type", e.line)
            assert t.r.target is not None
            if t.r.target.is_void():
                raise DError("D_DEREF_VOID", "cannot dereference pointer to void", e.line)
            return t.r.target
        if op in ("-", "+"):
            if not t.is_arith():
                raise DError(
                    "D_OP_ARITH", f"operator {op} requires an operand of arithmetic type", e.line
                )
            return t  # D keeps the operand's type (no promotion to int)
        if op == "~":
            if not t.is_int():
                raise DError("D_OP_INT", "operator ~ requires an operand of integral type", e.line)
            return t
        if op == "!":
            if not t.is_scalar():
                raise DError("D_OP_SCALAR", "operator ! requires an operand of scalar type", e.line)
            return T.INT
        raise DError("D_SYNTAX", f"unknown operator {op}", e.line)

    def _x_Postfix(self, e: ast.Postfix) -> CType:
        return self._lvalue(e.operand, e.op)

    def _lvalue(self, x: ast.Expr, op: str) -> CType:
        # ++ and -- create an undeclared variable, as an int64_t (dtrace's rule)
        if isinstance(x, ast.Ident) and self._undeclared(x.name):
            self.prog.globals[x.name] = Variable(
                x.name, "global", T.BUILTIN_TYPEDEFS["int64_t"], id=len(self.prog.globals)
            )
        elif isinstance(x, ast.SelfVar | ast.ThisVar):
            table = self.prog.tlocals if isinstance(x, ast.SelfVar) else self.prog.clocals
            if x.name not in table:
                scope = "self" if isinstance(x, ast.SelfVar) else "this"
                table[x.name] = Variable(
                    x.name, scope, T.BUILTIN_TYPEDEFS["int64_t"], id=len(table)
                )
        if not isinstance(
            x, ast.Ident | ast.SelfVar | ast.ThisVar | ast.Index | ast.Member | ast.Unary
        ):
            self._expr(x)
            raise DError(
                "D_OP_LVAL", f"operator {op} requires modifiable lvalue as an operand", x.line
            )
        t = self._expr(x)
        if isinstance(x, ast.Ident) and x.ref[0] != "global":  # type: ignore[attr-defined]
            raise DError(
                "D_OP_LVAL", f"operator {op} requires modifiable lvalue as an operand", x.line
            )
        if not (t.is_arith() or t.is_pointer()):
            raise DError("D_OP_SCALAR", f"operator {op} requires operand of scalar type", x.line)
        return t

    def _x_Binary(self, e: ast.Binary) -> CType:
        op = e.op
        lt = self._expr(e.left)
        rt = self._expr(e.right)
        if op == ",":
            if getattr(e.left, "actfunc", False) or getattr(e.right, "actfunc", False):
                raise DError("D_OP_ACT", "operator , operands cannot be actions", e.line)
            return rt
        if op in LOGIC_OPS:
            if not lt.is_scalar() or not rt.is_scalar():
                raise DError(
                    "D_OP_SCALAR", f"operator {op} requires operands of scalar type", e.line
                )
            return T.INT
        if op in REL_OPS:
            if lt.is_string() or rt.is_string() or lt.is_char_array() or rt.is_char_array():
                ok = all(
                    _stringish(t) or self._is_null(x, t) for x, t in ((e.left, lt), (e.right, rt))
                )
                if not ok:
                    raise DError(
                        "D_OP_INCOMPAT",
                        f'operands have incompatible types: "{lt.name}" {op} "{rt.name}"',
                        e.line,
                    )
                e.strcmp = True  # type: ignore[attr-defined]
                return T.INT
            if not (lt.is_scalar() and rt.is_scalar()):
                raise DError(
                    "D_OP_SCALAR", f"operator {op} requires operands of scalar type", e.line
                )
            if lt.is_arith() and rt.is_arith():
                e.optype = T.d_arith_conv(lt, rt)  # type: ignore[attr-defined]
            else:
                e.optype = T.ULONG  # type: ignore[attr-defined]
            return T.INT
        if op in INT_OPS:
            if not lt.is_int() or not rt.is_int():
                raise DError(
                    "D_OP_INT", f"operator {op} requires operands of integral type", e.line
                )
            if op in ("<<", ">>"):
                return lt  # the left operand's type, unpromoted (dt_cook_op2)
            return T.d_arith_conv(lt, rt)
        # arithmetic
        if lt.is_arith() and rt.is_arith():
            if op in ("/", "%"):
                c = self._const(e.right)
                if c == 0:
                    raise DError("D_DIV_ZERO", "expression contains division by zero", e.line)
            return T.d_arith_conv(lt, rt)
        if op in ("+", "-") and (lt.is_pointer() or lt.is_array()) and rt.is_int():
            pt = lt if lt.is_pointer() else T.pointer(lt.r.target)  # type: ignore[arg-type]
            if pt.r.target is not None and pt.r.target.is_void():
                raise DError(
                    "D_OP_INCOMPAT",
                    f'operands have incompatible types: "{lt.name}" {op} "{rt.name}"',
                    e.line,
                )
            return pt
        if op == "+" and lt.is_int() and (rt.is_pointer() or rt.is_array()):
            return rt if rt.is_pointer() else T.pointer(rt.r.target)  # type: ignore[arg-type]
        if op == "-" and lt.is_pointer() and rt.is_pointer():
            return T.LONG
        raise DError(
            "D_OP_INCOMPAT",
            f'operands have incompatible types: "{lt.name}" {op} "{rt.name}"',
            e.line,
        )

    def _x_Assign(self, e: ast.Assign) -> CType:
        if _is_agg_target(e.target):
            raise DError(
                "D_AGG_SCALAR", "aggregations may only be assigned at statement level", e.line
            )
        vt = self._expr(e.value)
        target = e.target
        if (
            isinstance(e.value, ast.Call)
            and getattr(e.value, "builtin", None)
            and e.value.builtin.kind == "agg"
        ):  # type: ignore[attr-defined]
            pass
        if (
            vt.is_void()
            and e.op != "="
            and isinstance(target, ast.Ident)
            and self._undeclared(target.name)
        ):
            raise DError(
                "D_VAR_UNDEF", f"{target.name} has not yet been declared or assigned", e.line
            )
        if vt.is_void() and isinstance(e.value, ast.Call):
            raise DError(
                "D_OP_INCOMPAT", f'operands have incompatible types: "void" {e.op} "void"', e.line
            )
        t = self._define_target(target, vt, e)
        if e.op != "=":
            bop = e.op[:-1]
            if t.is_string() or vt.is_string():
                raise DError(
                    "D_OP_INCOMPAT",
                    f'operands have incompatible types: "{t.name}" {e.op} "{vt.name}"',
                    e.line,
                )
            if bop in INT_OPS and not (t.is_int() and vt.is_int()):
                raise DError(
                    "D_OP_INT", f"operator {e.op} requires operands of integral type", e.line
                )
            if (
                not (t.is_arith() or (t.is_pointer() and bop in ("+", "-") and vt.is_int()))
                or vt.is_pointer()
            ):
                raise DError(
                    "D_OP_VFPTR",
                    f"operator {e.op} requires left-hand scalar operand of known size",
                    e.line,
                )
            if bop in ("/", "%") and self._const(e.value) == 0:
                raise DError("D_DIV_ZERO", "expression contains division by zero", e.line)
        else:
            if t.is_array() and not t.is_char_array():
                raise DError(
                    "D_OP_ARRFUN",
                    f'operator = may not be applied to operand of type "{t.name}"',
                    e.line,
                )
            if not (
                _assignable(t, vt, e.value)
                or ((t.is_string() or _is_dynamic(target)) and self._is_null(e.value, vt))
            ):
                raise DError(
                    "D_OP_INCOMPAT",
                    f'operands have incompatible types: "{t.name}" = "{vt.name}"',
                    e.line,
                )
        return t

    def _is_null(self, x: ast.Expr, t: CType) -> bool:
        """A null-pointer constant: an integer constant expression equal to 0 (e.g. NULL)."""
        return t.is_int() and self._const(x) == 0

    def _undeclared(self, name: str) -> bool:
        return not (
            name in self.prog.globals
            or name in self.enumerators
            or name in self.inlines
            or name in VARIABLES
            or name in FUNCTIONS
            or "`" in name
        )

    def _define_target(self, target: ast.Expr, vt: CType, e: ast.Assign) -> CType:
        """Type an assignment target, creating an undeclared variable from the value's type."""
        newtype = T.STRING if vt.is_char_array() else vt
        if isinstance(target, ast.Ident):
            name = target.name
            if self._undeclared(name):
                self.prog.globals[name] = Variable(
                    name, "global", newtype, id=len(self.prog.globals)
                )
            t = self._expr(target)
            if target.ref[0] != "global":  # type: ignore[attr-defined]
                raise DError(
                    "D_OP_WRITE",
                    f"operator {e.op} can only be applied to a writable variable",
                    e.line,
                )
            return t
        if isinstance(target, ast.SelfVar | ast.ThisVar):
            table = self.prog.tlocals if isinstance(target, ast.SelfVar) else self.prog.clocals
            if target.name not in table:
                scope = "self" if isinstance(target, ast.SelfVar) else "this"
                table[target.name] = Variable(target.name, scope, newtype, id=len(table))
            return self._expr(target)
        if isinstance(target, ast.Index):
            base = target.base
            if isinstance(base, ast.ThisVar) and base.name not in self.prog.clocals:
                raise DError(
                    "D_ARR_LOCAL",
                    f"local variables may not be used as associative arrays: {base.name}",
                    e.line,
                )
            if isinstance(base, ast.Ident | ast.SelfVar):
                table = self.prog.globals if isinstance(base, ast.Ident) else self.prog.tlocals
                name = base.name
                known = name in table or (
                    isinstance(base, ast.Ident) and (name in VARIABLES or name in self.inlines)
                )
                if not known:
                    keys = [self._key(k, i) for i, k in enumerate(target.args)]
                    scope = "global" if isinstance(base, ast.Ident) else "self"
                    table[name] = Variable(name, scope, newtype, keys, id=len(table))
            return self._expr(target)
        if isinstance(target, ast.Member | ast.Unary):
            t = self._expr(target)
            if isinstance(target, ast.Unary) and target.op != "*":
                raise DError(
                    "D_OP_LVAL", f"operator {e.op} requires modifiable lvalue as an operand", e.line
                )
            return t
        self._expr(target)
        raise DError(
            "D_OP_LVAL", f"operator {e.op} requires modifiable lvalue as an operand", e.line
        )

    def _x_Cond(self, e: ast.Cond) -> CType:
        ct = self._expr(e.cond)
        if not ct.is_scalar():
            raise DError("D_OP_SCALAR", "operator ?: expression must be of scalar type", e.line)
        a = self._expr(e.then)
        b = self._expr(e.other)
        if getattr(e.then, "actfunc", False) or getattr(e.other, "actfunc", False):
            raise DError("D_OP_ACT", "action cannot be used in a conditional context", e.line)
        if a.is_arith() and b.is_arith():
            return T.d_arith_conv(a, b)
        if (a.is_string() or a.is_char_array()) and (b.is_string() or b.is_char_array()):
            return T.STRING
        if a.same(b):
            return a
        if a.is_pointer() and b.is_int() and self._const(e.other) == 0:
            return a
        if b.is_pointer() and a.is_int() and self._const(e.then) == 0:
            return b
        if a.is_pointer() and b.is_pointer():
            return a
        raise DError(
            "D_OP_INCOMPAT",
            f'operator ?: operands must have compatible types: "{a.name}" and "{b.name}"',
            e.line,
        )

    def _x_Cast(self, e: ast.Cast) -> CType:
        t = self.typename(e.type)
        ot = self._expr(e.operand)
        if isinstance(e.operand, ast.Xlate) and ot.is_pointer():
            # a translated object exists only as its members; it has no address
            raise DError(
                "D_CAST_INVAL",
                f'invalid cast expression: "pointer to translated data" to "{t.name}"',
                e.line,
            )
        if t.is_void() or t.same(ot):
            return t
        if t.is_string():
            if not (ot.is_string() or ot.is_char_array() or ot.is_pointer() or ot.is_int()):
                raise DError(
                    "D_CAST_INVAL", f'invalid cast expression: "{ot.name}" to "{t.name}"', e.line
                )
            return t
        if (t.is_arith() or t.is_pointer()) and (ot.is_arith() or ot.is_pointer() or ot.is_array()):
            return t
        if ot.is_string() and (t.is_pointer() or t.is_int()):
            return t
        raise DError("D_CAST_INVAL", f'invalid cast expression: "{ot.name}" to "{t.name}"', e.line)

    def _x_Sizeof(self, e: ast.Sizeof) -> CType:
        if e.type is not None:
            t = self.typename(e.type)
        else:
            assert e.operand is not None
            t = self._expr(e.operand)
            ref = getattr(e.operand, "ref", None)
            if isinstance(e.operand, ast.Ident) and ref is not None and ref[0] == "inline":
                t = ref[1].ctype  # dtrace sizes an inline by its value's type: sizeof(NULL) is 4
            if (
                isinstance(e.operand, ast.Member)
                and getattr(e.operand, "member", None)
                and e.operand.member.bits
            ):  # type: ignore[attr-defined]
                raise DError("D_SIZEOF_BITFIELD", "cannot apply sizeof to a bit-field", e.line)
        size = self.strsize if t.is_string() else t.r.size if t.r.kind != "enum" else 4
        if isinstance(e.operand, ast.StrLit):
            size = len(e.operand.value.encode()) + 1  # a literal's own size, with its NUL
        if t.is_void() or t.r.kind == "func" or (t.is_struct() and t.r.members is None):
            raise DError(
                "D_SIZEOF_TYPE", "cannot apply sizeof to an operand of unknown size", e.line
            )
        e.value = size  # type: ignore[attr-defined]
        return T.typedef("size_t", T.ULONG)

    def _x_Offsetof(self, e: ast.Offsetof) -> CType:
        t = self.typename(e.type)
        if not t.is_struct():
            raise DError(
                "D_OFFSETOF_TYPE", "offsetof operand must be a struct or union type", e.line
            )
        m = t.member(e.member)
        if m is None:
            raise DError(
                "D_UNKNOWN",
                f"failed to determine offset of {e.member}: Member name not found",
                e.line,
            )
        if m.bits:
            raise DError(
                "D_OFFSETOF_BITFIELD", f"cannot take offset of a bit-field: {e.member}", e.line
            )
        e.value = m.offset  # type: ignore[attr-defined]
        return T.typedef("size_t", T.ULONG)

    def _x_Stringof(self, e: ast.Stringof) -> CType:
        t = self._expr(e.operand)
        if t.is_void() or t.is_struct():
            raise DError(
                "D_STRINGOF_TYPE", f"cannot apply stringof to a value of type {t.name}", e.line
            )
        return T.STRING

    def _x_Xlate(self, e: ast.Xlate) -> CType:
        t = self.typename(e.type)
        at = self._expr(e.operand)
        out = t.r.target if t.is_pointer() and t.r.target is not None else t
        if not out.is_struct():
            raise DError("D_XLATE_SOU", "translator output type must be a struct or union", e.line)
        node = self._find_translator(out, at)
        if node is None:
            raise DError(
                "D_XLATE_NONE", f'cannot translate from "{at.name}" to "{out.name}"', e.line
            )
        e.translator = node  # type: ignore[attr-defined]
        return t

    def _x_Call(self, e: ast.Call) -> CType:
        b = FUNCTIONS.get(e.name)
        if b is None:
            raise DError("D_FUNC_UNDEF", f"undefined function name: {e.name}", e.line)
        if b.kind == "agg":
            raise DError(
                "D_CG_EXPR",
                f"aggregating function {e.name}( ) may not be called from a D expression (D program context required)",
                e.line,
            )
        if b.kind == "action" and e.name not in _VALUE_ACTIONS:
            # An action used as a value has type void; operators and callers reject it.
            self._proto(e, b)
            e.actfunc = True  # type: ignore[attr-defined]
            return T.VOID
        if b.destructive:
            self.prog.destructive = True
        e.builtin = b  # type: ignore[attr-defined]
        t = self._proto(e, b)
        if e.name == "alloca":
            c = self._const(e.args[0])
            if c is not None and c > self.scratchsize:
                raise DError(
                    "D_ALLOCA_SIZE",
                    f"alloca({c}) size larger than scratchsize {self.scratchsize}",
                    e.line,
                )
        return t

    def _x_Index(self, e: ast.Index) -> CType:
        base = e.base
        if isinstance(base, ast.ThisVar) and base.name not in self.prog.clocals:
            raise DError(
                "D_ARR_LOCAL",
                f"local variables may not be used as associative arrays: {base.name}",
                e.line,
            )
        if isinstance(base, ast.AggVar):
            raise DError(
                "D_AGG_SCALAR", "aggregations may not be referenced in expressions", e.line
            )
        if isinstance(base, ast.Ident) and base.name == "args":
            return self._args(e)
        if isinstance(base, ast.Ident) and base.name == "uregs":
            return self._uregs(e)
        if isinstance(base, ast.Ident) and base.name in self.inline_arrays:
            return self._inline_call(e, base.name)
        if isinstance(base, ast.Ident | ast.SelfVar) and not (
            isinstance(base, ast.Ident) and (base.name in VARIABLES or base.name in self.inlines)
        ):
            table = self.prog.globals if isinstance(base, ast.Ident) else self.prog.tlocals
            v = table.get(base.name)
            if v is None:
                for k in e.args:
                    self._expr(k)  # dtrace resolves the keys before the array
                if isinstance(base, ast.Ident):
                    raise DError(
                        "D_IDENT_UNDEF",
                        f"failed to resolve {base.name}: Unknown variable name",
                        e.line,
                    )
                raise DError(
                    "D_VAR_UNDEF", f"{base.name} has not yet been declared or assigned", e.line
                )
            if v.keys is not None:
                keytypes = [self._key(k, i) for i, k in enumerate(e.args)]
                shown = base.name if isinstance(base, ast.Ident) else f"self->{base.name}"
                if len(keytypes) != len(v.keys):
                    n = len(keytypes)
                    raise DError(
                        "D_PROTO_LEN",
                        f"{shown}[ ] prototype mismatch: {n} key{'s' if n != 1 else ''} passed, {len(v.keys)} expected",
                        e.line,
                    )
                for i, (want, got) in enumerate(zip(v.keys, keytypes)):
                    if not _key_compatible(want, got):
                        raise DError(
                            "D_PROTO_ARG",
                            f"{shown}[ ] key #{i + 1} is incompatible with prototype:\n\tprototype: {want.name}\n\t      key: {got.name}",
                            e.line,
                        )
                e.ref = ("assoc", v)  # type: ignore[attr-defined]
                base.ctype = v.type  # type: ignore[attr-defined]
                return v.type
            if len(e.args) != 1 or not (v.array or v.type.is_pointer() or v.type.is_string()):
                raise DError(
                    "D_ARR_BADREF",
                    f"cannot access scalar {base.name} as an associative array",
                    e.line,
                )
        bt = self._expr(base)
        if len(e.args) != 1:
            raise DError("D_ARR_BADREF", "scalar arrays take one subscript", e.line)
        it = self._expr(e.args[0])
        if not it.is_int():
            raise DError("D_ARR_BADREF", "array subscript must be of integral type", e.line)
        if bt.is_array():
            c = self._const(e.args[0])
            if c is not None and (c < 0 or c >= bt.r.count):
                raise DError(
                    "D_ARR_BOUNDS", f"index outside array bounds: {c}, max is {bt.r.count}", e.line
                )
            e.ref = ("element", None)  # type: ignore[attr-defined]
            return bt.r.target  # type: ignore[return-value]
        if bt.is_pointer():
            e.ref = ("element", None)  # type: ignore[attr-defined]
            return bt.r.target  # type: ignore[return-value]
        if bt.is_string():
            e.ref = ("strchar", None)  # type: ignore[attr-defined]
            return T.CHAR
        raise DError(
            "D_ARR_BADREF", "operator [ ] may not be applied to operand of this type", e.line
        )

    def _uregs(self, e: ast.Index) -> CType:
        """uregs[R_xxx]: a saved user register, by a constant index (the
        R_ names of the D library: x86_64 pt_regs order, then 21-25 the
        segment and trap words dtrace-utils reads from task->thread)."""
        e.base.ref = ("builtin", "uregs")  # type: ignore[attr-defined]
        e.base.ctype = T.VOID  # type: ignore[attr-defined]
        it = self._expr(e.args[0])
        c = self._const(e.args[0])
        if not it.is_int() or c is None:
            raise DError("D_UREGS_IDX", "uregs[ ] index must be an integer constant", e.line)
        if not 0 <= c < UREGS_COUNT:
            raise DError("D_UREGS_IDX", f"uregs[]: index out of bounds ({c})", e.line)
        e.ref = ("uregs", c)  # type: ignore[attr-defined]
        return T.ULONG

    def _args(self, e: ast.Index) -> CType:
        e.base.ref = ("builtin", "args")  # type: ignore[attr-defined]
        e.base.ctype = T.VOID  # type: ignore[attr-defined]
        it = self._expr(e.args[0])
        c = self._const(e.args[0])
        if not it.is_int():
            raise DError("D_ARGS_IDX", "args[ ] index must be an integer", e.line)
        argtypes = self._probe_args or []
        if c is None:
            e.ref = ("args", None)  # type: ignore[attr-defined]
            return T.LONG
        if c < 0 or c >= len(argtypes):
            if (
                not argtypes
                and self._clause is not None
                and self._clause.probes
                and all(p.provider in ("dtrace", "profile") for p in self._clause.probes)
            ):
                raise DError(
                    "D_ARGS_IDX",
                    f"index {c} is out of range for {_probe_name(self._clause.probes[0])} args[ ]",
                    e.line,
                )
            e.ref = ("args", c)  # type: ignore[attr-defined]
            return T.LONG
        e.ref = ("args", c)  # type: ignore[attr-defined]
        return argtypes[c]

    def _x_Member(self, e: ast.Member) -> CType:
        bt = self._expr(e.base)
        if e.arrow:
            if not bt.is_pointer():
                raise DError("D_OP_PTR", "operator -> must be applied to a pointer", e.line)
            st = bt.r.target
            assert st is not None
            if not st.is_struct():
                raise DError(
                    "D_OP_SOU",
                    f'operator -> cannot be applied to pointer to type "{st.name}"; must be applied to a struct or union pointer',
                    e.line,
                )
        else:
            st = bt
            if not st.is_struct():
                raise DError(
                    "D_OP_SOU",
                    f'operator . cannot be applied to type "{bt.name}"; must be applied to a struct or union',
                    e.line,
                )
        if st.r.members is None:
            raise DError("D_DECL_INCOMPLETE", f"incomplete struct/union/enum {st.name}", e.line)
        m = st.member(e.name)
        if m is None:
            raise DError("D_TYPE_MEMBER", f"{e.name} is not a member of {st.name}", e.line)
        e.member = m  # type: ignore[attr-defined]
        return m.type

    # --- constants -------------------------------------------------------------
    def _const(self, e: ast.Expr) -> int | None:
        """The value of an integer constant expression, or None."""
        if isinstance(e, ast.IntLit | ast.CharLit):
            return e.value
        if isinstance(e, ast.Ident):
            if e.name in self.enumerators:
                return self.enumerators[e.name][0]
            if e.name in self.inlines:
                return self._const(self.inlines[e.name][1])
            return None
        if isinstance(e, ast.Sizeof | ast.Offsetof):
            return getattr(e, "value", None)
        if isinstance(e, ast.Cast):
            v = self._const(e.operand)
            t = getattr(e, "ctype", None)
            return T.wrap(v, t) if v is not None and t is not None and t.is_int() else v
        if isinstance(e, ast.Unary) and e.op in "-+~!":
            v = self._const(e.operand)
            if v is None:
                return None
            t = getattr(e, "ctype", T.LONG)
            r = {"-": -v, "+": v, "~": ~v, "!": int(not v)}[e.op]
            return T.wrap(r, t) if t.is_int() else r
        if isinstance(e, ast.Binary):
            a, b = self._const(e.left), self._const(e.right)
            if a is None or b is None:
                return None
            t = getattr(e, "ctype", T.LONG)
            r = _fold(e.op, a, b, t)
            return None if r is None else (T.wrap(r, t) if t.is_int() else r)
        if isinstance(e, ast.Cond):
            c = self._const(e.cond)
            if c is None:
                return None
            return self._const(e.then if c else e.other)
        return None


def _fold(op: str, a: int, b: int, t: CType) -> int | None:
    if op in ("/", "%"):
        if b == 0:
            return None
        if not t.is_signed():
            a, b = T.wrap(a, t), T.wrap(b, t)
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "/" else a - q * b
    if op == ">>" and not t.is_signed():
        a = T.wrap(a, t)
    ops = {
        "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "<<": lambda: a << (b & 63),
        ">>": lambda: a >> (b & 63), "&": lambda: a & b, "|": lambda: a | b, "^": lambda: a ^ b,
        "<": lambda: int(a < b), "<=": lambda: int(a <= b), ">": lambda: int(a > b),
        ">=": lambda: int(a >= b), "==": lambda: int(a == b), "!=": lambda: int(a != b),
        "&&": lambda: int(bool(a) and bool(b)), "||": lambda: int(bool(a) or bool(b)),
        "^^": lambda: int(bool(a) != bool(b)), ",": lambda: b,
    }  # fmt: skip
    f = ops.get(op)
    return f() if f else None


_INT_TYPES = [T.INT, T.UINT, T.LONG, T.ULONG, T.LLONG, T.ULLONG]
_LIMITS = [
    0x7FFFFFFF,
    0xFFFFFFFF,
    0x7FFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
    0x7FFFFFFFFFFFFFFF,
    0xFFFFFFFFFFFFFFFF,
]


def _int_literal_type(e: ast.IntLit) -> CType:
    """C's (dtrace's) choice of type for an integer constant, by value, base and suffix."""
    text = e.text.lower()
    suffix = text[len(text.rstrip("ul")) :]
    decimal = not (text.startswith("0x") or (text.startswith("0") and len(text.rstrip("ul")) > 1))
    step = 2 if decimal or suffix.startswith("u") else 1
    i = suffix.count("u") + 2 * suffix.count("l")
    while i < len(_INT_TYPES):
        if e.value <= _LIMITS[i]:
            return _INT_TYPES[i]
        i += step
    raise DError(
        "D_INT_OFLOW",
        f"integer constant 0x{e.value:x} cannot be represented in any built-in integral type",
        e.line,
    )


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


def _is_agg_target(x: ast.Expr) -> bool:
    return isinstance(x, ast.AggVar) or (
        isinstance(x, ast.Index) and isinstance(x.base, ast.AggVar)
    )


def _assignable(t: CType, vt: CType, value: ast.Expr) -> bool:
    if t.is_arith() and vt.is_arith():
        return True
    if t.is_string():
        return vt.is_string() or vt.is_char_array()
    if t.is_char_array():
        return vt.is_string() or vt.is_char_array()
    if t.is_pointer():
        if vt.is_pointer() or vt.is_array():
            return True
        return vt.is_int()
    if t.is_int() and vt.is_pointer():
        return True
    if t.is_struct() and vt.is_struct():
        return t.same(vt)
    return t.same(vt)


def _is_dynamic(x: ast.Expr) -> bool:
    """A thread-local or associative-array element: storing 0 there deletes it."""
    return isinstance(x, ast.SelfVar) or (
        isinstance(x, ast.Index) and getattr(x, "ref", ("",))[0] == "assoc"
    )


def _stringish(t: CType) -> bool:
    """A string, a char array or a pointer to 1-byte data: comparable as strings."""
    return (
        t.is_string()
        or t.is_char_array()
        or (t.is_pointer() and t.r.target is not None and t.r.target.r.size == 1)
    )


def _arg_ok(want: CType, got: CType, node: ast.Expr) -> bool:
    if want.is_pointer() and want.r.target is not None and want.r.target.is_struct():
        # a pointer to a structure takes only a pointer to it, a void * or an integer
        target = got.r.target if got.is_pointer() else None
        return got.is_int() or (
            target is not None and (target.is_void() or target.r.name == want.r.target.r.name)
        )
    if want.is_string():
        return (
            got.is_string()
            or got.is_char_array()
            or (got.is_pointer() and got.r.target is not None and got.r.target.r.size == 1)
        )
    if want.is_arith():
        return got.is_arith() or (got.is_pointer() and want.int_size() == 8)
    if want.is_pointer():
        return (
            got.is_pointer()
            or got.is_array()
            or got.is_string()
            or (got.is_int() and isinstance(node, ast.IntLit) and node.value == 0)
            or got.is_int()
        )
    if want.r.kind == "stack":
        return True
    return True


def _key_compatible(a: CType, b: CType) -> bool:
    if a.is_arith() and b.is_arith():
        return True
    if (a.is_string() or a.is_char_array()) and (b.is_string() or b.is_char_array()):
        return True
    if a.r.kind == "stack" and b.r.kind == "stack":
        return True
    if a.is_pointer() and (b.is_pointer() or b.is_int()):
        return True
    if a.is_int() and b.is_pointer():
        return True
    return a.same(b)


def _probe_name(p: Any) -> str:
    return f"{p.provider}:{p.module}:{p.function}:{p.name}"


def _substitute(node: Any, bound: dict[str, ast.Expr]) -> Any:
    """node with each Ident named in `bound` replaced by a copy of its expression."""
    if isinstance(node, ast.Ident) and node.name in bound:
        return copy.deepcopy(bound[node.name])
    if isinstance(node, list):
        return [_substitute(x, bound) for x in node]
    if isinstance(node, ast.Node):
        for f in node.__dataclass_fields__:
            setattr(node, f, _substitute(getattr(node, f), bound))
    return node


@cache
def library_types() -> dict[str, CType]:
    """typedef name or struct tag -> CType, for D's process-information types
    (lang/procfs.py), checked once, when first named."""
    from pydtrace.lang.parser import parse

    checker = Checker(lambda text, line: [])
    checker.check(parse(procfs.SOURCE, from_file=True))
    found = {n: checker.typedefs[n] for n in procfs.TYPE_NAMES}
    found.update((tag, checker.tags[tag]) for tag in procfs.STRUCT_TAGS)
    return found


def member_offsets(type_name: str) -> dict[str, tuple[int, CType]]:
    """member name -> (byte offset, CType) of one of the process-information structures."""
    t = library_types()[type_name].r
    return {m.name: (m.offset, m.type) for m in t.members}
