"""Aggregation state: what the engines fill when a probe does `@x[k] = f(v)`.

The layout follows what dtrace(1) keeps for each aggregating function, so the
consumer can reproduce its integer arithmetic exactly:

  count/sum/min/max  one int64
  avg                [count, sum]
  stddev             [count, sum, sum of squares (128-bit, unsigned)]
  quantize family    a list of int64 bucket counts

All arithmetic wraps like the BPF code it mirrors (64-bit two's complement,
squares in 128 bits).
"""

from __future__ import annotations

from math import isqrt

from pydtrace.lang.dataclass import dataclass, field

from ..lang.types import CType

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
U64 = (1 << 64) - 1
U128 = (1 << 128) - 1

QUANTIZE_NBUCKETS = 127
QUANTIZE_ZEROBUCKET = 63

HISTOGRAMS = ("quantize", "lquantize", "llquantize")
FUNCS = ("count", "sum", "avg", "min", "max", "stddev") + HISTOGRAMS


def _width(t: CType) -> tuple[int, bool]:
    """An integer key element's width in bits and signedness (pointers: 64, unsigned)."""
    size = t.int_size() if t.is_int() else 8
    return 8 * (size if size in (1, 2, 4, 8) else 8), bool(t.is_int() and t.is_signed())


def s64(v: int) -> int:
    """Reduce to a signed 64-bit value."""
    v &= U64
    return v - (1 << 64) if v >> 63 else v


def cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


@dataclass
class AggSpec:
    id: int  # order of first appearance in the program: the default print order
    name: str  # '@' (anonymous) or '@name'
    func: str  # one of FUNCS
    params: tuple[
        int, ...
    ] = ()  # lquantize (low, high, step); llquantize (factor, lmag, hmag, steps)
    keytypes: list[CType] = field(default_factory=list)
    valtype: CType | None = None


# --- bucketing ----------------------------------------------------------------


def quantize_bucket(v: int) -> int:
    """Bucket index (0..126, 63 holds zero) of a power-of-two histogram."""
    v = s64(v)
    if v == 0:
        return QUANTIZE_ZEROBUCKET
    if v == INT64_MIN:
        return 0
    off = abs(v).bit_length()
    return QUANTIZE_ZEROBUCKET - off if v < 0 else QUANTIZE_ZEROBUCKET + off


def quantize_bucket_value(i: int) -> int:
    """The label (lower magnitude bound) of quantize bucket i."""
    if i < QUANTIZE_ZEROBUCKET:
        return -(1 << (QUANTIZE_ZEROBUCKET - 1 - i))
    if i == QUANTIZE_ZEROBUCKET:
        return 0
    return 1 << (i - QUANTIZE_ZEROBUCKET - 1)


def lquantize_levels(low: int, high: int, step: int) -> int:
    return (high - low) // step


