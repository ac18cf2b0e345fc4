"""Tests for the D parser: expressions, declarations, clauses and syntax errors."""

from __future__ import annotations

import pytest

from pydtrace.lang import ast
from pydtrace.lang.errors import DError
from pydtrace.lang.parser import parse, parse_expression


def show(e: object) -> str:
    """A compact prefix form of an expression tree."""
    if isinstance(e, ast.IntLit):
        return e.text
    if isinstance(e, ast.CharLit):
        return f"'{e.value}'"
    if isinstance(e, ast.StrLit):
        return repr(e.value)
    if isinstance(e, ast.Ident):
        return e.name
    if isinstance(e, ast.SelfVar):
        return f"self->{e.name}"
    if isinstance(e, ast.ThisVar):
        return f"this->{e.name}"
    if isinstance(e, ast.AggVar):
        return e.name
    if isinstance(e, ast.Binary):
        return f"({e.op} {show(e.left)} {show(e.right)})"
    if isinstance(e, ast.Assign):
        return f"({e.op} {show(e.target)} {show(e.value)})"
    if isinstance(e, ast.Unary):
        return f"({e.op}u {show(e.operand)})"
    if isinstance(e, ast.Postfix):
        return f"(post{e.op} {show(e.operand)})"
    if isinstance(e, ast.Cond):
        return f"(? {show(e.cond)} {show(e.then)} {show(e.other)})"
    if isinstance(e, ast.Cast):
        return f"(cast {show(e.type)} {show(e.operand)})"
    if isinstance(e, ast.Call):
        return f"{e.name}({', '.join(show(a) for a in e.args)})"
    if isinstance(e, ast.Index):
        return f"{show(e.base)}[{', '.join(show(a) for a in e.args)}]"
    if isinstance(e, ast.Member):
        return f"{show(e.base)}{'->' if e.arrow else '.'}{e.name}"
    if isinstance(e, ast.Sizeof):
        return f"(sizeof {show(e.type) if e.type else show(e.operand)})"
    if isinstance(e, ast.Stringof):
        return f"(stringof {show(e.operand)})"
    if isinstance(e, ast.Offsetof):
        return f"(offsetof {show(e.type)} {e.member})"
    if isinstance(e, ast.Xlate):
        return f"(xlate {show(e.type)} {show(e.operand)})"
    if isinstance(e, ast.TypeName):
        return " ".join(e.spec.qualifiers + e.spec.words) + show(e.declarator)
    if isinstance(e, ast.Declarator):
        out = e.name or ""
        for d in e.derived:
            if isinstance(d, ast.Pointer):
                out += "*" + "".join(d.qualifiers)
            elif isinstance(d, ast.ArrayOf):
                inside = show(d.size) if d.size else ",".join(show(k) for k in d.keys or [])
                out += f"[{inside}]"
            else:
                out += "(" + ",".join(show(p) for p in d.params) + ")"
        return (":" + out) if out else ""
    raise AssertionError(f"no printer for {e!r}")


def ex(src: str) -> str:
    return show(parse_expression(src))


def err(src: str, **kw) -> DError:
    with pytest.raises(DError) as e:
        parse(src, **kw)
    return e.value


