"""A recursive-descent parser for D, building the nodes of lang.ast.

The grammar is dtrace's (libdtrace/dt_grammar.y) with C's precedence, plus
D 2.x `if`/`else` and nested `{ }` blocks in clause bodies. Errors are raised
as DError with dtrace's tags, messages and line numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from . import ast
from .errors import DError
from .lexer import Lexer, Token
from .limits import NESTING
from .macros import Macros
from .numbers import digits_value
from .procfs import TYPE_NAMES as LIBRARY_TYPE_NAMES
from .types import BUILTIN_TYPEDEFS, SPECIFIER_WORDS

# Binary operators by precedence, loosest first (the comma is handled apart).
_PREC = {
    "||": 1,
    "^^": 2,
    "&&": 3,
    "|": 4,
    "^": 5,
    "&": 6,
    "==": 7,
    "!=": 7,
    "<": 8,
    "<=": 8,
    ">": 8,
    ">=": 8,
    "<<": 9,
    ">>": 9,
    "+": 10,
    "-": 10,
    "*": 11,
    "/": 11,
    "%": 11,
}
_ASSIGN = frozenset(["=", "+=", "-=", "*=", "/=", "%=", "<<=", ">>=", "&=", "^=", "|="])
_UNARY = frozenset(["&", "*", "+", "-", "~", "!"])
_QUALS = frozenset(["const", "volatile", "restrict"])
_TYPE_WORDS = frozenset(
    ["void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "string"]
)
_MODIFIERS = frozenset(["short", "long", "signed", "unsigned"])
_TYPE_START = _QUALS | _TYPE_WORDS | {"struct", "union", "enum", "TNAME"}
_STORAGE = frozenset(["auto", "register", "static", "extern", "typedef"])
_DSTORAGE = _STORAGE | {"self", "this"}
_DECL_START = _TYPE_START | _DSTORAGE
_MACRO_NUM = r"\$([0-9]+)"  # re.match compiles it when first used


class Parser:
    def __init__(
        self,
        source: str,
        macros: Macros | None,
        filename: str | None,
        from_file: bool,
        typenames: Iterable[str] | None,
        pspec_only: bool = False,
        kernel_typedef: Callable[[str], bool] | None = None,
    ) -> None:
        self.macros = macros if macros is not None else Macros(["dtrace"], {})
        names = set(BUILTIN_TYPEDEFS) | set(SPECIFIER_WORDS) | {"_Bool", *LIBRARY_TYPE_NAMES}
        if typenames:
            names |= set(typenames)
        self.lex = Lexer(source, self.macros, filename, names, pspec_only)
        self.lex.kernel_typedef = kernel_typedef
        self.from_file = from_file
        self.tok: Token | None = None
        self.last_line = 0  # line of the last block's closing brace
        self.last_unary: ast.Expr | None = None  # to tell `a = b` from `a + b = c`
        self.tags: set[tuple[str, str]] = set()  # struct/union/enum tags defined so far
        self.on_item: Callable[[ast.Node], None] | None = None
        self.depth = 0  # nesting levels open (limits.NESTING)
        self.peak = 0  # the deepest level reached since the last left()

    # --- token plumbing -------------------------------------------------------
    def peek(self) -> Token:
        if self.tok is None:
            self.tok = self.lex.next()
        return self.tok

    def advance(self) -> Token:
        tok = self.peek()
        self.tok = None
        return tok

    def at(self, kind: str) -> bool:
        return self.peek().kind == kind

    def expect(self, kind: str) -> Token:
        if self.peek().kind != kind:
            raise self.syntax()
        return self.advance()

    # --- nesting (limits.NESTING) ------------------------------------------------
    # Each parenthesis, unary operator, cast, ?:, assignment, call or subscript,
    # block and if, struct and declarator level, and each link of a binary,
    # comma, postfix or pointer chain (`a+b+c` is a tree as deep as it is long)
    # is one level; past the bound the parser says what bison says when its
    # stack is full, as dtrace does.
    def nest(self) -> None:
        """Open one more nesting level at the next token (closed by `self.depth -= 1`,
        or by restoring a saved depth; an error ends the parse, so no finally is needed)."""
        self.depth += 1
        if self.depth > NESTING:
            raise self.exhausted()
        self.peak = max(self.peak, self.depth)

    def exhausted(self) -> DError:
        tok = self.peek()
        return DError("D_SYNTAX", tok.near("memory exhausted"), tok.line, tok.file)

    def left(self) -> tuple[int, int]:
        """Before an operand that nodes may be built over (a + b, a[i], a = b, a ? b : c),
        where the tree gets deeper than the parser's recursion: the deepest level
        reached since (peak) is the operand's; what done() restores."""
        saved = self.depth, self.peak
        self.peak = self.depth
        return saved

    def over(self, base: int) -> None:
        """A node built over what was parsed since left() at depth `base`: that
        tree goes one level down, and the node's other operands are parsed one
        level below `base` (a+b+c is as deep as it is long; a+(b+(c)) is too)."""
        self.peak += 1
        if self.peak > NESTING:
            raise self.exhausted()
        self.depth = base + 1

    def done(self, saved: tuple[int, int]) -> None:
        self.depth = saved[0]
        self.peak = max(saved[1], self.peak)

    def syntax(self, tok: Token | None = None) -> DError:
        tok = tok or self.peek()
        return DError("D_SYNTAX", tok.near(), tok.line, tok.file)

    def where(self, tok: Token) -> dict:
        return {"line": tok.line, "file": tok.file}

    def here(self) -> dict:
        """The location dtrace gives a node built once its next token is read."""
        return self.where(self.peek())

    # --- program ------------------------------------------------------------
    def program(self) -> ast.Program:
        items: list = []
        while True:
            self.lex.mode = "outer"
            self.lex.decl_named = self.lex.typedef_decl = False
            tok = self.peek()
            items.extend(self.pragmas())
            kind = tok.kind
            if kind == "EOF":
                break
            if kind in ("PSPEC", "INT"):
                items.append(self.clause())
            elif kind == "inline":
                items.append(self.inline())
            elif kind == "translator":
                items.append(self.translator())
            elif kind == "provider":
                items.append(self.provider())
            elif kind in _DECL_START:
                items.append(self.declaration())
            else:
                raise self.syntax()
            if self.on_item is not None:
                self.on_item(items[-1])
        return ast.Program(items, line=1)

    def pragmas(self) -> list[ast.Pragma]:
        out = [ast.Pragma(words, line=line, file=f) for line, f, words in self.lex.pragmas]
        self.lex.pragmas.clear()
        return out

    # --- clauses ------------------------------------------------------------
    def clause(self) -> ast.Clause:
        probes: list[ast.ProbeSpec] = []
        while True:
            tok = self.peek()
            if tok.kind not in ("PSPEC", "INT"):
                raise self.syntax()
            self.advance()
            text = self.expand(tok) if tok.kind == "PSPEC" else tok.text
            probes.append(ast.ProbeSpec(text, **self.where(tok)))
            if not self.at(","):
                break
            self.advance()
        first = probes[0]
        loc = {"line": first.line, "file": first.file}
        nxt = self.peek()
        predicate = None
        if nxt.kind == "/":
            self.lex.mode = "expr"
            self.advance()
            predicate = self.expression()
            self.expect("EPRED")
            # dtrace cooks the predicate with the next token read: operator errors
            # (xyerror, the lexer's line) name that token's line
            predicate.cook_line = self.peek().line  # type: ignore[attr-defined]
            if not self.at("{"):
                raise DError(
                    "D_SYNTAX",
                    "expected actions { } following probe description and predicate",
                    predicate.line,
                    predicate.file,
                )
        elif nxt.kind != "{":
            if self.from_file:
                raise DError(
                    "D_SYNTAX",
                    "expected predicate and/or actions following probe description",
                    first.line,
                    first.file,
                )
            return ast.Clause(probes, None, None, **loc)
        self.lex.mode = "expr"
        body = self.block()
        clause = ast.Clause(probes, predicate, body, **loc)
        # dtrace checks a clause once it is read whole, so some errors name its last line
        clause.end_line = self.last_line  # type: ignore[attr-defined]
        return clause

    def expand(self, tok: Token) -> str:
        """Substitute macro variables in a probe description (one per field) and
        check it has at most four fields; fields are done right to left as in dtrace."""
        text = tok.text
        if "$" not in text and text.count(":") < 4:
            return text
        fields = text.split(":")
        for n in range(len(fields) - 1, -1, -1):
            f = fields[n]
            i = f.find("$")
            if i >= 0:
                fields[n] = f[:i] + self.expand_var(f[i:], tok)
            if n < len(fields) - 4:
                raise self.bad_pdesc(tok, "Overspecified probe description")
        return ":".join(fields)

    def expand_var(self, var: str, tok: Token) -> str:
        if len(var) > 2 and var[1] == "$":
            var = var[1:]  # $$ is the same as $ here
        if len(var) > 1 and var[1].isdigit():
            m = re.match(_MACRO_NUM, var)
            assert m is not None
            k = digits_value(m.group(1))
            if k >= len(self.macros.args):
                raise self.bad_pdesc(tok)
            self.macros.referenced.add(k)
            return self.macros.args[k] + var[m.end() :]
        if len(var) > 1:
            v = self.macros.variable(var[1:])
            if v is None:
                raise self.bad_pdesc(tok)
            return str(v)
        return var

    def bad_pdesc(
        self, tok: Token, why: str = "Undefined macro variable in probe description"
    ) -> DError:
        return DError(
            "D_PDESC_INVAL",
            f'invalid probe description "{tok.text}": {why}',
            tok.line,
            tok.file,
        )

    # --- statements -------------------------------------------------------------
    def block(self) -> list[ast.Stmt]:
        self.nest()
        self.expect("{")
        body = self.statements()
        self.last_line = self.expect("}").line
        self.depth -= 1
        return body

    def statements(self) -> list[ast.Stmt]:
        out: list[ast.Stmt] = []
        while True:
            kind = self.peek().kind
            if kind == "}":
                return out
            if kind == ";":
                self.advance()
            elif kind == "if":
                out.append(self.if_stmt())
            elif kind == "{":
                loc = self.where(self.peek())
                out.append(ast.Block(self.block(), **loc))
            else:
                out.append(self.expr_stmt())

    def expr_stmt(self) -> ast.ExprStmt:
        e = self.expression()
        stmt = ast.ExprStmt(e, line=e.line, file=e.file)
        if self.at(";"):
            self.advance()
        elif not self.at("}"):
            raise self.syntax()
        return stmt

    def if_stmt(self) -> ast.If:
        self.nest()
        loc = self.where(self.advance())
        self.expect("(")
        cond = self.expression()
        self.expect(")")
        then = self.stmt_or_block()
        other = None
        if self.at("else"):
            self.advance()
            other = self.stmt_or_block()
        self.depth -= 1
        return ast.If(cond, then, other, **loc)

    def stmt_or_block(self) -> list[ast.Stmt]:
        kind = self.peek().kind
        if kind == "{":
            return self.block()
        if kind == "if":
            return [self.if_stmt()]
        if kind == ";":
            self.advance()
            return []
        return [self.expr_stmt()]

    # --- expressions ------------------------------------------------------------
    def expression(self) -> ast.Expr:
        saved = self.left()
        e = self.assignment()
        while self.at(","):
            self.over(saved[0])
            self.advance()
            right = self.assignment()
            e = ast.Binary(",", e, right, **self.here())
        self.done(saved)
        return e

    def assignment(self) -> ast.Expr:
        saved = self.left()
        e = self.conditional()
        tok = self.peek()
        if tok.kind in _ASSIGN:
            if e is not self.last_unary:
                raise self.syntax(tok)
            self.over(saved[0])
            self.advance()
            value = self.assignment()
            e = ast.Assign(tok.kind, e, value, **self.here())
        self.done(saved)
        return e

    def conditional(self) -> ast.Expr:
        saved = self.left()
        c = self.binary(1)
        if self.at("?"):
            self.over(saved[0])
            self.advance()
            then = self.expression()
            self.expect(":")
            other = self.conditional()
            c = ast.Cond(c, then, other, **self.here())
        self.done(saved)
        return c

    def binary(self, minprec: int) -> ast.Expr:
        saved = self.left()
        left = self.cast()
        while True:
            op = self.peek().kind
            prec = _PREC.get(op)
            if prec is None or prec < minprec:
                self.done(saved)
                return left
            self.over(saved[0])
            self.advance()
            right = self.binary(prec + 1)
            left = ast.Binary(op, left, right, **self.here())

    def cast(self) -> ast.Expr:
        if not self.at("("):
            return self.unary()
        saved = self.left()
        self.nest()
        lpar = self.advance()
        if self.peek().kind in _TYPE_START:
            t = self.type_name()
            self.expect(")")
            operand = self.cast()
            self.done(saved)
            return ast.Cast(t, operand, **self.here())
        e = self.expression()
        self.expect(")")
        self.depth -= 1
        node = self.postfix(e, lpar)
        self.done(saved)
        self.last_unary = node
        return node

    def unary(self) -> ast.Expr:
        tok = self.peek()
        kind = tok.kind
        node: ast.Expr
        if kind in ("++", "--"):
            self.nest()
            self.advance()
            operand = self.unary()
            self.depth -= 1
            node = ast.Unary(kind, operand, **self.here())
        elif kind in _UNARY:
            self.nest()
            self.advance()
            operand = self.cast()
            self.depth -= 1
            node = ast.Unary(kind, operand, **self.here())
        elif kind == "sizeof":
            self.nest()
            self.advance()
            node = self.sizeof(tok)
            self.depth -= 1
        elif kind == "stringof":
            self.nest()
            self.advance()
            node = ast.Stringof(self.unary(), **self.here())
            self.depth -= 1
        else:
            saved = self.left()
            node = self.postfix(self.primary(), tok)
            self.done(saved)
        self.last_unary = node
        return node

    def sizeof(self, tok: Token) -> ast.Expr:
        if not self.at("("):
            return ast.Sizeof(None, self.unary(), **self.here())
        saved = self.left()
        lpar = self.advance()
        if self.peek().kind in _TYPE_START:
            t = self.type_name()
            self.expect(")")
            self.done(saved)
            return ast.Sizeof(t, None, **self.where(tok))
        e = self.expression()
        self.expect(")")
        node = ast.Sizeof(None, self.postfix(e, lpar), **self.here())
        self.done(saved)
        return node

    def primary(self) -> ast.Expr:
        tok = self.peek()
        kind = tok.kind
        loc = self.where(tok)
        if kind == "IDENT":
            self.advance()
            return ast.Ident(str(tok.value), **loc)
        if kind == "INT":
            self.advance()
            value = int(tok.value)  # type: ignore[call-overload]
            text = tok.text if tok.text[0] != "$" else _macro_int_text(tok, self.macros)
            lit = ast.IntLit(value, text, **loc)
            if tok.text[0] == "$" and not tok.text[1:].isdigit():
                lit.macro = tok.text[1:]  # type: ignore[attr-defined]  # $pid: see check_consts
            return ast.Unary(tok.prefix, lit, **loc) if tok.prefix else lit
        if kind == "CHAR":
            self.advance()
            return ast.CharLit(int(tok.value), **loc)  # type: ignore[call-overload]
        if kind == "STR":
            self.advance()
            return ast.StrLit(str(tok.value), **loc)
        if kind == "AGG":
            self.advance()
            return ast.AggVar(str(tok.value), **loc)
        if kind in ("self", "this"):
            self.advance()
            return ast.Ident(kind, **loc)
        if kind == "(":
            self.nest()
            self.advance()
            e = self.expression()
            self.expect(")")
            self.depth -= 1
            return e
        if kind == "offsetof":
            self.advance()
            self.expect("(")
            t = self.type_name()
            self.expect(",")
            member = self.expect("IDENT")
            self.expect(")")
            return ast.Offsetof(t, str(member.value), **loc)
        if kind == "xlate":
            self.nest()
            self.advance()
            self.expect("<")
            t = self.type_name()
            self.expect(">")
            self.expect("(")
            e = self.expression()
            self.expect(")")
            self.depth -= 1
            return ast.Xlate(t, e, **loc)
        raise self.syntax()

    def postfix(self, node: ast.Expr, first: Token) -> ast.Expr:
        """The subscripts, calls, members and ++/-- after node (parsed since a left())."""
        base = self.depth
        while True:
            tok = self.peek()
            kind = tok.kind
            if kind in ("[", "(", ".", "->", "++", "--"):
                self.over(base)
            if kind == "[":
                self.advance()
                args = self.arguments()
                close = self.expect("]")
                node = ast.Index(node, args, **self.where(close))
            elif kind == "(":
                self.advance()
                args = [] if self.at(")") else self.arguments()
                close = self.expect(")")
                if not isinstance(node, ast.Ident):
                    raise DError(
                        "D_FUNC_IDENT",
                        "function designator is not of function type",
                        close.line,
                        close.file,
                    )
                node = ast.Call(node.name, args, line=node.line, file=node.file)
            elif kind in (".", "->"):
                self.advance()
                name = self.expect("IDENT")
                loc = self.where(name)
                member = str(name.value)
                if kind == "->" and isinstance(node, ast.Ident) and node.name == "self":
                    node = ast.SelfVar(member, **loc)
                elif kind == "->" and isinstance(node, ast.Ident) and node.name == "this":
                    node = ast.ThisVar(member, **loc)
                else:
                    node = ast.Member(node, member, kind == "->", **loc)
            elif kind in ("++", "--"):
                self.advance()
                node = ast.Postfix(kind, node, **self.here())
            else:
                self.depth = base
                return node

    def arguments(self) -> list[ast.Expr]:
        args = [self.assignment()]
        while self.at(","):
            self.advance()
            args.append(self.assignment())
        return args

    # --- types and declarations ---------------------------------------------------
    def specifiers(self, storage_ok: frozenset[str]) -> tuple[str | None, ast.TypeSpec]:
        """Declaration specifiers: storage class, qualifiers and one type."""
        lex = self.lex
        first = self.peek()
        storage: str | None = None
        words: list[str] = []  # built-in type words in order
        quals: list[str] = []
        spec: ast.TypeSpec | None = None
        while True:
            tok = self.peek()
            kind = tok.kind
            if kind in storage_ok:
                self.advance()
                if storage is not None:
                    raise DError(
                        "D_DECL_CLASS",
                        "only one storage class allowed in a declaration",
                        tok.line,
                        lex.file,
                    )
                storage = kind
                if kind == "typedef":
                    lex.typedef_decl = True
            elif kind in _QUALS:
                self.advance()
                quals.append(kind)
            elif kind in _TYPE_WORDS or (kind == "TNAME" and tok.value in SPECIFIER_WORDS):
                self.advance()
                words.append(str(tok.value) if kind == "TNAME" else kind)
                if words[-1] not in _MODIFIERS:
                    lex.decl_named = True
                self.check_spec(words, spec, tok.line)
            elif kind == "TNAME" and not lex.decl_named:
                self.advance()
                full = str(tok.value)
                module, _, name = full.rpartition("`")
                spec = ast.TypeSpec(
                    "typedef", [name], module=module if "`" in full else None, **self.where(tok)
                )
                lex.decl_named = True
                self.check_spec(words, spec, tok.line)
            elif kind in ("struct", "union", "enum"):
                spec = self.sou_spec(words, spec)
                lex.decl_named = True
            else:
                break
        if spec is None:
            if not words and not quals and storage is None:
                raise self.syntax()
            spec = ast.TypeSpec("builtin", words, **self.where(first))
        spec.qualifiers = quals + spec.qualifiers
        return storage, spec

    def check_spec(self, words: list[str], spec: ast.TypeSpec | None, line: int) -> None:
        """dtrace's checks on combining specifiers, made as each one is read."""
        bases = [w for w in words if w not in _MODIFIERS]
        if spec is not None:
            bases.append(spec.kind)
        if len(bases) > 1:
            raise DError("D_DECL_COMBO", "invalid type combination", line, self.lex.file)
        if not bases:
            return
        base = bases[0]
        mods = set(words) & _MODIFIERS
        if base == "char" and mods & {"short", "long"}:
            msg = "short and long may not be used with char type"
            raise DError("D_DECL_CHARATTR", "invalid type declaration: " + msg, line)
        if base == "void" and mods:
            msg = "attributes may not be used with void type"
            raise DError("D_DECL_VOIDATTR", "invalid type declaration: " + msg, line)
        if base not in ("void", "char", "int") and mods & {"signed", "unsigned"}:
            msg = "signed and unsigned may only be used with integer type"
            raise DError("D_DECL_SIGNINT", "invalid type declaration: " + msg, line)
        if base not in ("void", "char", "int", "float", "double") and "long" in mods:
            msg = "long and long long may only be used with integer or floating-point type"
            raise DError("D_DECL_LONGINT", "invalid type declaration: " + msg, line)

    def sou_spec(self, words: list[str], prior: ast.TypeSpec | None) -> ast.TypeSpec:
        """struct/union/enum, named or defined here; checked against what came before."""
        kw = self.advance()
        loc = self.where(kw)
        tag, module = self.tag()
        defined = self.at("{")
        if not defined and tag is None:
            raise self.syntax()
        # dtrace checks the combination once it has read the '{' or the token after the tag
        line = self.peek().line
        if prior is not None:
            raise DError("D_DECL_COMBO", "invalid type combination", line, self.lex.file)
        self.check_spec(words, ast.TypeSpec(kw.kind), line)
        if kw.kind == "enum":
            if defined:
                self.define_tag("enum", tag)
            return (
                self.enum_body(tag, module, loc)
                if defined
                else ast.TypeSpec("enum", [tag] if tag else [], tag=tag, module=module, **loc)
            )
        names = [tag] if tag else []
        if not defined:
            return ast.TypeSpec(kw.kind, names, tag=tag, module=module, **loc)
        self.define_tag(kw.kind, tag)
        self.nest()
        self.advance()
        saved = self.lex.decl_named
        self.lex.decl_named = False  # before the next token is read
        if self.at("}"):
            raise self.syntax()
        members: list[ast.Decl] = []
        while True:
            members.append(self.member())
            self.lex.decl_named = False
            if self.at("}"):
                break
        self.advance()
        self.depth -= 1
        self.lex.decl_named = saved
        return ast.TypeSpec(kw.kind, names, tag=tag, members=members, module=module, **loc)

    def tag(self) -> tuple[str | None, str | None]:
        tok = self.peek()
        if tok.kind not in ("TNAME", "IDENT"):
            return None, None
        self.advance()
        name = str(tok.value)
        if "`" in name:
            module, name = name.rsplit("`", 1)
            return name, module
        return name, None

    def member(self) -> ast.Decl:
        self.lex.decl_named = False
        first = self.peek()
        _, spec = self.specifiers(frozenset())
        decls: list[ast.Declarator] = []
        while True:
            if self.at(":"):
                loc = self.where(self.advance())
                decls.append(ast.Declarator(None, [], self.conditional(), **loc))
            else:
                d = self.declarator(False)
                if self.at(":"):
                    self.advance()
                    d.bits = self.conditional()
                decls.append(d)
            if not self.at(","):
                break
            self.advance()
        self.expect(";")
        return ast.Decl(None, spec, decls, **self.where(first))

    def define_tag(self, kind: str, tag: str | None) -> None:
        """A second definition of a tag is an error as soon as its '{' is read."""
        if tag is None:
            return
        if (kind, tag) in self.tags:
            tok = self.peek()
            raise DError("D_DECL_TYPERED", f"type redeclared: {kind} {tag}", tok.line, tok.file)
        self.tags.add((kind, tag))

    def enum_body(self, tag: str | None, module: str | None, loc: dict) -> ast.TypeSpec:
        self.advance()
        enumerators: list[ast.Enumerator] = []
        while True:
            name = self.expect("IDENT")
            value = None
            if self.at("="):
                self.advance()
                value = self.assignment()
            # dtrace names an enumerator's errors at the token after it (',' or '}')
            enumerators.append(ast.Enumerator(str(name.value), value, **self.where(self.peek())))
            self.lex.known.add(str(name.value))
            if not self.at(","):
                break
            self.advance()
        self.expect("}")
        words = [tag] if tag else []
        return ast.TypeSpec("enum", words, tag=tag, enumerators=enumerators, module=module, **loc)

    def declarator(self, abstract: bool | None) -> ast.Declarator:
        """abstract: False = named, True = unnamed (type names), None = either (parameters)."""
        loc = self.here()
        base = self.depth
        pointers: list[ast.Pointer | ast.ArrayOf | ast.FunctionOf] = []
        while self.at("*"):
            self.nest()  # each pointer wraps the type once more
            star = self.advance()
            quals = []
            while self.peek().kind in _QUALS:
                quals.append(self.advance().kind)
            pointers.append(ast.Pointer(quals, **self.where(star)))
        name: str | None = None
        inner: list[ast.Pointer | ast.ArrayOf | ast.FunctionOf] = []
        suffixes: list[ast.Pointer | ast.ArrayOf | ast.FunctionOf] = []
        tok = self.peek()
        if tok.kind == "IDENT" and abstract is not True:
            self.advance()
            name = str(tok.value)
            if "`" in name:  # `sym names the kernel's symbol: a program cannot declare one
                raise DError(
                    "D_DECL_SCOPE",
                    f"D scoping operator may not be used in a declaration name ({name})",
                    tok.line,
                    self.lex.file,
                )
        elif tok.kind == "(":
            self.nest()
            self.advance()
            nxt = self.peek().kind
            if abstract is False or nxt in ("*", "(", "[") or (abstract is None and nxt == "IDENT"):
                d = self.declarator(abstract)
                self.expect(")")
                name, inner = d.name, d.derived
            else:
                suffixes.append(self.function(tok))
        elif abstract is False:
            raise self.syntax()
        while True:
            kind = self.peek().kind
            if kind == "[":
                self.nest()
                suffixes.append(self.array())
            elif kind == "(":
                self.nest()
                suffixes.append(self.function(self.advance()))
            else:
                break
        self.depth = base
        return ast.Declarator(name, inner + suffixes + pointers[::-1], **loc)

    def array(self) -> ast.ArrayOf:
        loc = self.where(self.advance())
        saved = self.lex.decl_named
        self.lex.decl_named = False
        if self.at("]"):
            node = ast.ArrayOf(**loc)
        elif self.peek().kind in _TYPE_START or self.at("..."):
            keys, varargs = self.parameters()
            if varargs:
                raise DError(
                    "D_DECL_PROTO_VARARGS",
                    "array prototype may not use a variable-length argument list",
                    loc["line"],
                    self.lex.file,
                )
            node = ast.ArrayOf(keys=keys, **loc)
        else:
            node = ast.ArrayOf(size=self.conditional(), **loc)
        self.expect("]")
        self.lex.decl_named = saved
        return node

    def function(self, lpar: Token) -> ast.FunctionOf:
        """A parameter list; its '(' has been read."""
        saved = self.lex.decl_named
        self.lex.decl_named = False
        params: list[ast.TypeName] = []
        varargs = False
        if not self.at(")"):
            params, varargs = self.parameters()
        self.expect(")")
        self.lex.decl_named = saved
        return ast.FunctionOf(params, varargs, **self.where(lpar))

    def parameters(self) -> tuple[list[ast.TypeName], bool]:
        params: list[ast.TypeName] = []
        while True:
            self.lex.decl_named = False
            if self.at("..."):
                self.advance()
                return params, True
            first = self.peek()
            storage, spec = self.specifiers(_STORAGE)
            if storage not in (None, "register"):
                raise DError(
                    "D_DECL_PARMCLASS",
                    "inappropriate storage class for function or associative array parameter",
                    first.line,
                    self.lex.file,
                )
            d = self.declarator(None)
            params.append(ast.TypeName(spec, d, **self.where(first)))
            if not self.at(","):
                return params, False
            self.advance()

    def type_name(self) -> ast.TypeName:
        saved = self.lex.decl_named
        self.lex.decl_named = False
        first = self.peek()
        _, spec = self.specifiers(frozenset())
        d = self.declarator(True)
        self.lex.decl_named = saved
        return ast.TypeName(spec, d, **self.where(first))

    def declaration(self) -> ast.Decl:
        first = self.peek()
        storage, spec = self.specifiers(_DSTORAGE)
        decls: list[ast.Declarator] = []
        if not self.at(";"):
            while True:
                d = self.declarator(False)
                decls.append(d)
                if d.name is not None:
                    if storage == "typedef":
                        self.lex.typenames.add(d.name)
                    elif storage not in ("self", "this"):
                        self.lex.known.add(d.name)
                if not self.at(","):
                    break
                self.advance()
        self.expect(";")
        return ast.Decl(storage, spec, decls, **self.where(first))

    def inline(self) -> ast.Inline:
        loc = self.where(self.advance())
        _, spec = self.specifiers(_DSTORAGE)
        d = self.declarator(False)
        self.expect("=")
        self.lex.decl_named = self.lex.typedef_decl = False
        value = self.assignment()
        self.expect(";")
        if d.name:
            self.lex.known.add(d.name)
        return ast.Inline(spec, d, value, **loc)

    def translator(self) -> ast.Translator:
        loc = self.where(self.advance())
        output = self.type_name()
        self.expect("<")
        self.lex.xlator_input = True
        inp = self.type_name()
        param = self.expect("IDENT")
        self.lex.xlator_input = False
        self.expect(">")
        self.expect("{")
        members: list[tuple[str, ast.Expr]] = []
        while not self.at("}"):
            name = self.expect("IDENT")
            self.expect("=")
            members.append((str(name.value), self.assignment()))
            self.expect(";")
        end = self.advance()
        self.expect(";")
        node = ast.Translator(output, inp, str(param.value), members, **loc)
        node.end_line = end.line  # type: ignore[attr-defined]  # dtrace checks it there
        return node

    def provider(self) -> ast.ProviderDef:
        loc = self.where(self.advance())
        name = self.expect("IDENT")
        self.expect("{")
        probes: list[tuple[str, list[ast.TypeName]]] = []
        while self.at("probe"):
            self.advance()
            pname = self.expect("IDENT")
            f = self.function(self.expect("("))
            if self.at(":"):
                self.advance()
                self.function(self.expect("("))
            self.expect(";")
            probes.append((str(pname.value), f.params))
        self.expect("}")
        self.expect(";")
        return ast.ProviderDef(str(name.value), probes, **loc)


