"""The consumer: run-time setopt(), trace() of raw data, drop reports and the
shared aggregation buffer."""

from __future__ import annotations

import io
import struct

import pytest

from pydtrace.consume.aggregation import AggPool, Aggregation, AggSpec, data_size, tuple_size
from pydtrace.consume.consumer import Consumer, format_trace
from pydtrace.consume.print import format_print
from pydtrace.consume.records import Item, Record
from pydtrace.lang.formats import parse_format
from pydtrace.lang.records import Action, Datum, datum
from pydtrace.lang.types import INT, LONG, STRING, CType
from pydtrace.probes.catalogue import Probe

BEGIN = Probe(1, "dtrace", "", "", "BEGIN")


# record items as an engine hands them over: each with its action's description
def trace(value, ctype: CType) -> Item:
    return Item(Action("trace", (datum(None, ctype),)), (value,))


def setopt(name: str, value: str | None = None) -> Item:
    values = (name,) if value is None else (name, value)
    return Item(Action("setopt", tuple(datum(None, STRING) for _ in values)), values)


def freopen(path: str) -> Item:
    return Item(Action("freopen", (), parse_format(path)), ())


def exit_(status: int) -> Item:
    return Item(Action("exit", (Datum(INT, 4, 4),)), (status,))


HEX_HEADER = (
    "\n" + " " * 11 + "".join("  " + c for c in "0123456789abcdef") + "  0123456789abcdef\n"
)


def consumer(**options):
    out, err = io.StringIO(), io.StringIO()
    c = Consumer({}, dict(options), out, err, pname="dtrace", testing=True)
    return c, out, err


# --- setopt() ----------------------------------------------------------------------


def test_setopt_refusals_are_clause_errors_followed_by_a_blank_line():
    c, out, err = consumer(quiet=True)
    items = [setopt("Nixon"), setopt("quiet", "um, no"), setopt("bufsize", "1m")]
    c.record(Record(BEGIN, 0, 0, items))
    prefix = "dtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): couldn't set option "
    assert err.getvalue() == (
        prefix + '"Nixon" to "1": Invalid option name\n\n'
        + prefix + '"quiet" to "um, no": Invalid value for specified option\n\n'
        + prefix + '"bufsize" to "1m": Operation illegal when tracing is active\n\n'
    )  # fmt: skip
    assert out.getvalue() == ""


def test_setopt_quiet_takes_effect_for_later_records():
    c, out, _ = consumer()
    c.record(Record(BEGIN, 0, 0, [setopt("quiet")]))
    c.record(Record(BEGIN, 0, 1, [trace(7, INT)]))
    assert (
        out.getvalue() == "                   FUNCTION:NAME\n                          :BEGIN \n7"
    )
    c.record(Record(BEGIN, 0, 2, [setopt("quiet", "no")]))
    c.record(Record(BEGIN, 0, 3, [trace(8, INT)]))
    assert out.getvalue().endswith("7                          :BEGIN " + "          8\n")


# --- trace() ------------------------------------------------------------------------


def test_trace_of_bytes_is_a_hex_dump():
    data = bytes.fromhex("341200000000000076980000")
    assert format_trace(data, INT, quiet=False) == (
        HEX_HEADER
        + "         0: 34 12 00 00 00 00 00 00 76 98 00 00"
        + "   " * 4
        + "  4.......v...\n"
    )


def test_rawbytes_dumps_integers_and_whole_string_buffers():
    assert format_trace(1, INT, quiet=True, rawbytes=True) == (
        HEX_HEADER + "         0: 01 00 00 00" + "   " * 12 + "  ....\n"
    )
    dump = format_trace("ab", STRING, quiet=False, rawbytes=True, strsize=20)
    assert dump == (
        HEX_HEADER
        + "         0: 61 62"
        + " 00" * 14
        + "  ab"
        + "." * 14
        + "\n"
        + "        10: 00 00 00 00 00"
        + "   " * 11
        + "  .....\n"
    )  # fmt: skip: strsize characters and a NUL, 21 bytes