@pytest.mark.parametrize(
    "src,tree",
    [
        ("1 + 2 * 3", "(+ 1 (* 2 3))"),
        ("1 - 2 - 3", "(- (- 1 2) 3)"),
        ("a / b % c", "(% (/ a b) c)"),
        ("a << 1 + b", "(<< a (+ 1 b))"),
        ("a < b == c > d", "(== (< a b) (> c d))"),
        ("a & b ^ c | d", "(| (^ (& a b) c) d)"),
        ("a || b ^^ c && d", "(|| a (^^ b (&& c d)))"),
        ("a ^^ b ^^ c", "(^^ (^^ a b) c)"),
        ("a ? b : c ? d : e", "(? a b (? c d e))"),
        ("a ? b, c : d", "(? a (, b c) d)"),
        ("a = b = c", "(= a (= b c))"),
        ("a += b -= c", "(+= a (-= b c))"),
        ("x <<= 2, y >>= 3", "(, (<<= x 2) (>>= y 3))"),
        ("a = b ? c : d", "(= a (? b c d))"),
        ("-a * !b", "(* (-u a) (!u b))"),
        ("~*p", "(~u (*u p))"),
        ("&x->y", "(&u x->y)"),
        ("- -a", "(-u (-u a))"),
        ("++a++", "(++u (post++ a))"),
        ("--*p", "(--u (*u p))"),
        ("a.b.c->d", "a.b.c->d"),
        ("a[1][2]", "a[1][2]"),
        ('a[1, "x"]', "a[1, 'x']"),
        ("@a[execname, pid]", "@a[execname, pid]"),
        ("@ = count()", "(= @ count())"),
        ("self->x[k] = 1", "(= self->x[k] 1)"),
        ("this->y + self->z", "(+ this->y self->z)"),
        ("self->p->q", "self->p->q"),
        ('printf("%d %s\\n", a, b)', "printf('%d %s\\n', a, b)"),
        ("f(a, (b, c))", "f(a, (, b c))"),
        ("(int)x + 1", "(+ (cast int x) 1)"),
        ("(uint64_t)x", "(cast uint64_t x)"),
        ("(unsigned long long)-1", "(cast unsigned long long (-u 1))"),
        ("(char *)p", "(cast char:* p)"),
        ("(struct foo *)p->x", "(cast foo:* p->x)"),
        ("(x)", "x"),
        ("(x) + 1", "(+ x 1)"),
        ("(a)[1]", "a[1]"),
        ("sizeof (int)", "(sizeof int)"),
        ("sizeof x + 1", "(+ (sizeof x) 1)"),
        ("sizeof (x)", "(sizeof x)"),
        ("sizeof(int *[3])", "(sizeof int:[3]*)"),
        ("stringof x", "(stringof x)"),
        ("stringof(a->b)", "(stringof a->b)"),
        ("offsetof(struct s, m)", "(offsetof s m)"),
        ("xlate<uint32_t *>(p)", "(xlate uint32_t:* p)"),
        ("`max_pfn + vmlinux`jiffies", "(+ `max_pfn vmlinux`jiffies)"),
        ("'a' + \"b\"", "(+ '97' 'b')"),
    ],
)
def test_expressions(src, tree):
    assert ex(src) == tree


def test_expression_node_details():
    c = parse_expression("(const struct vmlinux`task_struct *)curthread")
    assert isinstance(c, ast.Cast)
    spec = c.type.spec
    assert (spec.kind, spec.tag, spec.module, spec.qualifiers) == (
        "struct",
        "task_struct",
        "vmlinux",
        ["const"],
    )
    x = parse_expression("xlate<psinfo_t>(p)", typenames={"psinfo_t"})
    assert isinstance(x, ast.Xlate) and x.type.spec.words == ["psinfo_t"]
    o = parse_expression("offsetof(struct s, m)")
    assert isinstance(o, ast.Offsetof) and o.type.spec.tag == "s" and o.member == "m"
    p = parse_expression("a++")
    assert isinstance(p, ast.Postfix) and p.op == "++"


@pytest.mark.parametrize(
    "src", ["a + b = c", "(int)x = 1", "a ? b : c = d", "a, b = c ? d : e = f"]
)
def test_assignment_needs_unary_target(src):
    with pytest.raises(DError) as e:
        parse_expression(src)
    assert e.value.message == 'syntax error near "="'


def test_unary_target_is_syntactically_fine():
    assert ex("-x = 1") == "(= (-u x) 1)"  # rejected later, by the checker
    assert ex("(a + b) = c") == "(= (+ a b) c)"


def test_function_designator():
    e = err("BEGIN\n{\n\t@ = tick-1();\n}\n")
    assert (e.tag, e.line, e.message) == (
        "D_FUNC_IDENT",
        3,
        "function designator is not of function type",
    )


def decl(src: str, **kw) -> ast.Decl:
    item = parse(src, **kw).items[0]
    assert isinstance(item, ast.Decl)
    return item


