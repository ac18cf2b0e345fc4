"""Tests for the checker: dtrace's compile-time rules, tags and messages."""

from __future__ import annotations

import pytest

from conftest import FakeProbe
from pydtrace.lang import ast
from pydtrace.lang.checker import Checker
from pydtrace.lang.errors import DError
from pydtrace.lang.parser import parse
from pydtrace.lang.program import CheckedProgram


def check(src: str) -> CheckedProgram:
    return Checker(lambda spec, line: [FakeProbe()]).check(parse(src, filename="t.d"))


def error(src: str) -> tuple[str, int, str]:
    with pytest.raises(DError) as info:
        check(src)
    e = info.value
    return e.tag, e.line, e.message


def clause_body(src: str) -> list[ast.Stmt]:
    prog = check(src)
    return prog.clauses[0].body


# --- the quantizing functions' parameters --------------------------------------


@pytest.mark.parametrize(
    "call, tag, message",
    [
        (
            "lquantize(1, x, 10)",
            "D_LQUANT_BASETYPE",
            "lquantize( ) argument #1 must be an integer constant",
        ),
        (
            "lquantize(1, 0x100000000, 0x200000000)",
            "D_LQUANT_BASEVAL",
            "lquantize( ) argument #1 must be a 32-bit quantity",
        ),
        (
            "lquantize(1, 0, 0x100000000)",
            "D_LQUANT_LIMVAL",
            "lquantize( ) argument #2 must be a 32-bit quantity",
        ),
        (
            "lquantize(1, 10, 10)",
            "D_LQUANT_MISMATCH",
            "lquantize( ) base (argument #1) must be less than limit (argument #2)",
        ),
        (
            "lquantize(1, 0, 10, 0)",
            "D_LQUANT_STEPTYPE",
            "lquantize( ) argument #3 must be a non-zero positive integer constant",
        ),
        (
            "lquantize(1, 0, 10, 20)",
            "D_LQUANT_STEPLARGE",
            "lquantize( ) step (argument #3) too large: must have at least one quantization level",
        ),
        (
            "lquantize(1, 0, 100000)",
            "D_LQUANT_STEPSMALL",
            "lquantize( ) step (argument #3) too small: number of quantization levels must be a 16-bit quantity",
        ),
        (
            "llquantize(1, 1, 0, 2, 10)",
            "D_LLQUANT_FACTORVAL",
            "llquantize( ) argument #1 must be an unsigned 16-bit quantity greater than or equal to 2",
        ),
        (
            "llquantize(1, 10, -1, 2, 10)",
            "D_LLQUANT_LMAGVAL",
            "llquantize( ) argument #2 must be an unsigned 16-bit quantity",
        ),
        (
            "llquantize(1, 10, 3, 2, 10)",
            "D_LLQUANT_HMAGVAL",
            "llquantize( ) argument #3 (high magnitude) must be at least argument #2 (low magnitude)",
        ),
        (
            "llquantize(1, 10, 0, 20, 10)",
            "D_LLQUANT_HMAGVAL",
            "llquantize( ) argument #3 (high magnitude) will cause overflow of 64 bits",
        ),
        (
            "llquantize(1, 10, 0, 2, 0)",
            "D_LLQUANT_STEPTYPE",
            "llquantize( ) argument #4 must be a non-zero positive integer constant",
        ),
        (
            "llquantize(1, 10, 0, 2, 3)",
            "D_LLQUANT_STEPVAL",
            "llquantize() argument #4 (steps) must evenly divide argument #1 (factor) when steps<factor",
        ),
        (
            "llquantize(1, 10, 0, 2, 25)",
            "D_LLQUANT_STEPVAL",
            "llquantize() argument #4 (steps) must be a multiple of argument #1 (factor) when steps>factor",
        ),
    ],
)
def test_quantize_parameter_errors(call, tag, message):
    assert error(f"int x;\nBEGIN {{\n@a = {call};\n}}") == (tag, 3, message)


def test_lquantize_parameters_must_repeat():
    src = "BEGIN { @a = lquantize(1, 0, 10, 1); }\nBEGIN { @a = lquantize(1, 0, 20, 1); }"
    assert error(src) == (
        "D_LQUANT_MATCHLIM",
        2,
        "lquantize( ) limit (argument #2) doesn't match previous declaration: expected 10, found 20",
    )


