"""Aggregation state: bucketing, the integer arithmetic of avg/stddev, clear/trunc/normalize."""

from pydtrace.consume.aggregation import (
    INT64_MAX,
    INT64_MIN,
    Aggregation,
    AggSpec,
    llquantize_bucket,
    lquantize_bucket,
    quantize_bucket,
    quantize_bucket_value,
    stddev_of,
)
from pydtrace.lang.types import CHAR, INT, LONG, SHORT, STRING


def agg(func: str, keytypes=(), params=(), aid: int = 0) -> Aggregation:
    return Aggregation(AggSpec(aid, "@x", func, tuple(params), list(keytypes), LONG))


# --- buckets -----------------------------------------------------------------------------


def test_quantize_buckets():
    assert quantize_bucket(0) == 63
    assert quantize_bucket(1) == 64
    assert [quantize_bucket(v) for v in (2, 3, 4, 7, 8)] == [65, 65, 66, 66, 67]
    assert quantize_bucket(-1) == 62
    assert quantize_bucket(-3) == 61
    assert quantize_bucket(INT64_MIN) == 0
    assert quantize_bucket(INT64_MAX) == 126
    assert quantize_bucket(1 << 62) == 126
    # an unsigned value past INT64_MAX is seen as negative
    assert quantize_bucket((1 << 64) - 1) == 62


def test_quantize_bucket_labels():
    assert quantize_bucket_value(63) == 0
    assert quantize_bucket_value(64) == 1
    assert quantize_bucket_value(70) == 64
    assert quantize_bucket_value(62) == -1
    assert quantize_bucket_value(60) == -4
    assert quantize_bucket_value(0) == -(1 << 62)
    assert quantize_bucket_value(126) == 1 << 62


def test_lquantize_buckets():
    # low 0, high 10, step 2: 5 levels, bin 0 below, bin 6 at/above 10
    b = [lquantize_bucket(v, 0, 10, 2) for v in (-1, 0, 1, 2, 9, 10, 1000)]
    assert b == [0, 1, 1, 2, 5, 6, 6]
    # the top is low + levels*step, even when high is not on a step boundary
    assert lquantize_bucket(9, 0, 10, 3) == 4
    assert lquantize_bucket(-20, -10, 10, 5) == 0


def test_llquantize_buckets():
    # factor 10, magnitudes 0..5, 5 steps: 31 is the zero bin
    assert llquantize_bucket(0, 10, 0, 5, 5) == 31
    assert llquantize_bucket(1, 10, 0, 5, 5) == 32
    assert llquantize_bucket(-1, 10, 0, 5, 5) == 30
    assert llquantize_bucket(320, 10, 0, 5, 5) == 43
    assert llquantize_bucket(-320, 10, 0, 5, 5) == 19
    assert llquantize_bucket(10**7, 10, 0, 5, 5) == 62
    assert llquantize_bucket(INT64_MIN, 10, 0, 5, 5) == 0
    # magnitude 2 to 3, factor 3: everything under 9 shares the zero bin
    assert llquantize_bucket(8, 3, 2, 3, 3) == llquantize_bucket(-8, 3, 2, 3, 3)


# --- scalar functions ----------------------------------------------------------------


def test_count_sum_min_max():
    c, s, lo, hi = agg("count"), agg("sum"), agg("min"), agg("max")
    for v in (5, -3, 12):
        c.update((), v)
        s.update((), v)
        lo.update((), v)
        hi.update((), v)
    assert (c.value(()), s.value(()), lo.value(()), hi.value(())) == (3, 14, -3, 12)


def test_sum_wraps_at_64_bits():
    s = agg("sum")
    s.update((), INT64_MAX)
    s.update((), 1)
    assert s.value(()) == INT64_MIN


def test_avg_truncates_toward_zero():
    a = agg("avg")
    a.update((), -7)
    a.update((), 0)
    assert a.value(()) == -3
    b = agg("avg")
    b.update((), 0)
    b.update((), -900)
    assert b.value(()) == -450


