"""What the Python API hands its callers: typed records and aggregation snapshots.

The consumer's own records (consume/records.py) are described by the
program (each item's lang.records.Action) and read by position; these are
the same data as plain values a program can use: a Record per clause firing
that recorded data (its probe, CPU, values by position and by name, its
printf text) and a Snapshot of the aggregations (count/sum/min/max as ints,
avg as an Average, stddev as a StdDev, the quantize family as a Histogram
with each bucket's bounds).  Values are normalized as dtrace prints them
(normalize()).  pydtrace.stream() yields both; pydtrace.trace() returns them
in its Result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from pydtrace.consume.aggregation import (
    INT64_MAX,
    INT64_MIN,
    QUANTIZE_NBUCKETS,
    QUANTIZE_ZEROBUCKET,
    U64,
    Aggregation,
    avg_of,
    cdiv,
    llquantize_bucket,
    llquantize_geometry,
    lquantize_levels,
    s64,
    stddev_of,
)
from pydtrace.lang import ast

__all__ = ["Probe", "Record", "Bucket", "Histogram", "Average", "StdDev", "Snapshot", "Event"]


class Probe(NamedTuple):
    """A probe's four-part name; str() is `provider:module:function:name`."""

    provider: str
    module: str
    function: str
    name: str

    def __str__(self) -> str:
        return ":".join(self)


@dataclass(frozen=True)
class Record:
    """The data one clause recorded when its probe fired.

    values: what trace(), printf() (its arguments), print(), stack()/ustack()
    (a tuple of frames, as dtrace prints them) and sym()/usym()... (the text)
    recorded, in the clause's order.  names: for each value the name the D
    source gives it (`pid`, `execname`, `self->ts`, `this->delta`, `args[0]`,
    `curthread->pid`), or None for any other expression.  record[0] and
    record["this->delta"] read one value; fields maps each name to its value.
    text: what the clause's printf()s print, or None without a printf().
    timestamp: when pydtrace read the record (time.time_ns()), not when the
    probe fired (record D's `timestamp` or `walltimestamp` for that).
    """

    probe: Probe
    cpu: int
    timestamp: int
    values: tuple[Any, ...]
    names: tuple[str | None, ...]
    text: str | None = None
    clause: int = 0  # the statement's number (dt_clause_N in dtrace's messages)
    probe_id: int = 0

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            for name, value in zip(self.names, self.values):
                if name == key:
                    return value
            known = ", ".join(repr(n) for n in self.names if n is not None) or "none"
            raise KeyError(f"no value named {key!r} in this record (named: {known})")
        return self.values[key]

    def __len__(self) -> int:
        return len(self.values)

    @property
    def fields(self) -> dict[str, Any]:
        """The named values (the first of a name that comes twice)."""
        out: dict[str, Any] = {}
        for name, value in zip(self.names, self.values):
            if name is not None and name not in out:
                out[name] = value
        return out


class Bucket(NamedTuple):
    """One bucket of a histogram: the values low..high (both included) fell
    in it `count` times.  The outermost buckets reach the ends of int64."""

    low: int
    high: int
    count: int


@dataclass(frozen=True)
class Histogram:
    """A quantize(), lquantize() or llquantize() value: every bucket a value
    can fall in, lowest first (quantize: 127 buckets, powers of two; a bucket
    of llquantize() no integer falls in is left out)."""

    function: str  # "quantize", "lquantize" or "llquantize"
    params: tuple[int, ...]  # lquantize: (low, high, step); llquantize: (factor, low, high, steps)
    buckets: tuple[Bucket, ...]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(b.count for b in self.buckets)

    @property
    def bounds(self) -> tuple[tuple[int, int], ...]:
        return tuple((b.low, b.high) for b in self.buckets)

    @property
    def total(self) -> int:
        """How many values were counted (the sum of the counts)."""
        return sum(b.count for b in self.buckets)

    def nonzero(self) -> list[Bucket]:
        """The buckets with a count."""
        return [b for b in self.buckets if b.count]

    def bucket_of(self, value: int) -> Bucket:
        """The bucket a value falls in."""
        for b in self.buckets:
            if b.low <= value <= b.high:
                return b
        raise ValueError(f"{value} is not a 64-bit value")


