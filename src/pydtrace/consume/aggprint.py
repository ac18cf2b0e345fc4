# ruff: noqa: UP031  (printf-style formats mirror the C formats dtrace uses)
"""Printing aggregations the way dtrace(1) does: default rows, histograms, sort
orders, printa() with and without a format, and the end-of-run dump.

Facts follow libdtrace's dt_consume.c (dt_print_aggs, dt_print_datum,
dt_print_quantize & co), dt_aggregate.c (sorting, joined walks) and dt_printf.c
(printa formats).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cmp_to_key

from ..lang.types import LONG, STRING, ULONG, CType
from .aggregation import (
    QUANTIZE_NBUCKETS,
    QUANTIZE_ZEROBUCKET,
    U64,
    Aggregation,
    avg_of,
    cdiv,
    llquantize_geometry,
    lquantize_levels,
    quantize_bucket_value,
    s64,
    stddev_of,
)
from .stacks import StackKey, SymKey, format_stack, format_symbol, frame_name, user_frames

TYPE_CHECKING = False

if TYPE_CHECKING:
    from pydtrace.lang.formats import Conversion, Format

HIST_HEADER = "\n%16s %41s %-9s\n" % ("value", "------------- Distribution -------------", "count")
_BAR = 40

# --- options ------------------------------------------------------------------------

_NEGATIVE = {"no", "disable", "disabled", "false", "off", "unset", ""}
_POSITIVE = {"yes", "enable", "enabled", "true", "on", "set"}


def _opt_set(options: dict, name: str) -> bool:
    """Whether an option is set, with dtrace's yes/no/true/false/... words."""
    v = options.get(name)
    if v is None or v is False:
        return False
    if isinstance(v, str):
        return v.strip().lower() not in _NEGATIVE
    return True


def _opt_int(options: dict, name: str) -> int:
    """A numeric runtime option (0 when unset or unparsable)."""
    v = options.get(name)
    if v is None or v is False or v is True:
        return 0
    if isinstance(v, int):
        return v
    s = str(v).strip().lower()
    if s in _POSITIVE:
        return 1
    try:
        return int(s, 0)
    except ValueError:
        return 0


# --- data rendering ---------------------------------------------------------------------


def _u64_div(v: int, normal: int) -> int:
    """`(long long)v / normal` with an unsigned normal: C makes the division unsigned."""
    return s64((v & U64) // (normal & U64 or 1))


def hex_dump(data: bytes) -> str:
    """dtrace's hex dump of a byte record."""
    if not data:
        return ""
    out = ["\n" + " " * 5 + "      "]
    out.extend("  " + c for c in "0123456789abcdef")
    out.append("  0123456789abcdef\n")
    for i in range(0, len(data), 16):
        chunk = data[i : i + 16]
        out.append(" " * 5 + "%5x:" % i)
        out.extend(" %02x" % b for b in chunk)
        out.append("   " * (16 - len(chunk)))
        out.append("  ")
        out.append("".join(chr(b) if 0x20 <= b <= 0x7E else "." for b in chunk))
        out.append("\n")
    return "".join(out)


def _printable(b: int) -> bool:
    # isprint/isspace in the C locale, plus backspace and bell
    return 0x20 <= b <= 0x7E or b in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x08, 0x07)


def _fmt_bytes_key(value: object, options: dict) -> str:
    """A string (or other byte-record) key: `  %-50s` when it looks like text."""
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        data = str(value).encode("utf-8", "surrogateescape")
    nul = data.find(b"\0")
    text = data if nul < 0 else data[:nul]
    if text and all(_printable(b) for b in text) and (nul < 0 or not data[nul:].strip(b"\0")):
        return "  %-50s" % text.decode("utf-8", "surrogateescape")
    # Not text (or empty): dtrace dumps the whole record, NUL padding included.
    size = _opt_int(options, "strsize") or 256
    rec = text + b"\0" * max(size - len(text), 0)
    return hex_dump(rec)