def test_trace_wraps_integers_to_their_type():
    assert format_trace(0xFFFFFFFF, INT, quiet=True) == "-1"
    assert format_trace(-1, INT, quiet=False) == "         -1"


# --- drops --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "n", "tags", "text"),
    [
        ("DTRACEDROP_PRINCIPAL", 1, False, "dtrace: 1 drop on CPU 3\n"),
        (
            "DTRACEDROP_AGGREGATION",
            3,
            True,
            "dtrace: [DTRACEDROP_AGGREGATION] 3 aggregation drops on CPU 3\n",
        ),
        ("DTRACEDROP_DYNAMIC", 1, True, "dtrace: [DTRACEDROP_DYNAMIC] 1 dynamic variable drop\n"),
        ("DTRACEDROP_SPEC", 2, False, "dtrace: 2 speculative drops\n"),
        (
            "DTRACEDROP_SPECBUSY",
            1,
            False,
            "dtrace: 1 failed speculation (available buffer(s) still busy)\n",
        ),
        ("DTRACEDROP_DBLERROR", 1, False, "dtrace: 1 error in ERROR probe enabling\n"),
        ("PYDTRACEDROP_SWITCH", 1, False, "dtrace: 1 context switch the kernel did not report\n"),
        ("PYDTRACEDROP_SWITCH", 2, False, "dtrace: 2 context switches the kernel did not report\n"),
    ],
)
def test_drop_messages(kind, n, tags, text):
    c, _, err = consumer(droptags=tags)
    c.drop(kind, n, cpu=3)
    assert err.getvalue() == text


def test_no_message_for_zero_drops():
    c, _, err = consumer()
    c.drop("DTRACEDROP_SPEC", 0)
    assert err.getvalue() == ""


# --- the aggregation buffer ---------------------------------------------------------------


def test_tuple_and_data_sizes():
    assert tuple_size([], 256) == 12
    assert tuple_size([STRING], 512) == 4 + 513 + 8
    assert tuple_size([INT, LONG], 256) == 4 + 4 + 8 + 8
    assert data_size(AggSpec(0, "@", "count")) == 16
    assert data_size(AggSpec(0, "@", "stddev")) == 40
    assert data_size(AggSpec(0, "@", "quantize")) == 8 + 127 * 8


def test_full_aggregation_buffer_drops_new_keys_and_reports_them():
    agg = Aggregation(AggSpec(0, "@", "count", keytypes=[STRING]))
    c, out, err = consumer(quiet=True, aggsize=1024, strsize=512, droptags=True)
    c.aggs = {"@": agg}
    for k in ("Harding", "Hoover", "Nixon", "Bush"):
        agg.update((k,))
    agg.update(("Harding",))  # an existing key still updates
    assert agg.data == {("Harding",): 2}
    c.finish()
    assert err.getvalue() == "dtrace: [DTRACEDROP_AGGREGATION] 3 aggregation drops on CPU 0\n"
    assert "Harding" in out.getvalue()


def test_aggregation_buffer_too_small_for_one_entry_is_refused():
    from pydtrace.lang.errors import CompileError

    c, _, _ = consumer(aggsize=8)
    with pytest.raises(
        CompileError, match="could not enable tracing: Enabling exceeds size of buffer"
    ):
        c.aggs = {"@": Aggregation(AggSpec(0, "@", "count"))}


def test_pool_without_size_is_unlimited():
    agg = Aggregation(AggSpec(0, "@", "count", keytypes=[INT]))
    pool = AggPool.for_aggs([agg], None, 256)
    for i in range(1000):
        agg.update((i,))
    assert len(agg.data) == 1000 and pool.drops == 0


# --- freopen() ------------------------------------------------------------------------


