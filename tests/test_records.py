"""A clause's record description (lang.records): what each action records,
built once by the checker for both engines and the consumer."""

from __future__ import annotations

import pytest

from pydtrace.lang import types as T
from pydtrace.lang.checker import Checker
from pydtrace.lang.errors import DError
from pydtrace.lang.parser import parse
from pydtrace.lang.program import ClauseInfo
from pydtrace.probes.catalogue import Probe

BEGIN = Probe(1, "dtrace", "", "", "BEGIN")


def clause(src: str) -> ClauseInfo:
    prog = Checker(lambda spec, line: [BEGIN], strsize=64).check(parse(src, filename="t.d"))
    return prog.clauses[0]


def test_printf_trace_printa_exit_system_are_described_in_program_order() -> None:
    c = clause(
        'BEGIN { @n["a"] = count(); printf("%d %s\\n", (char)1, "s"); '
        'if (1) { trace(2LL); } printa("%s %@d\\n", @n); system("echo %u", 3); exit(0); x = 1; }'
    )
    assert [a.kind for a in c.actions] == ["printf", "trace", "printa", "system", "exit"]
    printf, trace, printa, system, exit_ = c.actions
    assert printf.types == (T.CHAR, T.STRING)
    assert [(d.size, d.align) for d in printf.data] == [(1, 1), (0, 1)]
    assert printf.layout(64) == [(1, 1), (65, 1)]  # a string is strsize + 1 bytes
    assert printf.format is not None and printf.format.source == "%d %s\n"
    assert [p.name for p in printf.format.conversions()] == ["d", "s"]
    assert trace.types == (T.LLONG,) and trace.layout(64) == [(8, 8)]
    assert printa.data == () and printa.aggs == ("@n",)
    assert printa.format is not None and [p.agg for p in printa.format.all_conversions()] == [
        False,
        True,
    ]
    assert system.types == (T.INT,) and system.format is not None
    assert system.format.source == "echo %u"
    assert exit_.types == (T.INT,) and exit_.layout(64) == [(4, 4)]
    # each description names its call, which is how the engines find it
    assert all(c.action(a.call) is a for a in c.actions if a.call is not None)


def test_aggregation_actions_stacks_and_side_effects() -> None:
    c = clause("BEGIN { @n = count(); trunc(@n, 3); clear(@n); ustack(); chill(1); }")
    trunc, clear, stack = c.actions  # chill() records nothing: no description
    assert (trunc.kind, trunc.aggs, trunc.types) == ("trunc", ("@n",), (T.INT,))
    assert (clear.kind, clear.aggs, clear.data) == ("clear", ("@n",), ())
    assert (stack.kind, stack.name, stack.types) == ("stack", "ustack", (T.USTACK,))
    assert stack.layout(64) == [(8, 8)]


def test_a_traced_struct_is_recorded_by_reference_and_char_arrays_as_strings() -> None:
    c = clause(
        "struct s { int a; long b; }; struct s v; char name[8]; BEGIN { trace(v); trace(name); }"
    )
    obj, name = c.actions
    (d,) = obj.data
    assert d.by_ref and (d.size, d.align) == (16, 2)
    assert name.types == (T.STRING,)


def test_a_bad_system_format_is_a_compile_error() -> None:
    with pytest.raises(DError) as ei:
        clause('BEGIN { system("%q"); }')
    assert ei.value.message == "format conversion #1 is undefined: %q"
    assert ei.value.line == 1
