"""What trunc() and clear() give back to the kernel's map (engines/ebpf/
layout.py, AggLayout.since and .add): the updates an entry had after a
printa() showed it, from raw per-CPU values as bpf(2) reads them (u64 update
count, then the function's words)."""

from __future__ import annotations

import struct

import pytest

from pydtrace.consume.aggregation import AggSpec, nbuckets
from pydtrace.engines.ebpf.layout import VALUE_WORDS, AggLayout


def layout(func: str, params: tuple[int, ...] = ()) -> AggLayout:
    spec = AggSpec(0, "@", func, params)
    return AggLayout(spec, "aggs", [], 8, VALUE_WORDS.get(func) or nbuckets(spec))


def raw(lay: AggLayout, *words: int) -> bytes:
    return struct.pack(f"<{1 + lay.words}Q", *(w & (1 << 64) - 1 for w in words))


def decoded(lay: AggLayout, values: list[bytes] | None) -> list[tuple[int, object]] | None:
    return None if values is None else [lay.decode_value(v) for v in values]


def test_count_gives_back_each_cpus_new_updates() -> None:
    lay = layout("count")
    then = [raw(lay, 2, 2), raw(lay, 0, 0)]
    now = [raw(lay, 5, 5), raw(lay, 1, 1)]
    back, lost = lay.since(now, then)
    assert (decoded(lay, back), lost) == ([(3, 3), (1, 1)], 0)
    assert lay.since(then, then) == (None, 0)  # nothing new
    assert lay.since(now, None) == (now, 0)  # an entry made after the printa: all of it
    # fewer updates than the printa saw: the entry was made anew, all of it is new
    back, lost = lay.since([raw(lay, 1, 1), raw(lay, 0, 0)], then)
    assert (decoded(lay, back), lost) == ([(1, 1), (0, 0)], 0)


@pytest.mark.parametrize(("func", "then", "now", "want"), [
    ("sum", (1, -5), (3, -2), (2, 3)),
    ("avg", (2, 2, 40), (5, 5, 100), (3, [3, 60])),
    # the sum of squares is 128 bits: a borrow crosses its two words
    ("stddev", (1, 1, 7, (1 << 64) - 1, 0), (2, 2, 9, 5, 1), (1, [1, 2, 6])),
])  # fmt: skip
def test_additive_functions_subtract(func: str, then: tuple, now: tuple, want: tuple) -> None:
    lay = layout(func)
    back, lost = lay.since([raw(lay, *now)], [raw(lay, *then)])
    assert (decoded(lay, back), lost) == ([want], 0)


def test_quantize_subtracts_bucket_by_bucket() -> None:
    lay = layout("quantize")
    then = [0] * lay.words
    now = [0] * lay.words
    then[64], now[64], now[70] = 2, 3, 4
    back, lost = lay.since([raw(lay, 7, *now)], [raw(lay, 2, *then)])
    (n, buckets), = decoded(lay, back)  # fmt: skip
    assert (n, buckets[64], buckets[70], sum(buckets), lost) == (5, 1, 4, 5, 0)


@pytest.mark.parametrize("func", ["min", "max"])
def test_a_min_or_max_is_given_back_when_it_moved_else_counted_lost(func: str) -> None:
    lay = layout(func)
    moved = 4 if func == "min" else 40
    back, lost = lay.since([raw(lay, 3, moved)], [raw(lay, 2, 10)])
    assert (decoded(lay, back), lost) == ([(1, moved)], 0)
    # 2 updates whose extreme is not told from the old one's
    assert lay.since([raw(lay, 4, 10), raw(lay, 0, 0)], [raw(lay, 2, 10), raw(lay, 0, 0)]) == (
        None,
        2,
    )


def test_add_merges_two_reads_of_one_entry() -> None:
    lay = layout("count")
    got = lay.add([raw(lay, 2, 2), raw(lay, 0, 0)], [raw(lay, 1, 1), raw(lay, 3, 3)])
    assert decoded(lay, got) == [(3, 3), (3, 3)]
    lay = layout("min")
    got = lay.add([raw(lay, 1, 7), raw(lay, 0, 0)], [raw(lay, 2, 5), raw(lay, 1, -3)])
    assert decoded(lay, got) == [(3, 5), (1, -3)]