def lquantize_bucket(v: int, low: int, high: int, step: int) -> int:
    """0 = below low, 1..levels = the linear bins, levels+1 = at or above the top."""
    v = s64(v)
    levels = lquantize_levels(low, high, step)
    if step == 0 or v < low:
        return 0
    return min((v - low) // step, levels) + 1


def llquantize_geometry(factor: int, low: int, high: int, steps: int) -> tuple[int, int, int]:
    """(steps/factor, index of the zero bin, number of bins)."""
    sf = steps // factor
    bin0 = 1 + (high - low + 1) * (steps - sf)
    return sf, bin0, 2 * bin0 + 1


def llquantize_bucket(v: int, factor: int, low: int, high: int, steps: int) -> int:
    """Bin of a log-linear histogram; negative values mirror positive ones below bin0."""
    v = s64(v)
    sf, bin0, _ = llquantize_geometry(factor, low, high, steps)
    mag_abs = (-v if v < 0 else v) & U64  # INT64_MIN stays 2**63, past every range
    top = factor**low
    if mag_abs < top:
        return bin0
    mag, ind = low, 0
    while True:
        top *= factor
        if mag_abs < top:
            if mag != 0:
                ind = mag_abs // (top // steps)
            else:
                ind = mag_abs * steps // top
            ind -= sf
            break
        mag += 1
        if mag > high:
            break
    off = (mag - low) * (steps - sf) + ind + 1
    return bin0 - off if v < 0 else bin0 + off


def nbuckets(spec: AggSpec) -> int:
    if spec.func == "quantize":
        return QUANTIZE_NBUCKETS
    if spec.func == "lquantize":
        low, high, step = spec.params
        return lquantize_levels(low, high, step) + 2
    if spec.func == "llquantize":
        return llquantize_geometry(*spec.params)[2]
    raise ValueError(spec.func)


def bucket_of(spec: AggSpec, v: int) -> int:
    if spec.func == "quantize":
        return quantize_bucket(v)
    if spec.func == "lquantize":
        return lquantize_bucket(v, *spec.params)
    return llquantize_bucket(v, *spec.params)


# --- derived values -------------------------------------------------------------


def stddev_of(count: int, total: int, sumsq: int, normal: int = 1) -> int:
    """dtrace's integer standard deviation: isqrt(E[x^2] - E[x]^2), 128-bit unsigned."""
    count &= U64
    normal &= U64
    if count == 0 or normal == 0:
        return 0
    avg_sq = (sumsq & U128) // normal // count
    mean = cdiv(cdiv(s64(total), s64(normal)), s64(count))
    diff = (avg_sq - mean * mean) & U128
    return isqrt(diff) & U64


def avg_of(count: int, total: int, normal: int = 1) -> int:
    """Truncated mean as dtrace prints it by default (signed arithmetic)."""
    count, total, normal = s64(count), s64(total), s64(normal)
    if count == 0 or normal == 0:
        return 0
    return s64(cdiv(cdiv(total, normal), count))


def _lquantize_sortsum(bins: list[int], low: int, high: int, step: int) -> tuple[int, int]:
    """Weighted sum and 'zero' weight used to order lquantize values.

    The weights are quirky on purpose: underflow counts at low-1 and overflow at
    one past the last bin base, and the zero test walks the bases the same way.
    """
    levels = lquantize_levels(low, high, step)
    base = low
    total = bins[0] * (base - 1)
    for i in range(levels):
        total += bins[i + 1] * base
        base += step
    total += bins[levels + 1] * (base + 1)
    zero = 0
    base = low
    if base - 1 == 0:
        zero = bins[0]
    else:
        found = False
        for i in range(levels):
            if base == 0:
                zero, found = bins[i + 1], True
                break
            base += step
        if not found and base + 1 == 0:
            zero = bins[levels + 1]
    return total, zero


def _llquantize_sortsum(bins: list[int], factor: int, lmag: int, hmag: int, steps: int) -> tuple:
    sf, bin0, _ = llquantize_geometry(factor, lmag, hmag, steps)
    total = factor**lmag * (bins[bin0 + 1] - bins[bin0 - 1])
    i = 1
    if lmag == 0 and steps > factor:
        for step in range(2, factor + 1):
            i += sf
            total += step * (bins[bin0 + i] - bins[bin0 - i])
        lmag = 1
    # factor**(lmag+1) is a multiple of steps whenever steps > factor, and steps
    # divides factor otherwise, so the scale stays an integer.
    scale = factor ** (lmag + 1) // steps
    for _mag in range(lmag, hmag + 1):
        for step in range(sf + 1, steps + 1):
            i += 1
            total += step * scale * (bins[bin0 + i] - bins[bin0 - i])
        scale *= factor
    return total, bins[bin0]


# --- the shared aggregation buffer --------------------------------------------------


def data_size(spec: AggSpec) -> int:
    """Bytes of one entry's value in dtrace's aggregation map: a 64-bit
    update counter plus the function's own data."""
    words = {"count": 1, "sum": 1, "min": 1, "max": 1, "avg": 2, "stddev": 4}.get(spec.func)
    if words is None:
        words = nbuckets(spec)
    return 8 * (1 + words)


def tuple_size(keytypes: list[CType], strsize: int) -> int:
    """Bytes of a key tuple as dtrace assembles it: a 32-bit variable id, each
    component (scalars aligned to their size, strings strsize+1 bytes, other
    by-reference data at their size), then a 64-bit TLS slot."""
    size = 4
    for t in keytypes:
        r = t.resolve()
        if t.is_string():
            size += strsize + 1
        elif t.is_int() or t.is_pointer():
            n = t.int_size() if t.is_int() else 8
            size = (size + n - 1) // n * n + n
        else:
            size += max(r.size, 0)
    return size + 8


class AggPool:
    """The entries all aggregations share: dtrace sizes its aggregation hash
    map as aggsize / (largest key tuple + largest value), and a new key that
    finds the map full is dropped (and counted) rather than stored."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity  # None: unlimited
        self.members: list[Aggregation] = []
        self.drops = 0

    @classmethod
    def for_aggs(cls, aggs: list[Aggregation], aggsize: int | None, strsize: int) -> AggPool:
        if not aggs or not aggsize:
            return cls(None)
        tup = max(tuple_size(a.spec.keytypes, strsize) for a in aggs)
        dat = max(data_size(a.spec) for a in aggs)
        pool = cls(aggsize // (tup + dat))
        for a in aggs:
            a.pool = pool
            pool.members.append(a)
        return pool

    def admit(self) -> bool:
        """Room for one more entry?  Counts a drop when there is none."""
        if self.capacity is None or sum(len(a.data) for a in self.members) < self.capacity:
            return True
        self.drops += 1
        return False


class Aggregation:
    """One aggregation variable: key tuple -> state, plus its normalization."""

    def __init__(self, spec: AggSpec) -> None:
        self.spec = spec
        self.data: dict[tuple, object] = {}
        self.normal = 1
        self.printed = False
        self.pool: AggPool | None = None
        # key -> cpu -> state, filled only when the engine reports CPUs
        self.percpu: dict[tuple, dict[int, object]] = {}
        self._widths: list[tuple[int, bool]] | None = None  # _norm_key's, per key

    def __repr__(self) -> str:
        return f"Aggregation({self.spec.name}, {self.spec.func}, {len(self.data)} keys)"

    # --- probe side -------------------------------------------------------------
    def _initial(self) -> object:
        f = self.spec.func
        if f == "min":
            return INT64_MAX
        if f == "max":
            return INT64_MIN
        if f in ("count", "sum"):
            return 0
        if f == "avg":
            return [0, 0]
        if f == "stddev":
            return [0, 0, 0]
        return [0] * nbuckets(self.spec)

    def _norm_key(self, key: tuple) -> tuple:
        """Keep integer key elements within their declared type, as the key record would."""
        kt = self.spec.keytypes
        if not kt:
            return tuple(key)
        widths = self._widths
        if widths is None:
            widths = self._widths = [_width(t) for t in kt]
        out = []
        for i, k in enumerate(key):
            if isinstance(k, int) and not isinstance(k, bool) and i < len(widths):
                bits, signed = widths[i]
                k &= (1 << bits) - 1
                if signed and k >> (bits - 1):
                    k -= 1 << bits
            out.append(k)
        return tuple(out)

    def update(
        self, key: tuple = (), value: int = 0, incr: int = 1, cpu: int | None = None
    ) -> None:
        """Apply `@x[key] = func(value[, incr])` once; an engine that knows the
        firing CPU passes it so that -x aggpercpu can show the breakdown."""
        key = self._norm_key(key)
        cur = self.data.get(key)
        if cur is not None and cpu is None and self.spec.func == "count":
            self.data[key] = s64(cur + 1)  # the common case, without the general fold
            return
        if cur is None:
            if self.pool is not None and not self.pool.admit():
                return
            cur = self._initial()
        self.data[key] = self._combine(cur, s64(int(value)), int(incr))
        if cpu is not None:
            per = self.percpu.setdefault(key, {})
            per[cpu] = self._combine(per.get(cpu, self._initial()), s64(int(value)), int(incr))

    def _combine(self, cur: object, v: int, incr: int) -> object:
        """One more datum folded into an entry's state."""
        f = self.spec.func
        if f == "count":
            return s64(cur + 1)  # type: ignore[operator]
        if f == "sum":
            return s64(cur + v)  # type: ignore[operator]
        if f == "min":
            return min(cur, v)  # type: ignore[type-var]
        if f == "max":
            return max(cur, v)  # type: ignore[type-var]
        if f == "avg":
            return [s64(cur[0] + 1), s64(cur[1] + v)]  # type: ignore[index]
        if f == "stddev":
            return [s64(cur[0] + 1), s64(cur[1] + v), (cur[2] + (abs(v) & U64) ** 2) & U128]  # type: ignore[index]
        b = bucket_of(self.spec, v)
        bins = list(cur)  # type: ignore[call-overload]
        bins[b] = s64(bins[b] + incr)
        return bins

    def percpu_entries(self, key: tuple, ncpus: int) -> list[tuple[int, object]]:
        """(cpu, state) for every CPU 0..ncpus-1 (and any higher one seen), as
        -x aggpercpu lists them; CPUs that never fired show the cleared state."""
        per = self.percpu.get(key, {})
        top = max([ncpus - 1, *per])
        return [(c, per.get(c, self._initial())) for c in range(top + 1)]

    # --- consumer-side actions ---------------------------------------------------
    def clear(self) -> None:
        """Reset every value; the keys stay (and keep printing)."""
        for k in self.data:
            self.data[k] = self._initial()
        for per in self.percpu.values():
            for c in per:
                per[c] = self._initial()

    def kept(self, n: int | None) -> set[tuple]:
        """The keys trunc(n) keeps: the n entries of largest value (n < 0: the
        |n| smallest); none for no n or 0."""
        if not n:
            return set()
        order = sorted(self.data, key=self.value_key_sortkey)
        return set(order[-n:] if n > 0 else order[:-n])

    def trunc(self, n: int | None = None) -> None:
        """Keep the n entries of largest value (n < 0: the |n| smallest)."""
        if not n:
            self.data.clear()
            self.percpu.clear()
            return
        keep = self.kept(n)
        self.data = {k: v for k, v in self.data.items() if k in keep}
        self.percpu = {k: v for k, v in self.percpu.items() if k in keep}

    def normalize(self, n: int) -> None:
        self.normal = int(n) & U64

    def denormalize(self) -> None:
        self.normal = 1

    # --- values and ordering ---------------------------------------------------------
    def value(self, key: tuple) -> int:
        """The scalar an entry stands for (no normalization), as used for sorting."""
        return self.sort_value(key)[0]

    def sort_value(self, key: tuple) -> tuple:
        """Comparison key for dtrace's value ordering of one entry."""
        d = self.data[key]
        f = self.spec.func
        if f in ("count", "sum", "min", "max"):
            return (s64(d),)
        if f == "avg":
            return (avg_of(d[0], d[1]),)
        if f == "stddev":
            return (stddev_of(d[0], d[1], d[2]),)
        if f == "quantize":
            total = sum(quantize_bucket_value(i) * c for i, c in enumerate(d) if c)
            return (total, d[QUANTIZE_ZEROBUCKET])
        if f == "lquantize":
            return _lquantize_sortsum(d, *self.spec.params)
        return _llquantize_sortsum(d, *self.spec.params)

    def key_sortkey(self, key: tuple, keypos: int = 0) -> tuple:
        """Keys compare element by element: integers unsigned within their size,
        strings bytewise; `keypos` names the element compared first."""
        n = len(key)
        if keypos >= n or keypos < 0:
            keypos = 0
        out = []
        for j in range(n):
            i = (j + keypos) % n
            out.append(self._elem_sortkey(i, key[i]))
        return tuple(out)

    def _elem_sortkey(self, i: int, k: object) -> tuple:
        if isinstance(k, (bytes, bytearray)):
            return (1, bytes(k))
        if isinstance(k, str):
            return (1, k.encode("utf-8", "surrogateescape"))
        if isinstance(k, int):
            kt = self.spec.keytypes
            t = kt[i] if i < len(kt) else None
            size = t.int_size() if t is not None and t.is_int() else 8
            if size not in (1, 2, 4, 8):
                size = 8
            return (0, k & ((1 << (8 * size)) - 1))
        return (2, str(k).encode("utf-8", "surrogateescape"))

    def value_key_sortkey(self, key: tuple) -> tuple:
        return (self.sort_value(key), self.key_sortkey(key))
