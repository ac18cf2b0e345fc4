"""Tests for the checker: dtrace's compile-time rules, tags and messages."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pydtrace.lang import ast
from pydtrace.lang.checker import Checker
from pydtrace.lang.errors import DError
from pydtrace.lang.parser import parse
from pydtrace.lang.program import CheckedProgram


@dataclass
class FakeProbe:
    provider: str = "dtrace"
    module: str = ""
    function: str = ""
    name: str = "BEGIN"
    argtypes: tuple = ()


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
        ("lquantize(1, x, 10)", "D_LQUANT_BASETYPE", "lquantize( ) argument #1 must be an integer constant"),
        ("lquantize(1, 0x100000000, 0x200000000)", "D_LQUANT_BASEVAL", "lquantize( ) argument #1 must be a 32-bit quantity"),
        ("lquantize(1, 0, 0x100000000)", "D_LQUANT_LIMVAL", "lquantize( ) argument #2 must be a 32-bit quantity"),
        ("lquantize(1, 10, 10)", "D_LQUANT_MISMATCH", "lquantize( ) base (argument #1) must be less than limit (argument #2)"),
        ("lquantize(1, 0, 10, 0)", "D_LQUANT_STEPTYPE", "lquantize( ) argument #3 must be a non-zero positive integer constant"),
        ("lquantize(1, 0, 10, 20)", "D_LQUANT_STEPLARGE", "lquantize( ) step (argument #3) too large: must have at least one quantization level"),
        ("lquantize(1, 0, 100000)", "D_LQUANT_STEPSMALL", "lquantize( ) step (argument #3) too small: number of quantization levels must be a 16-bit quantity"),
        ("llquantize(1, 1, 0, 2, 10)", "D_LLQUANT_FACTORVAL", "llquantize( ) argument #1 must be an unsigned 16-bit quantity greater than or equal to 2"),
        ("llquantize(1, 10, -1, 2, 10)", "D_LLQUANT_LMAGVAL", "llquantize( ) argument #2 must be an unsigned 16-bit quantity"),
        ("llquantize(1, 10, 3, 2, 10)", "D_LLQUANT_HMAGVAL", "llquantize( ) argument #3 (high magnitude) must be at least argument #2 (low magnitude)"),
        ("llquantize(1, 10, 0, 20, 10)", "D_LLQUANT_HMAGVAL", "llquantize( ) argument #3 (high magnitude) will cause overflow of 64 bits"),
        ("llquantize(1, 10, 0, 2, 0)", "D_LLQUANT_STEPTYPE", "llquantize( ) argument #4 must be a non-zero positive integer constant"),
        ("llquantize(1, 10, 0, 2, 3)", "D_LLQUANT_STEPVAL", "llquantize() argument #4 (steps) must evenly divide argument #1 (factor) when steps<factor"),
        ("llquantize(1, 10, 0, 2, 25)", "D_LLQUANT_STEPVAL", "llquantize() argument #4 (steps) must be a multiple of argument #1 (factor) when steps>factor"),
    ],
)
def test_quantize_parameter_errors(call, tag, message):
    assert error(f"int x;\nBEGIN {{\n@a = {call};\n}}") == (tag, 3, message)


def test_lquantize_parameters_must_repeat():
    src = "BEGIN { @a = lquantize(1, 0, 10, 1); }\nBEGIN { @a = lquantize(1, 0, 20, 1); }"
    assert error(src) == ("D_LQUANT_MATCHLIM", 2, "lquantize( ) limit (argument #2) doesn't match previous declaration: expected 10, found 20")


def test_llquantize_parameters_must_repeat():
    src = "BEGIN { @a = llquantize(1, 10, 0, 2, 10); }\nBEGIN { @a = llquantize(1, 10, 1, 2, 10); }"
    assert error(src) == ("D_LLQUANT_MATCHLMAG", 2, "llquantize() lmag (argument #2) doesn't match previous declaration: expected 0, found 1")


def test_aggregating_function_redefined():
    src = "BEGIN { @a = count(); }\nBEGIN { @a = sum(1); }"
    assert error(src) == ("D_AGG_REDEF", 2, "aggregation redefined: @a\n\t current: @a = sum( )\n\tprevious: @a = count( ) : line 1")


# --- aggregations misused -----------------------------------------------------


@pytest.mark.parametrize(
    "body, tag, message",
    [
        ("@a[1][2] = count();", "D_AGG_MDIM", "improper attempt to reference @a as a multi-dimensional array"),
        ("@a[1];", "D_AGG_NULL", "expression has null effect: @a"),
        ("@a;", "D_IDENT_UNDEF", "failed to resolve @a: Unknown variable name"),
        ("avg(1);", "D_CG_EXPR", "aggregating function avg( ) may not be called from a D expression (D program context required)"),
        ("@a = nosuch();", "D_FUNC_UNDEF", "undefined function name: nosuch"),
        ("@[trace(1)] = count();", "D_KEY_TYPE", "void expression may not be used as aggregation index: key #1"),
        ("clear(count());", "D_CLEAR_AGGARG", "clear( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: void"),
        ("trunc(1);", "D_TRUNC_AGGARG", "trunc( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: int"),
        ("normalize(1, 2);", "D_NORMALIZE_AGGARG", "normalize( ) argument #1 is incompatible with prototype:\n\tprototype: aggregation\n\t argument: int"),
    ],
)
def test_aggregation_misuse(body, tag, message):
    assert error(f"BEGIN\n{{\n{body}\n}}") == (tag, 3, message)


def test_aggregation_as_key():
    assert error("BEGIN {\n@a = count();\n@[@a] = count();\n}") == (
        "D_KEY_TYPE", 3, "aggregation expression may not be used as aggregation index: key #1")


# --- actions used as values ---------------------------------------------------


@pytest.mark.parametrize(
    "body, tag, message",
    [
        ("exit(exit(0));", "D_PROTO_ARG", "exit( ) argument #1 is incompatible with prototype:\n\tprototype: int\n\t argument: void"),
        ("trace(trace(1));", "D_TRACE_VOID", "trace( ) may not be applied to a void expression"),
        ("x = 1 ? trace(1) : 2;", "D_OP_ACT", "action cannot be used in a conditional context"),
        ("printf(1);", "D_PROTO_ARG", "printf( ) argument #1 is incompatible with prototype:\n\tprototype: string\n\t argument: int"),
        ("setopt(1);", "D_PROTO_ARG", "setopt( ) argument #1 is incompatible with prototype:\n\tprototype: char *\n\t argument: int"),
        ('strtok("a", 12);', "D_PROTO_ARG", "strtok( ) argument #2 is incompatible with prototype:\n\tprototype: char *\n\t argument: int"),
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
    assert error("BEGIN\n/nosuch/\n{ x = 1; }") == ("D_IDENT_UNDEF", 2, "failed to resolve nosuch: Unknown variable name")


def test_string_takes_null_and_compares_with_it():
    check('string s;\nBEGIN { s = NULL; x = s == NULL; y = "a" != NULL; }')


def test_string_scalar_is_indexable():
    body = clause_body("string s;\nBEGIN { x = s[1]; }")
    assign = body[0].expr
    assert assign.value.ref == ("strchar", None)


def test_dynamic_struct_takes_zero():
    check("this struct { int a; } val;\nBEGIN { this->val.a = 1; self->a = this->val; self->a = 0; }")
    assert error("this struct { int a; } val;\nBEGIN {\nthis->val = 1;\n}") == (
        "D_OP_INCOMPAT", 3, 'operands have incompatible types: "struct (anon)" = "int"')


def test_action_statement_has_pc():
    body = clause_body("BEGIN { x = 1; trace(x); }")
    assert body[1].expr.pc > body[0].expr.pc
