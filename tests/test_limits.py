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
    with pytest.raises(CompileError) as e:
        trace("BEGIN { x = " + "!" * 500 + "1; }")
    assert e.value.message.endswith(': memory exhausted near "!"')


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


# --- script files ------------------------------------------------------------------------
def test_a_script_with_a_nul_byte_is_refused_at_once(tmp_path) -> None:
    # dtrace's lexer takes a NUL for the end of its input: a syntax error
    script = tmp_path / "nul.d"
    script.write_bytes(b"BEGIN\n{\n\0 exit(0); }\n")
    r = pydtrace("-s", str(script))
    assert (r.status, r.out, r.err) == (
        1,
        "",
        f"pydtrace: failed to compile script {script}: line 3: syntax error near end-of-input\n",
    )
    r = pydtrace("-s", "/dev/zero")
    assert (r.status, r.err) == (
        1,
        "pydtrace: failed to compile script /dev/zero: line 1: syntax error near end-of-input\n",
    )


def test_random_bytes_as_a_script_end_at_once() -> None:
    # it used to read /dev/urandom without end
    r = pydtrace("-s", "/dev/urandom", timeout=30)
    assert r.status == 1
    assert r.err.startswith("pydtrace: failed to compile script /dev/urandom: line ")
    assert r.err.endswith(": syntax error near end-of-input\n")


def test_a_nul_through_the_api_is_the_end_of_input() -> None:
    with pytest.raises(CompileError) as e:
        compile_text("BEGIN { x = 1;\0 exit(0); }")
    assert e.value.message.endswith(": syntax error near end-of-input")


def test_a_script_larger_than_16_mib_is_refused(tmp_path) -> None:
    from pydtrace.lang.limits import SCRIPT_BYTES
    from pydtrace.session import read_script

    script = tmp_path / "big.d"
    script.write_bytes(b" " * SCRIPT_BYTES)
    assert len(read_script(str(script))) == SCRIPT_BYTES
    with open(script, "ab") as f:
        f.write(b" ")
    r = pydtrace("-s", str(script))
    assert (r.status, r.err) == (1, f"pydtrace: failed to open {script}: File too large\n")


def test_an_endless_pipe_as_a_script_is_refused_after_16_mib(tmp_path) -> None:
    import os
    import subprocess

    from conftest import ROOT

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    feeder = subprocess.Popen(["sh", "-c", "while :; do echo '/* comment */'; done"],
                              stdout=subprocess.PIPE)  # fmt: skip
    try:
        p = subprocess.run([sys.executable, "-m", "pydtrace", "-s", "/dev/stdin"],
                           stdin=feeder.stdout, capture_output=True, text=True, env=env,
                           timeout=120)  # fmt: skip
    finally:
        feeder.kill()
        feeder.wait()
    assert (p.returncode, p.stderr) == (1, "pydtrace: failed to open /dev/stdin: File too large\n")


def test_a_preprocessor_bomb_is_refused(tmp_path) -> None:
    # ten levels of ten: 10**7 tokens once expanded, over 16 MiB of cpp output
    lines = ["#define A0 x+x+x+x+x+x+x+x+x+x"]
    lines += [f"#define A{i} " + " ".join([f"A{i - 1}"] * 10) for i in range(1, 7)]
    script = tmp_path / "bomb.d"
    script.write_text("\n".join(lines) + "\nBEGIN { A6; }\n")
    r = pydtrace("-C", "-s", str(script), timeout=120)
    assert (r.status, r.err) == (
        1,
        f"pydtrace: failed to compile script {script}: Preprocessor output too large"
        " (more than 16777216 bytes)\n",
    )


# --- numbers of any size -----------------------------------------------------------------
MANY = "1" * 5000  # int() refuses more than 4300 digits


@pytest.mark.parametrize(
    "text, end",
    [
        (f"BEGIN {{ x = {MANY}; }}", f"constant {MANY} results in integer overflow"),
        (f"BEGIN {{ x = 0{MANY}; }}", f"constant 0{MANY} results in integer overflow"),
        (f"int x[{MANY}];", f"constant {MANY} results in integer overflow"),
        (f"BEGIN {{ x = ${MANY}; }}", f"macro argument ${MANY} is not defined"),
        (f"BEGIN {{ x = $${MANY}; }}", f"macro argument $${MANY} is not defined"),
        (
            f"${MANY}:::BEGIN {{ }}",
            f'invalid probe description "${MANY}:::BEGIN": Undefined macro variable in probe description',
        ),
    ],
    ids=["decimal", "octal", "array size", "$N", "$$N", "probe description $N"],
)
def test_numbers_with_thousands_of_digits(text: str, end: str) -> None:
    with pytest.raises(CompileError) as e:
        compile_text(text)
    assert e.value.message.endswith(end)