@dataclass(frozen=True)
class Average:
    """An avg() value: how many values and their total; value is the mean as
    dtrace prints it (an integer, truncated), mean the exact one."""

    count: int
    total: int

    @property
    def value(self) -> int:
        return avg_of(self.count, self.total)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0


@dataclass(frozen=True)
class StdDev:
    """A stddev() value: count, total and sum of squares; value is the
    standard deviation as dtrace prints it (an integer)."""

    count: int
    total: int
    sum_of_squares: int

    @property
    def value(self) -> int:
        return stddev_of(self.count, self.total, self.sum_of_squares)


AggValue = int | Average | StdDev | Histogram


@dataclass(frozen=True)
class Snapshot:
    """The aggregations at one moment: name (`@` or `@name`) -> key tuple ->
    value (an int for count/sum/min/max, else Average, StdDev or Histogram);
    an aggregation without a key has the key ().  final: the last one, after
    END.  functions: each aggregation's function name (count, quantize ...)."""

    timestamp: int
    aggregations: dict[str, dict[tuple[Any, ...], AggValue]]
    functions: dict[str, str] = field(default_factory=dict)
    final: bool = False

    def __getitem__(self, name: str) -> dict[tuple[Any, ...], AggValue]:
        return self.aggregations[name]


Event = Record | Snapshot


# --- from the consumer's data ---------------------------------------------------------


def datum_name(e: ast.Expr | None) -> str | None:
    """The name a D expression gives a value: a variable, self->x, this->x,
    a member of a named value, a constant subscript (args[0]); else None."""
    if isinstance(e, ast.Ident):
        return e.name
    if isinstance(e, ast.SelfVar):
        return f"self->{e.name}"
    if isinstance(e, ast.ThisVar):
        return f"this->{e.name}"
    if isinstance(e, ast.Member):
        base = datum_name(e.base)
        return None if base is None else f"{base}{'->' if e.arrow else '.'}{e.name}"
    if isinstance(e, ast.Index) and len(e.args) == 1 and isinstance(e.args[0], ast.IntLit):
        base = datum_name(e.base)
        return None if base is None else f"{base}[{e.args[0].value}]"
    return None


def record_of(rec: Any, target_pid: int = -1) -> Record:
    """A consume.records.Record as an API Record."""
    from pydtrace.consume.printf import format_printf

    values: list[Any] = []
    names: list[str | None] = []
    texts: list[str] = []
    for item in rec.items:
        act, vals = item.action, item.values
        kind = act.kind
        if kind == "trace":
            values.append(vals[0])
            names.append(datum_name(act.data[0].expr))
        elif kind == "printf":
            values.extend(vals)
            names.extend(datum_name(d.expr) for d in act.data)
            texts.append(format_printf(act.format, list(zip(vals, act.types)), target_pid))
        elif kind == "print":
            values.append(vals[1])
            names.append(datum_name(act.data[0].expr))
        elif kind == "stack":
            values.append(stack_frames(vals[0]))
            names.append(None)
        elif kind == "sym":
            from pydtrace.consume.stacks import format_symbol

            values.append(format_symbol(act.name, vals[0], vals[1]))
            names.append(None)
    p = rec.probe
    return Record(
        Probe(p.provider, p.module, p.function, p.name),
        rec.cpu,
        time.time_ns(),
        tuple(values),
        tuple(names),
        "".join(texts) if texts else None,
        rec.clause,
        p.id,
    )


def stack_frames(key: Any) -> tuple[str, ...]:
    """A stack()/ustack() value as its frames, innermost first, as dtrace names them."""
    from pydtrace.consume.stacks import StackKey, frame_name, user_frames

    if not isinstance(key, StackKey):
        return ()
    frames = user_frames(key.frames, key.pid) if key.kind == "ustack" else key.frames
    out = []
    for pc in frames:
        if not pc:
            break
        out.append(frame_name(key.kind, pc, key.pid))
    return tuple(out)


