# ruff: noqa: UP031  (printf-style formats mirror the C formats dtrace uses)
"""Printing aggregations byte for byte as dtrace(1): rows, histograms, order, printa, exit."""

import pytest

from pydtrace.consume.aggprint import (
    format_aggregation,
    format_exit,
    format_key_elem,
    format_printa,
    sort_keys,
)
from pydtrace.consume.aggregation import Aggregation, AggSpec
from pydtrace.lang.types import CHAR, INT, LONG, SHORT, STRING

HEADER = "           value  ------------- Distribution ------------- count    \n"


def mk(func, keytypes=(), params=(), aid=0, name="@x"):
    return Aggregation(AggSpec(aid, name, func, tuple(params), list(keytypes), LONG))


def row(label, bar, count):
    return "%16s %s %-9d\n" % (label, bar, count)


def pos_bar(d):
    return "|" + "@" * d + " " * (40 - d)


def neg_bar(d):
    return " " * (40 - d) + "@" * d + "|"


def fmt(text):
    from pydtrace.lang.formats import parse_format

    return parse_format(text, "printa")


# --- key elements and scalar rows ------------------------------------------------------------


def test_key_element_widths():
    assert format_key_elem(-2, LONG) == " " * 15 + "-2"
    assert format_key_elem(-2, INT) == "       -2"
    assert format_key_elem(-2, SHORT) == " 65534"
    assert format_key_elem(-2, CHAR) == " 254"
    assert format_key_elem("read", STRING) == "  read" + " " * 46


def test_string_key_and_count_row():
    a = mk("count", [STRING])
    for _ in range(150):
        a.update(("write() calls",))
    assert format_aggregation(a, {}) == "  write() calls" + " " * 37 + " " * 14 + "150\n"


def test_keyless_and_int_key_rows():
    a = mk("sum")
    a.update((), 10)
    assert format_aggregation(a, {}) == "               10\n"
    b = mk("sum", [INT])
    b.update((3,), 3)
    b.update((-2,), -2)
    assert format_aggregation(b, {}) == "       -2               -2\n        3                3\n"


def test_avg_stddev_rows():
    a = mk("avg")
    a.update((), 0)
    a.update((), -900)
    assert format_aggregation(a, {}) == "             -450\n"
    s = mk("stddev")
    s.update((), 0x10)
    s.update((), 0x20)
    assert format_aggregation(s, {}) == "                8\n"


def test_normalize_divides_at_print_time():
    a = mk("sum")
    a.update((), 19000)
    a.normalize(5)
    assert format_aggregation(a, {}) == "             3800\n"
    a.denormalize()
    assert format_aggregation(a, {}) == "            19000\n"
    v = mk("avg")
    for x in (10, 20, 40):
        v.update((), x)
    v.normalize(2)  # 70 / 2 / 3
    assert format_aggregation(v, {}) == "               11\n"