def test_llquantize_parameters_must_repeat():
    src = "BEGIN { @a = llquantize(1, 10, 0, 2, 10); }\nBEGIN { @a = llquantize(1, 10, 1, 2, 10); }"
    assert error(src) == (
        "D_LLQUANT_MATCHLMAG",
        2,
        "llquantize() lmag (argument #2) doesn't match previous declaration: expected 0, found 1",
    )


def test_aggregating_function_redefined():
    src = "BEGIN { @a = count(); }\nBEGIN { @a = sum(1); }"
    assert error(src) == (
        "D_AGG_REDEF",
        2,
        "aggregation redefined: @a\n\t current: @a = sum( )\n\tprevious: @a = count( ) : line 1",
    )


# --- aggregations misused -----------------------------------------------------


@pytest.mark.parametrize(
    "body, tag, message",
    [
        (
            "@a[1][2] = count();",
            "D_AGG_MDIM",
            "improper attempt to reference @a as a multi-dimensional array",
        ),
        ("@a[1];", "D_AGG_NULL", "expression has null effect: @a"),
        ("@a;", "D_IDENT_UNDEF", "failed to resolve @a: Unknown variable name"),
        (
            "avg(1);",
            "D_CG_EXPR",
            "aggregating function avg( ) may not be called from a D expression (D program context required)",
        ),
        ("@a = nosuch();", "D_FUNC_UNDEF", "undefined function name: nosuch"),
        (
            "@[trace(1)] = count();",
            "D_KEY_TYPE",
            "void expression may not be used as aggregation index: key #1",
        ),
        (
            "clear(count());",
            "D_CLEAR_AGGARG",
            "clear( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: void",
        ),
        (
            "trunc(1);",
            "D_TRUNC_AGGARG",
            "trunc( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: int",
        ),
        (
            "normalize(1, 2);",
            "D_NORMALIZE_AGGARG",
            "normalize( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: int",
        ),
    ],
)
def test_aggregation_misuse(body, tag, message):
    assert error(f"BEGIN\n{{\n{body}\n}}") == (tag, 3, message)


def test_aggregation_as_key():
    assert error("BEGIN {\n@a = count();\n@[@a] = count();\n}") == (
        "D_KEY_TYPE",
        3,
        "aggregation expression may not be used as aggregation index: key #1",
    )


# --- actions used as values ---------------------------------------------------


@pytest.mark.parametrize(
    "body, tag, message",
    [
        (
            "exit(exit(0));",
            "D_PROTO_ARG",
            "exit( ) argument #1 is incompatible with prototype:\n\tprototype: int\n\t argument: void",
        ),
        ("trace(trace(1));", "D_TRACE_VOID", "trace( ) may not be applied to a void expression"),
        ("x = 1 ? trace(1) : 2;", "D_OP_ACT", "action cannot be used in a conditional context"),
        (
            "printf(1);",
            "D_PROTO_ARG",
            "printf( ) argument #1 is incompatible with prototype:\n\tprototype: string\n\t argument: int",
        ),
        (
            "setopt(1);",
            "D_PROTO_ARG",
            "setopt( ) argument #1 is incompatible with prototype:\n\tprototype: char *\n\t argument: int",
        ),
        (
            'strtok("a", 12);',
            "D_PROTO_ARG",
            "strtok( ) argument #2 is incompatible with prototype:\n\tprototype: char *\n\t argument: int",
        ),
    ],
)
def test_actions_and_prototypes(body, tag, message):
    assert error(f"BEGIN\n{{\n{body}\n}}") == (tag, 3, message)


def test_pointer_parameter_takes_null():
    check('BEGIN { x = strtok(NULL, " "); }')


# --- declarations and implicit variables --------------------------------------


def test_storage_class_alone_declares_int():
    prog = check("self x;\nBEGIN { self->x = 1; }")
    assert prog.tlocals["x"].type.name == "int"


def test_bool_type():
    prog = check("bool g;\nBEGIN { g = 1; }")
    assert prog.globals["g"].type.name == "bool"
    assert prog.globals["g"].type.size == 1