def _key_value(k: Any) -> Any:
    from pydtrace.consume.stacks import StackKey, SymKey, format_symbol

    if isinstance(k, StackKey):
        return stack_frames(k)
    if isinstance(k, SymKey):
        return format_symbol(k.kind, k.addr, k.pid)
    return k


def _u64_div(v: int, normal: int) -> int:
    return s64((v & U64) // (normal & U64 or 1))


def value_of(agg: Aggregation, data: Any) -> AggValue:
    """One entry's state as a typed value, normalized as dtrace prints it."""
    f = agg.spec.func
    normal = agg.normal or 1
    if f in ("count", "sum", "min", "max"):
        return _u64_div(data, normal)
    if f == "avg":
        count, total = data
        return Average(s64(count), cdiv(s64(total), s64(normal)))
    if f == "stddev":
        count, total, sumsq = data
        return StdDev(s64(count), cdiv(s64(total), s64(normal)), sumsq // (normal & U64))
    return histogram(f, tuple(agg.spec.params), [_u64_div(c, normal) for c in data])


def histogram(function: str, params: tuple[int, ...], counts: list[int]) -> Histogram:
    """A histogram's counts (one per bin, as the engines keep them) with their bounds."""
    bounds = bucket_bounds(function, params)
    return Histogram(
        function,
        params,
        tuple(Bucket(lo, hi, counts[i]) for i, (lo, hi) in enumerate(bounds) if lo <= hi),
    )


@lru_cache(maxsize=64)
def bucket_bounds(function: str, params: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(lowest, highest) value of each bin of a histogram; an empty bin (of
    llquantize, between its small integer steps) has lowest > highest."""
    if function == "quantize":
        out = []
        for i in range(QUANTIZE_NBUCKETS):
            if i == QUANTIZE_ZEROBUCKET:
                out.append((0, 0))
            elif i > QUANTIZE_ZEROBUCKET:
                off = i - QUANTIZE_ZEROBUCKET
                out.append((1 << (off - 1), (1 << off) - 1))
            else:
                off = QUANTIZE_ZEROBUCKET - i
                out.append((INT64_MIN if i == 0 else -((1 << off) - 1), -(1 << (off - 1))))
        return tuple(out)
    if function == "lquantize":
        low, high, step = params
        levels = lquantize_levels(low, high, step)
        out = [(INT64_MIN, low - 1)]
        out += [(low + i * step, low + (i + 1) * step - 1) for i in range(levels)]
        out.append((low + levels * step, INT64_MAX))
        return tuple(out)
    factor, lmag, hmag, steps = params
    nbins = llquantize_geometry(factor, lmag, hmag, steps)[2]

    def first_at_least(b: int) -> int:
        """The least int64 value whose bin is b or above (the bins grow with the value)."""
        lo, hi = INT64_MIN, INT64_MAX + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if llquantize_bucket(mid, factor, lmag, hmag, steps) >= b:
                hi = mid
            else:
                lo = mid + 1
        return lo

    starts = [first_at_least(b) for b in range(nbins)] + [INT64_MAX + 1]
    starts[0] = INT64_MIN
    return tuple((starts[b], starts[b + 1] - 1) for b in range(nbins))


def snapshot_of(aggs: dict[str, Aggregation], final: bool = False) -> Snapshot:
    """Every aggregation's entries now, in the order the program names them."""
    out: dict[str, dict[tuple[Any, ...], AggValue]] = {}
    funcs: dict[str, str] = {}
    for name, agg in sorted(aggs.items(), key=lambda x: x[1].spec.id):
        data = dict(agg.data)
        out[name] = {tuple(_key_value(k) for k in key): value_of(agg, v) for key, v in data.items()}
        funcs[name] = agg.spec.func
    return Snapshot(time.time_ns(), out, funcs, final)
