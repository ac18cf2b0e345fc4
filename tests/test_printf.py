"""printf(): parsing, compile-time checks and formatting, compared with dtrace's behaviour."""

from __future__ import annotations

import ctypes
import os
import time

import pytest

from conftest import need, pydtrace
from pydtrace.consume.printf import format_one, format_printa, format_printf
from pydtrace.lang import types as T
from pydtrace.lang.errors import DError
from pydtrace.lang.formats import Conversion, check_printf, parse_format


def out(fmt: str, *args: tuple[object, T.CType], target_pid: int = -1) -> str:
    f = parse_format(fmt)
    check_printf(f, [t for _, t in args])
    return format_printf(f, list(args), target_pid)


def i32(v: int) -> tuple[int, T.CType]:
    return (T.wrap(v, T.INT), T.INT)


def err(fmt: str, types: list[T.CType], func: str = "printf", **kw: object) -> DError:
    with pytest.raises(DError) as ei:
        check_printf(parse_format(fmt, func), types, func, **kw)  # type: ignore[arg-type]
    assert ei.value.line == 0
    return ei.value


def syntax(fmt: str) -> str:
    with pytest.raises(DError) as ei:
        parse_format(fmt)
    assert ei.value.tag == "D_SYNTAX"
    return ei.value.message


# --- parsing -------------------------------------------------------------------------------


def test_parse_parts_and_fields() -> None:
    f = parse_format("a=%-10d b=%%x %#08.3lx!")
    assert f.source == "a=%-10d b=%%x %#08.3lx!"
    lits = [p for p in f.parts if isinstance(p, str)]
    assert lits == ["a=", " b=%x ", "!"]
    c1, c2 = f.conversions()
    assert (c1.text, c1.flags, c1.width, c1.precision, c1.length, c1.char) == (
        "%-10d",
        "-",
        10,
        None,
        "",
        "d",
    )
    assert (c2.text, c2.flags, c2.width, c2.precision, c2.length, c2.char) == (
        "%#08.3lx",
        "#0",
        8,
        3,
        "l",
        "x",
    )
    # %% counts as a conversion for numbering in messages
    assert (c1.number, c2.number) == (1, 3)


def test_parse_star_question_and_agg() -> None:
    c = parse_format("%*.*s").parts[0]
    assert isinstance(c, Conversion)
    assert (c.width, c.precision, c.agg) == ("*", "*", False)
    q = parse_format("%?p").parts[0]
    assert isinstance(q, Conversion) and q.width == 16
    f = parse_format("%-8@u and %@10d then %s", "printa")
    aggs = [p for p in f.parts if isinstance(p, Conversion) and p.agg]
    assert [(a.flags, a.width, a.char) for a in aggs] == [("-", 8, "u"), ("", 10, "d")]
    assert [c.char for c in f.conversions()] == ["s"]


def test_parse_zero_is_a_flag_only_before_digits() -> None:
    c = parse_format("%05.0d").parts[0]
    assert isinstance(c, Conversion)
    assert (c.flags, c.width, c.precision) == ("0", 5, 0)
    c = parse_format("%10d").parts[0]
    assert isinstance(c, Conversion) and c.flags == "" and c.width == 10


def test_parse_errors() -> None:
    assert syntax("%3$d") == "format conversion #1 uses unsupported positional format (%n$)"
    assert syntax("%d %*1$d") == "format conversion #2 uses unsupported positional format (%n$)"
    assert syntax("%3") == "format conversion #1 name expected before end of format string"
    assert syntax("%") == "format conversion #1 name expected before end of format string"
    assert syntax("x %.*") == "format conversion #1 name expected before end of format string"
    assert syntax("%%%Z") == "format conversion #2 is undefined: %Z"
    assert syntax("%hhd") == "format conversion #1 is undefined: %hhd"
    assert syntax("%lq") == "format conversion #1 is undefined: %lq"
    assert syntax("%1.2.3d") == "format conversion #1 has more than one '.' specified"
    assert syntax("%**d") == (
        "format conversion #1 has more than one '*' specified for the output width"
    )
    assert syntax("%.**d") == (
        "format conversion #1 has more than one '*' specified for the output precision"
    )
    assert syntax("%-%") == "format conversion #1 cannot be combined with other format flags: %%"


