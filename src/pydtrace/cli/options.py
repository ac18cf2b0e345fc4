"""dtrace(1) command-line parsing and `-x` option validation.

dtrace scans argv with glibc getopt, which permutes: options may follow
operands (`dtrace -s x.d 1234 -q` is fine) until a `--`.  It makes several
passes; the observable order of checks is kept here:

1. bad options (`invalid option`, `option requires an argument`, `-3x`)
   -> usage error (message, usage text, exit 2);
2. more than one of -G -h -l -V -> usage error without the usage text;
3. -V stops here (no option is validated);
4. the -b/-x/-X/... settings in command-line order -> `failed to set ...` (exit 1);
5. -B with -G/-h/-l or with -o -> usage error without the usage text;
6. -p values -> `invalid pid: X` (exit 1).

Option values are checked by `validate_xopt`, following libdtrace's
dt_options.c: sizes take k/m/g/t, rates take time units (a bare number is
nanoseconds, `hz` a frequency), flags take no value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

PROG = "pydtrace"
OPTSTRING = "3:6:aAb:Bc:CD:ef:FGhHi:I:lL:m:n:o:p:P:qs:SU:vVwx:X:Z"
_WITH_ARG = {c for i, c in enumerate(OPTSTRING) if c != ":" and OPTSTRING[i + 1 : i + 2] == ":"}
_FLAGS = {c for c in OPTSTRING if c != ":"} - _WITH_ARG

U64_MAX = (1 << 64) - 1


def usage_text(pname: str = PROG) -> str:
    pa = "[[ predicate ] action ]"
    return (
        f"Usage: {pname} [-32|-64] [-CeFGhHlqSvVwZ] [-b bufsz] [-c cmd] [-D name[=def]]\n"
        "\t[-I path] [-L path] [-o output] [-p pid] [-s script] [-U name]\n"
        "\t[-x opt[=val]] [-X a|c|s|t]\n\n"
        f"\t[-P provider {pa}]\n"
        f"\t[-m [ provider: ] module {pa}]\n"
        f"\t[-f [[ provider: ] module: ] func {pa}]\n"
        f"\t[-n [[[ provider: ] module: ] func: ] name {pa}]\n"
        f"\t[-i probe-id {pa}] [ args ... ]\n\n"
        "\tpredicate -> '/' D-expression '/'\n"
        "\t   action -> '{' D-statements '}'\n"
        "\n"
        "\t-32 generate 32-bit D programs and ELF files\n"
        "\t-64 generate 64-bit D programs and ELF files\n\n"
        "\t-b  set trace buffer size\n"
        "\t-c  run specified command and exit upon its completion\n"
        "\t-C  run cpp(1) preprocessor on script files\n"
        "\t-D  define symbol when invoking preprocessor\n"
        "\t-e  exit after compiling request but prior to enabling probes\n"
        "\t-f  enable or list probes matching the specified function name\n"
        "\t-F  coalesce trace output by function\n"
        "\t-G  generate an ELF file containing embedded dtrace program\n"
        "\t-h  generate a header file with definitions for static probes\n"
        "\t-H  print included files when invoking preprocessor\n"
        "\t-i  enable or list probes matching the specified probe id\n"
        "\t-I  add include directory to preprocessor search path\n"
        "\t-l  list probes matching specified criteria\n"
        "\t-L  add library directory to library search path\n"
        "\t-m  enable or list probes matching the specified module name\n"
        "\t-n  enable or list probes matching the specified probe name\n"
        "\t-o  set output file\n"
        "\t-p  grab specified process-ID and cache its symbol tables\n"
        "\t-P  enable or list probes matching the specified provider name\n"
        "\t-q  set quiet mode (only output explicitly traced data)\n"
        "\t-s  enable or list probes according to the specified D script\n"
        "\t-S  print D compiler intermediate code\n"
        "\t-U  undefine symbol when invoking preprocessor\n"
        "\t-v  set verbose mode (report stability attributes, arguments)\n"
        "\t-V  report DTrace API version\n"
        "\t-w  permit destructive actions\n"
        "\t-x  enable or modify compiler and tracing options\n"
        "\t-X  specify ISO C conformance settings for preprocessor\n"
        "\t-Z  permit probe descriptions that match zero probes\n"
    )


USAGE = usage_text()


class UsageError(Exception):
    """Exit status 2.  Print `pydtrace: <message>` (when there is one), then
    the usage text when show_usage is set."""

    def __init__(self, message: str = "", show_usage: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.show_usage = show_usage


class OptionError(Exception):
    """Exit status 1: print `pydtrace: <message>`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


