"""dtrace's options: the table of names and defaults, and each value checked
and normalized the way libdtrace's dt_options.c does (sizes take k/m/g/t,
rates take time units with a bare number meaning nanoseconds and `hz` a
frequency, flags take no value). Used by the command line, `#pragma D
option`, setopt() and the Python API alike: a value is parsed here, once, and
the session's options dict holds only normalized values, which the engines
and the consumer read (size_option, capped_frames).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from pydtrace.lang.errors import CompileError
from pydtrace.lang.numbers import digits_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

U64_MAX = (1 << 64) - 1


class XoptError(Exception):
    """A rejected option; reason is libdtrace's error text.  Callers add their
    context: `failed to set -x NAME: reason` (command line), `failed to set
    option 'N' to 'V': reason` (#pragma), `couldn't set option ...` (setopt)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


E_BADOPTNAME = "Invalid option name"
E_BADOPTVAL = "Invalid value for specified option"
E_BADOPTCTX = "Option cannot be used from within a D program"
E_ACTIVE = "Operation illegal when tracing is active"
E_NOREG = "Insufficient registers to generate code"
E_VERSINVAL = "Version is not properly formatted or is too large"
E_VERSUNDEF = "Requested version is not supported by compiler"
E_OVERFLOW = "Value too large for defined data type"


# Option defaults as dtrace(1) and libdtrace set them.
DEFAULTS: dict[str, Any] = {"strsize": 256, "nspec": 1, "bufsize": 4 << 20, "aggsize": 4 << 20}


class OptionError(CompileError, ValueError):
    """An option of the Python API that dtrace would refuse: an unknown name or
    a bad value.  The message names the option, gives libdtrace's reason and
    says what the option accepts; `option`, `value`, `reason` and `accepted`
    hold the parts.  A CompileError (the program did not run) and a ValueError."""

    def __init__(self, option: str, value: object, reason: str, accepted: str) -> None:
        head = f"failed to set option '{option}'"
        if isinstance(value, str):
            head += f" to '{value}'"
        elif value is not None:
            head += f" to {value!r}"
        super().__init__(f"{head}: {reason} ({accepted})")
        self.option = option
        self.value = value
        self.reason = reason
        self.accepted = accepted


def session_options(settings: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A session's options: DEFAULTS, then each setting in order.  A value
    given as text (the Python API: `("bufsize", "4m")`) is validated here
    (OptionError); one validate_xopt already normalized (the command line's)
    is taken as it is, and a bare name (None) is set."""
    options = dict(DEFAULTS)
    for name, value in settings:
        if isinstance(value, str):
            try:
                _, value = validate_xopt(name, value)
            except XoptError as e:
                raise OptionError(name, value, e.reason, accepted_values(name)) from None
        options[name] = True if value is None else value
    return options


def api_settings(options: object) -> list[tuple[str, object]]:
    """The Python API's options (a mapping of dtrace option names to values)
    as validated settings, in the mapping's order.  A value is what `-x
    name=value` takes, as a str or an int; True sets an option that takes no
    value (a flag: quiet, destructive, cpp ...); False and None leave an option
    unset (False turns an on/off option such as quiet off).  An unknown name or
    a bad value raises OptionError; anything but a mapping of str keys to
    str, int, bool or None raises TypeError."""
    from collections.abc import Mapping

    if not isinstance(options, Mapping):
        raise TypeError(
            f"options must be a dict of option names to values, not {type(options).__name__}"
        )
    out: list[tuple[str, object]] = []
    for name, value in options.items():
        if not isinstance(name, str):
            raise TypeError(f"option names are str, not {type(name).__name__} ({name!r})")
        if name not in ALL_OPTIONS:
            raise OptionError(name, None, E_BADOPTNAME, _known_names(name))
        if value is not None and not isinstance(value, (str, int)):
            raise TypeError(
                f"option '{name}': expected a str, an int or a bool, not {type(value).__name__}"
            )
        text = _api_text(name, value)
        if text is _BAD:
            raise OptionError(name, value, E_BADOPTVAL, accepted_values(name))
        if text is _UNSET:
            continue
        try:
            key, v = validate_xopt(name, text)  # type: ignore[arg-type]
        except XoptError as e:
            raise OptionError(name, value, e.reason, accepted_values(name)) from None
        if v is None:  # a numeric runtime option left unset ("" or "no")
            continue
        out.append((key, v))
    return out


_UNSET = object()
_BAD = object()


def _takes_no_value(name: str) -> bool:
    return name in _FLAG_ONLY or name in _ANY_VALUE or name in _BOOL_RUNTIME or name in _INT_RUNTIME


def _api_text(name: str, value: object) -> object:
    """A Python value as the text `-x name=text` would give (None: no value;
    _UNSET: leave the option alone; _BAD: a bool where a value is needed)."""
    if value is None:
        return _UNSET
    if value is True:
        return None if _takes_no_value(name) else _BAD
    if value is False:
        return "off" if name in _BOOL_RUNTIME else _UNSET if _takes_no_value(name) else _BAD
    return str(value)


_SIZE_TEXT = "a size in bytes: an int, or a str with a k, m, g or t suffix such as '4m'"


def accepted_values(name: str) -> str:
    """What option `name` accepts, in words, for the API's OptionError."""
    if name in _FLAG_ONLY or name in _ANY_VALUE:
        return "a flag: True to set it"
    if name in _STRING:
        return "a str"
    if name in _ENUMS:
        return "one of " + ", ".join(_ENUMS[name][0])
    if name in _SIZE or name in ("scratchsize", "pcapsize", "printsize", "preallocate"):
        return _SIZE_TEXT
    if name == "strsize":
        return _SIZE_TEXT + ", at least 2"
    if name == "lockmem":
        return _SIZE_TEXT + ", or 'unlimited'"
    if name in _RATE:
        return (
            "a time: an int of nanoseconds, or a str with a unit (ns, us, ms, s, m, h, d)"
            " such as '10ms', or a frequency such as '100hz'"
        )
    if name in _BOOL_RUNTIME:
        return "True or False, or 'on', 'off', 'yes', 'no', 'enable', 'disable', 'set', 'unset'"
    if name in _INT_RUNTIME:
        return "an int of at least 0, or True"
    if name == "version":
        return "a D version: one of " + ", ".join(D_VERSIONS)
    if name == "iregs":
        return "8"
    if name in ("tree", "tregs"):
        return "an int of at least 1"
    return "an int of at least 0"


def _known_names(name: str) -> str:
    """An unknown option's advice: the names it may be a typo of, else them all."""
    import difflib

    near = difflib.get_close_matches(name, sorted(ALL_OPTIONS), n=3)
    if near:
        return "did you mean " + " or ".join(f"'{n}'" for n in near) + "?"
    return "the options are " + ", ".join(sorted(ALL_OPTIONS))


def size_option(options: dict[str, Any], name: str, default: int) -> int:
    """A size option of a session's (normalized) options; default when unset."""
    value = options.get(name)
    if value is None:
        return default
    if not isinstance(value, int):
        raise TypeError(f"option {name}: {value!r} is not a validated size")
    return value


def capped_frames(options: dict[str, Any], n: int) -> int:
    """A stack()/ustack() frame count cut to the maxframes option, as dtrace
    does (`-x maxframes=25`: ustack(95) records 25 frames)."""
    cap = options.get("maxframes")
    return min(n, int(cap)) if isinstance(cap, int) and cap > 0 else n


def env_xopts(environ: dict[str, str] | None = None) -> list[tuple[str, object]]:
    """Settings from DTRACE_OPT_<NAME> variables (applied before the command
    line; invalid ones are silently ignored, as libdtrace does)."""
    env = os.environ if environ is None else environ
    out: list[tuple[str, object]] = []
    for name in (*COMPILE_OPTIONS, *DYNAMIC_OPTIONS, *RUNTIME_OPTIONS):
        val = env.get("DTRACE_OPT_" + name.upper())
        if val is not None:
            try:
                out.append(validate_xopt(name, val))
            except XoptError:
                pass
    return out


# --- option values ----------------------------------------------------------


def _strtoull(s: str) -> tuple[int | None, str, bool]:
    """C strtoull(s, &end, 0): (value or None if no digits, rest, negative)."""
    t = s.lstrip(" \t\n\r\f\v")
    neg = False
    if t and t[0] in "+-":
        neg = t[0] == "-"
        t = t[1:]
    base, digits = 10, "0123456789"
    if t[:2].lower() == "0x" and len(t) > 2 and t[2] in "0123456789abcdefABCDEF":
        base, digits, t = 16, "0123456789abcdefABCDEF", t[2:]
    elif t[:1] == "0":
        base, digits = 8, "01234567"
    n = 0
    while n < len(t) and t[n] in digits:
        n += 1
    if n == 0:
        return None, s, False
    val = digits_value(t[:n], base)
    # "-0" is fine; any other negative number is rejected by the callers
    return val, t[n:], neg and val != 0


def parse_size(arg: str) -> int:
    """dt_optval_parse: a number with an optional k/m/g/t suffix (powers of 1024)."""
    mul = 1
    if arg:
        mul = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(arg[-1].lower(), 1)
    val, rest, neg = _strtoull(arg)
    if val is None:
        val, rest = 0, arg
    if neg or val > U64_MAX:
        raise XoptError(E_BADOPTVAL)
    if (mul > 1 and rest != arg[-1]) or (mul == 1 and rest != ""):
        raise XoptError(E_BADOPTVAL)
    val *= mul
    if val >= 1 << 63:  # negative as dtrace's signed option value
        raise XoptError(E_BADOPTVAL)
    return val


RATE_UNITS = {
    "ns": 1,
    "nsec": 1,
    "us": 1000,
    "usec": 1000,
    "ms": 1_000_000,
    "msec": 1_000_000,
    "s": 1_000_000_000,
    "sec": 1_000_000_000,
    "m": 60_000_000_000,
    "min": 60_000_000_000,
    "h": 3_600_000_000_000,
    "hour": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "day": 86_400_000_000_000,
    "hz": 0,
}


def parse_rate(arg: str) -> int:
    """dt_opt_rate: nanoseconds; a bare number is ns, `hz` is per second."""
    val, rest, neg = _strtoull(arg)
    if val is None:
        val, rest = 0, arg
    if neg:
        raise XoptError(E_BADOPTVAL)
    mul = RATE_UNITS.get(rest.lower()) if rest else 1
    if mul is None:
        raise XoptError(E_BADOPTVAL)
    if mul == 0:
        return 1_000_000_000 // val if val else 0
    return (val * mul) & U64_MAX


_YES_NO = {
    "yes": True,
    "no": False,
    "enable": True,
    "disable": False,
    "enabled": True,
    "disabled": False,
    "true": True,
    "false": False,
    "on": True,
    "off": False,
    "set": True,
    "unset": False,
}


def _runtime(arg: str | None) -> int | None:
    """dt_opt_runtime: None = unset, else the value (no value means 0 = set)."""
    if arg is None:
        return 0
    if arg == "":
        return None
    word = _YES_NO.get(arg.lower())
    if word is not None:
        return 1 if word else None
    val, rest, neg = _strtoull(arg)
    if val is None or rest or neg or val >= 1 << 63:
        raise XoptError(E_BADOPTVAL)
    return val


def _atoi(arg: str) -> int:
    t = arg.lstrip(" \t\n\r\f\v")
    sign = 1
    if t and t[0] in "+-":
        sign = -1 if t[0] == "-" else 1
        t = t[1:]
    n = 0
    while n < len(t) and t[n].isdigit():
        n += 1
    # glibc's atoi is (int)strtol: saturated at LONG_MAX/LONG_MIN, then cut to 32 bits
    v = max(min(sign * digits_value(t[:n]), (1 << 63) - 1), -(1 << 63)) if n else 0
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _roundup8(v: int) -> int:
    return (v + 7) & ~7


def _need(arg: str | None) -> str:
    if arg is None:
        raise XoptError(E_BADOPTVAL)
    return arg


def _no_value(arg: str | None) -> bool:
    if arg is not None:
        raise XoptError(E_BADOPTVAL)
    return True


def _choice(arg: str | None, choices: tuple[str, ...], fold: bool = False) -> str:
    a = _need(arg)
    a = a.lower() if fold else a
    if a not in choices:
        raise XoptError(E_BADOPTVAL)
    return a


D_VERSIONS = (
    "1.0",
    "1.1",
    "1.2",
    "1.2.1",
    "1.2.2",
    "1.3",
    "1.4",
    "1.4.1",
    "1.5",
    "1.6",
    "1.6.1",
    "1.6.2",
    "1.6.3",
    "1.6.4",
    "2.0",
    "2.0.1",
)


def version_number(major: int, minor: int, micro: int = 0) -> int:
    return ((major & 0xFF) << 24) | ((minor & 0xFFF) << 12) | (micro & 0xFFF)


def parse_version(s: str) -> int:
    """`M[.m[.u]]` -> the packed version number; errors as -xversion has them."""
    n = [0, 0, 0]
    i = 0
    for c in s:
        if c.isdigit() and c.isascii():
            n[i] = n[i] * 10 + int(c)
        elif c != "." or i >= 2:
            raise XoptError(E_VERSINVAL)
        else:
            i += 1
    if n[0] > 0xFF or n[1] > 0xFFF or n[2] > 0xFFF:
        raise XoptError(E_VERSINVAL)
    v = version_number(*n)
    defined = {version_number(*(map(int, (d + ".0").split(".")[:3]))) for d in D_VERSIONS}
    if v not in defined:
        raise XoptError(E_VERSUNDEF)
    return v


DT_VERSION_LATEST = version_number(2, 0, 1)

_FLAG_ONLY = (
    "aggpercpu argref core cpp cpphdrs defaultargs debug empty errtags kdefs knodefs"
    " nolibs pspec strip udefs unodefs verbose zdefs"
    " json"  # pydtrace's own: JSON lines output
    " folded"  # pydtrace's own: aggregations as folded stacks (flame graphs)
    " seccompnotify"  # pydtrace's own: ptrace engine, entry probes by seccomp notification
).split()
_ANY_VALUE = ("droptags", "lazyload", "linknommap")
_STRING = (
    "cppargs cpppath ctypes ctfpath dtypes define incdir undef ldpath libdir modpath"
    " procfspath syslibdir sysslice dofstashpath amin"
).split()
_ENUMS: dict[str, tuple[tuple[str, ...], bool]] = {
    "evaltime": (("exec", "preinit", "postinit", "main"), False),
    "late": (("dynamic", "static"), False),
    "linkmode": (("kernel", "dynamic", "static"), False),
    "linktype": (("elf", "dof"), True),
    "stdc": (("a", "c", "s", "t"), False),
    "debugassert": (("mutexes",), False),
    "bufpolicy": (("ring", "fill", "switch"), False),
    "bufresize": (("auto", "manual"), False),
    "engine": (
        ("ebpf", "ptrace", "tracefs"),
        False,
    ),  # pydtrace's own: which engine runs the program
}
_IN_PROGRAM_FORBIDDEN = frozenset(
    "cppargs cpphdrs cpppath ctfpath define incdir undef ldpath modpath procfspath stdc"
    " lockmem".split()
)

COMPILE_OPTIONS = tuple(
    sorted(
        {*_FLAG_ONLY, *_ANY_VALUE, *_STRING, *_ENUMS} - {"bufpolicy", "bufresize"}
        | {"disasm", "iregs", "pgmax", "preallocate", "tree", "tregs", "useruid", "version"}
    )
)
_SIZE = ("aggsize", "bpflogsize", "bufsize", "dynvarsize", "jstackstrsize", "specsize")
_RATE = ("cleanrate", "statusrate", "aggrate", "switchrate")
_BOOL_RUNTIME = (
    "bpflog destructive grabanon noresolve aggsortkey aggsortrev flowindent quiet"
    " quietresize rawbytes"
).split()
_INT_RUNTIME = (
    "cpu jstackframes maxframes nspec stackframes ustackframes aggsortkeypos aggsortpos"
    " stackindent"  # the spaces before each frame of a printed stack
).split()
RUNTIME_OPTIONS = (
    "aggsize bpflog bpflogsize bufsize bufpolicy bufresize cleanrate cpu destructive"
    " dynvarsize grabanon jstackframes jstackstrsize lockmem maxframes nspec pcapsize"
    " scratchsize specsize stackframes statusrate strsize ustackframes noresolve"
).split()
DYNAMIC_OPTIONS = (
    "aggrate aggsortkey aggsortkeypos aggsortpos aggsortrev flowindent quiet quietresize"
    " rawbytes stackindent switchrate printsize"
).split()
ALL_OPTIONS = frozenset((*COMPILE_OPTIONS, *RUNTIME_OPTIONS, *DYNAMIC_OPTIONS))


def validate_xopt(
    name: str, value: str | None, in_program: bool = False, active: bool = False
) -> tuple[str, object]:
    """Check one option as libdtrace's dtrace_setopt does; return (name, value).

    Normalized values: flags -> True; sizes -> bytes; rates -> ns; on/off
    runtime options (quiet, flowindent, destructive, ...) -> True/False;
    numeric runtime options (nspec, cpu, stackframes, ...) -> int or None
    (unset); enumerations -> the (lower-cased) word; paths -> the string;
    version -> the packed version number.  in_program: from `#pragma D
    option`/setopt(); active: tracing has started.
    """
    if name not in ALL_OPTIONS:
        raise XoptError(E_BADOPTNAME)
    if in_program and name in _IN_PROGRAM_FORBIDDEN:
        raise XoptError(E_BADOPTCTX)
    if active and name in RUNTIME_OPTIONS:
        raise XoptError(E_ACTIVE)
    return name, _value(name, value)


def _value(name: str, value: str | None) -> object:
    if name in _FLAG_ONLY:
        return _no_value(value)
    if name in _ANY_VALUE:
        return True
    if name in _STRING:
        return _need(value)
    if name in _ENUMS:
        choices, fold = _ENUMS[name]
        return _choice(value, choices, fold)
    if name in _SIZE:
        return 0 if value is None else parse_size(value)
    if name in _RATE:
        return 0 if value is None else parse_rate(value)
    if name in _BOOL_RUNTIME:
        return _runtime(value) is not None
    if name in _INT_RUNTIME:
        return _runtime(value)
    if name == "strsize":
        v = 0 if value is None else parse_size(value)
        if v < 2:  # room for the empty-string marker
            raise XoptError(E_BADOPTVAL)
        if v > 0xFFFFFFFF:
            raise XoptError(E_OVERFLOW)
        return v
    if name == "lockmem":
        v = _need(value)
        if v == "unlimited":
            return U64_MAX
        try:
            return parse_size(v)
        except XoptError:
            return None  # libdtrace ignores a bad lockmem value
    if name == "scratchsize":
        v = 0 if value is None else parse_size(value)
        return _roundup8(v + 8) if v > 0 else v
    if name in ("pcapsize", "printsize"):
        default, top = (1514, 65535) if name == "pcapsize" else (8192, 65536)
        v = default if value is None else parse_size(value)
        return _roundup8(v if 0 < v <= top else default)
    if name == "preallocate":
        return parse_size(_need(value))
    if name == "version":
        return parse_version(_need(value))
    return _int_option(name, value)


def _int_option(name: str, value: str | None) -> int:
    n = _atoi(_need(value))
    if name == "iregs":
        if n <= 0 or n > 8:
            raise XoptError(E_BADOPTVAL)
        if n < 8:
            raise XoptError(E_NOREG)
    elif name in ("tree", "tregs"):
        if n <= 0:
            raise XoptError(E_BADOPTVAL)
    elif n < 0:  # disasm, pgmax, useruid
        raise XoptError(E_BADOPTVAL)
    return n
