"""The D abstract syntax tree, as the parser builds it and the checker reads it.

Every node carries the line (and file, for text that came through cpp's
`# N "file"` markers) where it starts, so that errors can name it the way
dtrace does. The parser builds these nodes and nothing else; types and
identifier kinds are decided later by the checker.
"""

from __future__ import annotations

from pydtrace.lang.dataclass import dataclass, field, fields, is_dataclass


@dataclass
class Node:
    line: int = field(default=0, kw_only=True)
    file: str | None = field(default=None, kw_only=True)  # None = the main script


# --- expressions ---------------------------------------------------------------


class Expr(Node):
    pass


@dataclass
class IntLit(Expr):
    value: int
    text: str  # as written, e.g. "0x10ull"; suffix and base decide the type


@dataclass
class CharLit(Expr):
    value: int  # 'a' -> 97; multi-character constants pack big-endian as in C


@dataclass
class StrLit(Expr):
    value: str  # escapes already decoded


@dataclass
class Ident(Expr):
    name: str  # a variable, a built-in (arg0, execname), an enumerator, an inline


@dataclass
class SelfVar(Expr):
    name: str  # self->name


@dataclass
class ThisVar(Expr):
    name: str  # this->name


@dataclass
class AggVar(Expr):
    name: str  # "@" for the anonymous aggregation, else "@name"


@dataclass
class Unary(Expr):
    op: str  # '-', '+', '!', '~', '*' (deref), '&' (address), '++' / '--' (prefix)
    operand: Expr


@dataclass
class Postfix(Expr):
    op: str  # '++' or '--'
    operand: Expr


@dataclass
class Binary(Expr):
    # '*', '/', '%', '+', '-', '<<', '>>', '<', '<=', '>', '>=', '==', '!=',
    # '&', '^', '|', '&&', '^^', '||', ','
    op: str
    left: Expr
    right: Expr


@dataclass
class Assign(Expr):
    op: str  # '=', '+=', '-=', '*=', '/=', '%=', '<<=', '>>=', '&=', '^=', '|='
    target: Expr
    value: Expr


