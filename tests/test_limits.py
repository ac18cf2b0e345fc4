"""Bounded input: nesting and expansion limits of the D front end (lang/limits.py),
and that whatever the parser accepts, every later stage handles within Python's
recursion limit."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable

import pytest

from conftest import bpf_maps_ok, pydtrace
from pydtrace import trace
from pydtrace.lang.errors import CompileError
from pydtrace.session import Program, Session

# Each shape: n -> a program nesting n levels of one construct, and the
# deepest n the parser accepts (limits.NESTING = 100; the clause's own block,
# `x = ...` and the like take the rest; an if takes two levels, itself and its block).
SHAPES: dict[str, tuple[Callable[[int], str], int, str]] = {
    "parentheses": (lambda n: "x = " + "(" * n + "1" + ")" * n + ";", 98, "("),
    "a+a+a chain": (lambda n: "x = 1" + "+1" * n + ";", 98, "+"),
    "|| chain": (lambda n: "x = 1" + " || x == 1" * n + ";", 97, "||"),
    "a+(a+(...))": (lambda n: "x = " + "1+(" * n + "1" + ")" * n + ";", 49, "+"),
    "unary minus": (lambda n: "x = " + "- " * n + "1;", 98, "-"),
    "-(-(...))": (lambda n: "x = " + "-(" * n + "1" + ")" * n + ";", 49, "-"),
    "!!!": (lambda n: "x = " + "!" * n + "1;", 98, "!"),
    "casts": (lambda n: "x = " + "(int)" * n + "1;", 98, "("),
    "ifs": (lambda n: "if (1) { " * n + "x = 1;" + " }" * n, 49, "{"),
    "else if": (lambda n: "if (x == 1) { x = 2; } else " * n + "{ x = 1; }", 97, "="),
    "blocks": (lambda n: "{ " * n + "x = 1;" + " }" * n, 98, "="),
    "assignments": (lambda n: "x = " * n + "1;", 99, "="),
    "?: chain": (lambda n: "x = " + "1 ? 1 : " * n + "1;", 98, "?"),
    "?: nest": (lambda n: "x = " + "1 ? " * n + "1" + " : 1" * n + ";", 98, "?"),
    "subscripts": (lambda n: "a[1] = 1; x = a[" + "a[" * n + "1" + "]" * n + "];", 97, "["),
    "comma chain": (lambda n: "x = 1" + ",1" * n + ";", 98, ","),
    "calls": (lambda n: "y = " + 'strjoin("a", ' * n + '"b"' + ")" * n + ";", 98, "("),
    "sizeof": (lambda n: "x = " + "sizeof " * n + "1;", 98, "sizeof"),
}


def program(shape: str, n: int) -> str:
    return "BEGIN { x = 0; " + SHAPES[shape][0](n) + " exit(0); }"


def compile_text(text: str, **kw) -> Session:
    s = Session([Program("n", text)], out=io.StringIO(), err=io.StringIO(), **kw)
    s.compile()
    return s


def frames() -> int:
    f, n = sys._getframe(), 0
    while f is not None:
        n, f = n + 1, f.f_back
    return n


def run_with_headroom(text: str, engine: str, room: int = 760) -> int:
    """Compile and run text with only `room` frames of recursion left below
    this one: the caller of the API may already be ~240 frames deep."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(frames() + room)
    try:
        s = compile_text(text, settings=[("engine", engine)])
        return s.run()
    finally:
        sys.setrecursionlimit(old)


@pytest.mark.parametrize("shape", SHAPES)
def test_nesting_past_the_limit_is_a_syntax_error(shape: str) -> None:
    _, deepest, near = SHAPES[shape]
    compile_text(program(shape, deepest))
    text = program(shape, deepest + 1)
    with pytest.raises(CompileError) as e:
        compile_text(text)
    assert e.value.message == f'invalid probe specifier {text}: memory exhausted near "{near}"'
    assert e.value.tag == "D_SYNTAX"


@pytest.mark.parametrize("shape", SHAPES)
def test_the_deepest_program_accepted_runs_on_the_user_engine(shape: str) -> None:
    # checker, interpreter (closures built and run) all within the recursion limit
    assert run_with_headroom(program(shape, SHAPES[shape][1]), "ptrace") == 0


@pytest.mark.parametrize("shape", ["a+a+a chain", "ifs", "unary minus", "calls", "subscripts"])
def test_the_deepest_program_accepted_compiles_for_ebpf(shape: str) -> None:
    if not bpf_maps_ok():
        pytest.skip("needs bpf(2)")
    try:
        status = run_with_headroom(program(shape, SHAPES[shape][1]), "ebpf")
    except CompileError as e:  # registers, not the recursion limit, bound some shapes
        assert "cannot compile an expression this deep yet" in e.message
    else:
        assert status == 0