def format_key_elem(value: object, ctype: CType | None, options: dict | None = None) -> str:
    """One key element as printed by default: width by the element's size."""
    options = options or {}
    if isinstance(value, StackKey):
        indent = options.get("stackindent")
        return format_stack(value, int(indent) if indent is not None else 14)
    if isinstance(value, SymKey):
        return "  %-50s" % format_symbol(value.kind, value.addr, value.pid)
    if isinstance(value, int) and not isinstance(value, bool):
        size = 8
        if ctype is not None and ctype.is_int():
            size = ctype.int_size()
        if size == 4:
            v = value & 0xFFFFFFFF
            return " %8d" % (v - (1 << 32) if v >> 31 else v)
        if size == 2:
            return " %5d" % (value & 0xFFFF)
        if size == 1:
            return " %3d" % (value & 0xFF)
        return " %16d" % s64(value)
    return _fmt_bytes_key(value, options)


def _quantline(val: int, normal: int, total: int, pos: bool, neg: bool) -> str:
    """One histogram bar plus its count."""

    def depth(width: int) -> int:
        if total == 0:
            return 0
        # (uint)(|val| * width / total + 0.5), exactly
        return (2 * abs(val) * width + total) // (2 * total)

    shown = "%-9d" % _u64_div(val, normal)
    if not neg:
        d = depth(_BAR) if pos else 0
        return "|" + "@" * d + " " * (_BAR - d) + " " + shown + "\n"
    if not pos:
        d = depth(_BAR)
        return " " * (_BAR - d) + "@" * d + "| " + shown + "\n"
    half = _BAR // 2
    d = depth(half)
    if val <= 0:
        return " " * (half - d) + "@" * d + "|" + " " * half + " " + shown + "\n"
    return " " * half + "|" + "@" * d + " " * (half - d) + " " + shown + "\n"


def _hist_rows(
    bins: list[int],
    first: int,
    last: int,
    label: Callable[[int], str | None],
    normal: int,
    total_range: tuple[int, int] | None = None,
) -> str:
    lo, hi = total_range or (first, last)
    pos = any(bins[i] > 0 for i in range(lo, hi + 1))
    neg = any(bins[i] < 0 for i in range(lo, hi + 1))
    total = sum(abs(bins[i]) for i in range(lo, hi + 1))
    out = [HIST_HEADER]
    for i in range(first, last + 1):
        lab = label(i)
        if lab is None:
            continue
        out.append("%16s " % lab + _quantline(bins[i], normal, total, pos, neg))
    return "".join(out)


def _data_range(bins: list[int]) -> tuple[int, int] | None:
    nz = [i for i, c in enumerate(bins) if c != 0]
    return (nz[0], nz[-1]) if nz else None


def format_quantize(bins: list[int], normal: int = 1) -> str:
    r = _data_range(bins)
    if r is None:
        first, last = QUANTIZE_ZEROBUCKET - 1, QUANTIZE_ZEROBUCKET + 1
    else:
        first, last = max(r[0] - 1, 0), min(r[1] + 1, QUANTIZE_NBUCKETS - 1)
    return _hist_rows(bins, first, last, lambda i: "%d" % quantize_bucket_value(i), normal)


def format_lquantize(bins: list[int], low: int, high: int, step: int, normal: int = 1) -> str:
    levels = lquantize_levels(low, high, step)
    r = _data_range(bins)
    if r is None:
        first, last = 0, 2
    else:
        first, last = max(r[0] - 1, 0), min(r[1] + 1, levels + 1)

    def label(i: int) -> str:
        if i == 0:
            return "< %d" % low
        if i == levels + 1:
            return ">= %d" % (low + levels * step)
        return "%d" % (low + (i - 1) * step)

    return _hist_rows(bins, first, last, label, normal)