def test_parse_accepts_every_documented_conversion() -> None:
    names = "a A c C d e E f g G hd hi ho hu hx hX i k lc ld li lo lu ls lx lX lld lli llo llu"
    names += " llx llX Le LE Lf Lg LG o p s S T u wc ws x X Y"
    for n in names.split():
        c = parse_format("%" + n).parts[0]
        assert isinstance(c, Conversion) and c.length + c.char == n


# --- checking ------------------------------------------------------------------------------


def test_check_counts() -> None:
    e = err("a %d b %d\n", [T.INT, T.INT, T.INT])
    assert e.tag == "D_PRINTF_ARG_EXTRA"
    assert e.message == (
        "printf( ) prototype mismatch: only 2 arguments required by this format string"
    )
    e = err("%?d", [T.INT, T.INT])
    assert e.message.endswith("only 1 arguments required by this format string")
    e = err("%d %d %d", [T.INT])
    assert e.tag == "D_PRINTF_ARG_PROTO"
    assert e.message == (
        "printf( ) prototype mismatch: conversion #2 (%d) is missing a corresponding value argument"
    )
    e = err("%% %s", [])
    assert "conversion #2 (%s)" in e.message
    e = err("%*.*d", [T.INT, T.INT])
    assert e.tag == "D_PRINTF_ARG_PROTO"
    e = err("", [])
    assert (e.tag, e.message) == ("D_PRINTF_FMT_EMPTY", "printf( ) format string is empty")


def test_check_dynamic_arguments() -> None:
    e = err("%s %*d", [T.STRING])
    assert e.tag == "D_PRINTF_DYN_PROTO"
    assert e.message == (
        'printf( ) prototype mismatch: conversion #2 (%d) is missing a corresponding "*" argument'
    )
    e = err("%*.*d", [T.INT])
    assert e.message.endswith('is missing a corresponding ".*" argument')
    e = err("%.*d", [])
    assert e.message.endswith('is missing a corresponding ".*" argument')
    e = err("%.*x", [T.STRING, T.INT])
    assert e.tag == "D_PRINTF_DYN_TYPE"
    assert e.message == (
        "printf( ) argument #2 is incompatible with conversion #1 prototype:\n"
        "\tconversion: % .* x\n\t prototype: int\n\t  argument: string"
    )
    e = err("%*.*d", [T.STRING, T.STRING, T.INT])
    assert "conversion: % * d" in e.message
    check_printf(parse_format("%*.*s"), [T.CHAR, T.LONG, T.STRING])


def test_check_type_mismatch_messages() -> None:
    e = err("x %d", [T.STRING])
    assert e.tag == "D_PRINTF_ARG_TYPE"
    assert e.message == (
        "printf( ) argument #2 is incompatible with conversion #1 prototype:\n"
        "\tconversion: %d\n\t prototype: char, short, int, long, or long long\n"
        "\t  argument: string"
    )
    e = err("%d %d", [T.INT, T.AGG])
    assert e.message.startswith("printf( ) argument #3 is incompatible with conversion #2")
    assert e.message.endswith("argument: aggregation")
    e = err("%s\n", [T.VOID])
    assert e.message.endswith(
        "\t prototype: char [] or string (or use stringof)\n\t  argument: void"
    )
    e = err("%*d %s", [T.INT, T.INT, T.INT])
    assert e.message.startswith("printf( ) argument #4 is incompatible with conversion #2")


