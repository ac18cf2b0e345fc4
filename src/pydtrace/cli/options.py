"""dtrace(1) command-line parsing.

dtrace scans argv with glibc getopt, which permutes: options may follow
operands (`dtrace -s x.d 1234 -q` is fine) until a `--`.  It makes several
passes; the observable order of checks is kept here:

0. `--help` and `--version` (pydtrace's own, GNU-style) end the scan: no
   option is validated;
1. bad options (`invalid option`, `option requires an argument`, `-3x`)
   -> usage error (message, exit 2; dtrace prints its usage after it,
   pydtrace a hint to --help);
2. more than one of -G -h -l -V -> usage error without the usage text;
3. -V stops here (no option is validated);
4. the -b/-x/-X/... settings in command-line order -> `failed to set ...` (exit 1);
5. -B with -G/-h/-l or with -o -> usage error without the usage text;
6. -p values -> `invalid pid: X` (exit 1).

Option values are checked by pydtrace.options.validate_xopt.
"""

from __future__ import annotations

import os

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.options import XoptError, validate_xopt

PROG = "pydtrace"
OPTSTRING = "3:6:aAb:Bc:CD:ef:FGhHi:I:lL:m:n:o:p:P:qs:SU:vVwx:X:Z"
_WITH_ARG = {c for i, c in enumerate(OPTSTRING) if c != ":" and OPTSTRING[i + 1 : i + 2] == ":"}
_FLAGS = {c for c in OPTSTRING if c != ":"} - _WITH_ARG

U64_MAX = (1 << 64) - 1
LONG_OPTIONS = ("help", "version")  # GNU-style, pydtrace's own


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
    info: str = ""  # "help" or "version" for --help/--version: print it and exit
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
        if a.startswith("--"):  # the long options dtrace lacks; they end the scan
            name, eq, _ = a[2:].partition("=")
            if name not in LONG_OPTIONS:
                raise UsageError(f"unrecognized option '{a}'")
            if eq:
                raise UsageError(f"option '--{name}' doesn't allow an argument")
            opts.append(("--" + name, None))
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
    if opts and opts[-1][0] in ("--help", "--version"):
        o.info = opts[-1][0][2:]
        return o
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
    """strtol(s, &end, 10) consumes all of a non-empty s without ERANGE."""
    t = s.lstrip(" \t\n\r\f\v")
    neg = t[:1] == "-"
    if t and t[0] in "+-":
        t = t[1:]
    if not (t.isdigit() and t.isascii()):
        return False
    t = t.lstrip("0")
    return len(t) <= 19 and int(t or "0") <= (1 << 63) - (0 if neg else 1)
