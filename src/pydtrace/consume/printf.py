"""DTrace's printf(): run-time formatting of values by a parsed format (lang.formats).

The behaviour follows dtrace-utils (libdtrace/dt_printf.c):

* Printing rebuilds a C format from the parsed pieces: flags in a fixed order, the width only
  when non-zero, the precision only when > 0 (so `%.0s` prints the whole string), and `ll`
  added whenever the argument is 64 bits wide.
* Values are reinterpreted at their own type's size: `%u` of an `int` -1 is 4294967295, `%d` of
  an unsigned type prints unsigned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from pydtrace.consume.stacks import StackKey, SymKey, format_stack
from pydtrace.lang.formats import Conversion, Format
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# --- run-time formatting -------------------------------------------------------------------


def _c_int(value: int, size: int, signed: bool) -> int:
    """Reinterpret value's low `size` bytes (signed or not); small types widen to 32 bits."""
    size = size if size in (1, 2, 4, 8) else 8
    bits = size * 8
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _pad(body: str, width: int, left: bool) -> str:
    # C counts bytes, not characters: measure the UTF-8 length.
    blen = len(body.encode("utf-8", "surrogateescape"))
    if width <= blen:
        return body
    fill = " " * (width - blen)
    return body + fill if left else fill + body


def _fmt_int(value: int, ch: str, flags: str, width: int, prec: int, left: bool, zero: bool) -> str:
    """C's %d %i %u %o %x %X on an already reinterpreted value."""
    neg = value < 0
    mag = -value if neg else value
    if ch in "di":
        digits = str(mag)
    elif ch == "u":
        digits = str(mag)
    elif ch == "o":
        digits = format(mag, "o")
    elif ch == "x":
        digits = format(mag, "x")
    else:
        digits = format(mag, "X")
    if prec > 0 and len(digits) < prec:
        digits = "0" * (prec - len(digits)) + digits
    prefix = ""
    if ch in "di":
        if neg:
            prefix = "-"
        elif "+" in flags:
            prefix = "+"
        elif " " in flags:
            prefix = " "
    elif "#" in flags:
        if ch == "o" and not digits.startswith("0"):
            digits = "0" + digits
        elif ch in "xX" and mag != 0:
            prefix = "0" + ch
    if zero and not left and prec <= 0:
        need = width - len(prefix) - len(digits)
        if need > 0:
            digits = "0" * need + digits
    return _pad(prefix + digits, width, left)


def _fmt_float(
    value: float, ch: str, flags: str, width: int, prec: int, left: bool, zero: bool
) -> str:
    spec = "%"
    if "#" in flags:
        spec += "#"
    if zero and not left and math.isfinite(value):  # C pads inf/nan with spaces
        spec += "0"
    if left:
        spec += "-"
    if "+" in flags:
        spec += "+"
    elif " " in flags:
        spec += " "
    if width:
        spec += str(width)
    if prec > 0:
        spec += f".{prec}"
    return (spec + ch) % value


def _as_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        b = bytes(value)
    else:
        b = str(value).encode("utf-8", "surrogateescape")
    nul = b.find(b"\0")
    return b if nul < 0 else b[:nul]


def _fmt_str(value: object, width: int, prec: int, left: bool) -> str:
    b = _as_bytes(value)
    if prec > 0:
        b = b[:prec]
    s = b.decode("utf-8", "surrogateescape")
    return _pad(s, width, left)


_ESCAPES = {0: "\\0", 7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def escape_bytes(b: bytes) -> str:
    """%S / %C escaping: C escapes for the usual controls, octal for other non-printables."""
    out = []
    for c in b:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
            if c == 0:
                break
        elif c in (0x22, 0x5C):  # '"' and '\\'
            out.append("\\" + chr(c))
        elif c == 0x20 or 0x21 <= c <= 0x7E:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03o}")
    return "".join(out)