def test_check_prototypes_per_conversion() -> None:
    ok = [
        ("%c", T.CHAR),
        ("%c", T.INT),
        ("%hd", T.SHORT),
        ("%hu", T.USHORT),
        ("%hx", T.USHORT),
        ("%ld", T.LONG),
        ("%lu", T.BUILTIN_TYPEDEFS["uint64_t"]),
        ("%lx", T.ULONG),
        ("%lld", T.LLONG),
        ("%llx", T.BUILTIN_TYPEDEFS["uint64_t"]),
        ("%p", T.VOIDP),
        ("%p", T.ULONG),
        ("%a", T.LONG),
        ("%s", T.array(T.CHAR, 16)),
        ("%S", T.STRING),
        ("%Y", T.BUILTIN_TYPEDEFS["uint64_t"]),
        ("%T", T.LONG),
        ("%k", T.STACK),
        ("%f", T.DOUBLE),
        ("%e", T.FLOAT),
        ("%lc", T.INT),
        ("%d", T.BOOL),
        ("%x", T.UCHAR),
    ]
    for fmt, t in ok:
        check_printf(parse_format(fmt), [t])
    bad = [
        ("%c", T.LONG, "char, short, or int"),
        ("%hd", T.INT, "short"),
        ("%hu", T.SHORT, "unsigned short"),
        ("%ld", T.LLONG, "long"),
        ("%lx", T.LLONG, "long"),
        ("%llx", T.LONG, "long long"),
        ("%lld", T.ULLONG, "long long"),
        ("%s", T.INT, "char [] or string (or use stringof)"),
        ("%Y", T.INT, "int64_t"),
        ("%e", T.INT, "float, double, or long double"),
        ("%p", T.STRING, "pointer or integer"),
        ("%p", T.STACK, "pointer or integer"),
        ("%k", T.LONG, "stack"),
        ("%ls", T.STRING, "wchar_t []"),
        ("%Lf", T.DOUBLE, "long double"),
    ]
    for fmt, t, proto in bad:
        e = err(fmt, [t])
        assert e.tag == "D_PRINTF_ARG_TYPE", fmt
        assert f"\t prototype: {proto}\n\t  argument: {t.name}" in e.message, fmt


def test_check_user_addresses() -> None:
    e = err("%A", [T.ULONG])
    assert "(with -p/-c) or _usymaddr (without -p/-c)" in e.message
    check_printf(parse_format("%A"), [T.ULONG], has_target=True)
    usym = T.typedef("_usymaddr_t", T.ULONG)
    check_printf(parse_format("%A"), [usym])


def test_check_printa() -> None:
    e = err("%@d", [T.INT])
    assert (e.tag, e.message) == (
        "D_PRINTF_AGG_CONV",
        "%@ conversion requires an aggregation and is not for use with printf( )",
    )
    # keys may be left unused, and %@ does not take a key
    check_printf(parse_format("%@u %d", "printa"), [T.INT, T.STRING, T.INT], "printa")
    e = err("%p\n", [T.STACK], "printa")
    assert e.message == (
        "printa( ) argument #2 is incompatible with conversion #1 prototype:\n"
        "\tconversion: %p\n\t prototype: pointer or integer\n\t  argument: stack"
    )
    e = err("%d %s", [T.INT], "printa")
    assert e.message.startswith("printa( ) prototype mismatch: conversion #2 (%s)")
    e = err("%@s", [], "printa", aggtype=T.BUILTIN_TYPEDEFS["uint64_t"])
    assert e.message == (
        "printa( ) aggregating action is incompatible with conversion #1 prototype:\n"
        "\tconversion: %s\n\t prototype: char [] or string (or use stringof)\n"
        "\t  argument: uint64_t"
    )
    e = err("", [], "printa")
    assert e.message == "printa( ) format string is empty"


# --- formatting: integers ------------------------------------------------------------------


def test_integers_follow_their_own_size() -> None:
    big = 0x1234567890ABCDEF
    assert out("%d", (T.wrap(big, T.INT), T.INT)) == "-1867788817"
    assert out("%d", (T.wrap(big, T.LLONG), T.LLONG)) == "1311768467294899695"
    assert (
        out("%d", (T.wrap(big, T.UINT), T.UINT)) == "2427178479"
    )  # %d of unsigned prints unsigned
    assert out("%i", (T.wrap(big, T.UCHAR), T.UCHAR)) == "239"
    assert out("%u", (T.wrap(big, T.CHAR), T.CHAR)) == "239"
    assert out("%u", (T.wrap(big, T.SHORT), T.SHORT)) == "52719"
    assert out("%x", (T.wrap(big, T.SHORT), T.SHORT)) == "cdef"
    assert out("%X", (T.wrap(big, T.INT), T.INT)) == "90ABCDEF"
    assert out("%o", (T.wrap(big, T.CHAR), T.CHAR)) == "357"
    assert out("%o", (T.wrap(big, T.INT), T.INT)) == "22052746757"
    assert out("%o", (T.wrap(big, T.LONG), T.LONG)) == "110642547422052746757"
    assert out("%u", (-1, T.INT)) == "4294967295"
    assert out("%x", (-2, T.LONG)) == "fffffffffffffffe"
    assert out("%d", (-5, T.CHAR)) == "-5"