def llquantize_labels(
    factor: int, lmag: int, hmag: int, steps: int, first_bin: int
) -> dict[int, str]:
    """Labels of the bins of a log-linear histogram; bins without one are not printed.

    `first_bin` (the first row shown) decides how the zero bin is named."""
    sf, bin0, nbins = llquantize_geometry(factor, lmag, hmag, steps)
    labels: dict[int, str] = {}
    scale = factor**lmag
    if scale == 1:
        labels[bin0] = "0"
    elif first_bin >= bin0:
        labels[bin0] = "< %d" % scale
    else:
        labels[bin0] = "abs() < %d" % scale
    labels[bin0 - 1] = "-%d" % scale
    labels[bin0 + 1] = "%d" % scale
    mag, i = lmag, 1
    if lmag == 0 and steps > factor:
        for step in range(2, factor + 1):
            i += sf
            labels[bin0 - i] = "-%d" % step
            labels[bin0 + i] = "%d" % step
        mag += 1
    scale = factor ** (mag + 1) // steps
    while mag <= hmag:
        for step in range(sf + 1, steps + 1):
            i += 1
            labels[bin0 - i] = "-%d" % (step * scale)
            labels[bin0 + i] = "%d" % (step * scale)
        scale *= factor
        mag += 1
    top = factor ** (hmag + 1)
    labels[0] = "<= -%d" % top
    labels[nbins - 1] = ">= %d" % top
    return {k: v for k, v in labels.items() if 0 <= k < nbins}


def format_llquantize(
    bins: list[int], factor: int, lmag: int, hmag: int, steps: int, normal: int = 1
) -> str:
    sf, bin0, nbins = llquantize_geometry(factor, lmag, hmag, steps)
    r = _data_range(bins)
    first, last = r if r is not None else (bin0 + 1, bin0 + 1)
    total_range = (first, last)
    first = max(first - 1, 0)
    last = min(last + 1, nbins - 1)
    labels = llquantize_labels(factor, lmag, hmag, steps, first)
    pad = sf if (lmag == 0 and steps > factor) else 0
    if pad > 0:
        # The ends of the shown range may fall on a bin that has no label of its
        # own (between the small integer steps); borrow the nearest label outward.
        for end, direction in ((first, -1), (last, 1)):
            if end not in labels:
                for k in range(1, pad):
                    if end + direction * k in labels:
                        labels[end] = labels[end + direction * k]
                        break
    return _hist_rows(bins, first, last, labels.get, normal, total_range)


def format_value(agg: Aggregation, data: object) -> str:
    """The default rendering of one entry's value (with the normalization)."""
    f = agg.spec.func
    normal = agg.normal
    if f in ("count", "sum", "min", "max"):
        return " %16d" % _u64_div(data, normal)  # type: ignore[arg-type]
    if f == "avg":
        c, t = data  # type: ignore[misc]
        return " %16d" % avg_of(c, t, normal)
    if f == "stddev":
        c, t, sq = data  # type: ignore[misc]
        return " %16d" % stddev_of(c, t, sq, normal)
    return format_histogram(agg, data)  # type: ignore[arg-type]


def format_histogram(agg: Aggregation, bins: list[int]) -> str:
    f = agg.spec.func
    if f == "quantize":
        return format_quantize(bins, agg.normal)
    if f == "lquantize":
        return format_lquantize(bins, *agg.spec.params, normal=agg.normal)
    return format_llquantize(bins, *agg.spec.params, normal=agg.normal)


def _zero_data(agg: Aggregation) -> object:
    """A zero-filled entry, as printed for a key an aggregation lacks in a joined printa."""
    init = agg._initial()
    if isinstance(init, list):
        return [0] * len(init)
    return 0


def _entry(agg: Aggregation, key: tuple) -> object:
    d = agg.data.get(key)
    return _zero_data(agg) if d is None else d


def _keytype(agg: Aggregation, i: int) -> CType | None:
    kt = agg.spec.keytypes
    return kt[i] if i < len(kt) else None


def format_row(agg: Aggregation, key: tuple, options: dict | None = None) -> str:
    keys = "".join(format_key_elem(k, _keytype(agg, i), options) for i, k in enumerate(key))
    return keys + format_value(agg, agg.data[key]) + _percpu_values(agg, key, options) + "\n"