def test_predicate_reads_variable_the_actions_create():
    prog = check("BEGIN /n < 5/ { n++; }")
    assert prog.globals["n"].type.name == "int64_t"


def test_predicate_still_reports_truly_unknown_names():
    assert error("BEGIN\n/nosuch/\n{ x = 1; }") == (
        "D_IDENT_UNDEF",
        2,
        "failed to resolve nosuch: Unknown variable name",
    )


def test_string_takes_null_and_compares_with_it():
    check('string s;\nBEGIN { s = NULL; x = s == NULL; y = "a" != NULL; }')


def test_string_scalar_is_indexable():
    body = clause_body("string s;\nBEGIN { x = s[1]; }")
    assign = body[0].expr
    assert assign.value.ref == ("strchar", None)


def test_dynamic_struct_takes_zero():
    check(
        "this struct { int a; } val;\nBEGIN { this->val.a = 1; self->a = this->val; self->a = 0; }"
    )
    assert error("this struct { int a; } val;\nBEGIN {\nthis->val = 1;\n}") == (
        "D_OP_INCOMPAT",
        3,
        'operands have incompatible types: "struct (anon)" = "int"',
    )


def test_action_statement_has_pc():
    body = clause_body("BEGIN { x = 1; trace(x); }")
    assert body[1].expr.pc > body[0].expr.pc


# --- declarations, prototypes and misc. errors ---------------------------------


@pytest.mark.parametrize(
    "src, tag, line, message",
    [
        ("self this int x;", "D_DECL_CLASS", 1, "only one storage class allowed in a declaration"),
        (
            "int foo(static int);",
            "D_DECL_PARMCLASS",
            1,
            "inappropriate storage class for function or associative array parameter",
        ),
        ("int a(void v);", "D_DECL_PROTO_NAME", 1, "void parameter may not have a name: v"),
        (
            "int a(int b[int]);",
            "D_DECL_PROTO_TYPE",
            1,
            "function prototype may not use parameter of type dynamic variable: b, parameter #1",
        ),
        (
            "int a[...];",
            "D_DECL_PROTO_VARARGS",
            1,
            "array prototype may not use a variable-length argument list",
        ),
        ("int foo(int, void);", "D_DECL_PROTO_VOID", 1, "void must be sole parameter"),
        ("extern int;", "D_DECL_USELESS", 1, "useless declaration"),
        (
            "enum e {\n\tx = 3,\n\tx = 4\n};",
            "D_UNKNOWN",
            4,
            "failed to define enumerator 'x': Duplicate member or variable name",
        ),
        (
            "BEGIN {\nx = (long short)0;\n}",
            "D_UNKNOWN",
            2,
            "failed to resolve type short long : Unknown type name",
        ),
        (
            "int a[4];\nBEGIN\n/a/\n{\n}",
            "D_PRED_SCALAR",
            5,
            "predicate result must be of scalar type",
        ),
        (
            'BEGIN {\nc = "a" ? 1 : 2;\n}',
            "D_OP_SCALAR",
            2,
            "operator ?: expression must be of scalar type",
        ),
        (
            "BEGIN {\nthis->x[1] = 2;\n}",
            "D_ARR_LOCAL",
            2,
            "local variables may not be used as associative arrays: x",
        ),
        (
            "int i;\nBEGIN {\np = &i;\n}",
            "D_ADDROF_VAR",
            3,
            "cannot take address of dynamic variable",
        ),
        (
            "BEGIN {\n@a = count();\ntrace(&@a);\n}",
            "D_ADDROF_VAR",
            3,
            "cannot take address of dynamic variable",
        ),
        (
            "int p;\nBEGIN {\np -= alloca(10);\n}",
            "D_OP_VFPTR",
            3,
            "operator -= requires left-hand scalar operand of known size",
        ),
        ("BEGIN {\np -= trace(0);\n}", "D_VAR_UNDEF", 2, "p has not yet been declared or assigned"),
        (
            'BEGIN {\nmutex_owned("x");\n}',
            "D_PROTO_ARG",
            2,
            "mutex_owned( ) argument #1 is incompatible with prototype:\n\tprototype: struct mutex *\n\t argument: string",
        ),
        (
            'BEGIN {\nx[1, "a"] = 1;\nx[1, 2] = 1;\n}',
            "D_PROTO_ARG",
            3,
            "x[ ] key #2 is incompatible with prototype:\n\tprototype: string\n\t      key: int",
        ),
        (
            'BEGIN {\n@foo[1] = sum(1);\n@bar["a"] = sum(2);\nprinta("%d %@d %@d", @foo, @bar);\n}',
            "D_PRINTA_AGGPROTO",
            4,
            "printa( ): @bar[ ] key #1 is incompatible with @foo:\n      foo key #1: int\n      bar key #1: string",
        ),
    ],
)
def test_declaration_and_expression_errors(src, tag, line, message):
    assert error(src) == (tag, line, message)