def test_length_prefixed_conversions() -> None:
    a = 97
    assert out("%hd %hi", (a, T.SHORT), (a, T.SHORT)) == "97 97"
    assert out("%ho %hu %hx %hX", *[(a, T.USHORT)] * 4) == "141 97 61 61"
    assert out("%ld %li %lo %lu", (a, T.LONG), (a, T.LONG), (a, T.ULONG), (a, T.ULONG)) == (
        "97 97 141 97"
    )
    assert out("%lx %lX %llu", (255, T.ULONG), (255, T.ULONG), (a, T.ULLONG)) == "ff FF 97"
    assert out("%hd", (-1, T.SHORT)) == "-1"
    assert out("%hu", (T.wrap(-1, T.USHORT), T.USHORT)) == "65535"
    assert out("%lc %c", i32(a), i32(a)) == "a a"


def test_flags() -> None:
    assert out("[%#8x]", i32(0x123)) == "[   0x123]"
    assert out("[%08x]", i32(0x123)) == "[00000123]"
    assert out("[%-8x]", i32(0x123)) == "[123     ]"
    assert out("[%+8d]", i32(123)) == "[    +123]"
    assert out("[% 8d]", i32(123)) == "[     123]"
    assert out("[% +d]", i32(5)) == "[+5]"
    assert out("[%+u]", (5, T.UINT)) == "[5]"  # no sign on unsigned conversions
    assert out("[%#o]", i32(8)) == "[010]"
    assert out("[%#x]", i32(0)) == "[0]"
    assert out("[%'d]", i32(1234567)) == "[1234567]"  # C locale: no grouping
    assert out("[%08.3d]", i32(7)) == "[     007]"  # a precision disables zero padding
    assert out("[%-05d]", i32(7)) == "[00007]"  # a later '0' cancels '-'
    assert out("[%0-5d]", i32(7)) == "[7    ]"  # a later '-' cancels '0'
    assert out("[%05d]", i32(-7)) == "[-0007]"
    assert out("[%#010x]", i32(255)) == "[0x000000ff]"


def test_widths_and_precisions() -> None:
    assert out("[%0d][%1d][%3d]", i32(1), i32(1), i32(1)) == "[1][1][  1]"
    assert out("[%?d]", i32(3)) == "[               3]"
    assert out("[%*d]", i32(4), i32(1)) == "[   1]"
    assert out("[%*d]", i32(-4), i32(1)) == "[1   ]"  # negative '*' width left-justifies
    assert out("[%-*d]", i32(-4), i32(1)) == "[1   ]"
    assert out("[%*d]", (0, T.LONG), i32(1)) == "[1]"
    assert out("[%.3d]", i32(5)) == "[005]"
    assert out("[%.0d]", i32(0)) == "[0]"  # precision 0 is dropped
    assert out("[%.*d]", i32(-3), i32(5)) == "[5]"  # negative precision is ignored


def test_pointer() -> None:
    assert out("%p", (0x12345678, T.VOIDP)) == "12345678"
    assert out("%p", (0x90ABCDEF, T.pointer(T.INT))) == "90abcdef"
    assert out("%#p", (0xFF, T.VOIDP)) == "0xff"
    assert out("%p", (T.wrap(-1, T.LONG), T.LONG)) == "ffffffffffffffff"


