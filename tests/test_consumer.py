"""The consumer: run-time setopt(), trace() of raw data, drop reports and the
shared aggregation buffer."""

from __future__ import annotations

import io

import pytest

from pydtrace.consume.aggregation import AggPool, Aggregation, AggSpec, data_size, tuple_size
from pydtrace.consume.consumer import Consumer, format_trace
from pydtrace.consume.records import Record
from pydtrace.lang.types import INT, LONG, STRING
from pydtrace.probes.catalogue import Probe

BEGIN = Probe(1, "dtrace", "", "", "BEGIN")

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
    items = [("setopt", "Nixon", None), ("setopt", "quiet", "um, no"), ("setopt", "bufsize", "1m")]
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
    c.record(Record(BEGIN, 0, 0, [("setopt", "quiet", None)]))
    c.record(Record(BEGIN, 0, 1, [("trace", 7, INT)]))
    assert (
        out.getvalue() == "                   FUNCTION:NAME\n                          :BEGIN \n7"
    )
    c.record(Record(BEGIN, 0, 2, [("setopt", "quiet", "no")]))
    c.record(Record(BEGIN, 0, 3, [("trace", 8, INT)]))
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
        + "         0: 61 62" + " 00" * 14 + "  ab" + "." * 14 + "\n"
        + "        10: 00 00 00 00" + "   " * 12 + "  ....\n"
    )  # fmt: skip


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
    from pydtrace.session import CompileError

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
    from pydtrace.consume.printf import parse_format

    target = tmp_path / "out.txt"
    target.write_text("old\n")
    c, out, err = consumer(quiet=True)
    c.record(
        Record(
            BEGIN, 0, 0, [("freopen", parse_format(str(target)), []), ("trace", "to file", STRING)]
        )
    )
    c.record(Record(BEGIN, 0, 1, [("freopen", parse_format(""), []), ("trace", "back", STRING)]))
    assert target.read_text() == "old\nto file"
    assert out.getvalue() == "back"


def test_freopen_failure_is_a_clause_error(tmp_path):
    from pydtrace.consume.printf import parse_format

    c, out, err = consumer(quiet=True)
    bad = tmp_path / "no" / "such"
    c.record(Record(BEGIN, 0, 0, [("freopen", parse_format(str(bad)), []), ("trace", "x", STRING)]))
    assert out.getvalue() == "x"
    assert err.getvalue() == (
        "dtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): "
        f'couldn\'t freopen() "{bad}": No such file or directory\n'
    )