def test_declarations():
    d = decl("int x, *y, z[4], **w;")
    assert d.storage is None and d.spec.words == ["int"]
    assert [show(x) for x in d.declarators] == [":x", ":y*", ":z[4]", ":w**"]
    assert [show(x) for x in decl("int *a[3], (*b)[3];").declarators] == [":a[3]*", ":b*[3]"]
    assert show(decl("char * const *p;").declarators[0]) == ":p**const"
    d = decl("int a[string, int];")
    keys = d.declarators[0].derived[0]
    assert isinstance(keys, ast.ArrayOf) and [show(k) for k in keys.keys or []] == ["string", "int"]
    assert decl("self int y;").storage == "self"
    assert decl("this string s;").storage == "this"
    assert decl("extern unsigned long long k;").spec.words == ["unsigned", "long", "long"]
    d = decl("uint64_t u;")
    assert (d.spec.kind, d.spec.words) == ("typedef", ["uint64_t"])
    assert show(decl("int (*fp)(int, char *, ...);").declarators[0]) == ":fp*(int,char:*)"
    assert decl("int f(int, ...);").declarators[0].derived[0].varargs  # type: ignore[union-attr]


def test_typedef_names_become_types():
    p = parse(
        "typedef unsigned long ulong2_t;\nulong2_t v;\nBEGIN { x = (ulong2_t)1; ulong2_t = 3; }"
    )
    assert p.items[0].storage == "typedef"  # type: ignore[union-attr]
    assert p.items[1].spec.words == ["ulong2_t"]  # type: ignore[union-attr]
    body = p.items[2].body  # type: ignore[union-attr]
    assert show(body[0].expr) == "(= x (cast ulong2_t 1))"
    # followed by '=', a type name is taken as a variable, as in dtrace
    assert show(body[1].expr) == "(= ulong2_t 3)"
    # a declaration may reuse a type name as the declared name (C's `foo foo;`)
    d = decl("typedef int foo; struct s { foo foo; };".split(";", 1)[1].strip(), typenames={"foo"})
    assert d.spec.members[0].spec.words == ["foo"]  # type: ignore[index]
    assert d.spec.members[0].declarators[0].name == "foo"  # type: ignore[index]


def test_struct_union_enum():
    d = decl("struct s { int a:3; unsigned b : 5, :2; char *name; struct s *next; };")
    assert d.declarators == [] and d.spec.kind == "struct" and d.spec.tag == "s"
    m = d.spec.members or []
    assert [show(x.declarators[0]) for x in m] == [":a", ":b", ":name*", ":next*"]
    assert show(m[0].declarators[0].bits) == "3" and show(m[1].declarators[1].bits) == "2"
    assert m[1].declarators[1].name is None
    assert decl("struct fwd;").spec.members is None
    d = decl("union u { int i; char c[4]; } uv;")
    assert d.spec.kind == "union" and d.declarators[0].name == "uv"
    d = decl("enum e { A, B = 5 + 1, C = A };")
    en = d.spec.enumerators or []
    assert [(x.name, x.value and show(x.value)) for x in en] == [
        ("A", None),
        ("B", "(+ 5 1)"),
        ("C", "A"),
    ]
    p = parse("enum e { A };\nBEGIN { x = A; }")
    assert show(p.items[1].body[0].expr) == "(= x A)"  # type: ignore[union-attr]
    d = decl("typedef struct { int x; } anon_t;")
    assert d.spec.tag is None and d.declarators[0].name == "anon_t"


def test_inline_translator_provider():
    p = parse(
        "inline int LIMIT = 5 + 2;\n"
        "translator struct out < struct in *p > { a = p->x; b = p->y + 1; };\n"
        "provider myprov { probe go(int, char *); probe stop() : (int); };\n"
    )
    inl, tr, pv = p.items
    assert isinstance(inl, ast.Inline) and inl.declarator.name == "LIMIT"
    assert show(inl.value) == "(+ 5 2)"
    assert isinstance(tr, ast.Translator) and tr.param == "p"
    assert tr.output.spec.tag == "out" and tr.input.spec.tag == "in"
    assert [(n, show(v)) for n, v in tr.members] == [("a", "p->x"), ("b", "(+ p->y 1)")]
    assert isinstance(pv, ast.ProviderDef) and pv.name == "myprov"
    assert [(n, [show(t) for t in a]) for n, a in pv.probes] == [
        ("go", ["int", "char:*"]),
        ("stop", []),
    ]