def addr_to_str(addr: int, user: bool, pid: int = -1, target_pid: int = -1) -> str:
    """%a/%A text: a kernel address's frame (module`function+0xoff) or, given
    its process (else target_pid, $target under -c/-p, as dtrace does), a
    user address's; else the bare hex address."""
    addr &= 0xFFFFFFFFFFFFFFFF
    if user and pid <= 0:
        pid = target_pid
    if not user or pid > 0:
        from pydtrace.consume.stacks import frame_name

        return frame_name("ustack" if user else "stack", addr, pid)
    return f"0x{addr:x}"


def _ns_to_sec(ns: int) -> int:
    ns = _c_int(ns, 8, True)
    return -(-ns // 1_000_000_000) if ns < 0 else ns // 1_000_000_000  # C truncation


_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()


def format_time_y(ns: int) -> str:
    """%Y: ctime() rearranged to put the year first: '1973 Dec  3 17:20:00'."""
    tm = time.localtime(_ns_to_sec(ns))
    return (
        f"{tm.tm_year} {_MONTHS[tm.tm_mon - 1]} {tm.tm_mday:2d} "
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
    )


def format_time_t(ns: int) -> str:
    """%T: strftime('%a, %d %b %G %T %Z') in local time (note %G, the ISO week year)."""
    from datetime import datetime

    tm = time.localtime(_ns_to_sec(ns))
    iso_year = datetime(tm.tm_year, tm.tm_mon, tm.tm_mday).isocalendar()[0]
    return (
        f"{_DAYS[tm.tm_wday]}, {tm.tm_mday:02d} {_MONTHS[tm.tm_mon - 1]} {iso_year} "
        f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {tm.tm_zone}"
    )


def _char_of(code: int, wide: bool) -> str:
    if wide:
        try:
            return chr(code & 0xFFFFFFFF)
        except ValueError:
            return ""
    return (
        chr(code & 0xFF)
        if (code & 0xFF) < 0x80
        else bytes([code & 0xFF]).decode("utf-8", "surrogateescape")
    )


def format_one(
    conv: Conversion,
    value: object,
    ctype: CType,
    width: int | None = None,
    precision: int | None = None,
    target_pid: int = -1,
) -> str:
    """Format one value for one conversion.

    width/precision are the resolved values of '*' (or overrides); a negative width means
    left-justify, a precision <= 0 is ignored, as in dtrace.  target_pid: the
    process a bare %A address resolves in ($target), -1 for none.
    """
    if conv.plain_int and width is None and precision is None and type(value) is int:
        # the common case, without the general machinery below
        kind = conv.spec.kind
        size = ctype.int_size() if ctype.r.kind not in ("string", "array") else 8
        signed = kind == "sint" or (kind == "dint" and ctype.is_signed())
        return str(_c_int(value, size, signed))
    spec = conv.spec
    if width is None:
        width = conv.width if isinstance(conv.width, int) else 0
    if precision is None:
        precision = conv.precision if isinstance(conv.precision, int) else 0
    left = conv.left or width < 0
    zero = conv.zero
    width = abs(width)
    flags = conv.flags
    kind = spec.kind
    size = ctype.int_size() if ctype.r.kind not in ("string", "array") else 8
    if isinstance(value, bool):
        value = int(value)

    if kind in ("sint", "uint", "dint"):
        if isinstance(value, float):
            value = int(value)
        if not isinstance(value, int):
            raise TypeError(f"%{conv.name} needs an integer, got {value!r}")
        signed = kind == "sint" or (kind == "dint" and ctype.is_signed())
        v = _c_int(value, size, signed)
        ch = spec.out
        if kind == "dint" and not signed:
            ch = "u"
        if ch in ("c", "lc"):
            return _pad(_char_of(v, ch == "lc"), width, left)
        return _fmt_int(v, ch, flags, width, precision, left, zero)
    if kind == "fp":
        return _fmt_float(float(value), spec.out, flags, width, precision, left, zero)  # type: ignore[arg-type]
    if kind == "cstr":
        return _fmt_str(value, width, precision, left)
    if kind == "estr":
        return _fmt_str(escape_bytes(_as_bytes(value)), width, precision, left)
    if kind == "echr":
        assert isinstance(value, int)
        return _fmt_str(escape_bytes(bytes([value & 0xFF])), width, precision, left)
    if kind == "wstr":
        if isinstance(value, list | tuple):
            value = "".join(chr(c) for c in value)
        return _fmt_str(value, width, precision, left)
    if kind in ("addr", "uaddr"):
        if isinstance(value, str):
            text = value  # already symbolized by the caller
        elif isinstance(value, SymKey):  # a sym()/func()... key: the address it stands for
            text = addr_to_str(value.addr, value.kind.startswith("u"), value.pid, target_pid)
        else:
            assert isinstance(value, int)
            text = addr_to_str(_c_int(value, size, False), kind == "uaddr", -1, target_pid)
        return _fmt_str(text, width, precision, left)
    if kind == "time":
        assert isinstance(value, int)
        return _fmt_str(format_time_y(value), width, precision, left)
    if kind == "time822":
        assert isinstance(value, int)
        return _fmt_str(format_time_t(value), width, precision, left)
    if kind == "stack":
        return _fmt_stack(value, width, precision, left)
    raise ValueError(f"unhandled conversion %{conv.name}")


def _fmt_stack(value: object, width: int, prec: int, left: bool) -> str:
    """%k: a pre-rendered stack string is printed as is; a list of frame names is laid out
    as dtrace does: a newline, then one frame per line, indented by the width under '-'
    (otherwise each frame is right-aligned in the width)."""
    if isinstance(value, str):
        return value
    if isinstance(value, StackKey):  # a stack()/ustack() key
        return format_stack(value)
    frames = list(value)  # type: ignore[call-overload]
    indent = width if left else 0
    fw = 0 if left else width
    out = ["\n"]
    for f in frames:
        out.append(" " * indent + _fmt_str(f, fw, prec, False) + "\n")
    return "".join(out)


def _dyn_int(value: object) -> int:
    """A '*' argument as C int (dtrace truncates it to 32 bits)."""
    assert isinstance(value, int)
    return _c_int(value, 4, True)


def format_printf(fmt: Format, args: list[tuple[object, CType]], target_pid: int = -1) -> str:
    """Format printf() output from the argument values (each with its type);
    target_pid as format_one takes it."""
    types = tuple(t for _, t in args)
    plan = fmt.plans.get(types, False)
    if plan is False:
        plan = fmt.plans[types] = _plan(fmt, types)
    if plan is not None:
        try:
            return plan(args)
        except TypeError:
            pass  # a value of an unexpected kind: the general path says what is wrong
    return _format_printf(fmt, args, target_pid)


def _plan(fmt: Format, types: tuple[CType, ...]) -> Callable[[list], str] | None:
    """A fast formatter for a format whose conversions are all bare %d/%i/%u
    or %s (the common printf), or None: one Python %-format over values
    converted by functions chosen once for their types."""
    parts = _plan_parts(fmt, types)
    if parts is None:
        return None
    pyfmt, funcs = parts
    if not funcs:
        return lambda args: pyfmt % ()

    def run(args: list) -> str:
        return pyfmt % tuple([f(v) for f, (v, _) in zip(funcs, args)])

    return run


def value_formatter(
    fmt: Format, types: tuple[CType, ...], positions: tuple[int, ...]
) -> Callable[[Any], str] | None:
    """Like format_printf's fast plan, for an engine that has the argument
    values in a sequence (a decoded record): positions[i] is where argument
    i is. None when the format needs the general path."""
    parts = _plan_parts(fmt, types)
    if parts is None:
        return None
    pyfmt, funcs = parts
    if not funcs:
        text = pyfmt % ()
        return lambda vals: text
    if len(funcs) == 1:
        (f,), (i,) = funcs, positions
        return lambda vals: pyfmt % f(vals[i])
    pairs = list(zip(funcs, positions))
    return lambda vals: pyfmt % tuple([f(vals[i]) for f, i in pairs])


def _plan_parts(
    fmt: Format, types: tuple[CType, ...]
) -> tuple[str, list[Callable[[Any], str]]] | None:
    """The Python %-format and the per-argument text functions of a format
    whose conversions are all bare %d/%i/%u or %s, or None."""
    pieces: list[str] = []
    funcs: list[Callable[[Any], str]] = []
    for part in fmt.parts:
        if isinstance(part, str):
            pieces.append(part.replace("%", "%%"))
            continue
        if part.agg or len(funcs) >= len(types):
            return None
        t = types[len(funcs)]
        if part.plain_int and t.r.kind not in ("string", "array"):
            kind = part.spec.kind
            signed = kind == "sint" or (kind == "dint" and t.is_signed())
            funcs.append(_int_text(t.int_size(), signed))
        elif part.name == "s" and not part.flags and part.width is None and part.precision is None:
            funcs.append(_plain_str)
        else:
            return None
        pieces.append("%s")
    if len(funcs) != len(types):
        return None
    return "".join(pieces), funcs


def _int_text(size: int, signed: bool) -> Callable[[Any], str]:
    size = size if size in (1, 2, 4, 8) else 8
    bits = size * 8
    mask, top = (1 << bits) - 1, 1 << (bits - 1)

    def text(v: Any) -> str:
        if type(v) is not int:
            if type(v) is bool:
                v = int(v)
            else:
                raise TypeError(v)
        v &= mask
        if signed and v & top:
            v -= 1 << bits
        return str(v)

    return text


def _plain_str(v: Any) -> str:
    if type(v) is str and "\0" not in v:
        return v
    return _fmt_str(v, 0, 0, False)


def _format_printf(fmt: Format, args: list[tuple[object, CType]], target_pid: int) -> str:
    out: list[str] = []
    it = iter(args)
    for part in fmt.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        if part.agg:
            raise ValueError("%@ conversion in printf()")
        out.append(_format_with_args(part, it, target_pid))
    return "".join(out)


def _format_with_args(conv: Conversion, it, target_pid: int) -> str:  # type: ignore[no-untyped-def]
    width = precision = None
    if conv.width == "*":
        width = _dyn_int(next(it)[0])
    if conv.precision == "*":
        precision = _dyn_int(next(it)[0])
    value, ctype = next(it)
    return format_one(conv, value, ctype, width, precision, target_pid)


def format_printa(
    fmt: Format,
    keys: list[tuple[object, CType]],
    aggvals: list[tuple[object, CType]],
    target_pid: int = -1,
) -> str:
    """Format one printa() row: plain conversions take key elements in order ('*' too),
    the n-th %@ takes the n-th aggregation value (extra %@ repeat the last one);
    target_pid as format_one takes it.

    An aggregation value given as a str (e.g. a rendered histogram) is inserted as is.
    """
    out: list[str] = []
    it = iter(keys)
    nagg = 0
    for part in fmt.parts:
        if isinstance(part, str):
            out.append(part)
            continue
        if not part.agg:
            out.append(_format_with_args(part, it, target_pid))
            continue
        width = precision = None
        if part.width == "*":
            width = _dyn_int(next(it)[0])
        if part.precision == "*":
            precision = _dyn_int(next(it)[0])
        value, ctype = aggvals[min(nagg, len(aggvals) - 1)]
        nagg += 1
        if isinstance(value, str):
            out.append(value)
        else:
            out.append(format_one(part, value, ctype, width, precision, target_pid))
    return "".join(out)


__all__ = [
    "format_printf",
    "format_printa",
    "format_one",
    "addr_to_str",
    "escape_bytes",
    "format_time_y",
    "format_time_t",
]