def test_printf_widths_are_c_ints_as_in_dtrace() -> None:
    from pydtrace.lang.formats import parse_format

    # dtrace reads a width into an int: 10**30 is 2**30, 2**32 + 5 is 5 (it used
    # to be an OverflowError); a width that wraps negative left-justifies
    conv = parse_format("%1000000000000000000000000000000d").parts[0]
    assert (conv.width, conv.precision) == (1 << 30, None)
    conv = parse_format(f"%{'9' * 5000}.{'1' * 5000}d").parts[0]  # no int() of 5000 digits
    assert -(1 << 31) <= conv.width < 1 << 31 and -(1 << 31) <= conv.precision < 1 << 31
    r = trace(
        'BEGIN { printf("[%4294967301d][%-4294967300d][%.4294967299d][%4294967291d]", 1, 2, 3, 4);'
        " exit(0); }",
        options={"engine": "ptrace"},
        quiet=True,
    )
    assert (r.status, r.output, r.errors) == (0, "[    1][2   ][003][4    ]\n", "")


# --- options of any size -------------------------------------------------------------------
@pytest.mark.parametrize("size", ["1t", "16g", "2g"])
def test_a_buffer_too_big_for_a_bpf_map(size: str) -> None:
    # bpf_attr's sizes are 32 bits: dtrace checks them before bpf(2) (it was a struct.error)
    if not bpf_maps_ok():
        pytest.skip("needs bpf(2)")
    r = pydtrace("-q", "-x", "engine=ebpf", "-b", size, "-n", "BEGIN { exit(0); }")
    assert (r.status, r.out, r.err) == (
        1,
        "",
        "pydtrace: could not enable tracing: failed to create BPF map 'records': Too big\n",
    )


def test_a_huge_scratchsize_on_the_user_engine() -> None:
    # the scratch area grows as alloca() uses it (-x scratchsize=1t allocated it all at once)
    r = trace(
        'BEGIN { p = alloca(10); bcopy("abcdefghi", p, 10); trace(stringof(p)); exit(0); }',
        options={"engine": "ptrace", "scratchsize": "1t"},
        quiet=True,
    )
    assert (r.status, r.output, r.errors) == (0, "abcdefghi\n", "")
    r = trace(
        "BEGIN { p = alloca(1 << 60); } BEGIN { exit(0); }",
        options={"engine": "ptrace", "scratchsize": "9223372036854775807"},
        quiet=True,
    )
    assert r.errors.startswith(
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): out of scratch space"
    )


@pytest.mark.parametrize(
    "pid, err",
    [
        ("99999999999999999999", "pydtrace: invalid pid: 99999999999999999999\n"),  # ERANGE
        ("-9223372036854775809", "pydtrace: invalid pid: -9223372036854775809\n"),
        (
            "9223372036854775807",
            "pydtrace: failed to grab pid 9223372036854775807: No such process\n",
        ),
    ],
)
def test_pids_out_of_range(pid: str, err: str) -> None:
    r = pydtrace("-p", pid, "-n", "BEGIN { exit(0); }")
    assert (r.status, r.out, r.err) == (1, "", err)


@pytest.mark.parametrize("size", ["32k", "128k", "1g", "4294967295"])
def test_a_string_size_no_bpf_frame_holds_is_refused_at_once(size: str) -> None:
    # string copies are unrolled: 128k ended in an AsmError traceback, 1g ran for minutes
    if not bpf_maps_ok():
        pytest.skip("needs bpf(2)")
    r = pydtrace("-q", "-x", "engine=ebpf", "-x", f"strsize={size}", "-n",
                 'BEGIN { trace("a"); exit(0); }', timeout=60)  # fmt: skip
    assert (r.status, r.out, r.err) == (
        1,
        "",
        "pydtrace: could not enable tracing: the eBPF engine's frame is too large (lower strsize)\n",
    )


def test_globs_of_many_stars_match_in_linear_time() -> None:
    # found by tests/test_fuzz.py: 400 stars before a probe description hung the
    # regex the glob was translated to (backtracking, exponential in the stars)
    from pydtrace.probes.glob import gmatch

    assert gmatch("*" * 400 + "sys*call", "syscall")
    assert not gmatch("*a" * 60 + "b", "a" * 200)
    assert gmatch("*a" * 60, "a" * 200)
    r = pydtrace("-e", "-n", "*" * 400 + "syscall::openat:entry { @[execname] = count(); }")
    assert (r.status, r.out, r.err) == (0, "", "")
    r = pydtrace("-l", "-n", "*a" * 40 + ":::")
    assert (r.status, r.err) == (0, "")
    assert r.out == "   ID   PROVIDER            MODULE                          FUNCTION NAME\n"


@pytest.mark.parametrize("size", ["32k", "1t"])
def test_a_scratch_size_no_bpf_frame_holds_is_refused_at_once(size: str) -> None:
    # 32k blamed strsize; 1t ran past a minute
    if not bpf_maps_ok():
        pytest.skip("needs bpf(2)")
    r = pydtrace("-q", "-x", "engine=ebpf", "-x", f"scratchsize={size}", "-n",
                 'BEGIN { p = alloca(10); exit(0); }', timeout=60)  # fmt: skip
    assert (r.status, r.out, r.err) == (
        1,
        "",
        "pydtrace: could not enable tracing: the eBPF engine's frame is too large"
        " (lower scratchsize)\n",
    )
