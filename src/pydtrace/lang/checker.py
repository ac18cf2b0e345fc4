"""Semantic checks: D's types, identifier kinds, actions and aggregations.

The checker walks a parsed program in order (D creates an undeclared
variable at its first assignment in program order, so order matters), gives
every expression its C type, decides what each identifier names, and raises
DError with dtrace's tag and wording for anything wrong. Several programs
(-n, -s given more than once) are checked into one CheckedProgram: they share
variables and aggregations, and clause numbering runs on.

The checks live in modules by what they check (check_decls, check_aggs,
check_actions, check_vars, check_exprs, check_consts; check_compat holds the
type-compatibility rules they share); `Checker` below lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from pydtrace.lang import ast, procfs
from pydtrace.lang import types as T
from pydtrace.lang.builtins import FUNCTIONS
from pydtrace.lang.check_actions import Actions
from pydtrace.lang.check_aggs import Aggregations, is_agg_target
from pydtrace.lang.check_consts import Constants, int_literal_type
from pydtrace.lang.check_decls import Declarations
from pydtrace.lang.check_exprs import Expressions
from pydtrace.lang.check_vars import Variables
from pydtrace.lang.dlib import library_inlines
from pydtrace.lang.errors import DError
from pydtrace.lang.program import CheckedProgram, ClauseInfo, Variable
from pydtrace.lang.records import describe
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pydtrace.lang.program import KernelNames

    ProbeLookup = Callable[[str, int], list[Any]]


class Checker(
    Declarations,  # types, struct layout, typedefs, variable declarations, inlines, translators
    Aggregations,  # @a[keys] = f(...) statements and quantizing functions' parameters
    Actions,  # actions' order rules, printf/printa formats, calls against prototypes
    Variables,  # identifiers, self->/this-> variables, assignment, keys, subscripts, args[]
    Expressions,  # the expression walk (_expr -> _x_<Node>), operators, casts, sizeof, calls
    Constants,  # integer constant expressions' values
):
    """Checks D programs into one CheckedProgram; the parts above hold the
    checks by what they check, over the state made here (one Checker's
    methods call each other's across the parts). This part holds the entry
    point, pragmas, clauses and statements."""

    def __init__(
        self,
        lookup: ProbeLookup,
        *,
        strsize: int = 256,
        scratchsize: int = 256,
        has_target: bool = False,
        kernel: KernelNames | None = None,
    ) -> None:
        self.lookup = lookup
        # the running kernel's types and symbols (BTF, kallsyms), for names the
        # program does not declare itself; None: there are none
        self.kernel = kernel
        self.has_target = has_target  # -c/-p: printf's %A takes a plain integer
        self.scratchsize = scratchsize  # usable scratch bytes (the option's value less 8)
        self.prog = CheckedProgram()
        # macro variables read as constants ($pid...), and those folded into
        # another constant's value (check_consts: a compiled program kept
        # for a later run can take a new $pid only where it stands alone)
        self.macro_reads: list[str] = []
        self.folded_macros: set[str] = set()
        self.typedefs: dict[str, CType] = dict(T.BUILTIN_TYPEDEFS)
        self.tags: dict[str, CType] = {}  # 'struct foo' -> type
        self.enumerators: dict[str, tuple[int, CType]] = {}
        self.inlines: dict[str, tuple[CType, ast.Expr]] = {}
        # inline int f[int x, int y] = x + y: name -> (type, value, [(param, type)])
        self.inline_arrays: dict[str, tuple[CType, ast.Expr, list[tuple[str, CType]]]] = {}
        self._inline_params: dict[str, CType] = {}
        # name -> (depth, nodes) its value expands to (limits.py; library inlines: 1, 1)
        self._inline_costs: dict[str, tuple[int, int]] = {}
        # the expression being checked: nesting levels open, nodes counted since
        # the top-level item began, deepest level reached (Expressions._expand)
        self._depth = 0
        self._nodes = 0
        self._deepest = 0
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
        """Enter the D library's constants as already-checked inline definitions
        (each made when a program first names it: there are some 300)."""
        self.inlines = _Inlines(library_inlines(), dict(self.typedefs))

    # --- entry point ----------------------------------------------------------
    def check(self, program: ast.Program) -> CheckedProgram:
        if not program.items:
            raise DError("D_EMPTY", "empty D program translation unit")
        for item in program.items:
            self._depth = self._nodes = self._deepest = 0  # limits.py bounds each item
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

    # --- pragmas --------------------------------------------------------------
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

    def _library_types(self, name: str) -> bool:
        """Enter D's process-information types when a program first names one."""
        if name not in procfs.TYPE_NAMES:
            return False
        for key, t in library_types().items():
            (self.tags if key.startswith("struct ") else self.typedefs).setdefault(key, t)
        return True

    def _scope(self, scope: str) -> dict[str, Variable]:
        return {"global": self.prog.globals, "self": self.prog.tlocals, "this": self.prog.clocals}[
            scope
        ]

    # --- clauses --------------------------------------------------------------
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
            if isinstance(e, ast.Assign) and is_agg_target(e.target):
                self._aggregate(e)
            elif (
                isinstance(e, ast.Call)
                and e.name in FUNCTIONS
                and FUNCTIONS[e.name].kind == "action"
            ):
                self._action(e)
            else:
                self._expr(e)
        elif isinstance(s, ast.If | ast.Block):
            self._depth += 1  # the engines recurse on statements too
            try:
                self._nested_stmt(s)
            finally:
                self._depth -= 1
        elif isinstance(s, ast.Decl):
            self._declare(s, local=True)

    def _nested_stmt(self, s: ast.If | ast.Block) -> None:
        if isinstance(s, ast.Block):
            for x in s.body:
                self._stmt(x)
            return
        ct = self._expr(s.cond)
        if not ct.is_scalar():
            raise DError("D_OP_SCALAR", "if condition must be of scalar type", s.line)
        for x in s.then:
            self._stmt(x)
        for x in s.other or []:
            self._stmt(x)


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


class _Inlines(dict):  # type: ignore[type-arg]
    """The inlines of a program: its own, over the D library's constants,
    each of which becomes a checked definition when first named."""

    def __init__(self, library: dict[str, tuple[str, int]], typedefs: dict[str, CType]) -> None:
        super().__init__()
        self._library = library
        self._typedefs = typedefs  # as when the checker began

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or name in self._library

    def __missing__(self, name: str) -> tuple[CType, ast.Expr]:
        tname, value = self._library[name]  # KeyError: no such inline
        t = self._typedefs.get(tname) or T.from_specifiers([tname])
        assert t is not None, tname
        lit = ast.IntLit(value, str(value))
        lit.ctype = int_literal_type(lit)  # type: ignore[attr-defined]
        lit.pc = 0  # type: ignore[attr-defined]
        self[name] = (t, lit)
        return t, lit