def _macro_int_text(tok: Token, macros: Macros) -> str:
    """The literal text behind an integer macro reference ($1 -> "0x10", $pid -> "1234")."""
    if tok.text[1:].isdigit():
        n = digits_value(tok.text[1:])
        v = macros.args[n] if n < len(macros.args) else "0"
        return v[1:] if tok.prefix else v
    return str(tok.value)


def parse(
    source: str,
    *,
    macros: Macros | None = None,
    filename: str | None = None,
    from_file: bool | None = None,
    typenames: Iterable[str] | None = None,
    pspec_only: bool = False,
    on_pragma: Callable[[ast.Pragma], None] | None = None,
    on_item: Callable[[ast.Node], None] | None = None,
    kernel_typedef: Callable[[str], bool] | None = None,
) -> ast.Program:
    """Parse a D program.

    from_file: a probe description with neither predicate nor actions is an
    error in a script file but allowed on the command line (`dtrace -n BEGIN`);
    it defaults to `filename is not None`. typenames: extra typedef names to
    know besides the built-in ones (D library and kernel types), which decide
    casts and declarations. pspec_only: outer-scope words are always probe
    descriptions (dtrace -n/-P/-m/-f, or `#pragma D option pspec`).
    on_pragma: called with each #pragma as soon as it is read (before later
    text is parsed), so that its errors come first, as in dtrace; the pragma
    is also returned in Program.items either way. on_item: called with each
    other top-level item (declaration, clause, ...) as soon as it is parsed, so
    that declaration errors can be raised before later syntax errors, as dtrace
    does. kernel_typedef: asked whether a name the program does not declare
    is one of the kernel's typedefs (symbols.kernel_types), where a type name
    may stand.
    """
    if from_file is None:
        from_file = filename is not None
    p = Parser(source, macros, filename, from_file, typenames, pspec_only, kernel_typedef)
    p.on_item = on_item
    if on_pragma is not None:
        hook = on_pragma
        p.lex.on_pragma = lambda line, f, words: hook(ast.Pragma(words, line=line, file=f))
    return p.program()


def parse_expression(
    source: str, *, macros: Macros | None = None, typenames: Iterable[str] | None = None
) -> ast.Expr:
    """Parse a lone D expression (mainly for tests)."""
    p = Parser(source, macros, None, False, typenames)
    p.lex.mode = "expr"
    p.lex.nul_at_eof = False
    e = p.expression()
    if not p.at("EOF"):
        raise p.syntax()
    return e
