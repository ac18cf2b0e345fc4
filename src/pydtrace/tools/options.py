"""The option parser every tool shares, with BCC's and DTraceToolkit's spellings.

Options are scanned as getopt does in POSIX mode: short flags may be bundled
(`-xt`), a value follows its letter or the next word (`-p123`, `-p 123`),
long options take `--name=value` or `--name value`, and the first word that
is not an option ends them. What follows is, by the tool's kind, a command
to run (a snoop tool, dtruss) or an interval and a count (a summary tool;
its command goes after `--`). Every mistake is one line (UsageError) and
exit status 2; -h prints the tool's usage on stdout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydtrace.lang.dataclass import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENGINES = ("ebpf", "ptrace")


class UsageError(Exception):
    """A mistake on the command line: the message, printed after the tool's name."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Opt:
    """One option: a short letter and/or a long name; metavar None makes it a flag."""

    short: str | None
    long: str | None
    dest: str
    help: str
    metavar: str | None = None
    convert: Callable[[str], Any] | None = None  # raises ValueError with the reason
    default: Any = None

    @property
    def spelling(self) -> str:
        return f"-{self.short}" if self.short else f"--{self.long}"


def positive_int(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError("not a number") from None
    if n <= 0:
        raise ValueError("must be greater than 0")
    return n


def seconds(text: str) -> float:
    """A duration in seconds (fractions allowed), greater than zero."""
    try:
        s = float(text)
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not s > 0 or s != s or s == float("inf"):
        raise ValueError("must be greater than 0 seconds")
    if s * 1000 < 1:
        raise ValueError("must be at least 0.001 seconds")
    return s


def pid_value(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError("not a process ID") from None
    if n <= 0 or n > 0x3FFFFFFF:
        raise ValueError("not a process ID")
    return n


def command_words(text: str) -> list[str]:
    """-c CMD: split as a shell would split words (quotes kept together), no shell run."""
    import shlex  # (-c only: shlex imports re)

    try:
        words = shlex.split(text)
    except ValueError as e:
        raise ValueError(str(e)) from None
    if not words:
        raise ValueError("an empty command")
    return words


def buffer_size(text: str) -> int:
    """A trace buffer size as dtrace -b takes it (4m, 65536, 64k), in bytes."""
    from pydtrace.options import XoptError, validate_xopt

    try:
        _, size = validate_xopt("bufsize", text)
    except XoptError as e:
        raise ValueError(e.reason) from None
    return int(size)  # type: ignore[call-overload]


def engine_name(text: str) -> str:
    if text not in ENGINES:
        raise ValueError(f"not an engine (one of {', '.join(ENGINES)})")
    return text


# The options the tools share; a tool takes those it means and may add its own
# (a tool's own option may reuse a letter: errinfo's and dtruss's -c count).
PID = Opt("p", "pid", "pid", "trace this process only", "PID", pid_value)
COMMAND = Opt(
    "c", "command", "command", "run CMD and trace it and its children", "CMD", command_words
)
NAME = Opt("n", "name", "name", "trace processes with this name only (execname)", "NAME")
FAILED = Opt("x", "failed", "failed", "only show failed calls")
TIME = Opt("t", "timestamp", "time", "print a time column: seconds since the first event")
WALLTIME = Opt("T", "time", "walltime", "print a time column: the wall-clock time (HH:MM:SS)")
DURATION = Opt("d", "duration", "duration", "trace for SECONDS, then stop", "SECONDS", seconds)
JSON = Opt("j", "json", "json", "print one JSON object per line instead of columns")
HELP = Opt("h", "help", "help", "show this help and exit")
PRINT_SCRIPT = Opt(
    None, "print-script", "print_script", "print the D program the tool would run, and exit"
)
ENGINE = Opt(None, "engine", "engine", "run on this engine (ebpf: system-wide, as root; ptrace: -p or a command, no root needed)", "ENGINE", engine_name)  # fmt: skip
VERSION = Opt(None, "version", "version", "print the version and exit")
BUFSIZE = Opt(None, "bufsize", "bufsize", "the eBPF engine's trace buffer per CPU, as dtrace -b (default 4m); events that do not fit are counted and reported as drops", "SIZE", buffer_size)  # fmt: skip
SNOOP = (PID, COMMAND, NAME, TIME, WALLTIME, DURATION, JSON)
TAIL = (BUFSIZE, PRINT_SCRIPT, ENGINE, HELP, VERSION)


@dataclass
class Parsed:
    """The options' values by dest, and what followed the options."""

    values: dict[str, Any]
    command: list[str] = field(default_factory=list)
    interval: float | None = None
    count: int | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


def parse(
    tool: str, argv: Sequence[str], opts: Sequence[Opt], positional: str = "command"
) -> Parsed:
    """Parse argv (without the program name). positional: "command" (the first
    word that is not an option starts the command) or "interval" (`[interval
    [count]]`, a command only after `--`). Raises UsageError."""
    by_short = {o.short: o for o in opts if o.short}
    by_long = {o.long: o for o in opts if o.long}
    values: dict[str, Any] = {o.dest: (False if o.metavar is None else o.default) for o in opts}
    rest: list[str] = []
    words = list(argv)
    i = 0
    after_dashes = False

    def take(o: Opt, value: str) -> None:
        if o.convert is None:
            values[o.dest] = value
            return
        try:
            values[o.dest] = o.convert(value)
        except ValueError as e:
            raise UsageError(f"invalid value for {o.spelling}: '{value}': {e}") from None

    while i < len(words):
        w = words[i]
        i += 1
        if w == "--":
            after_dashes = True
            rest = words[i:]
            break
        if w.startswith("--"):
            name, eq, value = w[2:].partition("=")
            o = by_long.get(name)
            if o is None:
                raise UsageError(f"unknown option '--{name}' (see {tool} -h)")
            if o.metavar is None:
                if eq:
                    raise UsageError(f"option '--{name}' takes no value")
                values[o.dest] = True
            elif eq:
                take(o, value)
            elif i < len(words):
                take(o, words[i])
                i += 1
            else:
                raise UsageError(f"option '--{name}' needs a value ({o.metavar})")
            continue
        if w.startswith("-") and len(w) > 1:
            j = 1
            while j < len(w):
                c = w[j]
                j += 1
                o = by_short.get(c)
                if o is None:
                    raise UsageError(f"unknown option '-{c}' (see {tool} -h)")
                if o.metavar is None:
                    values[o.dest] = True
                    continue
                if j < len(w):
                    take(o, w[j:])
                elif i < len(words):
                    take(o, words[i])
                    i += 1
                else:
                    raise UsageError(f"option '-{c}' needs a value ({o.metavar})")
                break
            continue
        rest = words[i - 1 :]
        break
    parsed = Parsed(values)
    if values.get("help") or values.get("version"):
        return parsed
    if positional == "interval" and not after_dashes:
        tail, rest = rest, []
        if "--" in tail:  # `syscount 1 5 -- cmd`
            k = tail.index("--")
            tail, rest = tail[:k], tail[k + 1 :]
        if len(tail) > 2:
            raise UsageError(f"unexpected argument '{tail[2]}' (a command goes after --)")
        if tail:
            try:
                parsed.interval = seconds(tail[0])
            except ValueError as e:
                raise UsageError(f"invalid interval: '{tail[0]}': {e}") from None
        if len(tail) > 1:
            try:
                parsed.count = positive_int(tail[1])
            except ValueError as e:
                raise UsageError(f"invalid count: '{tail[1]}': {e}") from None
    elif positional == "none" and rest and not after_dashes:
        raise UsageError(f"unexpected argument '{rest[0]}'")
    if rest:
        parsed.command = rest
    elif after_dashes:
        raise UsageError("no command after --")
    if values.get("command") is not None:
        if parsed.command:
            raise UsageError("give the command with -c or after the options, not both")
        parsed.command = values["command"]
    if values.get("pid") is not None and parsed.command:
        raise UsageError("-p and a command cannot be used together")
    if values.get("time") and values.get("walltime"):
        raise UsageError("-t and -T cannot be used together")
    return parsed


def usage(tool: str, summary: str, opts: Sequence[Opt], positional: str = "command") -> str:
    """The -h text: a usage line, what the tool answers, one line per option."""
    shorts = "".join(o.short for o in opts if o.short and o.metavar is None)
    parts = [f"[-{shorts}]"] if shorts else []
    for o in opts:
        if o.metavar is not None:
            parts.append(f"[{o.spelling} {o.metavar}]")
        elif not o.short:
            parts.append(f"[{o.spelling}]")
    if positional == "interval":
        parts.append("[interval [count]] [-- command [arg ...]]")
    elif positional == "command":
        parts.append("[[--] command [arg ...]]")
    lines = [f"usage: {tool} {' '.join(parts)}", "", summary, "", "options:"]
    for o in opts:
        names = ", ".join(
            x for x in ((f"-{o.short}" if o.short else ""), (f"--{o.long}" if o.long else "")) if x
        )
        if o.metavar is not None:
            names += f" {o.metavar}"
        lines.append(f"  {names:<24} {o.help}")
    if positional == "interval":
        lines.append(f"  {'interval [count]':<24} print every interval seconds, count times")
    return "\n".join(lines) + "\n"