def test_declaration_errors():
    e = err("#pragma D option quiet\n\nint i = 0;\n")
    assert (e.tag, e.line, e.message) == ("D_SYNTAX", 3, 'syntax error near "="')
    e = err("\nlong struct s\n{\n int i;\n};\n")
    assert (e.tag, e.line) == ("D_DECL_LONGINT", 3)
    assert e.message == (
        "invalid type declaration: long and long long may only be used "
        "with integer or floating-point type"
    )
    assert err("unsigned string s;").tag == "D_DECL_SIGNINT"
    assert err("long char c;").tag == "D_DECL_CHARATTR"
    assert err("short void v;").tag == "D_DECL_VOIDATTR"
    # `name is the kernel's symbol: a declaration cannot name one
    e = err("\nint `xyz;\nBEGIN { exit(0); }\n")
    assert (e.tag, e.line, e.message) == (
        "D_DECL_SCOPE",
        2,
        "D scoping operator may not be used in a declaration name (`xyz)",
    )
    assert err("int char x;").message == "invalid type combination"
    e = err("struct a { int x; }\n\nstruct b { int y; };")
    assert (e.tag, e.line) == ("D_DECL_COMBO", 3)
    e = err("struct a { int x; };\nstruct a\n{ int y; };")
    assert (e.tag, e.line, e.message) == ("D_DECL_TYPERED", 3, "type redeclared: struct a")
    e = err("enum e { A, };")
    assert e.message == 'syntax error near "}"'
    e = err("typedef pint new_int;\n")
    assert e.message == 'syntax error near "new_int;"'  # dtrace shows the rest of the line


def test_clauses():
    p = parse(
        "syscall::read:entry, syscall::write:entry\n/pid == 1 && arg0 > 2/\n"
        "{\n\tself->t = timestamp;\n}\nBEGIN { }\nEND\n{\n\texit(0)\n}\n"
    )
    c1, c2, c3 = p.items
    assert isinstance(c1, ast.Clause)
    assert [x.text for x in c1.probes] == ["syscall::read:entry", "syscall::write:entry"]
    assert show(c1.predicate) == "(&& (== pid 1) (> arg0 2))"
    assert [show(s.expr) for s in c1.body] == ["(= self->t timestamp)"]  # type: ignore
    assert (c1.line, c2.line, c3.line) == (1, 6, 7)
    assert c2.body == [] and c2.predicate is None
    assert show(c3.body[0].expr) == "exit(0)"  # type: ignore
    p = parse("tick-1s /x / 2 > 1/ { a = b / c; ; ; d }")
    assert show(p.items[0].predicate) == "(> (/ x 2) 1)"  # type: ignore[union-attr]
    assert len(p.items[0].body) == 2  # type: ignore[union-attr]
    assert parse("profile:::profile-97 { }").items[0].probes[0].text == "profile:::profile-97"
    assert parse("fbt:vmlinux:*_read:return, :::BEGIN { }").items[0].probes[1].text == ":::BEGIN"
    assert parse("int* { }", pspec_only=True).items[0].probes[0].text == "int*"
    d = parse("int*x;").items[0]
    assert isinstance(d, ast.Decl) and show(d.declarators[0]) == ":x*"


def test_bare_probe_description():
    p = parse("BEGIN")  # allowed on the command line (dtrace -n BEGIN)
    assert p.items[0] == ast.Clause([ast.ProbeSpec("BEGIN", line=1)], None, None, line=1)
    e = err("\nprofile-1\nint i;\n{ }", filename="x.d")
    assert (e.tag, e.line, e.message) == (
        "D_SYNTAX",
        2,
        "expected predicate and/or actions following probe description",
    )
    e = err("BEGIN\n/x == 1/\n;", filename="x.d")
    assert (e.line, e.message) == (
        2,
        "expected actions { } following probe description and predicate",
    )