def test_chars() -> None:
    assert out("[%c]", i32(65)) == "[A]"
    assert out("[%3c][%-3c]", i32(65), i32(66)) == "[  A][B  ]"
    assert out("[%c]", i32(0x141)) == "[A]"  # only the low byte
    assert out("[%C][%C][%C]", i32(ord("x")), i32(10), i32(1)) == "[x][\\n][\\001]"
    assert out("[%4C]", (ord('"'), T.CHAR)) == '[  \\"]'


# --- formatting: strings -------------------------------------------------------------------


def test_strings_and_precision() -> None:
    s = ("hello", T.STRING)
    assert out("%.0s|%.1s|%.4s|%.9s", s, s, s, s) == "hello|h|hell|hello"
    assert out("%*.*s|", i32(3), i32(3), s) == "hel|"
    assert out("%*.*s|", i32(7), i32(7), s) == "  hello|"
    assert out("%*.*s|", i32(0), i32(0), s) == "hello|"
    assert out("[%-7s][%07s]", s, s) == "[hello  ][  hello]"
    assert out("[%s]", ("ab\0cd", T.STRING)) == "[ab]"  # a C string ends at NUL
    assert out("[%s]", ("xy", T.array(T.CHAR, 8))) == "[xy]"


def test_escaped_strings() -> None:
    raw = 'a b\t"q"\\\n\x7f\x01\x80'
    assert out("%S", (raw, T.STRING)) == 'a b\\t\\"q\\"\\\\\\n\\177\\001\\302\\200'
    assert out("%S", (b"\xff\x07\x08\x0b\x0c\r", T.STRING)) == "\\377\\a\\b\\v\\f\\r"
    assert out("[%6S]", ("a\nb", T.STRING)) == "[  a\\nb]"


# --- formatting: floats --------------------------------------------------------------------


def test_floats() -> None:
    d = T.DOUBLE
    assert out("%e|%E", (0.0, d), (0.0, d)) == "0.000000e+00|0.000000E+00"
    assert out("%f|%g|%G", (0.0, T.FLOAT), (0.0, d), (1e-10, d)) == "0.000000|0|1E-10"
    assert out("[%08.2f][%-8.1e]", (-3.14159, d), (1234.5, d)) == "[-0003.14][1.2e+03 ]"
    assert out("[%#g][%+.3g]", (2.0, d), (2.0, d)) == "[2.00000][+2]"
    assert out("[%05f]", (float("inf"), d)) == "[  inf]"  # no zero padding of inf/nan
    assert out("%.0f", (1.5, d)) == "1.500000"  # precision 0 dropped here too


# --- formatting: addresses, times, stacks --------------------------------------------------


def test_kernel_addresses_print_as_symbols() -> None:
    """%a: module`function+0xoff from /proc/kallsyms (root reads its addresses)."""
    need(os.geteuid() == 0, "kallsyms shows addresses to root only")
    with open("/proc/kallsyms") as f:
        addr = next(int(x.split()[0], 16) for x in f if x.split()[1:3] == ["T", "schedule"])
    assert (
        out("%a|%a", (addr + 5, T.ULONG), (addr, T.ULONG))
        == "vmlinux`schedule+0x5|vmlinux`schedule"
    )


def test_percent_A_takes_an_integer_only_with_a_target() -> None:
    src = 'BEGIN { printf("%A\\n", 0x10); exit(0); }'
    r = pydtrace("-q", "-c", "true", "-n", src)
    assert (r.status, r.out) == (0, "0x10\n\n"), r.err
    r = pydtrace("-q", "-n", src)
    assert r.status == 1
    assert "printf( ) argument #2 is incompatible with conversion #1 prototype" in r.err


def test_addresses() -> None:
    assert out("%a", (0x10, T.ULONG)) == "0x10"  # below the kernel: no symbol holds it
    assert out("[%20A]", (0x401000, T.typedef("_usymaddr_t", T.ULONG))) == "[            0x401000]"
    usym = T.typedef("_usymaddr_t", T.ULONG)
    assert out("%-6.3A|", (0x2000, usym)) == "0x2   |"
    # with a target (-c/-p), a bare %A address resolves in that process
    libc = ctypes.CDLL(None)
    getpid = ctypes.cast(libc.getpid, ctypes.c_void_p).value
    assert out("%A|%A", (getpid, usym), (getpid + 1, usym), target_pid=os.getpid()) == (
        "libc.so.6`getpid|libc.so.6`getpid+0x1"
    )