def test_extern_array_without_dimension_is_accepted():
    check("extern int a1[];\nextern int a3[123][456];\nBEGIN { exit(0); }")


# --- translators ------------------------------------------------------------------

_XL_TYPES = "struct in { int i; char c; };\nstruct out { int oi; char *op; };\n"


@pytest.mark.parametrize(
    "src, tag, line, message",
    [
        (
            "translator int < struct in *p >\n{\n};",
            "D_XLATE_SOU",
            5,
            "translator output type must be a struct or union",
        ),
        (
            "translator struct out < struct in *p >\n{\nnope = p->i;\n};",
            "D_XLATE_MEMB",
            6,
            "translator member nope is not a member of struct out",
        ),
        (
            "translator struct out < struct in *p >\n{\noi = p->nope;\n};",
            "D_TYPE_MEMBER",
            5,
            "nope is not a member of struct in",
        ),
        (
            "translator struct out < struct in *p >\n{\nop = p->c;\n};",
            "D_XLATE_INCOMPAT",
            6,
            'translator member op definition uses incompatible types: "char *" = "char"',
        ),
        (
            "translator struct out < struct in *p >\n{\noi = p->i;\n};\ntranslator struct out < struct in *q >\n{\n};",
            "D_XLATE_REDECL",
            9,
            "translator from struct in * to struct out has already been declared",
        ),
        (
            "translator struct out < struct in *p >\n{\noi = p->i;\n};\nstruct in f;\nBEGIN {\nx = xlate<struct out>(f).oi;\n}",
            "D_XLATE_NONE",
            9,
            'cannot translate from "struct in" to "struct out"',
        ),
    ],
)
def test_translator_errors(src, tag, line, message):
    assert error(_XL_TYPES + src) == (tag, line, message)


def test_translator_members_see_the_input():
    src = (
        _XL_TYPES
        + "translator struct out < struct in *p >\n{\noi = p->i;\nop = 0;\n};\nBEGIN { exit(0); }"
    )
    program = parse(src, filename="t.d")
    Checker(lambda spec, line: [FakeProbe()]).check(program)
    node = next(i for i in program.items if isinstance(i, ast.Translator))
    assert (node.out_type.name, node.in_type.name) == ("struct out", "struct in *")
    member = node.members[0][1]  # p->i
    assert member.base.ref == ("xlarg", None)
    assert member.ctype.name == "int"


@pytest.mark.parametrize(
    "src, tag, line, message",
    [
        (
            "int x[5];\nBEGIN {\nx[1, 2] = 1;\n}",
            "D_ARR_BADREF",
            3,
            "cannot access scalar x as an associative array",
        ),
        (
            "int x[void, char];",
            "D_DECL_PROTO_TYPE",
            1,
            "array prototype may not use parameter of type void: (anonymous), parameter #1",
        ),
        (
            "BEGIN\n/1/\n{\na[x]++;\n}",
            "D_IDENT_UNDEF",
            4,
            "failed to resolve x: Unknown variable name",
        ),
    ],
)
def test_array_errors(src, tag, line, message):
    assert error(src) == (tag, line, message)


@pytest.mark.parametrize(
    "src, tag, line, message",
    [
        ("struct s {\n\tint f();\n};", "D_DECL_VOIDOBJ", 2, "cannot have void member: f"),
        (
            "struct s {\n\tint a : 1;\n\tint b : 0;\n};",
            "D_DECL_BFCONST",
            3,
            "positive integral constant expression expected as bit-field size",
        ),
    ],
)
def test_member_errors(src, tag, line, message):
    assert error(src) == (tag, line, message)