@dataclass
class ProgramSource:
    kind: str  # 's' (script file), 'n', 'P', 'm', 'f', 'i'
    text: str  # the script path (for 's') or the probe specifier text


@dataclass
class Options:
    programs: list[ProgramSource] = field(default_factory=list)
    # every setting in command-line order, -x ones and those flags imply
    xopts: list[tuple[str, str | None]] = field(default_factory=list)
    # how each xopts entry was given, for error messages: '-x bufsize', '-b 4m'
    xopt_sources: list[str] = field(default_factory=list)
    # xopts after validate_xopt (filled unless -V)
    settings: list[tuple[str, object]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # -c
    pids: list[str] = field(default_factory=list)  # -p
    defines: list[str] = field(default_factory=list)  # -D
    undefs: list[str] = field(default_factory=list)  # -U
    incdirs: list[str] = field(default_factory=list)  # -I
    libdirs: list[str] = field(default_factory=list)  # -L
    output: str | None = None  # -o (append mode)
    mode: str = "exec"  # exec | list | link | header | version
    list_probes: bool = False  # -l
    compile_only: bool = False  # -e (and implied by -G/-h)
    verbose: int = 0  # -v count
    version: bool = False  # -V
    link: bool = False  # -G
    header: bool = False  # -h
    zdefs: bool = False  # -Z, implied by -l -G -h
    cpp: bool = False  # -C
    cpphdrs: bool = False  # -H
    disasm: bool = False  # -S
    quiet: bool = False  # -q
    destructive: bool = False  # -w
    flowindent: bool = False  # -F
    discard: bool = False  # -B
    anon: str = ""  # -a / -A (accepted, unused on Linux)
    data_model: int | None = None  # -32 / -64
    stdc: str | None = None  # -X
    operands: list[str] = field(default_factory=list)  # $1, $2, ...


def _getopt(argv: list[str], posix: bool) -> tuple[list[tuple[str, str | None]], list[str]]:
    """glibc-style getopt over argv (without the program name)."""
    opts: list[tuple[str, str | None]] = []
    operands: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            operands.extend(argv[i + 1 :])
            break
        if not a.startswith("-") or a == "-":
            if posix:
                operands.extend(argv[i:])
                break
            operands.append(a)
            i += 1
            continue
        j = 1
        while j < len(a):
            c = a[j]
            if c in _FLAGS:
                opts.append((c, None))
                j += 1
                continue
            if c not in _WITH_ARG:
                raise UsageError(f"invalid option -- '{c}'")
            if j + 1 < len(a):
                opts.append((c, a[j + 1 :]))
            else:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"option requires an argument -- '{c}'")
                opts.append((c, argv[i]))
            break
        i += 1
    return opts, operands


# option letter -> the -x name dtrace sets for it
_FLAG_XOPT = {
    "b": "bufsize",
    "D": "define",
    "F": "flowindent",
    "H": "cpphdrs",
    "I": "incdir",
    "L": "libdir",
    "q": "quiet",
    "U": "undef",
    "w": "destructive",
    "X": "stdc",
    # compiler flags that have an -x equivalent
    "C": "cpp",
    "S": "verbose",  # -S and -xverbose both set DTRACE_C_DIFV
    "Z": "zdefs",
}