@dataclass
class Cond(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass
class Cast(Expr):
    type: TypeName
    operand: Expr


@dataclass
class Sizeof(Expr):
    type: TypeName | None  # sizeof (type)
    operand: Expr | None  # sizeof expr


@dataclass
class Offsetof(Expr):
    type: TypeName
    member: str


@dataclass
class Stringof(Expr):
    operand: Expr


@dataclass
class Xlate(Expr):
    type: TypeName  # xlate <type> (expr)
    operand: Expr


@dataclass
class Call(Expr):
    name: str  # printf, count, strlen, ...
    args: list[Expr]


@dataclass
class Index(Expr):
    base: Expr  # an array, pointer, associative array, self->/this-> array, or aggregation
    args: list[Expr]  # one subscript or an associative-array key tuple


@dataclass
class Member(Expr):
    base: Expr
    name: str
    arrow: bool  # '->' rather than '.'


# --- types and declarations --------------------------------------------------------


@dataclass
class TypeSpec(Node):
    """The specifier part of a declaration: `unsigned long`, `struct foo {...}`, `mytype`."""

    kind: str  # 'builtin', 'struct', 'union', 'enum', 'typedef' (a typedef name)
    words: list[str] = field(default_factory=list)  # builtin: ['unsigned', 'long']; else [name]
    tag: str | None = None  # struct/union/enum tag (None if anonymous)
    members: list[Decl] | None = None  # struct/union body when defined here
    enumerators: list[Enumerator] | None = None  # enum body when defined here
    qualifiers: list[str] = field(default_factory=list)  # const, volatile, restrict
    module: str | None = None  # scoping of `struct vmlinux`foo`; None when absent


@dataclass
class Enumerator(Node):
    name: str
    value: Expr | None


@dataclass
class Pointer(Node):
    qualifiers: list[str] = field(default_factory=list)


@dataclass
class ArrayOf(Node):
    size: Expr | None = None  # int a[5]: a scalar array
    keys: list[TypeName] | None = None  # int a[string, int]: an associative array


@dataclass
class FunctionOf(Node):
    params: list[TypeName] = field(default_factory=list)
    varargs: bool = False


@dataclass
class Declarator(Node):
    """A name and what it derives from the base type, read from the name outward.

    `int *a[3]` is [ArrayOf(3), Pointer()] ("array of 3 pointers to int");
    `int (*a)[3]` is [Pointer(), ArrayOf(3)]. An abstract declarator (in a
    cast or sizeof) has name None.
    """

    name: str | None
    derived: list[Pointer | ArrayOf | FunctionOf] = field(default_factory=list)
    bits: Expr | None = None  # bit-field width in a struct member


@dataclass
class TypeName(Node):
    spec: TypeSpec
    declarator: Declarator  # abstract: name is None


@dataclass
class Decl(Node):
    """A declaration: `int x;`, `self int y;`, `typedef int t;`, `struct s {...};`."""

    storage: str | None  # 'self', 'this', 'extern', 'static', 'typedef', 'register', or None
    spec: TypeSpec
    declarators: list[Declarator]  # may be empty: `struct s { int a; };`


@dataclass
class Inline(Node):
    """inline <type> <name> = <expr>;"""

    spec: TypeSpec
    declarator: Declarator
    value: Expr


@dataclass
class Pragma(Node):
    """#pragma D ... -- words after `#pragma`, e.g. ['D', 'option', 'quiet']."""

    words: list[str]


@dataclass
class Translator(Node):
    """translator <output type> < <input type> <name> > { member = expr; ... };"""

    output: TypeName
    input: TypeName
    param: str
    members: list[tuple[str, Expr]]


@dataclass
class ProviderDef(Node):
    """provider name { probe p(args); ... }; -- for USDT; kept, mostly ignored."""

    name: str
    probes: list[tuple[str, list[TypeName]]]


# --- statements and clauses ------------------------------------------------------------


class Stmt(Node):
    pass


@dataclass
class ExprStmt(Stmt):
    expr: Expr


@dataclass
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    other: list[Stmt] | None


@dataclass
class Block(Stmt):
    body: list[Stmt]


@dataclass
class ProbeSpec(Node):
    """One probe description as written: 'syscall::read:entry', 'BEGIN', 'tick-1s'."""

    text: str


@dataclass
class Clause(Node):
    probes: list[ProbeSpec]
    predicate: Expr | None
    body: list[Stmt] | None  # None = no body at all (`BEGIN` alone); [] = `{ }`


@dataclass
class Program(Node):
    items: list[Clause | Decl | Inline | Pragma | Translator | ProviderDef]


def uses(
    node: object,
    calls: frozenset[str] = frozenset(),
    names: frozenset[str] = frozenset(),
    kinds: tuple[type, ...] = (),
) -> bool:
    """Does the tree under node (a node or a list of nodes) call one of
    `calls`, name one of `names` (an Ident) or hold a node of one of `kinds`?
    Walked with a list, not recursion: the checker accepts deep trees."""
    todo: list[object] = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, (list, tuple)):
            todo.extend(n)
        elif isinstance(n, Call) and n.name in calls:
            return True
        elif isinstance(n, Ident) and n.name in names:
            return True
        elif kinds and isinstance(n, kinds):
            return True
        elif is_dataclass(n) and not isinstance(n, type):
            todo.extend(getattr(n, f.name) for f in fields(n))
    return False


def find_call(node: object, names: frozenset[str] | tuple[str, ...]) -> Call | None:
    """The first call of one of `names` in the tree under node (a node or a
    list of nodes), in source order; None if there is none."""
    if isinstance(node, Call) and node.name in names:
        return node
    if isinstance(node, (list, tuple)):
        children: list[object] = list(node)
    elif is_dataclass(node) and not isinstance(node, type):
        children = [getattr(node, f.name) for f in fields(node)]
    else:
        return None
    for child in children:
        found = find_call(child, names)
        if found is not None:
            return found
    return None