def test_sizes_of_constants_and_uint():
    body = clause_body("BEGIN { a = sizeof('c'); b = sizeof(\"hi\"); c = sizeof(uint); }")
    assert [s.expr.value.value for s in body] == [4, 3, 4]


def test_alloca_larger_than_scratch_space():
    assert error("BEGIN {\nx = alloca(300);\n}") == (
        "D_ALLOCA_SIZE",
        2,
        "alloca(300) size larger than scratchsize 256",
    )
    prog = Checker(lambda spec, line: [FakeProbe()], scratchsize=1000).check(
        parse("BEGIN { x = alloca(300); }")
    )
    assert prog.clauses


def test_speculation_forbids_exit_and_destructive_actions(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    cases = {
        "BEGIN { s = speculation(); speculate(s); exit(0); }": "[D_EXIT_SPEC] exit( ) may not follow speculate( )",
        "BEGIN { s = speculation(); speculate(s); breakpoint(); }": "[D_ACT_SPEC] destructive actions may not follow speculate( )",
    }
    for prog, msg in cases.items():
        p = subprocess.run(
            [sys.executable, "-m", "pydtrace", "-w", "-xerrtags", "-n", prog],
            capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src")},
        )  # fmt: skip
        assert (p.returncode, p.stderr) == (1, f"pydtrace: invalid probe specifier {prog}: {msg}\n")


# --- D's integer conversions (dt_type_promote), not C's -------------------------------


def _type_of(decls: str, expr: str) -> str:
    prog = check(f"{decls} BEGIN {{ x = {expr}; }}")
    return prog.globals["x"].type.name


@pytest.mark.parametrize(
    "decls, expr, want",
    [
        # no promotion to int: the operand of greater rank (bits, +1 if unsigned) wins
        ("unsigned char C; char c;", "C + c", "unsigned char"),
        ("char c;", "c + c", "char"),
        ("short s; unsigned char C;", "s * C", "short"),
        ("unsigned short S; short s;", "s - S", "unsigned short"),
        ("int i; unsigned short S;", "S & i", "int"),
        ("unsigned int I; long l;", "I + l", "long"),
        ("char c;", "c + 1", "int"),  # an int constant is an int
        ("char c;", "-c", "char"),  # unary operators keep the operand's type
        ("unsigned short S;", "~S", "unsigned short"),
        ("char c; long l;", "c << l", "char"),  # shifts take the left operand's type
        ("char c; unsigned char C;", "c ? c : C", "unsigned char"),
    ],
)
def test_integer_operands_convert_as_dtrace_does(decls: str, expr: str, want: str) -> None:
    assert _type_of(decls, expr) == want


def test_character_constants_longer_than_an_int_are_long() -> None:
    assert _type_of("", "'abcd'") == "int"
    assert _type_of("", "'\\377\\377\\377\\377'") == "unsigned int"
    assert _type_of("", "'abcdefgh'") == "long"


def test_operator_errors_in_a_predicate_name_the_line_after_it() -> None:
    # dtrace cooks the predicate once it has read the next token (the `{` here)
    src = 'BEGIN\n/"a" & "b"/\n{\n\texit(0);\n}'
    assert error(src) == ("D_OP_INT", 3, "operator & requires operands of integral type")
    assert error('BEGIN\n/"a" && 1/ {}')[:2] == ("D_OP_SCALAR", 2)


def test_inline_with_parameters() -> None:
    prog = check("inline int add[int x, int y] = x + y; BEGIN { z = add[1, 2]; }")
    (stmt,) = prog.clauses[0].body
    kind, body = stmt.expr.value.ref  # the inline's body with 1 and 2 put in
    assert kind == "inline"
    assert (body.op, body.left.value, body.right.value) == ("+", 1, 2)
    assert error("inline int f[int x] = x; BEGIN { z = f[1, 2]; }") == (
        "D_PROTO_LEN",
        1,
        "f[ ] prototype mismatch: 2 keys passed, 1 expected",
    )