def _percpu_values(agg: Aggregation, key: tuple, options: dict | None) -> str:
    """-x aggpercpu: after the total, each CPU's own value on a line of its own
    (only when the engine reported which CPU each update ran on)."""
    if not options or not _opt_set(options, "aggpercpu") or not agg.percpu:
        return ""
    # dtrace lists every CPU of the machine; "_ncpus" lets a caller say how many
    ncpus = int(options.get("_ncpus") or os.cpu_count() or 1)
    return "".join(
        "\n    [CPU %d]" % c + format_value(agg, d) for c, d in agg.percpu_entries(key, ncpus)
    )


# --- sorting -----------------------------------------------------------------------------


def _cmp(a: object, b: object) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def _sort_value(agg: Aggregation, key: tuple) -> tuple:
    if key in agg.data:
        return agg.sort_value(key)
    saved = agg.data
    agg.data = {key: _zero_data(agg)}
    try:
        return agg.sort_value(key)
    finally:
        agg.data = saved


def sort_keys(aggs: list[Aggregation], options: dict) -> list[tuple]:
    """The order in which dtrace prints the keys of one aggregation, or of the
    union of keys of several (a joined printa)."""
    if not aggs:
        return []
    rev = _opt_set(options, "aggsortrev")
    keysort = _opt_set(options, "aggsortkey")
    keypos = _opt_int(options, "aggsortkeypos")
    n = len(aggs)
    sortpos = _opt_int(options, "aggsortpos")
    if sortpos < 0 or sortpos >= n:
        sortpos = 0
    order = [aggs[(i + sortpos) % n] for i in range(n)]

    keys: list[tuple] = []
    seen: set = set()
    for a in aggs:
        for k in a.data:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    rep = min(aggs, key=lambda a: a.spec.id)

    def keycmp(x: tuple, y: tuple) -> int:
        return _cmp(rep.key_sortkey(x, keypos), rep.key_sortkey(y, keypos))

    def valcmp(x: tuple, y: tuple) -> int:
        for a in order:
            c = _cmp(_sort_value(a, x), _sort_value(a, y))
            if c:
                return c
        return 0

    def cmp(x: tuple, y: tuple) -> int:
        if keysort:
            c = keycmp(x, y) or valcmp(x, y)
        else:
            c = valcmp(x, y) or keycmp(x, y)
        return -c if rev else c

    return sorted(keys, key=cmp_to_key(cmp))


# --- whole outputs -------------------------------------------------------------------------


def format_aggregation(agg: Aggregation, options: dict) -> str:
    """All rows of one aggregation in the default format and order."""
    if _opt_set(options, "folded") and agg.spec.func in ("count", "sum"):
        return format_folded(agg, options)
    return "".join(format_row(agg, k, options) for k in sort_keys([agg], options))


def format_folded(agg: Aggregation, options: dict) -> str:
    """-x folded: the rows as flame-graph tools read them (Brendan Gregg's
    stackcollapse form): the key's parts joined by ';', a stack's frames
    outermost first and without offsets, a space, the value; rows that fold
    to the same line are added up."""
    rows: dict[str, int] = {}
    for key in sort_keys([agg], options):
        parts: list[str] = []
        for k in key:
            if isinstance(k, StackKey):
                frames = user_frames(k.frames, k.pid) if k.kind == "ustack" else k.frames
                names = [frame_name(k.kind, pc, k.pid) for pc in frames if pc]
                parts.extend(n.split("+0x", 1)[0] for n in reversed(names))
            elif isinstance(k, SymKey):
                parts.append(format_symbol(k.kind, k.addr, k.pid))
            else:
                parts.append(str(k).split("\0", 1)[0].replace(";", ":"))
        line = ";".join(parts)
        rows[line] = rows.get(line, 0) + _u64_div(agg.data[key], agg.normal)
    return "".join(f"{line} {n}\n" for line, n in rows.items())