@pytest.fixture
def pacific(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "US/Pacific")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


NS = 1_000_000_000


def test_time_conversions(pacific: None) -> None:
    u64 = T.BUILTIN_TYPEDEFS["uint64_t"]
    vals = [(0, u64), (1062609821 * NS, u64), (0x7FFFFFFF * NS, u64)]
    assert out("%Y\n%Y\n%Y", *vals) == (
        "1969 Dec 31 16:00:00\n2003 Sep  3 10:23:41\n2038 Jan 18 19:14:07"
    )
    # %T uses the ISO-week year, hence 1970 for the last day of 1969
    assert out("%T\n%T\n%T", *vals) == (
        "Wed, 31 Dec 1970 16:00:00 PST\nWed, 03 Sep 2003 10:23:41 PDT\n"
        "Mon, 18 Jan 2038 19:14:07 PST"
    )
    assert out("[%22Y]", (NS * 86400 * 365, u64)) == "[  1970 Dec 31 16:00:00]"
    assert os.environ["TZ"] == "US/Pacific"


def test_stack() -> None:
    frames = ["vmlinux`a+0x1", "vmlinux`b"]
    assert out("%k", ("\n  x\n", T.STACK)) == "\n  x\n"
    assert out("%k|", (frames, T.STACK)) == "\nvmlinux`a+0x1\nvmlinux`b\n|"
    assert out("%-4k", (frames, T.STACK)) == "\n    vmlinux`a+0x1\n    vmlinux`b\n"
    assert out("%12k", (frames[1:], T.STACK)) == "\n   vmlinux`b\n"


def test_literal_only_and_percent() -> None:
    assert out("hello world") == "hello world"
    assert out("100%% %d%%", i32(5)) == "100% 5%"


def test_format_one_direct() -> None:
    c = parse_format("%*d").parts[0]
    assert isinstance(c, Conversion)
    assert format_one(c, 42, T.INT, width=5) == "   42"
    assert format_one(c, 42, T.INT) == "42"


# --- printa rows ---------------------------------------------------------------------------


def test_printa_rows() -> None:
    f = parse_format("%@u: %d %d\n", "printa")
    keys = [(1, T.INT), (2, T.INT), (3, T.INT)]
    assert format_printa(f, keys, [(1, T.ULONG)]) == "1: 1 2\n"
    f = parse_format("-->%-*d<--", "printa")
    assert format_printa(f, [(10, T.INT), (100, T.INT)], [(1, T.LONG)]) == "-->100       <--"
    f = parse_format("-->%*d<--", "printa")
    assert format_printa(f, [(-10, T.INT), (200, T.INT)], [(2, T.LONG)]) == "-->200       <--"
    f = parse_format("%@u %@u %@3d|", "printa")
    assert format_printa(f, [], [(4, T.ULONG), (-5, T.LONG)]) == ("4 18446744073709551611  -5|")
    f = parse_format("@g = %@d\n", "printa")
    hist = "\n     value  ---- count\n"
    assert format_printa(f, [], [(hist, T.LONG)]) == "@g = " + hist + "\n"


def test_printf_like_actions() -> None:
    e = err("%s", [T.STRING, T.INT], "system")
    assert e.message == (
        "system( ) prototype mismatch: only 1 arguments required by this format string"
    )
    check_printf(parse_format(""), [], "freopen")
    e = err("%@s", [], "printa")
    assert e.message.endswith("\t  argument: int64_t")


def test_a_stack_key_is_named_stack_in_a_conversion_error() -> None:
    """dtrace names both stack() and ustack() records `stack` in the message."""
    for func in ("stack", "ustack"):
        r = pydtrace("-n", f'BEGIN {{ @[{func}()] = count(); printa("%p\\n", @); exit(0); }}')
        assert r.status == 1
        assert r.err.endswith(
            "printa( ) argument #2 is incompatible with conversion #1 prototype:\n"
            "\tconversion: %p\n\t prototype: pointer or integer\n\t  argument: stack\n"
        ), r.err