def test_stddev_integer_arithmetic():
    a, b = agg("stddev"), agg("stddev")
    for i in range(10):
        a.update((), 6_000_000_000 + 10 * i)
        b.update((), -6_000_000_000 - 10 * i)
    # population standard deviation of 0,10,...,90 is 28.72 -> 28
    assert a.value(()) == 28
    assert b.value(()) == 28
    c = agg("stddev")
    c.update((), 0x40)
    c.update((), 0x80)
    assert c.value(()) == 0x20


def test_stddev_normalized_and_empty():
    # sum of squares 100+400, sum 30, count 2, normal 2: 250/2=125 - (30/2/2=7)^2=49 -> 76
    assert stddev_of(2, 30, 500, 2) == 8
    assert stddev_of(0, 0, 0) == 0


def test_quantize_increment_and_negative_weights():
    q = agg("quantize")
    q.update((), 1, 3)
    q.update((), 1, -5)
    q.update((), 8)
    assert q.data[()][64] == -2
    assert q.data[()][67] == 1


def test_keys_kept_within_their_type():
    a = agg("sum", [CHAR, SHORT])
    a.update((254, 65535), 1)
    assert list(a.data) == [(-2, -1)]


# --- clear / trunc / normalize ----------------------------------------------------------------


def test_clear_keeps_keys_and_resets_min_max():
    for func, zero in (("sum", 0), ("min", INT64_MAX), ("max", INT64_MIN), ("avg", [0, 0])):
        a = agg(func, [INT])
        a.update((1,), 5)
        a.update((2,), 6)
        a.clear()
        assert sorted(a.data) == [(1,), (2,)]
        assert a.data[(1,)] == zero
    q = agg("lquantize", [STRING], (0, 4, 1))
    q.update(("k",), 2)
    q.clear()
    assert q.data[("k",)] == [0] * 6


def _keys_after_trunc(n, values):
    a = agg("sum", [INT])
    for k, v in values.items():
        a.update((k,), v)
    if n == "none":
        a.trunc()
    else:
        a.trunc(n)
    return sorted(k[0] for k in a.data)


def test_trunc_keeps_largest_or_smallest():
    vals = {k: 10 * k for k in range(8)}
    assert _keys_after_trunc(3, vals) == [5, 6, 7]
    assert _keys_after_trunc(-2, vals) == [0, 1]
    assert _keys_after_trunc(0, vals) == []
    assert _keys_after_trunc("none", vals) == []
    assert _keys_after_trunc(100, vals) == list(range(8))


def test_trunc_ties_broken_by_key():
    vals = {3: 0, 1: 0, 2: 0}
    assert _keys_after_trunc(1, vals) == [3]
    assert _keys_after_trunc(-1, vals) == [1]
    # keys compare unsigned: -1 is the largest int key
    assert _keys_after_trunc(1, {-1: 0, 5: 0}) == [-1]


def test_normalize_and_denormalize():
    a = agg("sum")
    a.update((), 100)
    a.normalize(7)
    assert a.normal == 7
    assert a.value(()) == 100  # normalization is applied at print time only
    a.denormalize()
    assert a.normal == 1


# --- sort values ---------------------------------------------------------------------------


def test_sort_value_quantize_uses_weighted_sum_then_zero_bucket():
    a = agg("quantize", [INT])
    a.update((1,), 4)  # 4 x 1
    a.update((2,), 1, 3)  # 1 x 3
    a.update((3,), 0, 5)
    a.update((4,), 0, 2)
    assert a.sort_value((1,)) > a.sort_value((2,))
    assert a.sort_value((3,)) > a.sort_value((4,))
    assert a.sort_value((4,))[0] == 0


def test_sort_value_lquantize_weights_outer_bins():
    a = agg("lquantize", [INT], (0, 10, 1))
    a.update((1,), -5)  # underflow counts at low-1 = -1
    a.update((2,), 50)  # overflow counts at one past the last base: 11
    assert a.sort_value((1,))[0] == -1
    assert a.sort_value((2,))[0] == 11


def test_key_sortkey_unsigned_and_keypos():
    a = agg("sum", [INT, STRING])
    assert a.key_sortkey((-2, "a")) > a.key_sortkey((2, "z"))
    assert a.key_sortkey((-2, "a"), 1) < a.key_sortkey((2, "z"), 1)
    # an out-of-range position falls back to the first element
    assert a.key_sortkey((1, "b"), 5) == a.key_sortkey((1, "b"))