def test_freopen_redirects_output_and_empty_path_restores_it(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    c, out, err = consumer(quiet=True)
    c.record(Record(BEGIN, 0, 0, [freopen(str(target)), trace("to file", STRING)]))
    c.record(Record(BEGIN, 0, 1, [freopen(""), trace("back", STRING)]))
    assert target.read_text() == "old\nto file"
    assert out.getvalue() == "back"


def test_freopen_failure_is_a_clause_error(tmp_path):
    c, out, err = consumer(quiet=True)
    bad = tmp_path / "no" / "such"
    c.record(Record(BEGIN, 0, 0, [freopen(str(bad)), trace("x", STRING)]))
    assert out.getvalue() == "x"
    assert err.getvalue() == (
        "dtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): "
        f'couldn\'t freopen() "{bad}": No such file or directory\n'
    )


# --- print() ----------------------------------------------------------------------
from pydtrace.lang.types import (  # noqa: E402
    BOOL,
    BUILTIN_TYPEDEFS,
    CHAR,
    LLONG,
    VOIDP,
    Member,
    array,
)

I = " " * 44  # noqa: E741 - the column the dump starts at


def _struct(kind: str, tag: str, members: list[Member], size: int) -> CType:
    name = f"{kind} {tag}" if tag else f"{kind} (anon)"
    return CType(kind, name, size, members=members, tag=tag)


COLOUR = CType(
    "enum", "enum colour", 4, True, enumerators={"RED": 0, "GREEN": 1, "BLUE": 7}, tag="colour"
)
PAIR = _struct(
    "union",
    "",
    [Member("lo", BUILTIN_TYPEDEFS["__u8"], 0), Member("all", BUILTIN_TYPEDEFS["__u64"], 0)],
    8,
)
INNER = _struct(
    "struct", "", [Member("p", VOIDP, 0), Member("n", BUILTIN_TYPEDEFS["uint64_t"], 8)], 16
)
THING = _struct(
    "struct",
    "thing",
    [
        Member("id", INT, 0),
        Member("tag", array(CHAR, 5), 4),
        Member("u", PAIR, 16),
        Member("in", INNER, 24),
        Member("on", BUILTIN_TYPEDEFS["bool"], 40),
        Member("c", COLOUR, 44),
    ],
    48,
)


def thing(id_: int, tag: bytes, all_: int, p: int, n: int, on: int, c: int) -> bytes:
    return struct.pack("<i5s7xQQQ?3xi", id_, tag, all_, p, n, on, c)


def test_struct_members_nested_arrays_pointers_enums():
    data = thing(-3, b"ab\0x", 0x1FF, 0xDEAD0000, 42, 1, 7)
    assert format_print(0x10, data, THING, None) == (
        "0x10 = *\n"
        f"{I}(struct thing) {{\n"
        f"{I} .id = (int)-3,\n"
        f"{I} .tag = (char [5]) [\n"
        f"{I}  (char)'a',\n"
        f"{I}  (char)'b',\n"
        f"{I} ],\n"
        f"{I} .u = (union) {{\n"
        f"{I}  .lo = (__u8)255,\n"
        f"{I}  .all = (__u64)511,\n"
        f"{I} }},\n"
        f"{I} .in = (struct) {{\n"
        f"{I}  .p = (void *)0xdead0000,\n"
        f"{I}  .n = (uint64_t)42,\n"
        f"{I} }},\n"
        f"{I} .on = (bool)1,\n"
        f"{I} .c = (enum colour)BLUE,\n"
        f"{I}}}\n"
    )


def test_zero_members_are_left_out_but_the_outer_braces_stay():
    data = thing(0, b"\0bc", 0, 0, 0, 0, 0)
    assert format_print(0x10, data, THING, None) == (
        f"0x10 = *\n{I}(struct thing) {{\n{I} .tag = (char [5]) [\n{I} ],\n{I}}}\n"
    )
    assert format_print(0x10, bytes(48), THING, None) == f"0x10 = *\n{I}(struct thing) {{\n{I}}}\n"


def test_printsize_cuts_the_dump_and_closes_open_braces():
    data = thing(1, b"x", 5, 0, 9, 0, 0)
    assert format_print(8, data, THING, 8) == (
        f"0x8 = *\n{I}(struct thing) {{\n{I} .id = (int)1,\n{I} .tag = (char [5]) [\n"
        f"{I}  (char)'x',\n{I} ],\n{I} ...\n{I}}}\n"
    )
    assert format_print(8, data, THING, 24) == (
        f"0x8 = *\n{I}(struct thing) {{\n{I} .id = (int)1,\n{I} .tag = (char [5]) [\n"
        f"{I}  (char)'x',\n{I} ],\n{I} .u = (union) {{\n{I}  .lo = (__u8)5,\n"
        f"{I}  .all = (__u64)5,\n{I} ...\n{I} }},\n{I}}}\n"
    )


def test_scalars_unknown_enum_values_and_bitfields():
    assert format_print(0x20, 5, LLONG, None) == f"0x20 = *\n{I}(long long)5,\n"
    assert format_print(0x20, 4, COLOUR, None) == f"0x20 = *\n{I}(enum colour)4,\n"
    flags = _struct(
        "struct",
        "f",
        [Member("a", INT, 0, 0, 3), Member("b", INT, 0, 3, 5), Member("z", BOOL, 4)],
        8,
    )
    # a = 5 (bits 0-2), b = 2 (bits 3-7); dtrace 2.x takes the `bits` bits that
    # END at the field's offset (word << (63 - off) >> (64 - bits)), so it shows
    # a as bit 0 shifted up (4) and b as bits 0-3 shifted up ((0x15 & 0xf) << 1).
    data = bytes([5 | (2 << 3), 0, 0, 0, 0, 0, 0, 0])
    assert format_print(0x20, data, flags, None) == (
        f"0x20 = *\n{I}(struct f) {{\n{I} .a = (int)4,\n{I} .b = (int)10,\n{I}}}\n"
    )


def test_print_item_in_a_record_uses_the_printsize_option():
    c, out, err = consumer(quiet=True, printsize=8)
    data = thing(1, b"", 0, 0, 0, 0, 0)
    pointee = Datum(THING, len(data), 8, by_ref=True)
    act = Action("print", (Datum(LONG, 8, 8), pointee))
    c.record(Record(BEGIN, 0, 0, [Item(act, (0x10, data))]))
    assert out.getvalue() == f"0x10 = *\n{I}(struct thing) {{\n{I} .id = (int)1,\n{I} ...\n{I}}}\n"


# --- the principal buffer -------------------------------------------------------------


def test_record_sizes_follow_dtraces_buffer_layout():
    from pydtrace.consume.consumer import buffer_data_size, record_size

    # two 2k strings: 16 + 2049 + 2049 = 4114 in the buffer, 4110 sent, +12 header -> 4128
    assert record_size([trace("a", STRING), trace("b", STRING)], 2048) == 4128
    assert record_size([exit_(0)], 256) == 32  # 16 + 4 -> 16 sent -> 28 -> 32
    assert record_size([trace(1, INT), trace(2, LONG)], 256) == 40  # 16+4, pad, +8 = 32
    assert buffer_data_size(64) == 4096
    assert buffer_data_size(3 * 4096) == 4 * 4096


def test_records_of_one_firing_beyond_the_buffer_are_dropped_and_reported():
    c, out, err = consumer(bufsize=8192, strsize=2048, droptags=True)
    two = [trace("x", STRING), trace("y", STRING)]
    for clause in range(3):  # 4128 fits once in 8191 bytes, not twice
        c.record(Record(BEGIN, 0, clause, list(two)))
    c.record(Record(BEGIN, 0, 3, [exit_(0)]))  # still room for a small one
    c.record(Record(BEGIN, 0, 0, list(two)))  # the next firing starts empty
    c.finish()
    assert out.getvalue().count(":BEGIN") == 3
    assert err.getvalue() == "dtrace: [DTRACEDROP_PRINCIPAL] 2 drops on CPU 0\n"


def test_ring_and_fill_policies_are_not_modelled_as_drops():
    c, out, err = consumer(bufsize=64, bufpolicy="fill", strsize=4096)
    for clause in range(3):
        c.record(Record(BEGIN, 0, clause, [trace("x", STRING)]))
    assert out.getvalue().count(":BEGIN") == 3 and err.getvalue() == ""