def parse_args(argv: list[str], environ: dict[str, str] | None = None) -> Options:
    """Parse dtrace's command line; argv excludes the program name."""
    env = os.environ if environ is None else environ
    if not argv:
        raise UsageError("")
    opts, operands = _getopt(argv, "POSIXLY_CORRECT" in env)
    o = Options(operands=operands)
    nmodes = 0
    # pass 1: modes, data model, and the checks dtrace does before opening
    for c, arg in opts:
        if c in "36":
            want = "2" if c == "3" else "4"
            if arg != want:
                raise UsageError(f"illegal option -- {c}{arg}")
            o.data_model = 32 if c == "3" else 64
        elif c == "e":
            o.compile_only = True
        elif c in "hGlV":
            nmodes += 1
            o.mode = {"h": "header", "G": "link", "l": "list", "V": "version"}[c]
            if c in "hGl":
                o.zdefs = True
            if c in "hG":
                o.compile_only = True
        elif c == "v":
            o.verbose += 1
    if nmodes > 1:
        raise UsageError("only one of the [-GhlV] options can be specified at a time", False)
    o.list_probes = o.mode == "list"
    o.version = o.mode == "version"
    o.link = o.mode == "link"
    o.header = o.mode == "header"
    if o.link:
        o.xopts += [("linkmode", "dynamic"), ("unodefs", None)]
        o.xopt_sources += ["-G", "-G"]
    # pass 2: programs and settings, in order
    for c, arg in opts:
        if c in "fimnPs":
            o.programs.append(ProgramSource(c, arg or ""))
        elif c == "c":
            o.commands.append(arg or "")
        elif c == "p":
            o.pids.append(arg or "")
        elif c == "o":
            o.output = arg
        elif c == "B":
            o.discard = True
        elif c in "aA":
            o.anon = c
        elif c == "x":
            assert arg is not None
            name, eq, value = arg.partition("=")
            o.xopts.append((name, value if eq else None))
            o.xopt_sources.append(f"-x {name}")
        elif c in _FLAG_XOPT:
            o.xopts.append((_FLAG_XOPT[c], arg))
            o.xopt_sources.append(f"-{c}" + (f" {arg}" if arg is not None else ""))
            _note_flag(o, c, arg)
    if o.version:
        return o
    for (name, value), src in zip(o.xopts, o.xopt_sources):
        try:
            o.settings.append(validate_xopt(name, value))
        except XoptError as e:
            raise OptionError(f"failed to set {src}: {e.reason}") from None
    if o.discard and o.mode != "exec":
        raise UsageError("-B not valid in combination with [-Gl] options", False)
    if o.discard and o.output is not None:
        raise UsageError("-B not valid in combination with -o option", False)
    for p in o.pids:
        if not _is_long(p):
            raise OptionError(f"invalid pid: {p}")
    return o


def _note_flag(o: Options, c: str, arg: str | None) -> None:
    if c == "D":
        o.defines.append(arg or "")
    elif c == "U":
        o.undefs.append(arg or "")
    elif c == "I":
        o.incdirs.append(arg or "")
    elif c == "L":
        o.libdirs.append(arg or "")
    elif c == "X":
        o.stdc = arg
    elif c == "C":
        o.cpp = True
    elif c == "H":
        o.cpphdrs = True
    elif c == "S":
        o.disasm = True
    elif c == "Z":
        o.zdefs = True
    elif c == "q":
        o.quiet = True
    elif c == "w":
        o.destructive = True
    elif c == "F":
        o.flowindent = True


def _is_long(s: str) -> bool:
    """strtol(s, &end, 10) consumes all of a non-empty s."""
    t = s.lstrip(" \t\n\r\f\v")
    if t and t[0] in "+-":
        t = t[1:]
    return t.isdigit() and t.isascii()


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
    val = int(t[:n], base)
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
    return sign * int(t[:n]) if n else 0


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
    " quietresize rawbytes stackindent"
).split()
_INT_RUNTIME = (
    "cpu jstackframes maxframes nspec stackframes ustackframes aggsortkeypos aggsortpos".split()
)
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