def _format_joined_default(aggs: list[Aggregation], options: dict) -> str:
    out = []
    for key in sort_keys(aggs, options):
        rep = next(a for a in sorted(aggs, key=lambda a: a.spec.id) if key in a.data)
        row = "".join(format_key_elem(k, _keytype(rep, i), options) for i, k in enumerate(key))
        row += "".join(
            format_value(a, _entry(a, key)) + _percpu_values(a, key, options) for a in aggs
        )
        out.append(row + "\n")
    return "".join(out)


def _printa_scalar(agg: Aggregation, data: object, conv: Conversion) -> tuple[int, CType]:
    """The value a %@ conversion prints for a non-histogram aggregation."""
    f = agg.spec.func
    normal = agg.normal & U64 or 1
    ctype = ULONG if f == "count" else LONG
    if f == "avg":
        c, t = data  # type: ignore[misc]
        # dt_printf divides as unsigned 64-bit here, unlike the default printing
        return ((t & U64) // normal // (c & U64) if c else 0), ctype
    if f == "stddev":
        c, t, sq = data  # type: ignore[misc]
        return stddev_of(c, t, sq, normal), ctype
    v = data & U64  # type: ignore[operator]
    # %d/%i follow the value's type (count is unsigned) unless a length letter
    # makes them explicitly signed; %u %x %o are unsigned.
    signed = conv.char == "c" or (conv.char in "di" and (conv.length != "" or ctype is LONG))
    if signed:
        return cdiv(s64(v), s64(normal)), ctype
    return v // normal, ctype


def _format_row_with(
    fmt: Format, aggs: list[Aggregation], key: tuple, options: dict, target_pid: int
) -> str:
    from .printf import format_printa as printf_row

    rep = next(a for a in sorted(aggs, key=lambda a: a.spec.id) if key in a.data)
    keyvals = []
    for i, k in enumerate(key):
        t = _keytype(rep, i)
        if t is None:
            t = STRING if isinstance(k, str) else LONG
        keyvals.append((k, t))
    aggconvs = [p for p in fmt.parts if not isinstance(p, str) and p.agg]
    vals: list[tuple[object, CType]] = []
    for n, a in enumerate(aggs):
        d = _entry(a, key)
        if a.spec.func in ("quantize", "lquantize", "llquantize"):
            vals.append((format_histogram(a, d), LONG))  # type: ignore[arg-type]
        else:
            conv = aggconvs[min(n, len(aggconvs) - 1)] if aggconvs else None
            if conv is None:
                vals.append((0, LONG))
            else:
                vals.append(_printa_scalar(a, d, conv))
    if aggconvs and len(aggconvs) > len(aggs):
        # Extra %@ conversions repeat the last aggregation; re-derive its value for
        # each of those conversions (signedness depends on the conversion).
        last = aggs[-1]
        if last.spec.func not in ("quantize", "lquantize", "llquantize"):
            d = _entry(last, key)
            extra = [_printa_scalar(last, d, c) for c in aggconvs[len(aggs) :]]
            vals = vals + extra
    return printf_row(fmt, keyvals, vals, target_pid)


def format_printa(
    fmt: Format | None, aggs: list[Aggregation], options: dict, target_pid: int = -1
) -> str:
    """printa(@a...) without a format ("\\n" then default rows) or with one (the
    format applied once per key, no leading newline; a bare %A resolves in
    target_pid). Marks what it printed."""
    if fmt is None:
        if len(aggs) == 1:
            text = format_aggregation(aggs[0], options)
        else:
            text = _format_joined_default(aggs, options)
        if text:
            for a in aggs:
                a.printed = True
        return "\n" + text
    keys = sort_keys(aggs, options)
    if keys:
        for a in aggs:
            a.printed = True
    return "".join(_format_row_with(fmt, aggs, k, options, target_pid) for k in keys)


def format_exit(aggs: list[Aggregation], options: dict) -> str:
    """What dtrace prints at the end for the aggregations printa() never printed
    (the one newline written before it is the caller's)."""
    todo = [a for a in aggs if not a.printed and a.data]
    todo.sort(key=lambda a: a.spec.id, reverse=_opt_set(options, "aggsortrev"))
    return "".join(format_aggregation(a, options) for a in todo)
