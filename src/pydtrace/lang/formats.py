"""DTrace's printf()/printa() formats: parsing and compile-time checking.

The behaviour follows dtrace-utils (libdtrace/dt_printf.c):

* A conversion is `%` then any mix of the flags `# 0 - + ' space @ ?`, digits for width,
  `.` and digits for precision, `*` for a width/precision taken from an argument, the length
  letters `h l L w`, and a conversion character. The length letters plus the character form
  the conversion's name, looked up in a fixed table (so `%hhd` is undefined, `%lld` is not).

The checker checks formats against their arguments' types; the engines and the
consumer take the parsed Format (consume/printf.py formats values with it).
"""

from __future__ import annotations

from functools import cached_property

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.errors import DError
from pydtrace.lang.types import BUILTIN_TYPEDEFS, CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_XINT = "char, short, int, long, or long long"
_CSI = "char, short, or int"
_FP = "float, double, or long double"
_ADDR = "pointer or integer"
_UADDR = "pointer or integer (with -p/-c) or _usymaddr (without -p/-c)"
_CSTR = "char [] or string (or use stringof)"
_WSTR = "wchar_t []"


@dataclass(frozen=True)
class ConvSpec:
    check: str  # which type rule applies (see _type_ok)
    proto: str  # the prototype text shown in D_PRINTF_ARG_TYPE messages
    kind: str  # how the value is printed (see format_one)
    out: str  # the C conversion used for the final output


# name -> spec; the name is the length letters plus the conversion character.
CONVERSIONS: dict[str, ConvSpec] = {
    "a": ConvSpec("kaddr", _ADDR, "addr", "s"),
    "A": ConvSpec("uaddr", _UADDR, "uaddr", "s"),
    "c": ConvSpec("csi", _CSI, "sint", "c"),
    "C": ConvSpec("csi", _CSI, "echr", "s"),
    "d": ConvSpec("dint", _XINT, "dint", "d"),
    "e": ConvSpec("fp", _FP, "fp", "e"),
    "E": ConvSpec("fp", _FP, "fp", "E"),
    "f": ConvSpec("fp", _FP, "fp", "f"),
    "g": ConvSpec("fp", _FP, "fp", "g"),
    "G": ConvSpec("fp", _FP, "fp", "G"),
    "hd": ConvSpec("type", "short", "sint", "d"),
    "hi": ConvSpec("type", "short", "sint", "i"),
    "ho": ConvSpec("type", "unsigned short", "uint", "o"),
    "hu": ConvSpec("type", "unsigned short", "uint", "u"),
    "hx": ConvSpec("xshort", "short", "uint", "x"),
    "hX": ConvSpec("xshort", "short", "uint", "X"),
    "i": ConvSpec("dint", _XINT, "dint", "i"),
    "k": ConvSpec("stack", "stack", "stack", "s"),
    "lc": ConvSpec("type", "int", "sint", "lc"),
    "ld": ConvSpec("type", "long", "sint", "d"),
    "li": ConvSpec("type", "long", "sint", "i"),
    "lo": ConvSpec("type", "unsigned long", "uint", "o"),
    "lu": ConvSpec("type", "unsigned long", "uint", "u"),
    "ls": ConvSpec("wstr", _WSTR, "wstr", "ls"),
    "lx": ConvSpec("xlong", "long", "uint", "x"),
    "lX": ConvSpec("xlong", "long", "uint", "X"),
    "lld": ConvSpec("type", "long long", "sint", "d"),
    "lli": ConvSpec("type", "long long", "sint", "i"),
    "llo": ConvSpec("type", "unsigned long long", "uint", "o"),
    "llu": ConvSpec("type", "unsigned long long", "uint", "u"),
    "llx": ConvSpec("xllong", "long long", "uint", "x"),
    "llX": ConvSpec("xllong", "long long", "uint", "X"),
    "Le": ConvSpec("type", "long double", "fp", "e"),
    "LE": ConvSpec("type", "long double", "fp", "E"),
    "Lf": ConvSpec("type", "long double", "fp", "f"),
    "Lg": ConvSpec("type", "long double", "fp", "g"),
    "LG": ConvSpec("type", "long double", "fp", "G"),
    "o": ConvSpec("xint", _XINT, "uint", "o"),
    "p": ConvSpec("addr", _ADDR, "uint", "x"),
    "s": ConvSpec("str", _CSTR, "cstr", "s"),
    "S": ConvSpec("str", _CSTR, "estr", "s"),
    "T": ConvSpec("time", "int64_t", "time822", "s"),
    "u": ConvSpec("xint", _XINT, "uint", "u"),
    "wc": ConvSpec("type", "int", "sint", "lc"),
    "ws": ConvSpec("wstr", _WSTR, "wstr", "ls"),
    "x": ConvSpec("xint", _XINT, "uint", "x"),
    "X": ConvSpec("xint", _XINT, "uint", "X"),
    "Y": ConvSpec("time", "int64_t", "time", "s"),
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
    def spec(self) -> ConvSpec:
        """How this conversion is checked and printed."""
        return CONVERSIONS[self.name]

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
            and self.name in CONVERSIONS
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

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a kept compile: engines/ebpf/program_cache.py) without the
        formatters a run made (closures)."""
        return {**self.__dict__, "plans": {}}

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
                # dtrace reads the digits into a C int: 10**30 wraps to 2**30
                val = 0
                for d in fmt[i:j]:
                    val = (val * 10 + ord(d) - 48) & 0xFFFFFFFF
                if val >= 1 << 31:
                    val -= 1 << 32
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
        if name not in CONVERSIONS:
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


def _is_pointer(t: CType) -> bool:
    return t.r.kind in ("ptr", "array")


def _elem_int(t: CType) -> CType | None:
    """The resolved element type of an array of integers, else None."""
    r = t.r
    if r.kind != "array" or r.target is None or r.target.r.kind != "int":
        return None
    return r.target.r


def _type_ok(spec: ConvSpec, t: CType, has_target: bool) -> bool:
    r = t.r
    rule = spec.check
    if rule in ("dint", "xint"):
        return _is_integer(t)
    if rule == "csi":
        return _is_integer(t) and t.int_size() <= 4
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
        return _is_integer(t) and t.int_size() == 8
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
        spec = CONVERSIONS[conv.name]
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
                f"\tconversion: %{conv.name}\n\t prototype: {spec.proto}\n\t  argument: {_type_name(t)}",
                0,
            )
    if func != "printa" and used < len(argtypes):
        raise DError(
            "D_PRINTF_ARG_EXTRA",
            f"{func}( ) prototype mismatch: only {used} arguments required by this format string",
            0,
        )


def _type_name(t: Any) -> str:
    """A type as dtrace's messages name it: stack() and ustack() records are both `stack`."""
    return "stack" if t.kind == "stack" else t.name
