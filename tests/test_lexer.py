"""Tests for the D lexer: literals, macros, control lines, lexical errors."""

from __future__ import annotations

import pytest

from pydtrace.lang import ast
from pydtrace.lang.errors import DError
from pydtrace.lang.lexer import Lexer, strtoull, unescape
from pydtrace.lang.macros import Macros
from pydtrace.lang.parser import parse, parse_expression
from pydtrace.lang.types import BUILTIN_TYPEDEFS


def tokens(src: str, mode: str = "expr") -> list[tuple[str, object]]:
    lex = Lexer(
        src,
        Macros(["prog", "7", "foo", "a b", '"q"', "-3"], {"pid": 42}),
        None,
        set(BUILTIN_TYPEDEFS),
    )
    lex.mode = mode
    out = []
    while True:
        t = lex.next()
        if t.kind == "EOF":
            return out
        out.append((t.kind, t.value))


def err(src: str, **kw) -> DError:
    with pytest.raises(DError) as e:
        parse(src, **kw)
    return e.value


@pytest.mark.parametrize(
    "text,value",
    [
        ("0", 0),
        ("42", 42),
        ("010", 8),
        ("0x1F", 31),
        ("0XfF", 255),
        ("12u", 12),
        ("12UL", 12),
        ("7ll", 7),
        ("0x10ull", 16),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_integers(text, value):
    e = parse_expression(text)
    assert isinstance(e, ast.IntLit) and e.value == value and e.text == text


def test_integer_errors():
    e = err("BEGIN { x = 0129; }")
    assert (e.tag, e.message) == ("D_INT_DIGIT", "constant 0129 contains invalid digit 9")
    e = err("BEGIN\n{\n x = 0x12345678123456789; }")
    assert e.tag == "D_INT_OFLOW" and e.line == 3
    assert e.message == "constant 0x12345678123456789 results in integer overflow"
    e = err("BEGIN { x = 18446744073709551616; }")
    assert e.tag == "D_INT_OFLOW"


@pytest.mark.parametrize("src", ["1.5", "1e3", ".5", "3f", "2."])
def test_float_rejected(src):
    with pytest.raises(DError) as e:
        parse_expression(src)
    assert (e.value.tag, e.value.message) == (
        "D_SYNTAX",
        "floating-point constants are not permitted",
    )


def test_chars():
    assert parse_expression("'a'") == ast.CharLit(97, line=1)
    assert parse_expression(r"'\n'").value == 10
    assert parse_expression(r"'\0'").value == 0
    assert parse_expression(r"'\377'").value == 255
    assert parse_expression("'ab'").value == 0x6162
    assert parse_expression(r"'\x41'").value == 0x41
    e = err("BEGIN { x = ''; }")
    assert (e.tag, e.message) == ("D_CHR_NULL", "empty character constant")
    e = err("BEGIN {\n x = '\n'; }")
    assert (e.tag, e.line, e.message) == (
        "D_CHR_NL",
        3,
        "newline encountered in character constant",
    )
    e = err("BEGIN { x = '123456789'; }")
    assert e.tag == "D_CHR_OFLOW"


def test_strings():
    assert parse_expression(r'"a\tb\\c\"d"').value == 'a\tb\\c"d'
    assert parse_expression(r'"\a\b\f\r\v"').value == "\a\b\f\r\v"
    assert parse_expression(r'"\101\x42\103"').value == "ABC"
    assert parse_expression(r'"ab\0cd"').value == "ab"  # a C string ends at NUL
    assert parse_expression(r'"\q"').value == "\\q"  # unknown escapes are kept
    e = err('BEGIN {\n x = "abc\n"; }')
    assert (e.tag, e.line, e.message) == ("D_STR_NL", 3, "newline encountered in string literal")


def test_unescape_and_strtoull():
    assert unescape(r"\x4a\x4B") == "JK"
    assert unescape(r"\'") == "\\'"
    assert strtoull("0x10u") == (16, "u", False)
    assert strtoull("0128") == (10, "8", False)
    assert strtoull("99999999999999999999")[2] is True


def test_identifiers_and_aggs():
    assert tokens("foo `sym vmlinux`max_pfn @a @ @_x") == [
        ("IDENT", "foo"),
        ("IDENT", "`sym"),
        ("IDENT", "vmlinux`max_pfn"),
        ("AGG", "@a"),
        ("AGG", "@"),
        ("AGG", "@_x"),
    ]


def test_keywords_after_member_operators_are_names():
    e = parse_expression("a.self->this")
    assert isinstance(e, ast.Member) and e.name == "this" and e.arrow
    assert isinstance(e.base, ast.Member) and e.base.name == "self"


def test_operators_longest_match():
    kinds = [k for k, _ in tokens("a <<= b >>= c ^^ d -> e ... ++ -- != ==")]
    assert kinds == [
        "IDENT",
        "<<=",
        "IDENT",
        ">>=",
        "IDENT",
        "^^",
        "IDENT",
        "->",
        "IDENT",
        "...",
        "++",
        "--",
        "!=",
        "==",
    ]


def test_comments_and_continuations():
    assert tokens("a /* x\n y */ b \\\n c;")[:3] == [("IDENT", "a"), ("IDENT", "b"), ("IDENT", "c")]
    e = err("BEGIN { /* a /* b */ }")
    assert e.message == "/* encountered inside a comment"
    e = err("BEGIN\n{\n}\n/* never closed\n")
    assert (e.tag, e.line, e.message) == (
        "D_SYNTAX",
        5,
        "end-of-file encountered before matching */",
    )


def test_outer_scope_tokens():
    assert tokens("syscall::read:entry, tick-1s pid$target:libc::entry /", "outer")[:4] == [
        ("PSPEC", "syscall::read:entry"),
        (",", None),
        ("PSPEC", "tick-1s"),
        ("PSPEC", "pid$target:libc::entry"),
    ]


def test_macro_operands():
    m = Macros(["prog", "7", "foo", "a b", '"q"', "-3", "0x10"], {"pid": 42, "target": 99})
    assert parse_expression("$1", macros=m) == ast.IntLit(7, "7", line=1)
    assert parse_expression("$6", macros=m) == ast.IntLit(16, "0x10", line=1)
    assert parse_expression("$2", macros=m) == ast.Ident("foo", line=1)
    assert parse_expression("$3", macros=m) == ast.StrLit("a b", line=1)
    assert parse_expression("$4", macros=m) == ast.StrLit("q", line=1)
    e5 = parse_expression("$5", macros=m)
    assert e5 == ast.Unary("-", ast.IntLit(3, "3", line=1), line=1)
    assert parse_expression("$$1", macros=m) == ast.StrLit("7", line=1)
    assert parse_expression("$0", macros=m) == ast.Ident("prog", line=1)
    assert parse_expression("$pid", macros=m) == ast.IntLit(42, "42", line=1)
    assert parse_expression("$target", macros=m).value == 99
    assert parse_expression("$uid", macros=m).value == 0  # defined, not supplied
    assert parse_expression("$$pid", macros=m) == ast.StrLit("42", line=1)
    assert m.referenced == {0, 1, 2, 3, 4, 5, 6}


def test_macro_errors_and_defaults():
    m = Macros(["prog"], {})
    with pytest.raises(DError) as e:
        parse("BEGIN\n{\n\texit($1 ? 1 : 0);\n}\n", macros=m)
    assert (e.value.tag, e.value.line, e.value.message) == (
        "D_MACRO_UNDEF",
        3,
        "macro argument $1 is not defined",
    )
    with pytest.raises(DError) as e:
        parse_expression("$nosuch", macros=m)
    assert e.value.message == "macro variable $nosuch is not defined"
    d = Macros(["prog"], {}, defaultargs=True)
    assert parse_expression("$3", macros=d) == ast.IntLit(0, "0", line=1)
    assert parse_expression("$$3", macros=d) == ast.StrLit("", line=1)
    assert d.referenced == set()
    big = Macros(["prog", "99999999999999999999"], {})
    with pytest.raises(DError) as e:
        parse_expression("$1", macros=big)
    assert e.value.tag == "D_MACRO_OFLOW"
    assert e.value.message == (
        "macro argument $1 constant 99999999999999999999 results in integer overflow"
    )


def test_macros_in_probe_descriptions():
    m = Macros(["prog", "libc.so", "read"], {"target": 1234})
    p = parse("pid$target:$1:$$2:entry { }", macros=m)
    assert p.items[0].probes[0].text == "pid1234:libc.so:read:entry"
    assert m.referenced == {1, 2}
    with pytest.raises(DError) as e:
        parse("pid$3:::entry { }", macros=m)
    assert e.value.tag == "D_PDESC_INVAL"
    assert e.value.message == (
        'invalid probe description "pid$3:::entry": Undefined macro variable in probe description'
    )
    with pytest.raises(DError) as e:
        parse("profile::::tick-1sec { }")
    assert e.value.message.endswith(": Overspecified probe description")


def test_pragmas_and_control_lines():
    p = parse(
        "#!/usr/sbin/dtrace -s\n#pragma D option quiet\n  #pragma D option bufsize=4m\n"
        'BEGIN { }\n#pragma D error "boom \\x41"\n#pragma whatever ignored\n'
    )
    pr = [i for i in p.items if isinstance(i, ast.Pragma)]
    assert [x.words for x in pr] == [
        ["D", "option", "quiet"],
        ["D", "option", "bufsize=4m"],
        ["D", "error", "boom A"],
    ]
    assert [x.line for x in pr] == [2, 3, 5]
    assert isinstance(p.items[2], ast.Clause)
    e = err("#frobnicate\nBEGIN { }")
    assert (e.tag, e.line, e.message) == (
        "D_PRAGCTL_INVAL",
        1,
        "invalid control directive: #frobnicate",
    )
    e = err("\n#pragma D nosuch\n")
    assert (e.tag, e.line, e.message) == ("D_PRAGMA_INVAL", 2, "invalid D pragma: nosuch")
    e = err("BEGIN { }\n#pragma D option quiet")
    assert (e.line, e.message) == (2, "end-of-file encountered before end of control line")
    seen = []
    parse("#pragma D option quiet\nBEGIN { }\n", on_pragma=seen.append)
    assert seen == [ast.Pragma(["D", "option", "quiet"], line=1)]


def test_line_markers():
    src = 'BEGIN { }\n# 20 "inc.h"\nint x;\n\nint y\n'
    e = err(src, filename="main.d")
    assert (e.line, e.file) == (23, "inc.h")
    p = parse('#line 7 "main.d"\nint q;\n# 40\nint r;\n', filename="main.d")
    assert [(d.line, d.file) for d in p.items] == [(7, None), (40, None)]
    e = err("#line x\n")
    assert e.tag == "D_PRAGMA_MALFORM"
