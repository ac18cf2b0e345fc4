"""DTrace's printf(): format parsing, compile-time checking and run-time formatting.

The behaviour follows dtrace-utils (libdtrace/dt_printf.c):

* A conversion is `%` then any mix of the flags `# 0 - + ' space @ ?`, digits for width,
  `.` and digits for precision, `*` for a width/precision taken from an argument, the length
  letters `h l L w`, and a conversion character. The length letters plus the character form
  the conversion's name, looked up in a fixed table (so `%hhd` is undefined, `%lld` is not).
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
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from pydtrace.consume.stacks import StackKey, SymKey, format_stack
from pydtrace.lang.errors import DError
from pydtrace.lang.types import BUILTIN_TYPEDEFS, CType

FLAG_CHARS = "#0- +'"

_XINT = "char, short, int, long, or long long"
_CSI = "char, short, or int"
_FP = "float, double, or long double"
_ADDR = "pointer or integer"
_UADDR = "pointer or integer (with -p/-c) or _usymaddr (without -p/-c)"
_CSTR = "char [] or string (or use stringof)"
_WSTR = "wchar_t []"


@dataclass(frozen=True)
class _ConvSpec:
    check: str  # which type rule applies (see _type_ok)
    proto: str  # the prototype text shown in D_PRINTF_ARG_TYPE messages
    kind: str  # how the value is printed (see format_one)
    out: str  # the C conversion used for the final output


# name -> spec; the name is the length letters plus the conversion character.
_CONVS: dict[str, _ConvSpec] = {
    "a": _ConvSpec("kaddr", _ADDR, "addr", "s"),
    "A": _ConvSpec("uaddr", _UADDR, "uaddr", "s"),
    "c": _ConvSpec("csi", _CSI, "sint", "c"),
    "C": _ConvSpec("csi", _CSI, "echr", "s"),
    "d": _ConvSpec("dint", _XINT, "dint", "d"),
    "e": _ConvSpec("fp", _FP, "fp", "e"),
    "E": _ConvSpec("fp", _FP, "fp", "E"),
    "f": _ConvSpec("fp", _FP, "fp", "f"),
    "g": _ConvSpec("fp", _FP, "fp", "g"),
    "G": _ConvSpec("fp", _FP, "fp", "G"),
    "hd": _ConvSpec("type", "short", "sint", "d"),
    "hi": _ConvSpec("type", "short", "sint", "i"),
    "ho": _ConvSpec("type", "unsigned short", "uint", "o"),
    "hu": _ConvSpec("type", "unsigned short", "uint", "u"),
    "hx": _ConvSpec("xshort", "short", "uint", "x"),
    "hX": _ConvSpec("xshort", "short", "uint", "X"),
    "i": _ConvSpec("dint", _XINT, "dint", "i"),
    "k": _ConvSpec("stack", "stack", "stack", "s"),
    "lc": _ConvSpec("type", "int", "sint", "lc"),
    "ld": _ConvSpec("type", "long", "sint", "d"),
    "li": _ConvSpec("type", "long", "sint", "i"),
    "lo": _ConvSpec("type", "unsigned long", "uint", "o"),
    "lu": _ConvSpec("type", "unsigned long", "uint", "u"),
    "ls": _ConvSpec("wstr", _WSTR, "wstr", "ls"),
    "lx": _ConvSpec("xlong", "long", "uint", "x"),
    "lX": _ConvSpec("xlong", "long", "uint", "X"),
    "lld": _ConvSpec("type", "long long", "sint", "d"),
    "lli": _ConvSpec("type", "long long", "sint", "i"),
    "llo": _ConvSpec("type", "unsigned long long", "uint", "o"),
    "llu": _ConvSpec("type", "unsigned long long", "uint", "u"),
    "llx": _ConvSpec("xllong", "long long", "uint", "x"),
    "llX": _ConvSpec("xllong", "long long", "uint", "X"),
    "Le": _ConvSpec("type", "long double", "fp", "e"),
    "LE": _ConvSpec("type", "long double", "fp", "E"),
    "Lf": _ConvSpec("type", "long double", "fp", "f"),
    "Lg": _ConvSpec("type", "long double", "fp", "g"),
    "LG": _ConvSpec("type", "long double", "fp", "G"),
    "o": _ConvSpec("xint", _XINT, "uint", "o"),
    "p": _ConvSpec("addr", _ADDR, "uint", "x"),
    "s": _ConvSpec("str", _CSTR, "cstr", "s"),
    "S": _ConvSpec("str", _CSTR, "estr", "s"),
    "T": _ConvSpec("time", "int64_t", "time822", "s"),
    "u": _ConvSpec("xint", _XINT, "uint", "u"),
    "wc": _ConvSpec("type", "int", "sint", "lc"),
    "ws": _ConvSpec("wstr", _WSTR, "wstr", "ls"),
    "x": _ConvSpec("xint", _XINT, "uint", "x"),
    "X": _ConvSpec("xint", _XINT, "uint", "X"),
    "Y": _ConvSpec("time", "int64_t", "time", "s"),
}


@dataclass
class Conversion:
    text: str  # the conversion as written, e.g. "%-10@d"
    flags: str  # the flags among "#0- +'" in written order ('0' only where it is a flag)
    width: int | str | None  # None, an int, or '*'
    precision: int | str | None  # None, an int, or '*'
    length: str  # '', 'h', 'l', 'll', 'L', 'w'
    char: str  # the conversion character
    agg: bool  # printa's %@ (value of the aggregation)
    number: int = 0  # 1-based position among all of the format's conversions (%% counts)

    # Conversions are never changed once parsed, so what follows is computed once.
    @cached_property
    def name(self) -> str:
        """The name dtrace looks up and shows in messages: length letters + character."""
        return self.length + self.char

    @cached_property
    def left(self) -> bool:
        # '-' and '0' cancel each other: the one written last wins.
        return _last_of(self.flags, "-0") == "-"

    @cached_property
    def zero(self) -> bool:
        return _last_of(self.flags, "-0") == "0"

    @cached_property
    def plain_int(self) -> bool:
        """A bare %d/%i/%u (any length letters): C prints the digits alone."""
        return (
            self.char in "diu"
            and not self.flags
            and self.width is None
            and self.precision is None
            and self.name in _CONVS
        )


def _last_of(flags: str, chars: str) -> str:
    for f in reversed(flags):
        if f in chars:
            return f
    return ""


@dataclass
class Format:
    source: str
    parts: list[str | Conversion]
    # argument types -> a formatter made once for them (see format_printf)
    plans: dict[tuple[CType, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def conversions(self) -> list[Conversion]:
        """Conversions that consume printf arguments (not %@)."""
        return [p for p in self.parts if isinstance(p, Conversion) and not p.agg]

    def all_conversions(self) -> list[Conversion]:
        return [p for p in self.parts if isinstance(p, Conversion)]


# --- parsing -------------------------------------------------------------------------------


def _syntax(msg: str) -> DError:
    return DError("D_SYNTAX", msg, 0)


def parse_format(fmt: str, func: str = "printf") -> Format:
    """Split a format into literal text and conversions, rejecting what dtrace rejects."""
    parts: list[str | Conversion] = []
    lit: list[str] = []
    number = 0
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c != "%":
            lit.append(c)
            i += 1
            continue
        number += 1
        start = i
        flags = ""
        width: int | str | None = None
        prec: int | str | None = None
        length = ""
        dot = False
        digits = 0
        agg = False
        i += 1
        while True:
            if i >= n:
                raise _syntax(
                    f"format conversion #{number} name expected before end of format string"
                )
            c = fmt[i]
            if c.isdigit() and c.isascii():
                if c == "0" and not dot and digits == 0:
                    flags += "0"
                    i += 1
                    continue
                j = i
                while j < n and fmt[j].isascii() and fmt[j].isdigit():
                    j += 1
                val = int(fmt[i:j])
                if dot:
                    prec = val if prec != "*" else prec
                else:
                    width = val if width != "*" else width
                digits += 1
                i = j
                continue
            if c in "#+- '":
                flags += c
            elif c == "*":
                if (prec if dot else width) == "*":
                    what = "precision" if dot else "width"
                    raise _syntax(
                        f"format conversion #{number} has more than one '*' specified "
                        f"for the output {what}"
                    )
                if dot:
                    prec = "*"
                else:
                    width = "*"
            elif c == ".":
                if dot:
                    raise _syntax(f"format conversion #{number} has more than one '.' specified")
                dot = True
                digits = 0
            elif c == "?":
                width = 16  # pointer width on LP64
            elif c == "@":
                agg = True
            elif c == "$":
                raise _syntax(
                    f"format conversion #{number} uses unsupported positional format (%n$)"
                )
            elif c == "%":
                if i != start + 1:
                    raise _syntax(
                        f"format conversion #{number} cannot be combined with other format flags: %%"
                    )
                i += 1
                break
            elif c in "hlLw":
                if len(length) < 6:
                    length += c
            else:
                i += 1
                break
            i += 1
        text = fmt[start:i]
        if c == "%":
            lit.append("%")
            continue
        name = length + c
        if name not in _CONVS:
            raise _syntax(f"format conversion #{number} is undefined: %{name}")
        if lit:
            parts.append("".join(lit))
            lit = []
        parts.append(Conversion(text, flags, width, prec, length, c, agg, number))
    if lit:
        parts.append("".join(lit))
    return Format(fmt, parts)


# --- compile-time checking -----------------------------------------------------------------


def _typedef_names(t: CType) -> list[str]:
    names = []
    cur: CType | None = t
    while cur is not None:
        names.append(cur.name)
        cur = cur.base
    return names


def _is_integer(t: CType) -> bool:
    return t.r.kind in ("int", "enum")


def _type_size(t: CType) -> int:
    r = t.r
    return 4 if r.kind == "enum" else r.size


def _is_pointer(t: CType) -> bool:
    return t.r.kind in ("ptr", "array")


def _elem_int(t: CType) -> CType | None:
    """The resolved element type of an array of integers, else None."""
    r = t.r
    if r.kind != "array" or r.target is None or r.target.r.kind != "int":
        return None
    return r.target.r


def _type_ok(spec: _ConvSpec, t: CType, has_target: bool) -> bool:
    r = t.r
    rule = spec.check
    if rule in ("dint", "xint"):
        return _is_integer(t)
    if rule == "csi":
        return _is_integer(t) and _type_size(t) <= 4
    if rule == "fp":
        return r.kind == "float"
    if rule in ("addr", "kaddr"):
        return _is_pointer(t) or _is_integer(t)
    if rule == "uaddr":
        if "_usymaddr_t" in _typedef_names(t):
            return True
        return has_target and (_is_pointer(t) or _is_integer(t))
    if rule == "stack":
        return r.kind == "stack"
    if rule == "time":
        return _is_integer(t) and _type_size(t) == 8
    if rule == "str":
        if r.kind == "string":
            return True
        e = _elem_int(t)
        return e is not None and e.size == 1 and e.signed
    if rule == "wstr":
        e = _elem_int(t)
        return e is not None and e.size == 4
    if rule == "xshort":
        return r.kind == "int" and r.name in ("short", "signed short", "unsigned short")
    if rule == "xlong":
        return r.kind == "int" and r.name in ("long", "signed long", "unsigned long")
    if rule == "xllong":
        if r.kind == "int" and r.name in ("long long", "signed long long", "unsigned long long"):
            return True
        return any(n in ("int64_t", "uint64_t") for n in _typedef_names(t))
    if rule == "type":
        # CTF compatibility: same kind and the same base type name.
        return r.kind in ("int", "float") and r.name == spec.proto
    return False


def check_printf(
    fmt: Format,
    argtypes: list[CType],
    func: str = "printf",
    *,
    aggtype: CType | None = None,
    has_target: bool = False,
) -> None:
    """Check a parsed format against the types of its arguments, as dtrace's compiler does.

    For printf() (and system(), freopen(), which share its checks) argtypes are the types of
    the arguments after the format and their number must match exactly. For printa(), argtypes are the aggregation's key types (a format may
    use fewer of them), %@ conversions are checked against aggtype (uint64_t for count(),
    int64_t otherwise) and argument numbers in messages still start at #2. has_target says
    whether -p/-c gave a target process (then %A accepts plain integers).
    """
    if fmt.source == "" and func != "freopen":  # freopen("") restores stdout
        raise DError("D_PRINTF_FMT_EMPTY", f"{func}( ) format string is empty", 0)
    if aggtype is None:
        aggtype = BUILTIN_TYPEDEFS["int64_t"]
    used = 0  # arguments consumed so far
    for conv in fmt.all_conversions():
        spec = _CONVS[conv.name]
        dyns = [d for d, v in (("*", conv.width), (".*", conv.precision)) if v == "*"]
        for d in dyns:
            if used >= len(argtypes):
                raise DError(
                    "D_PRINTF_DYN_PROTO",
                    f"{func}( ) prototype mismatch: conversion #{conv.number} (%{conv.name}) "
                    f'is missing a corresponding "{d}" argument',
                    0,
                )
            t = argtypes[used]
            if not _is_integer(t):
                raise DError(
                    "D_PRINTF_DYN_TYPE",
                    f"{func}( ) argument #{used + 2} is incompatible with conversion "
                    f"#{conv.number} prototype:\n\tconversion: % {d} {conv.name}\n"
                    f"\t prototype: int\n\t  argument: {t.name}",
                    0,
                )
            used += 1
        if conv.agg:
            if func != "printa":
                raise DError(
                    "D_PRINTF_AGG_CONV",
                    f"%@ conversion requires an aggregation and is not for use with {func}( )",
                    0,
                )
            what, t = "aggregating action", aggtype
        elif used >= len(argtypes):
            raise DError(
                "D_PRINTF_ARG_PROTO",
                f"{func}( ) prototype mismatch: conversion #{conv.number} (%{conv.name}) "
                "is missing a corresponding value argument",
                0,
            )
        else:
            what, t = f"argument #{used + 2}", argtypes[used]
            used += 1
        if not _type_ok(spec, t, has_target):
            raise DError(
                "D_PRINTF_ARG_TYPE",
                f"{func}( ) {what} is incompatible with conversion #{conv.number} prototype:\n"
                f"\tconversion: %{conv.name}\n\t prototype: {spec.proto}\n\t  argument: {t.name}",
                0,
            )
    if func != "printa" and used < len(argtypes):
        raise DError(
            "D_PRINTF_ARG_EXTRA",
            f"{func}( ) prototype mismatch: only {used} arguments required by this format string",
            0,
        )


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


def _raw_bytes(value: object) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


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
        kind = _CONVS[conv.name].kind
        size = _type_size(ctype) if ctype.r.kind not in ("string", "array") else 8
        signed = kind == "sint" or (kind == "dint" and ctype.is_signed())
        return str(_c_int(value, size, signed))
    spec = _CONVS[conv.name]
    if width is None:
        width = conv.width if isinstance(conv.width, int) else 0
    if precision is None:
        precision = conv.precision if isinstance(conv.precision, int) else 0
    left = conv.left or width < 0
    zero = conv.zero
    width = abs(width)
    flags = conv.flags
    kind = spec.kind
    size = _type_size(ctype) if ctype.r.kind not in ("string", "array") else 8
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
            kind = _CONVS[part.name].kind
            signed = kind == "sint" or (kind == "dint" and t.is_signed())
            funcs.append(_int_text(_type_size(t), signed))
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
    "Conversion",
    "Format",
    "parse_format",
    "check_printf",
    "format_printf",
    "format_printa",
    "format_one",
    "addr_to_str",
    "escape_bytes",
    "format_time_y",
    "format_time_t",
]
