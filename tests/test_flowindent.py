"""-F (flowindent): the FUNCTION header and call-depth indented probe lines."""

from __future__ import annotations

import io

from pydtrace.consume.consumer import Consumer
from pydtrace.consume.records import Item, Record
from pydtrace.lang.records import Action, datum
from pydtrace.lang.types import INT
from pydtrace.probes.catalogue import Probe

BEGIN = Probe(1, "dtrace", "", "", "BEGIN")
OPEN_IN = Probe(10, "fbt", "vmlinux", "do_open", "entry")
OPEN_OUT = Probe(11, "fbt", "vmlinux", "do_open", "return")
READ_IN = Probe(12, "syscall", "vmlinux", "read", "entry")
READ_OUT = Probe(13, "syscall", "vmlinux", "read", "return")
GC_START = Probe(14, "jvm1", "libjvm", "gc", "method-entry")
CARPENTRY = Probe(15, "usdt1", "a.out", "build", "carpentry")
TRACE_INT = Action("trace", (datum(None, INT),))  # trace() of an int


def run(probes, testing=True, **options):
    out = io.StringIO()
    c = Consumer({}, {"flowindent": True, **options}, out, io.StringIO(), "dtrace", testing)
    for i, (p, clause) in enumerate(probes):
        items = [Item(TRACE_INT, (i,))] if not options.get("quiet") else []
        c.record(Record(p, 1, clause, items))
    return out.getvalue()


def test_nested_entry_and_return_lines_are_indented_by_two():
    text = run([(BEGIN, 0), (OPEN_IN, 1), (READ_IN, 2), (READ_OUT, 3), (OPEN_OUT, 4)])
    assert text.split("\n") == [
        "FUNCTION                                 ",
        "| :BEGIN                                            0",
        " -> do_open                                         1",
        "   => read                                          2",
        "   <= read                                          3",
        " <- do_open                                         4",
        "",
    ]


def test_without_testing_the_cpu_is_shown():
    text = run([(OPEN_IN, 0), (OPEN_OUT, 1)], testing=False)
    assert text == (
        "CPU FUNCTION                                 \n"
        "  1  -> do_open                                         0\n"
        "  1  <- do_open                                         1\n"
    )


def test_quiet_still_prints_the_header_and_the_function_but_no_newline():
    assert run([(OPEN_IN, 0), (OPEN_OUT, 1)], quiet=True) == (
        "FUNCTION" + " " * 33 + "\n" + " -> do_open" + " " * 31 + " <- do_open" + " " * 31
    )


def test_second_clause_of_the_same_entry_probe_is_not_a_new_level():
    text = run([(OPEN_IN, 0), (OPEN_IN, 1), (OPEN_OUT, 2)])
    assert text.split("\n")[1:4] == [
        " -> do_open                                         0",
        "  | do_open:entry                                   1",
        " <- do_open                                         2",
    ]


def test_dash_entry_names_count_other_names_do_not_and_indent_stays_at_zero():
    text = run([(OPEN_OUT, 0), (GC_START, 1), (CARPENTRY, 2)])
    assert text.split("\n")[1:4] == [
        " <- do_open                                         0",
        " -> gc                                              1",
        "  | build:carpentry                                 2",
    ]