def test_two_hundred_parentheses_on_the_command_line() -> None:
    text = "BEGIN { x = " + "(" * 200 + "1" + ")" * 200 + "; }"
    r = pydtrace("-n", text)
    assert (r.status, r.out, r.err) == (
        1,
        "",
        f'pydtrace: invalid probe specifier {text}: memory exhausted near "("\n',
    )


def test_deep_nesting_in_a_script_names_the_line(tmp_path) -> None:
    script = tmp_path / "deep.d"
    script.write_text("BEGIN\n{\n\tx = " + "- " * 150 + "1;\n}\n")
    r = pydtrace("-s", str(script))
    assert (r.status, r.err) == (
        1,
        f'pydtrace: failed to compile script {script}: line 3: memory exhausted near "-"\n',
    )


def test_deep_nesting_through_the_api() -> None:
    r = trace("BEGIN { x = " + "!" * 500 + "1; }")
    assert r.status == 1
    assert r.errors.endswith(': memory exhausted near "!"\n')


@pytest.mark.parametrize(
    "decl, near",
    [
        ("int " + "*" * 120 + "p;", "*"),
        ("int " + "(" * 120 + "p" + ")" * 120 + ";", "("),
        ("int a" + "[1]" * 120 + ";", "["),
        ("struct s0 { " + "".join(f"struct s{i} {{ " for i in range(1, 120)) + "int x;", "{"),
    ],
)
def test_deep_declarations(decl: str, near: str) -> None:
    with pytest.raises(CompileError) as e:
        compile_text(decl + " BEGIN { exit(0); }")
    assert e.value.message.endswith(f'memory exhausted near "{near}"')


def test_inlines_nested_past_the_limit(tmp_path) -> None:
    # each inline nests two levels deeper than the one it uses (its + and the name):
    # a50 is 101 levels deep, the most the checker takes (the parser's 100 and a leaf)
    lines = ["inline int a0 = 1;"]
    lines += [f"inline int a{i} = a{i - 1} + 1;" for i in range(1, 60)]
    lines.append("BEGIN { trace(a59); exit(0); }")
    script = tmp_path / "inl.d"
    script.write_text("\n".join(lines) + "\n")
    r = pydtrace("-s", str(script))
    assert (r.status, r.err) == (
        1,
        f"pydtrace: failed to compile script {script}: line 52: expression nested too deeply"
        " (more than 100 levels with inlines and translators expanded)\n",
    )
    ok = "\n".join(lines[:40]) + "\nBEGIN { trace(a38); exit(0); }\n"
    script.write_text(ok)
    r = pydtrace("-q", "-x", "engine=ptrace", "-s", str(script))
    assert (r.status, r.out, r.err) == (0, "39\n", "")


def test_inlines_doubling_are_refused_in_bounded_time(tmp_path) -> None:
    # a_n = a_{n-1} + a_{n-1}: 2^n nodes once expanded, as dtrace's code
    # generator would expand them; refused before that takes forever
    lines = ["inline int a0 = 1;"]
    lines += [f"inline int a{i} = a{i - 1} + a{i - 1};" for i in range(1, 200)]
    lines.append("BEGIN { trace(a199); exit(0); }")
    script = tmp_path / "dbl.d"
    script.write_text("\n".join(lines) + "\n")
    r = pydtrace("-s", str(script), timeout=60)
    assert (r.status, r.err) == (
        1,
        f"pydtrace: failed to compile script {script}: line 16: expression too large"
        " (more than 65536 nodes with inlines and translators expanded)\n",
    )


def test_inline_arrays_doubling_are_refused_in_bounded_time() -> None:
    text = "inline int f0[int x] = x + 1;\n"
    text += "".join(
        f"inline int f{i}[int x] = f{i - 1}[x] + f{i - 1}[x + 1];\n" for i in range(1, 40)
    )
    text += "BEGIN { trace(f39[1]); exit(0); }\n"
    with pytest.raises(CompileError) as e:
        compile_text(text)
    assert e.value.message.endswith(
        "expression too large (more than 65536 nodes with inlines and translators expanded)"
    )


def test_translators_doubling_are_refused() -> None:
    n = 30
    lines = [f"struct s{i} {{ int a; int b; }};" for i in range(n)]
    lines.append("translator struct s0 < int x > { a = x + 1; b = x + 2; };")
    lines += [
        f"translator struct s{i} < int x > {{ a = xlate<struct s{i - 1}>(x).a"
        f" + xlate<struct s{i - 1}>(x).b; b = 1; }};"
        for i in range(1, n)
    ]
    lines.append(f"BEGIN {{ trace(xlate<struct s{n - 1}>(1).a); exit(0); }}")
    with pytest.raises(CompileError) as e:
        compile_text("\n".join(lines) + "\n")
    assert e.value.message.endswith(
        "expression too large (more than 65536 nodes with inlines and translators expanded)"
    )