def test_if_else_and_blocks():
    p = parse(
        "BEGIN { if (x > 1) { y = 2; z = 3 } else if (x) w = 1; else { } "
        "if (a) b++; { nested = 1; } }"
    )
    body = p.items[0].body  # type: ignore[union-attr]
    i1, i2, blk = body
    assert isinstance(i1, ast.If) and show(i1.cond) == "(> x 1)"
    assert [show(s.expr) for s in i1.then] == ["(= y 2)", "(= z 3)"]  # type: ignore
    assert isinstance(i1.other[0], ast.If)  # type: ignore[index]
    assert i1.other[0].other == []  # type: ignore[index,union-attr]
    assert isinstance(i2, ast.If) and i2.other is None
    assert isinstance(blk, ast.Block) and show(blk.body[0].expr) == "(= nested 1)"  # type: ignore


def test_line_numbers():
    p = parse('/* header\n * more\n */\n\nBEGIN\n{\n\tx = 1;\n\n\ty = "s";\n}\n')
    c = p.items[0]
    assert c.line == 5
    assert [s.line for s in c.body] == [7, 9]  # type: ignore[union-attr]
    assert c.body[1].expr.value.line == 9  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "src,line,message",
    [
        ("BEGIN\n{\n\ttrace(epid);\n}\n}\n", 5, 'syntax error near "}"'),
        ("BEGIN\n{\n\ttrace(epid);\n", 4, "syntax error near end of input"),
        ("BEGIN\n{\n\ttrace(args[0]]);\n}\n", 3, "extra ] in input stream"),
        ("BEGIN\n{\n\ttrace(epid));\n}\n", 3, "extra ) in input stream"),
        ("BEGIN\n{\n\targs[0\n}\n", 4, 'syntax error near "}"'),
        ("BEGIN\n{\n\trand(\n}\n", 4, 'syntax error near "}"'),
        ("BEGIN\n/rand(/\n{\n}\n", 3, "closing ) expected in predicate before /"),
        ("BEGIN\n/args[0/\n{\n}\n", 3, "closing ] expected in predicate before /"),
        ("BEGIN\n{\n\ti = 123$pid;\n}\n", 3, 'syntax error near "$pid"'),
        ("BEGIN\n{\n\tx($-1);\n}\n", 3, 'syntax error near "$"'),
        ("BEGIN\n{\n\tint i = 0;\n}\n", 3, 'syntax error near "int"'),
        ("BEGIN\n{\n\ti+-;\n}\n", 3, 'syntax error near ";"'),
        ("BEGIN\n{\n\tx = 1 +\n}\n", 4, 'syntax error near "}"'),
        ("int 0abc;\n", 1, 'syntax error near "0"'),
        ("BEGIN { x = 1 } #\n", 1, 'syntax error near "#"'),
        ("BEGIN { a = b\nc = d; }", 2, 'syntax error near "c = d; }"'),
        ("BEGIN { trace(offsetof(vnode_t, v)); }", 1, 'syntax error near "vnode_t, v)); }"'),
        ("BEGIN { x = a.; }", 1, 'syntax error near ";"'),
        ("profile-1\n{\n\ttick-10ms\n{\n}\n}\n", 3, 'syntax error near "ms"'),
        ("int*x\n", 2, "syntax error near end-of-input"),
        ("; BEGIN { }", 1, 'syntax error near ";"'),
        ("BEGIN { x = 'a }", 1, 'syntax error near "\'"'),
    ],
)
def test_syntax_errors(src, line, message):
    e = err(src, filename="t.d")
    assert (e.tag, e.line, e.message) == ("D_SYNTAX", line, message)


def test_on_item_hook_runs_in_order():
    seen: list[str] = []
    parse("int x;\nBEGIN { }\n", on_item=lambda n: seen.append(type(n).__name__))
    assert seen == ["Decl", "Clause"]
    with pytest.raises(DError):
        parse("int x;\nBEGIN { +++ }\n", on_item=lambda n: seen.append("again"))
    assert seen[-1] == "again"  # the declaration was seen before the syntax error