def test_normalize_negative_sum_divides_unsigned():
    # dtrace divides the 64-bit pattern by an unsigned normal
    a = mk("sum")
    a.update((), -10)
    a.normalize(2)
    assert format_aggregation(a, {}) == " %16d\n" % (((1 << 64) - 10) // 2)


def test_cleared_min_shows_int64_max():
    a = mk("min", [INT])
    a.update((1,), 4)
    a.clear()
    assert format_aggregation(a, {}) == "        1 9223372036854775807\n"


# --- ordering ----------------------------------------------------------------------------


def _sums(pairs, keytypes=(INT,)):
    a = mk("sum", keytypes)
    for k, v in pairs:
        a.update(k, v)
    return a


def test_sorted_by_value_then_unsigned_key():
    a = _sums([((5,), 1), ((-1,), 0), ((2,), 0), ((7,), -3)])
    assert sort_keys([a], {}) == [(7,), (2,), (-1,), (5,)]


def test_sort_options():
    a = _sums([((1, "b"), 30), ((2, "a"), 20), ((3, "c"), 10)], (INT, STRING))
    assert sort_keys([a], {}) == [(3, "c"), (2, "a"), (1, "b")]
    assert sort_keys([a], {"aggsortkey": True}) == [(1, "b"), (2, "a"), (3, "c")]
    assert sort_keys([a], {"aggsortkey": True, "aggsortkeypos": "1"}) == [
        (2, "a"),
        (1, "b"),
        (3, "c"),
    ]
    assert sort_keys([a], {"aggsortrev": True}) == [(1, "b"), (2, "a"), (3, "c")]
    assert sort_keys([a], {"aggsortkey": "false", "aggsortrev": True}) == [
        (1, "b"),
        (2, "a"),
        (3, "c"),
    ]


def test_value_sort_with_keypos_breaks_ties_on_that_key():
    a = _sums([((1, 3), 0), ((2, 2), 0), ((3, 1), 0)], (INT, INT))
    assert sort_keys([a], {"aggsortkeypos": "1"}) == [(3, 1), (2, 2), (1, 3)]


def test_quantize_sorted_by_weighted_sum():
    q = mk("quantize", [INT])
    q.update((1,), 1, -2)
    q.update((2,), 1, 5)
    q.update((3,), 1, 1)
    assert sort_keys([q], {}) == [(1,), (3,), (2,)]


# --- histograms --------------------------------------------------------------------------


def test_keyed_quantize():
    q = mk("quantize", [INT])
    q.update((0,), 0)
    q.update((100,), 100)
    expected = (
        "        0\n" + HEADER
        + row(-1, pos_bar(0), 0) + row(0, pos_bar(40), 1) + row(1, pos_bar(0), 0) + "\n"
        + "      100\n" + HEADER
        + row(32, pos_bar(0), 0) + row(64, pos_bar(40), 1) + row(128, pos_bar(0), 0) + "\n"
    )  # fmt: skip
    assert format_aggregation(q, {}) == expected


def test_histogram_bar_rounds_half_up():
    q = mk("quantize")
    q.update((), 1)
    q.update((), 2, 79)
    body = format_aggregation(q, {})
    # 1*40/80 = 0.5 -> 1, 79*40/80 = 39.5 -> 40
    assert (
        body
        == "\n"
        + HEADER
        + row(0, pos_bar(0), 0)
        + row(1, pos_bar(1), 1)
        + row(2, pos_bar(40), 79)
        + row(4, pos_bar(0), 0)
        + "\n"
    )


def test_negative_only_histogram():
    q = mk("quantize")
    q.update((), 1, -12)
    assert format_aggregation(q, {}) == (
        "\n"
        + HEADER
        + row(0, neg_bar(0), 0).replace("| ", "| ")
        + row(1, neg_bar(40), -12)
        + row(2, neg_bar(0), 0)
        + "\n"
    )


def test_mixed_sign_histogram():
    q = mk("quantize")
    q.update((), -2, -2)
    q.update((), 1, 1)
    q.update((), 4, 7)
    lines = format_aggregation(q, {}).split("\n")
    assert lines[1] == HEADER.rstrip("\n")
    got = lines[2:-2]
    half = " " * 20
    assert got == [
        "%16d " % -4 + half + "|" + half + " 0        ",
        "%16d " % -2 + " " * 16 + "@@@@|" + half + " -2       ",
        "%16d " % -1 + half + "|" + half + " 0        ",
        "%16d " % 0 + half + "|" + half + " 0        ",
        "%16d " % 1 + half + "|" + "@@" + " " * 18 + " 1        ",
        "%16d " % 2 + half + "|" + half + " 0        ",
        "%16d " % 4 + half + "|" + "@" * 14 + " " * 6 + " 7        ",
        "%16d " % 8 + half + "|" + half + " 0        ",
    ]


def test_all_zero_histograms():
    q = mk("quantize")
    q.update((), 5, 0)
    assert (
        format_aggregation(q, {})
        == "\n" + HEADER + "".join(row(v, pos_bar(0), 0) for v in (-1, 0, 1)) + "\n"
    )
    lq = mk("lquantize", (), (-10, 10, 1))
    lq.update((), 3, 0)
    assert (
        format_aggregation(lq, {})
        == "\n" + HEADER + "".join(row(v, pos_bar(0), 0) for v in ("< -10", -10, -9)) + "\n"
    )


def test_lquantize_outer_labels_and_range():
    lq = mk("lquantize", [STRING], (0, 10, 2))
    lq.update(("k",), -5)
    lq.update(("k",), 4)
    lq.update(("k",), 4)
    lq.update(("k",), 20)
    expected = (
        "  k" + " " * 49 + "\n" + HEADER
        + row("< 0", pos_bar(10), 1) + row(0, pos_bar(0), 0) + row(2, pos_bar(0), 0)
        + row(4, pos_bar(20), 2) + row(6, pos_bar(0), 0) + row(8, pos_bar(0), 0)
        + row(">= 10", pos_bar(10), 1) + "\n"
    )  # fmt: skip
    assert format_aggregation(lq, {}) == expected


def test_llquantize_rows_and_labels():
    ll = mk("llquantize", (), (10, 0, 5, 5))
    ll.update((), 320, 8)
    assert (
        format_aggregation(ll, {})
        == "\n"
        + HEADER
        + row(100, pos_bar(0), 0)
        + row(200, pos_bar(40), 8)
        + row(400, pos_bar(0), 0)
        + "\n"
    )


def test_llquantize_zero_bin_names():
    both = mk("llquantize", (), (3, 3, 5, 27))
    both.update((), 5)
    assert format_aggregation(both, {}) == (
        "\n"
        + HEADER
        + row(-27, pos_bar(0), 0)
        + row("abs() < 27", pos_bar(40), 1)
        + row(27, pos_bar(0), 0)
        + "\n"
    )
    above = mk("llquantize", (), (3, 3, 5, 27))
    above.update((), 30)
    text = format_aggregation(above, {})
    assert row(27, pos_bar(0), 0) in text and row(30, pos_bar(40), 1) in text
    zero = mk("llquantize", (), (4, 0, 1, 2))
    zero.update((), 0)
    assert row(0, pos_bar(40), 1) in format_aggregation(zero, {})


def test_llquantize_outer_bins():
    ll = mk("llquantize", (), (4, 0, 1, 2))
    ll.update((), -20)
    ll.update((), 20)
    text = format_aggregation(ll, {})
    assert row("<= -16", pos_bar(20), 1) in text
    assert row(">= 16", pos_bar(20), 1) in text


def test_histogram_counts_normalized():
    q = mk("quantize")
    q.update((), 1, 10)
    q.normalize(5)
    assert row(1, pos_bar(40), 2) in format_aggregation(q, {})


# --- printa ----------------------------------------------------------------------------------


def test_printa_default_adds_newline_and_marks_printed():
    a = _sums([((1,), 5)])
    assert format_printa(None, [a], {}) == "\n        1                5\n"
    assert a.printed
    assert format_exit([a], {}) == ""
    empty = mk("count")
    assert format_printa(None, [empty], {}) == "\n"
    assert not empty.printed


def test_printa_format_consumes_keys_in_order():
    a = mk("count", [INT, INT, STRING])
    a.update((1, 2, "x"))
    assert format_printa(fmt("%@u: -\n"), [a], {}) == "1: -\n"
    assert format_printa(fmt("%@u: %d\n"), [a], {}) == "1: 1\n"
    assert format_printa(fmt("%d %d %s = %@u\n"), [a], {}) == "1 2 x = 1\n"
    assert format_printa(fmt("%@u %@u %@u\n"), [a], {}) == "1 1 1\n"
    assert format_printa(fmt("[%-4@d][%4@d]\n"), [a], {}) == "[1   ][   1]\n"


def test_printa_dynamic_width_takes_a_key():
    a = mk("sum", [INT, INT])
    a.update((6, 100), 1)
    a.update((-6, 200), 2)
    assert format_printa(fmt("<%*d>\n"), [a], {}) == "<   100>\n<200   >\n"


def test_printa_histogram_conversion():
    q = mk("lquantize", (), (1, 10, 1))
    q.update((), 1)
    expected = (
        "@c = \n"
        + HEADER
        + row("< 1", pos_bar(0), 0)
        + row(1, pos_bar(40), 1)
        + row(2, pos_bar(0), 0)
        + "\n"
    )
    assert format_printa(fmt("@c = %@d\n"), [q], {}) == expected


def test_printa_several_aggregations_union_of_keys():
    foo = mk("sum", [INT], aid=0)
    bar = mk("sum", [INT], aid=1)
    foo.update((10,), 10)
    bar.update((20,), 20)
    foo.update((30,), 30)
    bar.update((30,), 30)
    out = format_printa(fmt("%4d %@4d %@4d\n"), [foo, bar], {})
    assert out == "  20    0   20\n  10   10    0\n  30   30   30\n"
    assert foo.printed and bar.printed
    # the order can follow the second aggregation instead
    out = format_printa(fmt("%4d %@4d %@4d\n"), [foo, bar], {"aggsortpos": "1"})
    assert out == "  10   10    0\n  20    0   20\n  30   30   30\n"


def test_printa_several_default_format():
    a = mk("count", [INT], aid=0)
    b = mk("sum", [INT], aid=1)
    a.update((1,))
    b.update((1,), 7)
    assert format_printa(None, [a, b], {}) == "\n        1                1                7\n"


def test_printa_keysort_over_several_keys():
    tour = mk("sum", [STRING, INT], aid=0)
    for i, (city, v) in enumerate([("Oslo", 2), ("Bern", 2), ("Rome", 1), ("Bern", 0)]):
        tour.update((city, i), v)
    f = fmt("%s %d %@d\n")
    assert format_printa(f, [tour], {}) == "Bern 3 0\nRome 2 1\nBern 1 2\nOslo 0 2\n"
    assert (
        format_printa(f, [tour], {"aggsortkey": True}) == "Bern 1 2\nBern 3 0\nOslo 0 2\nRome 2 1\n"
    )
    assert (
        format_printa(f, [tour], {"aggsortkey": True, "aggsortkeypos": "1"})
        == "Oslo 0 2\nBern 1 2\nRome 2 1\nBern 3 0\n"
    )


# --- end of run ---------------------------------------------------------------------------------


def test_exit_prints_unprinted_in_id_order():
    a = mk("sum", aid=0, name="@a")
    b = mk("avg", aid=1, name="@b")
    c = mk("count", aid=2, name="@c")
    never = mk("max", aid=3, name="@never")
    b.update((), 450)
    a.update((), 900)
    c.update(())
    c.printed = True
    assert format_exit([c, b, a, never], {}) == "              900\n              450\n"
    assert (
        format_exit([c, b, a, never], {"aggsortrev": True})
        == "              450\n              900\n"
    )


@pytest.mark.parametrize("opt", [{"aggsortkey": "no"}, {"aggsortkey": False}, {}])
def test_disabled_option_values(opt):
    a = _sums([((2,), 1), ((1,), 2)])
    assert sort_keys([a], opt) == [(2,), (1,)]


# --- -x aggpercpu -----------------------------------------------------------------------


def test_aggpercpu_lists_every_cpu_after_the_total_cleared_state_where_idle():
    a = mk("min", [INT])
    a.update((5,), 30, cpu=0)
    a.update((5,), 12, cpu=2)
    opts = {"aggpercpu": True, "_ncpus": 4}
    assert format_aggregation(a, opts) == (
        "        5               12"
        "\n    [CPU 0]               30"
        "\n    [CPU 1] 9223372036854775807"
        "\n    [CPU 2]               12"
        "\n    [CPU 3] 9223372036854775807\n"
    )
    # without the option, or without CPUs from the engine, only the total
    assert format_aggregation(a, {}) == "        5               12\n"
    b = mk("count")
    b.update(())
    assert format_aggregation(b, opts) == "                1\n"


def test_aggpercpu_state_follows_clear_and_trunc():
    a = mk("sum", [INT])
    a.update((1,), 7, cpu=1)
    a.update((2,), 9, cpu=0)
    a.clear()
    opts = {"aggpercpu": True, "_ncpus": 2}
    assert format_aggregation(a, opts).split("\n")[:3] == [
        "        1                0",
        "    [CPU 0]                0",
        "    [CPU 1]                0",
    ]
    a.trunc()
    assert a.percpu == {}
